// The transformer primitives against double-precision loops written from backend.h's comments:
// RMSNorm, LayerNorm, bias rows, axpby, RoPE (and its inverse), SiLU gating, the four
// activations, attention (causal and bidirectional, packed segments, grouped-query heads, q/k/v
// as column blocks of one fused matrix), its backward (against a naive backward and against
// finite differences of a scalar loss), row norms, the sum of squares and patch unfolding.
#include <cmath>
#include <tuple>

#include "harness.h"

namespace vlmq::conformance {
namespace {

constexpr double kUnit = 0x1.0p-24;  // f32 unit roundoff

// One unary-style case: x at `layout`, y separate at an offset or y == x.
struct RowShape {
  int64_t rows, cols;
  Layout layout;
  bool in_place;
};
const RowShape kRowShapes[] = {{1, 1, Layout::kContiguous, false},
                               {7, 33, Layout::kOffset, false},
                               {67, 130, Layout::kOffset, false},
                               {33, 67, Layout::kOffset, true}};

// Row 1 a thousand times smaller, so that eps is felt in it.
void shrink_second_row(std::vector<float>* x, const RowShape& r) {
  if (r.rows > 1)
    for (int64_t j = 0; j < r.cols; j++) (*x)[r.cols + j] *= 1e-3f;
}

std::string row_case(const RowShape& r) { return dims_of(r.rows, r.cols, r.layout) + (r.in_place ? ", y = x" : ""); }

void norm_cases(Suite& s) {
  Backend& b = s.backend;
  for (const RowShape& r : kRowShapes)
    s.run("rms_norm", row_case(r) + ", eps 1e-6", [&b, r](Rng& rng) {
      std::vector<float> x = rng.floats(r.rows * r.cols, -3.0f, 3.0f);
      const std::vector<float> w = rng.floats(r.cols, 0.5f, 1.5f);
      shrink_second_row(&x, r);
      Operand<float> dx, dw, dy;
      CONF_SETUP(make_operand(b, "x", r.rows, r.cols, r.layout, x, &dx));
      CONF_SETUP(make_operand(b, "w", 1, r.cols, Layout::kOffset, w, &dw));
      CONF_SETUP(make_operand(b, "y", r.rows, r.cols, Layout::kOffset, rng.floats(r.rows * r.cols), &dy));
      const Operand<float>& y = r.in_place ? dx : dy;
      CONF_CALL(b.rms_norm(dx.mat(), dw.mat(), 1e-6f, y.mat()));
      std::vector<double> want(x.size());
      for (int64_t i = 0; i < r.rows; i++) {
        double sum = 0;
        for (int64_t j = 0; j < r.cols; j++) sum += static_cast<double>(x[i * r.cols + j]) * x[i * r.cols + j];
        const double inv = 1.0 / std::sqrt(sum / r.cols + 1e-6);
        for (int64_t j = 0; j < r.cols; j++) want[i * r.cols + j] = x[i * r.cols + j] * inv * w[j];
      }
      std::vector<float> got;
      CONF_CHECK(read(b, y, &got));
      CONF_CHECK(unchanged(b, dw));
      return near("y", r.cols, got, want, 8 * kUnit, 1e-30);
    });
  for (const RowShape& r : kRowShapes)
    for (float offset : {0.0f, 100.0f})
      s.run("layer_norm", row_case(r) + ", eps 1e-5" + (offset ? ", values around 100" : ""), [&b, r, offset](Rng& rng) {
        std::vector<float> x = rng.floats(r.rows * r.cols, -3.0f, 3.0f);
        shrink_second_row(&x, r);
        for (float& v : x) v += offset;
        const std::vector<float> w = rng.floats(r.cols, 0.5f, 1.5f), bias = rng.floats(r.cols);
        Operand<float> dx, dw, db, dy;
        CONF_SETUP(make_operand(b, "x", r.rows, r.cols, r.layout, x, &dx));
        CONF_SETUP(make_operand(b, "w", 1, r.cols, Layout::kOffset, w, &dw));
        CONF_SETUP(make_operand(b, "b", 1, r.cols, Layout::kContiguous, bias, &db));
        CONF_SETUP(make_operand(b, "y", r.rows, r.cols, Layout::kOffset, rng.floats(r.rows * r.cols), &dy));
        const Operand<float>& y = r.in_place ? dx : dy;
        CONF_CALL(b.layer_norm(dx.mat(), dw.mat(), db.mat(), 1e-5f, y.mat()));
        std::vector<double> want(x.size()), scale(x.size());
        for (int64_t i = 0; i < r.rows; i++) {
          double mean = 0, var = 0;
          for (int64_t j = 0; j < r.cols; j++) mean += x[i * r.cols + j];
          mean /= r.cols;
          for (int64_t j = 0; j < r.cols; j++) var += (x[i * r.cols + j] - mean) * (x[i * r.cols + j] - mean);
          const double inv = 1.0 / std::sqrt(var / r.cols + 1e-5);
          for (int64_t j = 0; j < r.cols; j++) {
            want[i * r.cols + j] = (x[i * r.cols + j] - mean) * inv * w[j] + bias[j];
            // The mean is rounded to f32 before it is subtracted: an error of |x|, not |x − mean|.
            scale[i * r.cols + j] = (std::fabs(x[i * r.cols + j]) + std::fabs(mean)) * inv * w[j] + std::fabs(bias[j]);
          }
        }
        std::vector<float> got;
        CONF_CHECK(read(b, y, &got));
        return near("y", r.cols, got, want, 8 * kUnit, 0, scale);
      });
  for (const RowShape& r : kRowShapes)
    for (bool l2 : {false, true})
      s.run("row_norms", dims_of(r.rows, r.cols, r.layout) + (l2 ? ", l2" : ", l1"), [&b, r, l2](Rng& rng) {
        const std::vector<float> x = rng.floats(r.rows * r.cols, -4.0f, 4.0f);
        Operand<float> dx, out;
        CONF_SETUP(make_operand(b, "x", r.rows, r.cols, r.layout, x, &dx));
        CONF_SETUP(make_operand(b, "out", 1, r.rows, Layout::kOffset, rng.floats(r.rows), &out));
        CONF_CALL(b.row_norms(dx.mat(), l2, out.mat()));
        std::vector<double> want(static_cast<size_t>(r.rows));
        for (int64_t i = 0; i < r.rows; i++) {
          double sum = 0;
          for (int64_t j = 0; j < r.cols; j++) sum += l2 ? static_cast<double>(x[i * r.cols + j]) * x[i * r.cols + j] : std::fabs(x[i * r.cols + j]);
          want[i] = l2 ? std::sqrt(sum / r.cols) : sum / r.cols;
        }
        std::vector<float> got;
        CONF_CHECK(read(b, out, &got));
        CONF_CHECK(unchanged(b, dx));
        return near("out", r.rows, got, want, 8 * kUnit * std::sqrt(r.cols + 1.0), 1e-30);
      });
  for (auto [rows, cols, layout] : {std::tuple{1, 1, Layout::kContiguous}, {7, 33, Layout::kOffset}, {130, 130, Layout::kOffset}})
    s.run("sum_squares", dims_of(rows, cols, layout), [&b, rows = rows, cols = cols, layout = layout](Rng& rng) {
      const std::vector<float> x = rng.floats(rows * cols, -4.0f, 4.0f);
      Operand<float> dx;
      CONF_SETUP(make_operand(b, "x", rows, cols, layout, x, &dx));
      double got = -1, want = 0;
      CONF_CALL(b.sum_squares(dx.mat(), &got));
      for (float v : x) want += static_cast<double>(v) * v;
      return near_value("Σ x²", got, want, 1e-10 * want);
    });
}

void elementwise_cases(Suite& s) {
  Backend& b = s.backend;
  for (const RowShape& r : kRowShapes) {
    if (r.in_place) continue;
    s.run("add_row", dims_of(r.rows, r.cols, r.layout), [&b, r](Rng& rng) {
      const std::vector<float> x = rng.floats(r.rows * r.cols), v = rng.floats(r.cols);
      Operand<float> dx, dv;
      CONF_SETUP(make_operand(b, "x", r.rows, r.cols, r.layout, x, &dx));
      CONF_SETUP(make_operand(b, "v", 1, r.cols, Layout::kOffset, v, &dv));
      CONF_CALL(b.add_row(dx.mat(), dv.mat()));
      std::vector<float> got, want(x);
      for (size_t k = 0; k < want.size(); k++) want[k] += v[k % r.cols];  // one rounding: exact in f32
      CONF_CHECK(read(b, dx, &got));
      return same("x", r.cols, got, want);
    });
    s.run("silu_mul", dims_of(r.rows, r.cols, r.layout), [&b, r](Rng& rng) {
      const std::vector<float> gate = rng.floats(r.rows * r.cols, -10.0f, 10.0f), up = rng.floats(r.rows * r.cols, -2.0f, 2.0f);
      Operand<float> dg, du, out;
      CONF_SETUP(make_operand(b, "gate", r.rows, r.cols, r.layout, gate, &dg));
      CONF_SETUP(make_operand(b, "up", r.rows, r.cols, Layout::kContiguous, up, &du));
      CONF_SETUP(make_operand(b, "out", r.rows, r.cols, Layout::kOffset, rng.floats(r.rows * r.cols), &out));
      CONF_CALL(b.silu_mul(dg.mat(), du.mat(), out.mat()));
      std::vector<double> want(gate.size());
      for (size_t k = 0; k < want.size(); k++) want[k] = gate[k] / (1.0 + std::exp(-static_cast<double>(gate[k]))) * up[k];
      std::vector<float> got;
      CONF_CHECK(read(b, out, &got));
      return near("out", r.cols, got, want, 16 * kUnit, 1e-30);
    });
  }
  // y = a + alpha·b with y separate, y = a, y = b.
  for (auto [rows, cols, layout, alias] : {std::tuple{1, 1, Layout::kContiguous, 0}, {7, 33, Layout::kOffset, 0}, {67, 130, Layout::kOffset, 0},
                                           {33, 67, Layout::kOffset, 1}, {33, 67, Layout::kOffset, 2}})
    s.run("axpby", dims_of(rows, cols, layout) + (alias == 1 ? ", y = a" : alias == 2 ? ", y = b" : "") + ", alpha −0.75",
          [&b, rows = rows, cols = cols, layout = layout, alias = alias](Rng& rng) {
            const std::vector<float> a = rng.floats(rows * cols), c = rng.floats(rows * cols);
            Operand<float> da, db, dy;
            CONF_SETUP(make_operand(b, "a", rows, cols, layout, a, &da));
            CONF_SETUP(make_operand(b, "b", rows, cols, Layout::kOffset, c, &db));
            CONF_SETUP(make_operand(b, "y", rows, cols, Layout::kOffset, rng.floats(rows * cols), &dy));
            const Operand<float>& y = alias == 1 ? da : alias == 2 ? db : dy;
            CONF_CALL(b.axpby(da.mat(), -0.75f, db.mat(), y.mat()));
            std::vector<double> want(a.size()), scale(a.size());
            for (size_t k = 0; k < a.size(); k++) want[k] = a[k] - 0.75 * c[k], scale[k] = std::fabs(a[k]) + 0.75 * std::fabs(c[k]);
            std::vector<float> got;
            CONF_CHECK(read(b, y, &got));
            return near("y", cols, got, want, 4 * kUnit, 0, scale);
          });
}

double activation_value(Activation act, double x) {
  switch (act) {
    case Activation::kGelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::kGeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::acos(-1.0)) * (x + 0.044715 * x * x * x)));
    case Activation::kQuickGelu: return x / (1.0 + std::exp(-1.702 * x));
    case Activation::kSilu: return x / (1.0 + std::exp(-x));
  }
  return NAN;
}

void activation_cases(Suite& s) {
  Backend& b = s.backend;
  const std::pair<Activation, const char*> kinds[] = {{Activation::kGelu, "gelu"}, {Activation::kGeluTanh, "gelu_pytorch_tanh"},
                                                      {Activation::kQuickGelu, "quick_gelu"}, {Activation::kSilu, "silu"}};
  for (auto [act, label] : kinds)
    for (const RowShape& r : kRowShapes)
      s.run("activation", std::string(label) + " " + row_case(r), [&b, act = act, r](Rng& rng) {
        const std::vector<float> x = rng.floats(r.rows * r.cols, -8.0f, 8.0f);
        Operand<float> dx, dy;
        CONF_SETUP(make_operand(b, "x", r.rows, r.cols, r.layout, x, &dx));
        CONF_SETUP(make_operand(b, "y", r.rows, r.cols, Layout::kOffset, rng.floats(r.rows * r.cols), &dy));
        const Operand<float>& y = r.in_place ? dx : dy;
        CONF_CALL(b.activation(act, dx.mat(), y.mat()));
        std::vector<double> want(x.size()), scale(x.size());
        for (size_t k = 0; k < x.size(); k++) want[k] = activation_value(act, x[k]), scale[k] = std::fabs(x[k]);
        std::vector<float> got;
        CONF_CHECK(read(b, y, &got));
        return near("y", r.cols, got, want, 8 * kUnit, 0, scale);
      });
}

void rope_cases(Suite& s) {
  Backend& b = s.backend;
  struct Case {
    int64_t rows, heads, d;
    Layout layout;
    int mode;  // 0: forward, 1: inverse, 2: forward then inverse gives x back
  };
  const Case cases[] = {{1, 1, 2, Layout::kContiguous, 0}, {7, 3, 8, Layout::kOffset, 0}, {33, 2, 64, Layout::kOffset, 0},
                        {7, 3, 8, Layout::kOffset, 1},     {33, 2, 64, Layout::kOffset, 2}};
  for (const Case& c : cases) {
    const std::string what = c.mode == 0 ? "forward" : c.mode == 1 ? "inverse" : "inverse undoes forward";
    s.run("rope", what + ", " + std::to_string(c.heads) + " heads of " + std::to_string(c.d) + ", " + dims_of(c.rows, c.heads * c.d, c.layout),
          [&b, c](Rng& rng) {
            const int64_t d = c.d, half = d / 2, cols = c.heads * d;
            const std::vector<float> x = rng.floats(c.rows * cols, -2.0f, 2.0f);
            std::vector<float> cos(static_cast<size_t>(c.rows * d)), sin(cos.size());
            for (int64_t i = 0; i < c.rows; i++)
              for (int64_t j = 0; j < half; j++) {
                const double angle = (i + 3.0) * std::pow(10000.0, -2.0 * j / d);
                cos[i * d + j] = cos[i * d + j + half] = static_cast<float>(std::cos(angle));
                sin[i * d + j] = sin[i * d + j + half] = static_cast<float>(std::sin(angle));
              }
            Operand<float> dx, dc, ds;
            CONF_SETUP(make_operand(b, "x", c.rows, cols, c.layout, x, &dx));
            CONF_SETUP(make_operand(b, "cos", c.rows, d, Layout::kOffset, cos, &dc));
            CONF_SETUP(make_operand(b, "sin", c.rows, d, Layout::kContiguous, sin, &ds));
            CONF_CALL(b.rope(dx.mat(), d, dc.mat(), ds.mat(), c.mode == 1));
            if (c.mode == 2) CONF_CALL(b.rope(dx.mat(), d, dc.mat(), ds.mat(), true));
            std::vector<double> want(x.size()), scale(x.size());
            const double sign = c.mode == 1 ? -1.0 : 1.0;
            for (int64_t i = 0; i < c.rows; i++)
              for (int64_t h = 0; h < c.heads; h++)
                for (int64_t j = 0; j < half; j++) {
                  const int64_t k1 = i * cols + h * d + j, k2 = k1 + half;
                  const double x1 = x[k1], x2 = x[k2], cs = cos[i * d + j], sn = sign * sin[i * d + j];
                  want[k1] = c.mode == 2 ? x1 : x1 * cs - x2 * sn;
                  want[k2] = c.mode == 2 ? x2 : x2 * cs + x1 * sn;
                  scale[k1] = scale[k2] = std::fabs(x1) + std::fabs(x2);
                }
            std::vector<float> got;
            CONF_CHECK(read(b, dx, &got));
            return near("x", cols, got, want, (c.mode == 2 ? 8 : 4) * kUnit, 0, scale);
          });
  }
}

// --- attention ---------------------------------------------------------------------------------------------

struct AttentionProblem {
  int64_t T = 0, heads = 0, kv_heads = 0, d = 0;
  std::vector<int32_t> segments;
  bool causal = true;
  std::vector<double> q, k, v;  // [T, heads·d], [T, kv·d], [T, kv·d] row-major
};

// out = softmax(q·kᵀ/√d)·v within segments, and scale[i, c] = Σ_j p_ij·|v_jc|·(1 + largest |score|):
// how much an element can move when the scores move by a few roundings.
void naive_attention(const AttentionProblem& p, std::vector<double>* out, std::vector<double>* scale) {
  const int64_t qw = p.heads * p.d, kw = p.kv_heads * p.d, group = p.heads / p.kv_heads;
  out->assign(static_cast<size_t>(p.T * qw), 0.0);
  scale->assign(out->size(), 0.0);
  const double inv = 1.0 / std::sqrt(static_cast<double>(p.d));
  for (size_t s = 0; s + 1 < p.segments.size(); s++)
    for (int64_t h = 0; h < p.heads; h++) {
      const int64_t kvh = h / group;
      for (int64_t i = p.segments[s]; i < p.segments[s + 1]; i++) {
        const int64_t last = p.causal ? i : p.segments[s + 1] - 1;
        std::vector<double> w;
        double top = -HUGE_VAL, size = 0;
        for (int64_t j = p.segments[s]; j <= last; j++) {
          double dot = 0, magnitude = 0;
          for (int64_t c = 0; c < p.d; c++) {
            dot += p.q[i * qw + h * p.d + c] * p.k[j * kw + kvh * p.d + c];
            magnitude += std::fabs(p.q[i * qw + h * p.d + c] * p.k[j * kw + kvh * p.d + c]);
          }
          w.push_back(dot * inv);
          top = std::max(top, dot * inv);
          size = std::max(size, magnitude * inv);
        }
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - top));
        for (size_t t = 0; t < w.size(); t++) {
          const int64_t j = p.segments[s] + static_cast<int64_t>(t);
          for (int64_t c = 0; c < p.d; c++) {
            (*out)[i * qw + h * p.d + c] += w[t] / sum * p.v[j * kw + kvh * p.d + c];
            (*scale)[i * qw + h * p.d + c] += w[t] / sum * std::fabs(p.v[j * kw + kvh * p.d + c]) * (1 + size);
          }
        }
      }
    }
}

double attention_loss(const AttentionProblem& p, const std::vector<double>& d_out) {
  std::vector<double> out, scale;
  naive_attention(p, &out, &scale);
  double loss = 0;
  for (size_t k = 0; k < out.size(); k++) loss += out[k] * d_out[k];
  return loss;
}

// The causal backward in double, from the chain rule through P = softmax(S), S = q·kᵀ/√d; each
// gradient with its magnitude (the same sums over absolute values) for the tolerance.
struct Gradients {
  std::vector<double> dq, dk, dv, mq, mk, mv;
};

Gradients naive_attention_backward(const AttentionProblem& p, const std::vector<double>& d_out) {
  const int64_t qw = p.heads * p.d, kw = p.kv_heads * p.d, group = p.heads / p.kv_heads;
  const double inv = 1.0 / std::sqrt(static_cast<double>(p.d));
  Gradients g;
  g.dq.assign(static_cast<size_t>(p.T * qw), 0.0);
  g.mq = g.dq;
  g.dk.assign(static_cast<size_t>(p.T * kw), 0.0);
  g.mk = g.dv = g.mv = g.dk;
  for (size_t s = 0; s + 1 < p.segments.size(); s++)
    for (int64_t h = 0; h < p.heads; h++) {
      const int64_t kvh = h / group, t0 = p.segments[s], L = p.segments[s + 1] - t0;
      auto Q = [&](int64_t i, int64_t c) { return p.q[(t0 + i) * qw + h * p.d + c]; };
      auto K = [&](int64_t j, int64_t c) { return p.k[(t0 + j) * kw + kvh * p.d + c]; };
      auto V = [&](int64_t j, int64_t c) { return p.v[(t0 + j) * kw + kvh * p.d + c]; };
      auto dO = [&](int64_t i, int64_t c) { return d_out[(t0 + i) * qw + h * p.d + c]; };
      std::vector<double> P(static_cast<size_t>(L * L), 0.0), dS(P.size(), 0.0), mS(P.size(), 0.0);
      for (int64_t i = 0; i < L; i++) {
        double top = -HUGE_VAL, sum = 0;
        for (int64_t j = 0; j <= i; j++) {
          double dot = 0;
          for (int64_t c = 0; c < p.d; c++) dot += Q(i, c) * K(j, c);
          P[i * L + j] = dot * inv;
          top = std::max(top, dot * inv);
        }
        for (int64_t j = 0; j <= i; j++) sum += (P[i * L + j] = std::exp(P[i * L + j] - top));
        for (int64_t j = 0; j <= i; j++) P[i * L + j] /= sum;
        // dP = dO·vᵀ; dS = P ⊙ (dP − Σ_j P·dP)
        std::vector<double> dP(static_cast<size_t>(i + 1)), mP(dP.size());
        double row = 0, mrow = 0;
        for (int64_t j = 0; j <= i; j++) {
          for (int64_t c = 0; c < p.d; c++) dP[j] += dO(i, c) * V(j, c), mP[j] += std::fabs(dO(i, c) * V(j, c));
          row += P[i * L + j] * dP[j];
          mrow += P[i * L + j] * mP[j];
        }
        for (int64_t j = 0; j <= i; j++) {
          dS[i * L + j] = P[i * L + j] * (dP[j] - row);
          mS[i * L + j] = P[i * L + j] * (mP[j] + mrow);
        }
      }
      for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j <= i; j++)
          for (int64_t c = 0; c < p.d; c++) {
            g.dv[(t0 + j) * kw + kvh * p.d + c] += P[i * L + j] * dO(i, c);
            g.mv[(t0 + j) * kw + kvh * p.d + c] += P[i * L + j] * std::fabs(dO(i, c));
            g.dq[(t0 + i) * qw + h * p.d + c] += inv * dS[i * L + j] * K(j, c);
            g.mq[(t0 + i) * qw + h * p.d + c] += inv * mS[i * L + j] * std::fabs(K(j, c));
            g.dk[(t0 + j) * kw + kvh * p.d + c] += inv * dS[i * L + j] * Q(i, c);
            g.mk[(t0 + j) * kw + kvh * p.d + c] += inv * mS[i * L + j] * std::fabs(Q(i, c));
          }
    }
  return g;
}

// q, k and v on the backend: column blocks of one fused [T, (heads + 2·kv)·d] matrix at an offset
// (as a fused projection leaves them), or three contiguous matrices.
struct AttentionOperands {
  Operand<float> fused, q, k, v;
  MatF Q, K, V;
};

Status place_qkv(Backend& b, const AttentionProblem& p, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                 bool fused, const char* name, AttentionOperands* out) {
  const int64_t qw = p.heads * p.d, kw = p.kv_heads * p.d, width = qw + 2 * kw;
  const std::string n(name);
  if (!fused) {
    VLMQ_TRY(make_operand(b, n + "q", p.T, qw, Layout::kContiguous, q, &out->q));
    VLMQ_TRY(make_operand(b, n + "k", p.T, kw, Layout::kContiguous, k, &out->k));
    VLMQ_TRY(make_operand(b, n + "v", p.T, kw, Layout::kContiguous, v, &out->v));
    out->Q = out->q.mat(), out->K = out->k.mat(), out->V = out->v.mat();
    return Status::Ok();
  }
  std::vector<float> all(static_cast<size_t>(p.T * width));
  for (int64_t t = 0; t < p.T; t++) {
    std::copy(q.begin() + t * qw, q.begin() + (t + 1) * qw, all.begin() + t * width);
    std::copy(k.begin() + t * kw, k.begin() + (t + 1) * kw, all.begin() + t * width + qw);
    std::copy(v.begin() + t * kw, v.begin() + (t + 1) * kw, all.begin() + t * width + qw + kw);
  }
  VLMQ_TRY(make_operand(b, n + "qkv", p.T, width, Layout::kOffset, all, &out->fused));
  const MatF m = out->fused.mat();
  out->Q = m.block(0, 0, p.T, qw), out->K = m.block(0, qw, p.T, kw), out->V = m.block(0, qw + kw, p.T, kw);
  return Status::Ok();
}

// Splits a fused [T, qw + 2·kw] host matrix back into its three blocks.
void split_qkv(const AttentionProblem& p, const std::vector<float>& all, std::vector<float>* q, std::vector<float>* k, std::vector<float>* v) {
  const int64_t qw = p.heads * p.d, kw = p.kv_heads * p.d, width = qw + 2 * kw;
  q->clear(), k->clear(), v->clear();
  for (int64_t t = 0; t < p.T; t++) {
    q->insert(q->end(), all.begin() + t * width, all.begin() + t * width + qw);
    k->insert(k->end(), all.begin() + t * width + qw, all.begin() + t * width + qw + kw);
    v->insert(v->end(), all.begin() + t * width + qw + kw, all.begin() + (t + 1) * width);
  }
}

struct AttentionCase {
  const char* name;
  int64_t heads, kv_heads, d;
  std::vector<int32_t> segments;
  bool causal, fused;
};

AttentionProblem draw(Rng& rng, const AttentionCase& c, std::vector<float>* q, std::vector<float>* k, std::vector<float>* v) {
  AttentionProblem p;
  p.T = c.segments.back(), p.heads = c.heads, p.kv_heads = c.kv_heads, p.d = c.d, p.segments = c.segments, p.causal = c.causal;
  *q = rng.floats(p.T * p.heads * p.d, -2.0f, 2.0f);
  *k = rng.floats(p.T * p.kv_heads * p.d, -2.0f, 2.0f);
  *v = rng.floats(p.T * p.kv_heads * p.d);
  p.q = widen(*q), p.k = widen(*k), p.v = widen(*v);
  return p;
}

void attention_cases(Suite& s) {
  Backend& b = s.backend;
  const AttentionCase cases[] = {
      {"1 token, 1 head of 1", 1, 1, 1, {0, 1}, true, false},
      {"segments [0, 5, 12, 33], 4 heads over 2 kv heads of 6, fused q/k/v", 4, 2, 6, {0, 5, 12, 33}, true, true},
      {"segments [0, 1, 2, 40] (single tokens), 3 heads of 5, fused q/k/v", 3, 3, 5, {0, 1, 2, 40}, true, true},
      {"segments [0, 5, 12, 33], 4 heads over 1 kv head of 8, fused q/k/v", 4, 1, 8, {0, 5, 12, 33}, false, true},
      {"one segment of 67, 2 heads of 16", 2, 2, 16, {0, 67}, false, false},
  };
  for (const AttentionCase& c : cases)
    s.run("attention", std::string(c.causal ? "causal, " : "bidirectional, ") + c.name, [&b, c](Rng& rng) {
      std::vector<float> q, k, v;
      const AttentionProblem p = draw(rng, c, &q, &k, &v);
      AttentionOperands in;
      Operand<int32_t> segments;
      Operand<float> out;
      CONF_SETUP(place_qkv(b, p, q, k, v, c.fused, "", &in));
      CONF_SETUP(make_operand(b, "segments", 1, static_cast<int64_t>(c.segments.size()), Layout::kOffset, c.segments, &segments));
      CONF_SETUP(make_operand(b, "out", p.T, p.heads * p.d, Layout::kOffset, rng.floats(p.T * p.heads * p.d), &out));
      CONF_CALL(b.attention(in.Q, in.K, in.V, segments.mat(), c.heads, c.kv_heads, c.causal, out.mat()));
      std::vector<double> want, scale;
      naive_attention(p, &want, &scale);
      std::vector<float> got;
      CONF_CHECK(read(b, out, &got));
      CONF_CHECK(c.fused ? unchanged(b, in.fused) : unchanged(b, in.q));
      return near("out", p.heads * p.d, got, want, 16 * kUnit * std::sqrt(p.T + 1.0), 1e-30, scale);
    });

  const AttentionCase backward[] = {
      {"1 token, 1 head of 1", 1, 1, 1, {0, 1}, true, false},
      {"segments [0, 5, 12, 33], 4 heads over 2 kv heads of 6, fused q/k/v and gradients", 4, 2, 6, {0, 5, 12, 33}, true, true},
      {"one segment of 20, 2 heads over 1 kv head of 8", 2, 1, 8, {0, 20}, true, false},
  };
  // Gradients are compared with the naive backward; dq, dk and dv start out full of large values,
  // which a backward that accumulates into them instead of overwriting keeps.
  for (const AttentionCase& c : backward)
    s.run("attention_backward", c.name, [&b, c](Rng& rng) {
      std::vector<float> q, k, v;
      const AttentionProblem p = draw(rng, c, &q, &k, &v);
      const std::vector<float> d_out = rng.floats(p.T * p.heads * p.d);
      AttentionOperands in, grad;
      Operand<int32_t> segments;
      Operand<float> dO;
      CONF_SETUP(place_qkv(b, p, q, k, v, c.fused, "", &in));
      CONF_SETUP(place_qkv(b, p, rng.floats(q.size(), 1e3f, 2e3f), rng.floats(k.size(), 1e3f, 2e3f), rng.floats(v.size(), 1e3f, 2e3f), c.fused, "d", &grad));
      CONF_SETUP(make_operand(b, "segments", 1, static_cast<int64_t>(c.segments.size()), Layout::kContiguous, c.segments, &segments));
      CONF_SETUP(make_operand(b, "d_out", p.T, p.heads * p.d, Layout::kOffset, d_out, &dO));
      CONF_CALL(b.attention_backward(in.Q, in.K, in.V, dO.mat(), segments.mat(), c.heads, c.kv_heads, grad.Q, grad.K, grad.V));
      std::vector<float> dq, dk, dv;
      if (c.fused) {
        std::vector<float> all;
        CONF_CHECK(read(b, grad.fused, &all));
        split_qkv(p, all, &dq, &dk, &dv);
      } else {
        CONF_CHECK(read(b, grad.q, &dq));
        CONF_CHECK(read(b, grad.k, &dk));
        CONF_CHECK(read(b, grad.v, &dv));
      }
      const Gradients g = naive_attention_backward(p, widen(d_out));
      const double rtol = 32 * kUnit * std::sqrt(p.T + 1.0);
      CONF_CHECK(near("dq", p.heads * p.d, dq, g.dq, rtol, 1e-30, g.mq));
      CONF_CHECK(near("dk", p.kv_heads * p.d, dk, g.dk, rtol, 1e-30, g.mk));
      return near("dv", p.kv_heads * p.d, dv, g.dv, rtol, 1e-30, g.mv);
    });

  // Central differences of L = Σ d_out ⊙ attention(q, k, v), all in double, for every input.
  s.run("attention_backward", "against finite differences of Σ d_out ⊙ attention(q, k, v): segments [0, 2, 6], 2 heads over 1 kv head of 3",
        [&b](Rng& rng) {
          const AttentionCase c{"", 2, 1, 3, {0, 2, 6}, true, false};
          std::vector<float> q, k, v;
          AttentionProblem p = draw(rng, c, &q, &k, &v);
          const std::vector<float> d_out = rng.floats(p.T * p.heads * p.d);
          const std::vector<double> dO64 = widen(d_out);
          AttentionOperands in, grad;
          Operand<int32_t> segments;
          Operand<float> dO;
          CONF_SETUP(place_qkv(b, p, q, k, v, false, "", &in));
          CONF_SETUP(place_qkv(b, p, q, k, v, false, "d", &grad));
          CONF_SETUP(make_operand(b, "segments", 1, 3, Layout::kContiguous, c.segments, &segments));
          CONF_SETUP(make_operand(b, "d_out", p.T, p.heads * p.d, Layout::kContiguous, d_out, &dO));
          CONF_CALL(b.attention_backward(in.Q, in.K, in.V, dO.mat(), segments.mat(), c.heads, c.kv_heads, grad.Q, grad.K, grad.V));
          const std::pair<const char*, std::vector<double>*> inputs[] = {{"dq", &p.q}, {"dk", &p.k}, {"dv", &p.v}};
          const Operand<float>* outputs[] = {&grad.q, &grad.k, &grad.v};
          for (int which = 0; which < 3; which++) {
            std::vector<double>& x = *inputs[which].second;
            std::vector<double> fd(x.size());
            for (size_t t = 0; t < x.size(); t++) {
              const double keep = x[t], h = 1e-4;
              x[t] = keep + h;
              const double up = attention_loss(p, dO64);
              x[t] = keep - h;
              fd[t] = (up - attention_loss(p, dO64)) / (2 * h);
              x[t] = keep;
            }
            std::vector<float> got;
            CONF_CHECK(read(b, *outputs[which], &got));
            CONF_CHECK(near(inputs[which].first, outputs[which]->cols, got, fd, 1e-4, 1e-5));
          }
          return pass("dq, dk and dv within 1e-4 of the differences");
        });
}

void unfold_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [n, channels, size, patch] : {std::tuple{1, 1, 1, 1}, {2, 3, 7, 3}, {3, 2, 16, 4}, {1, 3, 14, 14}})
    s.run("unfold_patches", std::to_string(n) + " images of " + std::to_string(channels) + "×" + std::to_string(size) + "² in patches of " +
                                std::to_string(patch) + "², at offsets",
          [&b, n = n, channels = channels, size = size, patch = patch](Rng& rng) {
            const int64_t p = size / patch, rows = n * p * p, cols = channels * patch * patch;
            const std::vector<float> images = rng.floats(n * channels * size * size);
            Operand<float> di, out;
            CONF_SETUP(make_operand(b, "images", n, channels * size * size, Layout::kOffset, images, &di));
            CONF_SETUP(make_operand(b, "out", rows, cols, Layout::kOffset, rng.floats(rows * cols), &out));
            CONF_CALL(b.unfold_patches(di.mat(), channels, size, patch, out.mat()));
            std::vector<float> got, want(static_cast<size_t>(rows * cols));
            for (int64_t v = 0; v < n; v++)
              for (int64_t py = 0; py < p; py++)
                for (int64_t px = 0; px < p; px++)
                  for (int64_t c = 0; c < channels; c++)
                    for (int64_t ky = 0; ky < patch; ky++)
                      for (int64_t kx = 0; kx < patch; kx++)
                        want[(v * p * p + py * p + px) * cols + (c * patch + ky) * patch + kx] =
                            images[v * channels * size * size + c * size * size + (py * patch + ky) * size + px * patch + kx];
            CONF_CHECK(read(b, out, &got));
            return same("out", cols, got, want);
          });
}

}  // namespace

void transformer_cases(Suite& s) {
  norm_cases(s);
  elementwise_cases(s);
  activation_cases(s);
  rope_cases(s);
  attention_cases(s);
  unfold_cases(s);
}

}  // namespace vlmq::conformance
