// The quantization kernels against references written from docs/algorithm.md §1.3 and
// backend.h's SweepBlock comment. The grid arithmetic (a code is clamp(round_half_even(w / s) + z),
// a value s · (code − z), each operation one f32 rounding) is exact, so parameters, codes and
// grid values are compared bit for bit. The MSE range search is checked by its properties.
// The sweep's working values are compared within a bound of their rounding errors that the
// reference carries along; where that bound puts w / s within reach of a rounding boundary, the
// backend's code may be either neighbour, and the reference then continues with the backend's.
#include <cmath>
#include <tuple>

#include "harness.h"

namespace vlmq::conformance {
namespace {

constexpr double kUnit = 0x1.0p-24;  // f32 unit roundoff

Grid make_grid(int bits, bool sym, bool fp16_scales, bool mse = false) {
  Grid g;
  g.bits = bits;
  g.sym = sym;
  g.fp16_scales = fp16_scales;
  g.mse = mse;
  return g;
}

std::string grid_name(const Grid& g) {
  return std::to_string(g.bits) + "-bit " + (g.sym ? "symmetric" : "asymmetric") + (g.fp16_scales ? "" : ", f32 scales") + (g.mse ? ", MSE" : "");
}

float maxq_of(const Grid& g) { return static_cast<float>((1 << g.bits) - 1); }

// Σ |quant(x) − x|^norm over a row, the grid values computed as the kernels do.
double quant_error(const float* x, int64_t n, RefParams p, const Grid& g) {
  double err = 0;
  for (int64_t k = 0; k < n; k++) err += std::pow(std::fabs(ref_dequant(ref_code(x[k], p, maxq_of(g)), p) - static_cast<double>(x[k])), g.norm);
  return err;
}

// Rows that reach the special cases: all zeros, all positive, all negative, tiny and huge values.
std::vector<float> fit_rows(Rng& rng, int64_t rows, int64_t cols) {
  std::vector<float> W = rng.floats(rows * cols, -2.0f, 2.0f);
  for (int64_t i = 0; i < rows; i++) {
    float* row = W.data() + i * cols;
    switch (i % 7) {
      case 1: std::fill(row, row + cols, 0.0f); break;
      case 2: for (int64_t j = 0; j < cols; j++) row[j] = std::fabs(row[j]); break;
      case 3: for (int64_t j = 0; j < cols; j++) row[j] = -std::fabs(row[j]); break;
      case 4: for (int64_t j = 0; j < cols; j++) row[j] *= 1e-7f; break;
      case 5: for (int64_t j = 0; j < cols; j++) row[j] *= 5e5f; break;
      default: break;
    }
  }
  return W;
}

void fit_params_cases(Suite& s) {
  Backend& b = s.backend;
  const Grid grids[] = {make_grid(4, false, true), make_grid(3, true, true), make_grid(8, false, false), make_grid(2, true, false)};
  for (const Grid& grid : grids)
    for (auto [rows, cols, c0, count] : {std::tuple{1, 1, 0, 1}, {7, 33, 5, 17}, {67, 130, 0, 130}})
      s.run("fit_params", grid_name(grid) + ", columns [" + std::to_string(c0) + ", " + std::to_string(c0 + count) + ") of " +
                              shape(rows, cols) + " at an offset, into column 1 of [rows, 3] parameters",
            [&b, grid, rows = rows, cols = cols, c0 = c0, count = count](Rng& rng) {
              const std::vector<float> W = fit_rows(rng, rows, cols);
              Operand<float> dW, scales, zeros;
              CONF_SETUP(make_operand(b, "W", rows, cols, Layout::kOffset, W, &dW));
              CONF_SETUP(make_operand(b, "scales", rows, 3, Layout::kOffset, rng.floats(rows * 3), &scales));
              CONF_SETUP(make_operand(b, "zeros", rows, 3, Layout::kOffset, rng.floats(rows * 3), &zeros));
              CONF_CALL(b.fit_params(dW.mat(), c0, count, grid, scales.mat().block(0, 1, rows, 1), zeros.mat().block(0, 1, rows, 1)));
              std::vector<float> want_s = contents(scales), want_z = contents(zeros), got_s, got_z;
              for (int64_t i = 0; i < rows; i++) {
                const RefParams p = minmax_params(W.data() + i * cols + c0, count, grid);
                want_s[i * 3 + 1] = p.scale, want_z[i * 3 + 1] = p.zero;
              }
              CONF_CHECK(read(b, scales, &got_s));
              CONF_CHECK(read(b, zeros, &got_z));
              CONF_CHECK(same("scales", 3, got_s, want_s));
              return same("zeros", 3, got_z, want_z);
            });
  // The MSE search: the chosen parameters are those of one of the int(max_shrink · grid) shrunk
  // ranges p·[xmin, xmax], p = 1 − i/grid, with an error within 1e-5 of the best of them, and so no
  // worse than the plain min/max range (i = 0).
  for (const Grid& grid : {make_grid(4, false, true, true), make_grid(3, true, true, true), make_grid(2, false, false, true)})
    for (auto [rows, cols] : {std::pair{7, 33}, {33, 130}})
      s.run("fit_params", grid_name(grid) + ", " + shape(rows, cols) + ": a candidate range, and no worse than min/max", [&b, grid, rows = rows, cols = cols](Rng& rng) {
        std::vector<float> W = rng.floats(rows * cols, -1.0f, 1.0f);
        for (int64_t k = 0; k < rows * cols; k += 11) W[k] *= 4.0f;  // outliers make shrinking pay
        Operand<float> dW, scales, zeros;
        CONF_SETUP(make_operand(b, "W", rows, cols, Layout::kOffset, W, &dW));
        CONF_SETUP(make_operand(b, "scales", rows, 1, Layout::kOffset, rng.floats(rows), &scales));
        CONF_SETUP(make_operand(b, "zeros", rows, 1, Layout::kOffset, rng.floats(rows), &zeros));
        CONF_CALL(b.fit_params(dW.mat(), 0, cols, grid, scales.mat(), zeros.mat()));
        std::vector<float> got_s, got_z;
        CONF_CHECK(read(b, scales, &got_s));
        CONF_CHECK(read(b, zeros, &got_z));
        double worst_ratio = 0;
        const int steps = static_cast<int>(grid.max_shrink * static_cast<float>(grid.grid));
        for (int64_t i = 0; i < rows; i++) {
          const float* x = W.data() + i * cols;
          float xmin = 0, xmax = 0;
          for (int64_t j = 0; j < cols; j++) xmin = std::min(xmin, x[j]), xmax = std::max(xmax, x[j]);
          if (grid.sym) xmax = std::max(-xmin, xmax), xmin = xmin < 0 ? -xmax : xmin;
          const RefParams chosen{got_s[i], got_z[i]};
          double best = HUGE_VAL, chosen_err = -1;
          for (int step = 0; step < steps; step++) {
            const float p = static_cast<float>(1.0 - static_cast<double>(step) / grid.grid);
            const RefParams cand = params_for_range(p * xmin, p * xmax, grid);
            const double err = quant_error(x, cols, cand, grid);
            best = std::min(best, err);
            if (cand.scale == chosen.scale && cand.zero == chosen.zero) chosen_err = err;
          }
          const double plain = quant_error(x, cols, minmax_params(x, cols, grid), grid);
          if (chosen_err < 0)
            return fail("row " + std::to_string(i) + ": (scale " + number(chosen.scale) + ", zero " + number(chosen.zero) + ") is no candidate range");
          if (!(chosen_err <= best * (1 + 1e-5)) || !(chosen_err <= plain * (1 + 1e-5)))
            return fail("row " + std::to_string(i) + ": error " + number(chosen_err) + ", but a candidate reaches " + number(best) +
                        " and min/max " + number(plain));
          worst_ratio = std::max(worst_ratio, chosen_err / plain);
        }
        return pass("chosen error at most " + number(worst_ratio) + " of min/max's");
      });
}

void quantize_groups_cases(Suite& s) {
  Backend& b = s.backend;
  struct Case {
    int64_t rows, cols, ngroups;
    int bits;
    bool ties;  // W on the half-way points of a power-of-two grid: round half to even
  };
  for (const Case& c : {Case{1, 1, 1, 4, false}, Case{7, 33, 3, 3, false}, Case{67, 130, 5, 2, false}, Case{33, 67, 4, 8, false},
                        Case{7, 33, 2, 4, true}})
    s.run("quantize_groups", std::to_string(c.bits) + "-bit, " + shape(c.rows, c.cols) + " in " + std::to_string(c.ngroups) +
                                 " groups by a random g_idx, at offsets" + (c.ties ? ", values half-way between grid points" : ""),
          [&b, c](Rng& rng) {
            const float maxq = static_cast<float>((1 << c.bits) - 1);
            std::vector<float> W = rng.floats(c.rows * c.cols, -2.0f, 2.0f), S(static_cast<size_t>(c.rows * c.ngroups)), Z(S.size());
            for (size_t k = 0; k < S.size(); k++) {
              S[k] = c.ties ? 0.25f : rng.uniform(0.01f, 0.3f);
              Z[k] = static_cast<float>(rng.below(static_cast<int64_t>(maxq) + 1));
            }
            if (c.ties)
              for (float& w : W) w = 0.25f * (static_cast<float>(rng.below(17) - 8) + 0.5f);
            std::vector<int32_t> g_idx(static_cast<size_t>(c.cols));
            for (int32_t& g : g_idx) g = static_cast<int32_t>(rng.below(c.ngroups));
            Operand<float> dW, dS, dZ, Q;
            Operand<int32_t> dg;
            Operand<uint8_t> codes;
            CONF_SETUP(make_operand(b, "W", c.rows, c.cols, Layout::kOffset, W, &dW));
            CONF_SETUP(make_operand(b, "scales", c.rows, c.ngroups, Layout::kOffset, S, &dS));
            CONF_SETUP(make_operand(b, "zeros", c.rows, c.ngroups, Layout::kContiguous, Z, &dZ));
            CONF_SETUP(make_operand(b, "g_idx", 1, c.cols, Layout::kOffset, g_idx, &dg));
            CONF_SETUP(make_operand(b, "Q", c.rows, c.cols, Layout::kOffset, rng.floats(c.rows * c.cols), &Q));
            CONF_SETUP(make_operand(b, "codes", c.rows, c.cols, Layout::kOffset, std::vector<uint8_t>(W.size(), 77), &codes));
            const Grid grid = make_grid(c.bits, false, true);
            CONF_CALL(b.quantize_groups(dW.mat(), dg.mat(), dS.mat(), dZ.mat(), grid, Q.mat(), codes.mat()));
            std::vector<float> want_q(W.size()), got_q;
            std::vector<uint8_t> want_c(W.size()), got_c;
            for (int64_t i = 0; i < c.rows; i++)
              for (int64_t j = 0; j < c.cols; j++) {
                const RefParams p{S[i * c.ngroups + g_idx[j]], Z[i * c.ngroups + g_idx[j]]};
                const float code = ref_code(W[i * c.cols + j], p, maxq);
                want_c[i * c.cols + j] = static_cast<uint8_t>(code);
                want_q[i * c.cols + j] = ref_dequant(code, p);
              }
            CONF_CHECK(read(b, Q, &got_q));
            CONF_CHECK(read(b, codes, &got_c));
            CONF_CHECK(same("codes", c.cols, got_c, want_c));
            return same("Q", c.cols, got_q, want_q);
          });
}

// --- sweep_block -------------------------------------------------------------------------------------------

struct SweepCase {
  const char* name;
  int64_t m, n, i1, i2;
  GroupMode mode;
  int64_t group_size;
  bool perm, with_p, prequant;
  Grid grid;
};

// The host side of a block: inputs as uploaded and outputs as read back.
struct SweepData {
  std::vector<float> W, U, P, scales, zeros, Q, E, Psource;
  std::vector<int32_t> perm;
  std::vector<uint8_t> codes;
  std::vector<double> row_loss;
};

int64_t groups_of(const SweepCase& c) { return c.mode == GroupMode::kPerChannel ? 1 : (c.n + c.group_size - 1) / c.group_size; }

// Inputs: U upper with a diagonal in [0.5, 1.5] and off-diagonal entries within ±1/n (so rounding
// errors grow by at most e² along a row), P strictly upper within ±0.5/n; valid parameters in
// every group (min/max of the group's columns); outputs filled with values the block must overwrite
// or, outside it, keep.
SweepData sweep_inputs(Rng& rng, const SweepCase& c) {
  SweepData in;
  const int64_t m = c.m, n = c.n, count = c.i2 - c.i1, ng = groups_of(c);
  in.W = rng.floats(m * n);
  in.U.assign(static_cast<size_t>(n * n), 0.0f);
  in.P.assign(c.with_p ? static_cast<size_t>(n * n) : 0, 0.0f);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = i; j < n; j++) {
      in.U[i * n + j] = i == j ? rng.uniform(0.5f, 1.5f) : rng.uniform(-1.0f, 1.0f) / static_cast<float>(n);
      if (c.with_p && j > i) in.P[i * n + j] = rng.uniform(-0.5f, 0.5f) / static_cast<float>(n);
    }
  if (c.perm) in.perm = rng.permutation(n);
  in.scales.resize(static_cast<size_t>(m * ng));
  in.zeros.resize(in.scales.size());
  const int64_t width = c.mode == GroupMode::kPerChannel ? n : c.group_size;
  for (int64_t r = 0; r < m; r++)
    for (int64_t g = 0; g < ng; g++) {
      const RefParams p = minmax_params(in.W.data() + r * n + g * width, std::min(width, n - g * width), c.grid);
      in.scales[r * ng + g] = p.scale, in.zeros[r * ng + g] = p.zero;
    }
  in.Q = rng.floats(m * n, 10.0f, 20.0f);
  in.codes.resize(static_cast<size_t>(m * n));
  for (uint8_t& x : in.codes) x = static_cast<uint8_t>(rng.below(256));
  in.E = rng.floats(m * count, 10.0f, 20.0f);
  if (c.with_p) in.Psource = rng.floats(m * count, 10.0f, 20.0f);
  in.row_loss.resize(static_cast<size_t>(m));
  for (double& x : in.row_loss) x = rng.uniform();
  return in;
}

// The block as backend.h states it, row by row (see the file comment for the tolerances).
Outcome check_sweep(const SweepCase& c, const SweepData& in, const SweepData& out) {
  const int64_t m = c.m, n = c.n, count = c.i2 - c.i1, ng = groups_of(c);
  const float maxq = maxq_of(c.grid);
  std::vector<float> want_scales = in.scales, want_zeros = in.zeros;
  int64_t neighbours = 0;  // codes where the backend took the other side of a boundary within reach
  for (int64_t r = 0; r < m; r++) {
    std::vector<double> w1(static_cast<size_t>(count)), err(static_cast<size_t>(count), 0.0);
    for (int64_t k = 0; k < count; k++) w1[k] = in.W[r * n + c.i1 + k];
    // A block that starts inside a dynamic group continues with that group's parameters as given.
    RefParams p{in.scales[r * ng], in.zeros[r * ng]};
    if (c.mode == GroupMode::kDynamic) p = {in.scales[r * ng + c.i1 / c.group_size], in.zeros[r * ng + c.i1 / c.group_size]};
    double loss = 0, loss_err = 0;
    for (int64_t t = 0; t < count; t++) {
      const int64_t col = c.i1 + t;
      const std::string at = "[" + std::to_string(r) + ", " + std::to_string(col) + "]";
      if (c.mode == GroupMode::kDynamic && col % c.group_size == 0) {
        const int64_t g = col / c.group_size;
        p = minmax_params(in.W.data() + r * n + col, std::min(c.group_size, n - col), c.grid);  // on W, not W1
        want_scales[r * ng + g] = p.scale, want_zeros[r * ng + g] = p.zero;
      } else if (c.mode == GroupMode::kStatic) {
        const int64_t g = (c.perm ? in.perm[col] : col) / c.group_size;
        p = {in.scales[r * ng + g], in.zeros[r * ng + g]};
      }
      const double w = w1[t], d = in.U[col * n + col];
      float code = ref_code(static_cast<float>(w), p, maxq);
      const float got_code = out.codes[r * n + col];
      if (got_code != code) {
        // Either neighbour of a boundary within reach of the working value's error is right.
        const double x = w / p.scale, boundary = std::min(code, got_code) - p.zero + 0.5;
        const double reach = 4 * err[t] / p.scale + 4 * kUnit * std::fabs(x) + 1e-12;
        if (std::fabs(got_code - code) != 1 || std::fabs(x - boundary) > reach)
          return fail("codes" + at + " = " + number(got_code) + ", expected " + number(code) + " (w / scale = " + number(x) + ")");
        code = got_code;
        neighbours++;
      }
      const float q = ref_dequant(code, p);
      if (bits_as<uint32_t>(out.Q[r * n + col]) != bits_as<uint32_t>(q))
        return fail("Q" + at + " = " + number(out.Q[r * n + col]) + ", expected " + number(q) + " (code " + number(code) + ")");
      const double e = (w - q) / d, e_err = err[t] / std::fabs(d) + 2 * kUnit * std::fabs(e);
      CONF_CHECK(near_value("E[" + std::to_string(r) + ", " + std::to_string(t) + "]", out.E[r * count + t], e, 4 * e_err + 1e-30));
      if (c.with_p) {
        const std::string name = "Psource[" + std::to_string(r) + ", " + std::to_string(t) + "]";
        if (c.prequant) CONF_CHECK(near_value(name, out.Psource[r * count + t], w, 4 * err[t] + 2 * kUnit * std::fabs(w) + 1e-30));
        else if (out.Psource[r * count + t] != q) return fail(name + " = " + number(out.Psource[r * count + t]) + ", expected q = " + number(q));
      }
      loss += e * e;
      loss_err += 2 * std::fabs(e) * e_err + 2 * kUnit * (t + 1) * e * e;
      // W1[r, t+1:] += −e·U[col, col+1:i2] (+ w·P[col, col+1:i2])
      for (int64_t k = t + 1; k < count; k++) {
        const double u = in.U[col * n + c.i1 + k], pk = c.with_p ? in.P[col * n + c.i1 + k] : 0.0;
        const double step = -e * u + w * pk;
        err[k] += std::fabs(u) * e_err + std::fabs(pk) * err[t] + 2 * kUnit * (std::fabs(w1[k]) + std::fabs(e * u) + std::fabs(w * pk));
        w1[k] += step;
      }
    }
    CONF_CHECK(near_value("row_loss[" + std::to_string(r) + "]", out.row_loss[r], in.row_loss[r] + loss, 4 * loss_err + 1e-30));
  }
  // Nothing outside the block: Q and codes keep their other columns, parameters their other groups.
  for (int64_t r = 0; r < m; r++)
    for (int64_t j = 0; j < n; j++)
      if ((j < c.i1 || j >= c.i2) && (bits_as<uint32_t>(out.Q[r * n + j]) != bits_as<uint32_t>(in.Q[r * n + j]) || out.codes[r * n + j] != in.codes[r * n + j]))
        return fail("wrote Q or codes [" + std::to_string(r) + ", " + std::to_string(j) + "], outside the block");
  CONF_CHECK(same("scales", ng, out.scales, want_scales));
  CONF_CHECK(same("zeros", ng, out.zeros, want_zeros));
  return pass("codes and Q bit-identical" + (neighbours ? " (" + std::to_string(neighbours) + " codes the other side of a boundary within reach)" : std::string()) +
              ", E within its rounding bound");
}

void sweep_block_cases(Suite& s) {
  Backend& b = s.backend;
  const GroupMode kPer = GroupMode::kPerChannel, kDyn = GroupMode::kDynamic, kStat = GroupMode::kStatic;
  const SweepCase cases[] = {
      {"per-channel, GPTQ, [1, 1]", 1, 1, 0, 1, kPer, -1, false, false, false, make_grid(4, false, true)},
      {"per-channel, GPTQ, [7, 33], block [0, 33)", 7, 33, 0, 33, kPer, -1, false, false, false, make_grid(4, false, true)},
      {"per-channel, GPTQ, [33, 67], block [16, 49)", 33, 67, 16, 49, kPer, -1, false, false, false, make_grid(3, true, true)},
      {"per-channel, GPTAQ, pre-quantization sources, [67, 7]", 67, 7, 0, 7, kPer, -1, false, true, true, make_grid(4, false, false)},
      {"dynamic groups of 16, GPTQ, [33, 67], block [0, 67)", 33, 67, 0, 67, kDyn, 16, false, false, false, make_grid(4, false, true)},
      {"dynamic groups of 32, GPTQ, [7, 67], block [16, 48) starting inside a group", 7, 67, 16, 48, kDyn, 32, false, false, false,
       make_grid(2, false, true)},
      {"dynamic groups of 8, GPTAQ, quantized sources, [17, 33], block [0, 33)", 17, 33, 0, 33, kDyn, 8, false, true, false,
       make_grid(3, false, false)},
      {"dynamic groups of 128, GPTQ, [7, 33] (one group)", 7, 33, 0, 33, kDyn, 128, false, false, false, make_grid(8, true, true)},
      {"static groups of 8 with a permutation, GPTQ, [7, 33], block [5, 30)", 7, 33, 5, 30, kStat, 8, true, false, false,
       make_grid(4, false, true)},
      {"static groups of 16, GPTAQ, pre-quantization sources, [20, 67], block [32, 67)", 20, 67, 32, 67, kStat, 16, false, true, true,
       make_grid(8, false, true)},
      {"static groups of 16 with a permutation, GPTAQ, quantized sources, [33, 33]", 33, 33, 0, 33, kStat, 16, true, true, false,
       make_grid(3, true, true)},
  };
  for (const SweepCase& c : cases)
    s.run("sweep_block", std::string(c.name) + ", " + grid_name(c.grid), [&b, c](Rng& rng) {
      const SweepData in = sweep_inputs(rng, c);
      const int64_t m = c.m, n = c.n, count = c.i2 - c.i1, ng = groups_of(c);
      Operand<float> W, U, P, scales, zeros, Q, E, Psource;
      Operand<int32_t> perm;
      Operand<uint8_t> codes;
      Operand<double> row_loss;
      CONF_SETUP(make_operand(b, "W", m, n, Layout::kOffset, in.W, &W));
      CONF_SETUP(make_operand(b, "U", n, n, Layout::kOffset, in.U, &U));
      CONF_SETUP(make_operand(b, "scales", m, ng, Layout::kOffset, in.scales, &scales));
      CONF_SETUP(make_operand(b, "zeros", m, ng, Layout::kContiguous, in.zeros, &zeros));
      CONF_SETUP(make_operand(b, "Q", m, n, Layout::kOffset, in.Q, &Q));
      CONF_SETUP(make_operand(b, "codes", m, n, Layout::kOffset, in.codes, &codes));
      CONF_SETUP(make_operand(b, "E", m, count, Layout::kOffset, in.E, &E));
      CONF_SETUP(make_operand(b, "row_loss", 1, m, Layout::kOffset, in.row_loss, &row_loss));
      SweepBlock block;
      block.W = W.mat(), block.U = U.mat(), block.i1 = c.i1, block.i2 = c.i2, block.grid = c.grid, block.mode = c.mode;
      block.group_size = c.group_size, block.scales = scales.mat(), block.zeros = zeros.mat(), block.Q = Q.mat();
      block.codes = codes.mat(), block.E = E.mat(), block.psource_prequant = c.prequant, block.row_loss = row_loss.mat();
      if (c.with_p) {
        CONF_SETUP(make_operand(b, "P", n, n, Layout::kContiguous, in.P, &P));
        CONF_SETUP(make_operand(b, "Psource", m, count, Layout::kContiguous, in.Psource, &Psource));
        block.P = P.mat(), block.Psource = Psource.mat();
      }
      if (c.perm) {
        CONF_SETUP(make_operand(b, "perm", 1, n, Layout::kOffset, in.perm, &perm));
        block.perm = perm.mat();
      }
      CONF_CALL(b.sweep_block(block));
      SweepData out;
      CONF_CHECK(read(b, scales, &out.scales));
      CONF_CHECK(read(b, zeros, &out.zeros));
      CONF_CHECK(read(b, Q, &out.Q));
      CONF_CHECK(read(b, codes, &out.codes));
      CONF_CHECK(read(b, E, &out.E));
      CONF_CHECK(read(b, row_loss, &out.row_loss));
      if (c.with_p) CONF_CHECK(read(b, Psource, &out.Psource));
      CONF_CHECK(unchanged(b, W));
      CONF_CHECK(unchanged(b, U));
      return check_sweep(c, in, out);
    });
}

}  // namespace

void quantization_cases(Suite& s) {
  fit_params_cases(s);
  quantize_groups_cases(s);
  sweep_block_cases(s);
}

}  // namespace vlmq::conformance
