// The errors backend.h promises: every primitive given one operand of another device, in turn for
// each of its operands, returns InvalidArgument (the view keeps pointing at this backend's memory,
// so a backend that forgets the check corrupts nothing and the case just fails); a source of the
// wrong dtype, operands of the wrong shape, out-of-range indices and the forbidden aliases are
// InvalidArgument too. Each call is first made with every operand right and must succeed, so that
// the error comes from the one thing that is wrong.
#include <cmath>

#include "harness.h"

namespace vlmq::conformance {
namespace {

// Small valid operands for every primitive: [4, 4] matrices (A positive definite), [1, 4] vectors,
// [4, 1] and [4, 2] parameter columns, indices, a mask, codes, segments {0, 4}, an image.
struct Fixture {
  Operand<float> A, B, C, D, G, v1, v2, col_s, col_z, s2, z2, cos, sin, image, E, Psource;
  Operand<int32_t> perm, g_idx, segments, i32, bad_perm, negative_perm, bad_g_idx, short_segments, empty_segment;
  Operand<uint8_t> mask, codes, codes2;
  Operand<uint16_t> half;
  Operand<double> loss, f64;
};

Status make_fixture(Backend& b, Rng& rng, Fixture* f) {
  std::vector<float> spd(16);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j <= i; j++) spd[i * 4 + j] = spd[j * 4 + i] = i == j ? 4.0f : rng.uniform(-0.5f, 0.5f);
  const Layout kO = Layout::kOffset;
  VLMQ_TRY(make_operand(b, "A", 4, 4, kO, spd, &f->A));
  VLMQ_TRY(make_operand(b, "B", 4, 4, kO, rng.floats(16), &f->B));
  VLMQ_TRY(make_operand(b, "C", 4, 4, kO, rng.floats(16), &f->C));
  VLMQ_TRY(make_operand(b, "D", 4, 4, kO, rng.floats(16), &f->D));
  VLMQ_TRY(make_operand(b, "G", 4, 4, kO, rng.floats(16), &f->G));
  VLMQ_TRY(make_operand(b, "v1", 1, 4, kO, rng.floats(4, 1.0f, 2.0f), &f->v1));
  VLMQ_TRY(make_operand(b, "v2", 1, 4, kO, rng.floats(4, 1.0f, 2.0f), &f->v2));
  VLMQ_TRY(make_operand(b, "scales", 4, 1, kO, std::vector<float>(4, 0.1f), &f->col_s));
  VLMQ_TRY(make_operand(b, "zeros", 4, 1, kO, std::vector<float>(4, 8.0f), &f->col_z));
  VLMQ_TRY(make_operand(b, "scales2", 4, 2, kO, std::vector<float>(8, 0.1f), &f->s2));
  VLMQ_TRY(make_operand(b, "zeros2", 4, 2, kO, std::vector<float>(8, 8.0f), &f->z2));
  VLMQ_TRY(make_operand(b, "cos", 4, 2, kO, std::vector<float>(8, 0.6f), &f->cos));
  VLMQ_TRY(make_operand(b, "sin", 4, 2, kO, std::vector<float>(8, 0.8f), &f->sin));
  VLMQ_TRY(make_operand(b, "image", 1, 16, kO, rng.floats(16), &f->image));
  VLMQ_TRY(make_operand(b, "E", 4, 4, kO, rng.floats(16), &f->E));
  VLMQ_TRY(make_operand(b, "Psource", 4, 4, kO, rng.floats(16), &f->Psource));
  VLMQ_TRY(make_operand(b, "perm", 1, 4, kO, std::vector<int32_t>{1, 0, 3, 2}, &f->perm));
  VLMQ_TRY(make_operand(b, "g_idx", 1, 4, kO, std::vector<int32_t>{0, 0, 0, 0}, &f->g_idx));
  VLMQ_TRY(make_operand(b, "segments", 1, 2, kO, std::vector<int32_t>{0, 4}, &f->segments));
  VLMQ_TRY(make_operand(b, "i32", 4, 4, kO, std::vector<int32_t>(16, 1), &f->i32));
  VLMQ_TRY(make_operand(b, "perm", 1, 4, kO, std::vector<int32_t>{0, 1, 2, 4}, &f->bad_perm));
  VLMQ_TRY(make_operand(b, "perm", 1, 4, kO, std::vector<int32_t>{0, -1, 2, 3}, &f->negative_perm));
  VLMQ_TRY(make_operand(b, "g_idx", 1, 4, kO, std::vector<int32_t>{0, 1, 0, 0}, &f->bad_g_idx));
  VLMQ_TRY(make_operand(b, "segments", 1, 2, kO, std::vector<int32_t>{0, 3}, &f->short_segments));
  VLMQ_TRY(make_operand(b, "segments", 1, 3, kO, std::vector<int32_t>{0, 0, 4}, &f->empty_segment));
  VLMQ_TRY(make_operand(b, "mask", 1, 4, kO, std::vector<uint8_t>{0, 1, 0, 1}, &f->mask));
  VLMQ_TRY(make_operand(b, "codes", 4, 4, kO, std::vector<uint8_t>(16, 3), &f->codes));
  VLMQ_TRY(make_operand(b, "codes2", 4, 4, kO, std::vector<uint8_t>(16, 5), &f->codes2));
  VLMQ_TRY(make_operand(b, "half", 4, 4, kO, std::vector<uint16_t>(16, 0x3C00), &f->half));  // 1.0 in f16
  VLMQ_TRY(make_operand(b, "row_loss", 1, 4, kO, std::vector<double>(4, 0.0), &f->loss));
  VLMQ_TRY(make_operand(b, "f64", 4, 4, kO, std::vector<double>(16, 1.0), &f->f64));
  return Status::Ok();
}

// Gives operand `index` of a call another device than the backend's (its memory unchanged).
class Relabel {
 public:
  Relabel(int index, Device device) : index_(index), device_(device) {}
  template <class V>
  V operator()(V v, int index) const {
    if (index == index_) v.device = device_;
    return v;
  }

 private:
  int index_;
  Device device_;
};

using Call = std::function<Status(Fixture&, const Relabel&)>;

std::string device_text(Device d) { return d.kind == DeviceKind::kHost ? "the host" : "cuda:" + std::to_string(d.ordinal); }

// Devices that are not the backend's: a CUDA device that does not exist on the CPU; on a CUDA
// device, the host and another ordinal.
std::vector<Device> other_devices(Device own) {
  if (own.kind == DeviceKind::kHost) return {Device(DeviceKind::kCuda, 7)};
  return {Device(DeviceKind::kHost), Device(DeviceKind::kCuda, own.ordinal + 7)};
}

// One case per operand and other device: the call succeeds with every operand right, and returns
// InvalidArgument with that one operand on the other device.
void wrong_device(Suite& s, const char* primitive, std::vector<const char*> operands, const Call& call) {
  Backend& b = s.backend;
  for (Device other : other_devices(b.device()))
    for (size_t k = 0; k < operands.size(); k++)
      s.run(primitive, std::string("operand ") + operands[k] + " on " + device_text(other) + ": InvalidArgument",
            [&b, call, other, k](Rng& rng) {
              Fixture f;
              CONF_SETUP(make_fixture(b, rng, &f));
              CONF_SETUP(call(f, Relabel(-1, other)));
              return returns(call(f, Relabel(static_cast<int>(k), other)), Code::kInvalidArgument);
            });
}

// A call that must return InvalidArgument (after `valid`, the same call made right, succeeds).
void invalid(Suite& s, const char* primitive, const std::string& name, const std::function<Status(Fixture&)>& valid,
             const std::function<Status(Fixture&)>& call) {
  Backend& b = s.backend;
  s.run(primitive, name + ": InvalidArgument", [&b, valid, call](Rng& rng) {
    Fixture f;
    CONF_SETUP(make_fixture(b, rng, &f));
    if (valid) CONF_SETUP(valid(f));
    return returns(call(f), Code::kInvalidArgument);
  });
}

// A valid static-group block over the fixture: [4, 4], groups of 2, the permutation, with P.
SweepBlock fixture_block(Fixture& f, const Relabel& r) {
  SweepBlock blk;
  blk.W = r(f.B.mat(), 0), blk.U = r(f.A.mat(), 1), blk.P = r(f.C.mat(), 2), blk.perm = r(f.perm.mat(), 3);
  blk.scales = r(f.s2.mat(), 4), blk.zeros = r(f.z2.mat(), 5), blk.Q = r(f.D.mat(), 6), blk.codes = r(f.codes.mat(), 7);
  blk.E = r(f.E.mat(), 8), blk.Psource = r(f.Psource.mat(), 9), blk.row_loss = r(f.loss.mat(), 10);
  blk.i1 = 0, blk.i2 = 4, blk.mode = GroupMode::kStatic, blk.group_size = 2;
  return blk;
}

void device_cases(Suite& s) {
  Backend& b = s.backend;
  float host[16] = {};
  wrong_device(s, "upload", {"dst"}, [&b, &host](Fixture& f, const Relabel& r) { return b.upload(r(f.A.view(), 0), host); });
  wrong_device(s, "download", {"src"}, [&b, &host](Fixture& f, const Relabel& r) { return b.download(host, r(f.A.view(), 0)); });
  wrong_device(s, "convert_rows", {"dst", "src", "row_scale"},
               [&b](Fixture& f, const Relabel& r) { return b.convert_rows(r(f.B.mat(), 0), r(f.half.view(), 1), r(f.v1.mat(), 2)); });
  wrong_device(s, "subtract_rows", {"dst", "a", "b", "row_scale"}, [&b](Fixture& f, const Relabel& r) {
    return b.subtract_rows(r(f.B.mat(), 0), r(f.C.view(), 1), r(f.half.view(), 2), r(f.v1.mat(), 3));
  });
  wrong_device(s, "count_nonfinite", {"a"}, [&b](Fixture& f, const Relabel& r) {
    int64_t count, first;
    return b.count_nonfinite(r(f.half.view(), 0), &count, &first);
  });
  wrong_device(s, "reverse", {"dst", "src"}, [&b](Fixture& f, const Relabel& r) { return b.reverse(r(f.B.mat(), 0), r(f.C.mat(), 1)); });
  wrong_device(s, "gather_columns", {"dst", "src", "perm"},
               [&b](Fixture& f, const Relabel& r) { return b.gather_columns(r(f.B.mat(), 0), r(f.C.mat(), 1), r(f.perm.mat(), 2)); });
  wrong_device(s, "gather_columns_u8", {"dst", "src", "perm"},
               [&b](Fixture& f, const Relabel& r) { return b.gather_columns_u8(r(f.codes.mat(), 0), r(f.codes2.mat(), 1), r(f.perm.mat(), 2)); });
  wrong_device(s, "gather_symmetric", {"dst", "src", "perm"},
               [&b](Fixture& f, const Relabel& r) { return b.gather_symmetric(r(f.B.mat(), 0), r(f.C.mat(), 1), r(f.perm.mat(), 2)); });
  wrong_device(s, "gather_rows", {"dst", "src", "index"},
               [&b](Fixture& f, const Relabel& r) { return b.gather_rows(r(f.B.mat(), 0), r(f.C.mat(), 1), r(f.perm.mat(), 2)); });
  wrong_device(s, "zero_columns", {"a", "mask"}, [&b](Fixture& f, const Relabel& r) { return b.zero_columns(r(f.B.mat(), 0), r(f.mask.mat(), 1)); });
  wrong_device(s, "get_diagonal", {"a", "out"}, [&b](Fixture& f, const Relabel& r) { return b.get_diagonal(r(f.B.mat(), 0), r(f.v1.mat(), 1)); });
  wrong_device(s, "set_diagonal", {"a", "values"}, [&b](Fixture& f, const Relabel& r) { return b.set_diagonal(r(f.B.mat(), 0), r(f.v1.mat(), 1)); });
  wrong_device(s, "zero_triangle", {"a"}, [&b](Fixture& f, const Relabel& r) { return b.zero_triangle(r(f.B.mat(), 0), true, false); });
  wrong_device(s, "mirror_lower", {"a"}, [&b](Fixture& f, const Relabel& r) { return b.mirror_lower(r(f.B.mat(), 0)); });
  wrong_device(s, "copy", {"dst", "src"}, [&b](Fixture& f, const Relabel& r) { return b.copy(r(f.B.mat(), 0), r(f.C.mat(), 1)); });
  wrong_device(s, "fill", {"a"}, [&b](Fixture& f, const Relabel& r) { return b.fill(r(f.B.mat(), 0), 1.0f); });
  wrong_device(s, "max_asymmetry", {"a"}, [&b](Fixture& f, const Relabel& r) {
    float worst;
    int64_t i, j;
    return b.max_asymmetry(r(f.A.mat(), 0), 0.0f, &worst, &i, &j);
  });
  wrong_device(s, "gemm", {"A", "B", "C"},
               [&b](Fixture& f, const Relabel& r) { return b.gemm(false, true, 1.0f, r(f.B.mat(), 0), r(f.C.mat(), 1), 0.5f, r(f.D.mat(), 2)); });
  wrong_device(s, "syrk_lower", {"A", "C"}, [&b](Fixture& f, const Relabel& r) { return b.syrk_lower(1.0f, r(f.B.mat(), 0), 0.0f, r(f.C.mat(), 1)); });
  wrong_device(s, "trmm_right_upper", {"U", "B"},
               [&b](Fixture& f, const Relabel& r) { return b.trmm_right_upper(false, 1.0f, r(f.A.mat(), 0), r(f.B.mat(), 1)); });
  wrong_device(s, "cholesky_lower", {"a"}, [&b](Fixture& f, const Relabel& r) {
    int64_t minor;
    return b.cholesky_lower(r(f.A.mat(), 0), &minor);
  });
  wrong_device(s, "invert_lower", {"a"}, [&b](Fixture& f, const Relabel& r) { return b.invert_lower(r(f.A.mat(), 0)); });
  wrong_device(s, "rms_norm", {"x", "w", "y"},
               [&b](Fixture& f, const Relabel& r) { return b.rms_norm(r(f.B.mat(), 0), r(f.v1.mat(), 1), 1e-6f, r(f.C.mat(), 2)); });
  wrong_device(s, "add_row", {"x", "v"}, [&b](Fixture& f, const Relabel& r) { return b.add_row(r(f.B.mat(), 0), r(f.v1.mat(), 1)); });
  wrong_device(s, "axpby", {"a", "b", "y"},
               [&b](Fixture& f, const Relabel& r) { return b.axpby(r(f.B.mat(), 0), 2.0f, r(f.C.mat(), 1), r(f.D.mat(), 2)); });
  wrong_device(s, "rope", {"x", "cos", "sin"},
               [&b](Fixture& f, const Relabel& r) { return b.rope(r(f.B.mat(), 0), 2, r(f.cos.mat(), 1), r(f.sin.mat(), 2), false); });
  wrong_device(s, "silu_mul", {"gate", "up", "out"},
               [&b](Fixture& f, const Relabel& r) { return b.silu_mul(r(f.B.mat(), 0), r(f.C.mat(), 1), r(f.D.mat(), 2)); });
  wrong_device(s, "layer_norm", {"x", "w", "b", "y"}, [&b](Fixture& f, const Relabel& r) {
    return b.layer_norm(r(f.B.mat(), 0), r(f.v1.mat(), 1), r(f.v2.mat(), 2), 1e-5f, r(f.C.mat(), 3));
  });
  wrong_device(s, "activation", {"x", "y"},
               [&b](Fixture& f, const Relabel& r) { return b.activation(Activation::kGelu, r(f.B.mat(), 0), r(f.C.mat(), 1)); });
  wrong_device(s, "attention", {"q", "k", "v", "segments", "out"}, [&b](Fixture& f, const Relabel& r) {
    return b.attention(r(f.B.mat(), 0), r(f.C.mat(), 1), r(f.D.mat(), 2), r(f.segments.mat(), 3), 2, 2, true, r(f.E.mat(), 4));
  });
  wrong_device(s, "attention_backward", {"q", "k", "v", "d_out", "segments", "dq", "dk", "dv"}, [&b](Fixture& f, const Relabel& r) {
    return b.attention_backward(r(f.B.mat(), 0), r(f.C.mat(), 1), r(f.D.mat(), 2), r(f.A.mat(), 3), r(f.segments.mat(), 4), 2, 2,
                                r(f.E.mat(), 5), r(f.Psource.mat(), 6), r(f.G.mat(), 7));
  });
  wrong_device(s, "row_norms", {"x", "out"}, [&b](Fixture& f, const Relabel& r) { return b.row_norms(r(f.B.mat(), 0), true, r(f.v1.mat(), 1)); });
  wrong_device(s, "sum_squares", {"x"}, [&b](Fixture& f, const Relabel& r) {
    double sum;
    return b.sum_squares(r(f.B.mat(), 0), &sum);
  });
  wrong_device(s, "unfold_patches", {"images", "out"},
               [&b](Fixture& f, const Relabel& r) { return b.unfold_patches(r(f.image.mat(), 0), 1, 4, 2, r(f.B.mat(), 1)); });
  wrong_device(s, "fit_params", {"W", "scales", "zeros"}, [&b](Fixture& f, const Relabel& r) {
    return b.fit_params(r(f.B.mat(), 0), 0, 4, Grid{}, r(f.col_s.mat(), 1), r(f.col_z.mat(), 2));
  });
  wrong_device(s, "quantize_groups", {"W", "g_idx", "scales", "zeros", "Q", "codes"}, [&b](Fixture& f, const Relabel& r) {
    return b.quantize_groups(r(f.B.mat(), 0), r(f.g_idx.mat(), 1), r(f.col_s.mat(), 2), r(f.col_z.mat(), 3), Grid{}, r(f.C.mat(), 4),
                             r(f.codes.mat(), 5));
  });
  wrong_device(s, "sweep_block", {"W", "U", "P", "perm", "scales", "zeros", "Q", "codes", "E", "Psource", "row_loss"},
               [&b](Fixture& f, const Relabel& r) { return b.sweep_block(fixture_block(f, r)); });
}

void dtype_cases(Suite& s) {
  Backend& b = s.backend;
  auto source = [](Fixture& f, DType t) { return t == DType::kI32 ? f.i32.view() : t == DType::kU8 ? f.codes.view() : f.f64.view(); };
  for (DType t : {DType::kI32, DType::kU8, DType::kF64}) {
    const std::string name = std::string("a ") + dtype_name(t) + " source";
    invalid(s, "convert_rows", name, {}, [&b, t, source](Fixture& f) { return b.convert_rows(f.B.mat(), source(f, t), MatF{}); });
    invalid(s, "subtract_rows", name + " as a", {}, [&b, t, source](Fixture& f) { return b.subtract_rows(f.B.mat(), source(f, t), f.C.view(), MatF{}); });
    invalid(s, "subtract_rows", name + " as b", {}, [&b, t, source](Fixture& f) { return b.subtract_rows(f.B.mat(), f.C.view(), source(f, t), MatF{}); });
    invalid(s, "count_nonfinite", name, {}, [&b, t, source](Fixture& f) {
      int64_t count, first;
      return b.count_nonfinite(source(f, t), &count, &first);
    });
  }
}

// A [1, 3] prefix of a [1, 4] vector: one element short.
template <class T>
Mat<T> short_of(const Operand<T>& v) { return v.mat().block(0, 0, 1, 3); }

void shape_cases(Suite& s) {
  Backend& b = s.backend;
  using F = Fixture;
  const auto narrow = [](const Operand<float>& m) { return m.mat().block(0, 0, 4, 2); };
  invalid(s, "convert_rows", "dst [4, 2] for src [4, 4]", {}, [&](F& f) { return b.convert_rows(narrow(f.B), f.C.view(), MatF{}); });
  invalid(s, "convert_rows", "row_scale of 3 for 4 rows", {}, [&](F& f) { return b.convert_rows(f.B.mat(), f.C.view(), short_of(f.v1)); });
  invalid(s, "subtract_rows", "b [4, 2] for a [4, 4]", {}, [&](F& f) { return b.subtract_rows(f.B.mat(), f.C.view(), f.cos.view(), MatF{}); });
  invalid(s, "subtract_rows", "row_scale of 3 for 4 rows", {}, [&](F& f) { return b.subtract_rows(f.B.mat(), f.C.view(), f.D.view(), short_of(f.v1)); });
  invalid(s, "reverse", "dst [4, 2] for src [4, 4]", {}, [&](F& f) { return b.reverse(narrow(f.B), f.C.mat()); });
  invalid(s, "gather_columns", "perm of 3 for 4 columns", {}, [&](F& f) { return b.gather_columns(f.B.mat(), f.C.mat(), short_of(f.perm)); });
  invalid(s, "gather_columns", "dst [4, 2] for src [4, 4]", {}, [&](F& f) { return b.gather_columns(narrow(f.B), f.C.mat(), f.perm.mat()); });
  invalid(s, "gather_columns_u8", "perm of 3 for 4 columns", {}, [&](F& f) { return b.gather_columns_u8(f.codes.mat(), f.codes2.mat(), short_of(f.perm)); });
  invalid(s, "gather_symmetric", "a [4, 2] matrix", {}, [&](F& f) { return b.gather_symmetric(narrow(f.B), narrow(f.C), f.perm.mat().block(0, 0, 1, 2)); });
  invalid(s, "gather_symmetric", "perm of 3 for [4, 4]", {}, [&](F& f) { return b.gather_symmetric(f.B.mat(), f.C.mat(), short_of(f.perm)); });
  invalid(s, "gather_rows", "index of 3 for 4 rows of dst", {}, [&](F& f) { return b.gather_rows(f.B.mat(), f.C.mat(), short_of(f.perm)); });
  invalid(s, "gather_rows", "dst of 2 columns from src of 4", {}, [&](F& f) { return b.gather_rows(narrow(f.B), f.C.mat(), f.perm.mat()); });
  invalid(s, "zero_columns", "mask of 3 for 4 columns", {}, [&](F& f) { return b.zero_columns(f.B.mat(), short_of(f.mask)); });
  invalid(s, "get_diagonal", "out of 3 for [4, 4]", {}, [&](F& f) { return b.get_diagonal(f.B.mat(), short_of(f.v1)); });
  invalid(s, "set_diagonal", "values of 3 for [4, 4]", {}, [&](F& f) { return b.set_diagonal(f.B.mat(), short_of(f.v1)); });
  invalid(s, "mirror_lower", "a [4, 2] matrix", {}, [&](F& f) { return b.mirror_lower(narrow(f.B)); });
  invalid(s, "max_asymmetry", "a [4, 2] matrix", {}, [&](F& f) {
    float worst;
    int64_t i, j;
    return b.max_asymmetry(narrow(f.B), 0.0f, &worst, &i, &j);
  });
  invalid(s, "copy", "dst [4, 2] for src [4, 4]", {}, [&](F& f) { return b.copy(narrow(f.B), f.C.mat()); });
  invalid(s, "gemm", "inner dimensions 2 and 4", {}, [&](F& f) { return b.gemm(false, false, 1.0f, narrow(f.B), f.C.mat(), 0.0f, f.D.mat()); });
  invalid(s, "gemm", "C [4, 4] for a [4, 2] product", {}, [&](F& f) { return b.gemm(false, false, 1.0f, f.B.mat(), narrow(f.C), 0.0f, f.D.mat()); });
  invalid(s, "gemm", "C [4, 2] for Aᵀ·B [4, 4]", {}, [&](F& f) { return b.gemm(true, false, 1.0f, f.B.mat(), f.C.mat(), 0.0f, narrow(f.D)); });
  invalid(s, "syrk_lower", "C [4, 2] for A with 4 columns", {}, [&](F& f) { return b.syrk_lower(1.0f, f.B.mat(), 0.0f, narrow(f.C)); });
  invalid(s, "trmm_right_upper", "U [4, 2]", {}, [&](F& f) { return b.trmm_right_upper(false, 1.0f, narrow(f.A), f.B.mat()); });
  invalid(s, "trmm_right_upper", "B with 2 columns for U [4, 4]", {}, [&](F& f) { return b.trmm_right_upper(true, 1.0f, f.A.mat(), narrow(f.B)); });
  invalid(s, "cholesky_lower", "a [4, 2] matrix", {}, [&](F& f) { return b.cholesky_lower(narrow(f.A), nullptr); });
  invalid(s, "invert_lower", "a [4, 2] matrix", {}, [&](F& f) { return b.invert_lower(narrow(f.A)); });
  invalid(s, "rms_norm", "w of 3 for 4 columns", {}, [&](F& f) { return b.rms_norm(f.B.mat(), short_of(f.v1), 1e-6f, f.C.mat()); });
  invalid(s, "rms_norm", "y [4, 2] for x [4, 4]", {}, [&](F& f) { return b.rms_norm(f.B.mat(), f.v1.mat(), 1e-6f, narrow(f.C)); });
  invalid(s, "add_row", "v of 3 for 4 columns", {}, [&](F& f) { return b.add_row(f.B.mat(), short_of(f.v1)); });
  invalid(s, "axpby", "b [4, 2] for a [4, 4]", {}, [&](F& f) { return b.axpby(f.B.mat(), 1.0f, narrow(f.C), f.D.mat()); });
  invalid(s, "axpby", "y [4, 2] for a [4, 4]", {}, [&](F& f) { return b.axpby(f.B.mat(), 1.0f, f.C.mat(), narrow(f.D)); });
  invalid(s, "rope", "an odd head width", {}, [&](F& f) { return b.rope(f.B.mat(), 1, f.cos.mat().block(0, 0, 4, 1), f.sin.mat().block(0, 0, 4, 1), false); });
  invalid(s, "rope", "a head width of 8 for rows of 4", {}, [&](F& f) { return b.rope(f.B.mat(), 8, f.C.mat(), f.D.mat(), false); });
  invalid(s, "rope", "cos [4, 4] for heads of 2", {}, [&](F& f) { return b.rope(f.B.mat(), 2, f.C.mat(), f.sin.mat(), false); });
  invalid(s, "silu_mul", "up [4, 2] for gate [4, 4]", {}, [&](F& f) { return b.silu_mul(f.B.mat(), narrow(f.C), f.D.mat()); });
  invalid(s, "silu_mul", "out [4, 2] for gate [4, 4]", {}, [&](F& f) { return b.silu_mul(f.B.mat(), f.C.mat(), narrow(f.D)); });
  invalid(s, "layer_norm", "b of 3 for 4 columns", {}, [&](F& f) { return b.layer_norm(f.B.mat(), f.v1.mat(), short_of(f.v2), 1e-5f, f.C.mat()); });
  invalid(s, "layer_norm", "w of 3 for 4 columns", {}, [&](F& f) { return b.layer_norm(f.B.mat(), short_of(f.v1), f.v2.mat(), 1e-5f, f.C.mat()); });
  invalid(s, "activation", "y [4, 2] for x [4, 4]", {}, [&](F& f) { return b.activation(Activation::kSilu, f.B.mat(), narrow(f.C)); });
  invalid(s, "activation", "an activation that does not exist", {}, [&](F& f) { return b.activation(static_cast<Activation>(99), f.B.mat(), f.C.mat()); });
  auto attention = [&b](F& f, MatF k, MatI segments, int64_t heads, int64_t kv_heads, MatF out) {
    return b.attention(f.B.mat(), k, f.D.mat(), segments, heads, kv_heads, false, out);
  };
  invalid(s, "attention", "3 heads in rows of 4", {}, [=](F& f) { return attention(f, f.C.mat(), f.segments.mat(), 3, 3, f.E.mat()); });
  invalid(s, "attention", "2 heads over 3 kv heads", {}, [=](F& f) { return attention(f, f.C.mat(), f.segments.mat(), 2, 3, f.E.mat()); });
  invalid(s, "attention", "k [4, 2] for 2 kv heads of 2", {}, [=](F& f) { return attention(f, f.C.mat().block(0, 0, 4, 2), f.segments.mat(), 2, 2, f.E.mat()); });
  invalid(s, "attention", "segments {0, 3} for 4 tokens", {}, [=](F& f) { return attention(f, f.C.mat(), f.short_segments.mat(), 2, 2, f.E.mat()); });
  invalid(s, "attention", "an empty segment {0, 0, 4}", {}, [=](F& f) { return attention(f, f.C.mat(), f.empty_segment.mat(), 2, 2, f.E.mat()); });
  invalid(s, "attention", "out [4, 2] for q [4, 4]", {}, [=](F& f) { return attention(f, f.C.mat(), f.segments.mat(), 2, 2, f.E.mat().block(0, 0, 4, 2)); });
  auto backward = [&b](F& f, MatI segments, MatF dk) {
    return b.attention_backward(f.B.mat(), f.C.mat(), f.D.mat(), f.A.mat(), segments, 2, 2, f.E.mat(), dk, f.G.mat());
  };
  invalid(s, "attention_backward", "dk [4, 2] for k [4, 4]", {}, [=](F& f) { return backward(f, f.segments.mat(), f.cos.mat()); });
  invalid(s, "attention_backward", "segments {0, 3} for 4 tokens", {}, [=](F& f) { return backward(f, f.short_segments.mat(), f.Psource.mat()); });
  invalid(s, "row_norms", "out of 3 for 4 rows", {}, [&](F& f) { return b.row_norms(f.B.mat(), false, short_of(f.v1)); });
  invalid(s, "unfold_patches", "out [4, 2] for 4 patches of 2²", {}, [&](F& f) { return b.unfold_patches(f.image.mat(), 1, 4, 2, narrow(f.B)); });
  invalid(s, "unfold_patches", "images of 16 columns for 1 channel of 3²", {}, [&](F& f) { return b.unfold_patches(f.image.mat(), 1, 3, 1, f.B.mat()); });
  invalid(s, "unfold_patches", "a patch of 5 in an image of 4", {}, [&](F& f) { return b.unfold_patches(f.image.mat(), 1, 4, 5, f.B.mat()); });
  invalid(s, "fit_params", "columns [2, 6) of 4", {}, [&](F& f) { return b.fit_params(f.B.mat(), 2, 4, Grid{}, f.col_s.mat(), f.col_z.mat()); });
  invalid(s, "fit_params", "no columns", {}, [&](F& f) { return b.fit_params(f.B.mat(), 0, 0, Grid{}, f.col_s.mat(), f.col_z.mat()); });
  invalid(s, "fit_params", "scales [4, 2]", {}, [&](F& f) { return b.fit_params(f.B.mat(), 0, 4, Grid{}, f.s2.mat(), f.col_z.mat()); });
  auto quantize = [&b](F& f, MatI g_idx, MatF zeros, MatF Q, MatU8 codes) {
    return b.quantize_groups(f.B.mat(), g_idx, f.col_s.mat(), zeros, Grid{}, Q, codes);
  };
  invalid(s, "quantize_groups", "g_idx of 3 for 4 columns", {}, [=](F& f) { return quantize(f, short_of(f.g_idx), f.col_z.mat(), f.C.mat(), f.codes.mat()); });
  invalid(s, "quantize_groups", "zeros [4, 2] for scales [4, 1]", {}, [=](F& f) { return quantize(f, f.g_idx.mat(), f.z2.mat(), f.C.mat(), f.codes.mat()); });
  invalid(s, "quantize_groups", "Q [4, 2] for W [4, 4]", {}, [=](F& f) { return quantize(f, f.g_idx.mat(), f.col_z.mat(), narrow(f.C), f.codes.mat()); });
  invalid(s, "quantize_groups", "codes [4, 2] for W [4, 4]", {}, [=](F& f) {
    return quantize(f, f.g_idx.mat(), f.col_z.mat(), f.C.mat(), f.codes.mat().block(0, 0, 4, 2));
  });
  // sweep_block: the fixture's block made wrong in one way.
  auto sweep = [&b](std::function<void(F&, SweepBlock&)> spoil) {
    return [&b, spoil](F& f) {
      SweepBlock blk = fixture_block(f, Relabel(-1, Device()));
      spoil(f, blk);
      return b.sweep_block(blk);
    };
  };
  auto valid_sweep = sweep([](F&, SweepBlock&) {});
  invalid(s, "sweep_block", "i2 = 5 beyond 4 columns", valid_sweep, sweep([](F&, SweepBlock& k) { k.i2 = 5; }));
  invalid(s, "sweep_block", "an empty block i1 = i2", valid_sweep, sweep([](F&, SweepBlock& k) { k.i1 = 2, k.i2 = 2; }));
  invalid(s, "sweep_block", "U [4, 2]", valid_sweep, sweep([](F& f, SweepBlock& k) { k.U = f.A.mat().block(0, 0, 4, 2); }));
  invalid(s, "sweep_block", "P [4, 2]", valid_sweep, sweep([](F& f, SweepBlock& k) { k.P = f.C.mat().block(0, 0, 4, 2); }));
  invalid(s, "sweep_block", "scales [4, 1] for 2 groups", valid_sweep, sweep([](F& f, SweepBlock& k) { k.scales = f.col_s.mat(); }));
  invalid(s, "sweep_block", "zeros [4, 1] for 2 groups", valid_sweep, sweep([](F& f, SweepBlock& k) { k.zeros = f.col_z.mat(); }));
  invalid(s, "sweep_block", "Q [4, 2]", valid_sweep, sweep([](F& f, SweepBlock& k) { k.Q = f.D.mat().block(0, 0, 4, 2); }));
  invalid(s, "sweep_block", "codes [4, 2]", valid_sweep, sweep([](F& f, SweepBlock& k) { k.codes = f.codes.mat().block(0, 0, 4, 2); }));
  invalid(s, "sweep_block", "E [4, 2] for a block of 4", valid_sweep, sweep([](F& f, SweepBlock& k) { k.E = f.E.mat().block(0, 0, 4, 2); }));
  invalid(s, "sweep_block", "no Psource although P is given", valid_sweep, sweep([](F&, SweepBlock& k) { k.Psource = MatF{}; }));
  invalid(s, "sweep_block", "perm of 3 for 4 columns", valid_sweep, sweep([](F& f, SweepBlock& k) { k.perm = short_of(f.perm); }));
  invalid(s, "sweep_block", "row_loss of 3 for 4 rows", valid_sweep, sweep([](F& f, SweepBlock& k) { k.row_loss = f.loss.mat().block(0, 0, 1, 3); }));
  invalid(s, "sweep_block", "static groups of size 0", valid_sweep, sweep([](F&, SweepBlock& k) { k.group_size = 0; }));
}

void index_cases(Suite& s) {
  Backend& b = s.backend;
  using F = Fixture;
  for (bool negative : {false, true}) {
    const std::string what = negative ? "perm holding −1" : "perm holding 4 for 4 columns";
    auto bad = [negative](F& f) { return negative ? f.negative_perm.mat() : f.bad_perm.mat(); };
    invalid(s, "gather_columns", what, {}, [&b, bad](F& f) { return b.gather_columns(f.B.mat(), f.C.mat(), bad(f)); });
    invalid(s, "gather_columns", what + ", in place", {}, [&b, bad](F& f) { return b.gather_columns(f.B.mat(), f.B.mat(), bad(f)); });
    invalid(s, "gather_columns_u8", what, {}, [&b, bad](F& f) { return b.gather_columns_u8(f.codes.mat(), f.codes2.mat(), bad(f)); });
    invalid(s, "gather_symmetric", what, {}, [&b, bad](F& f) { return b.gather_symmetric(f.B.mat(), f.C.mat(), bad(f)); });
    invalid(s, "gather_rows", std::string(negative ? "index holding −1" : "index holding 4 for 4 rows of src"), {},
            [&b, bad](F& f) { return b.gather_rows(f.B.mat(), f.C.mat(), bad(f)); });
    invalid(s, "sweep_block", "static groups, " + what, {}, [&b, bad](F& f) {
      SweepBlock blk = fixture_block(f, Relabel(-1, Device()));
      blk.perm = bad(f);
      return b.sweep_block(blk);
    });
  }
  invalid(s, "quantize_groups", "g_idx holding 1 for 1 group", {}, [&b](F& f) {
    return b.quantize_groups(f.B.mat(), f.bad_g_idx.mat(), f.col_s.mat(), f.col_z.mat(), Grid{}, f.C.mat(), f.codes.mat());
  });
  // The aliases backend.h forbids and backends detect.
  invalid(s, "gather_rows", "dst is src", {}, [&b](F& f) { return b.gather_rows(f.B.mat(), f.B.mat(), f.perm.mat()); });
  invalid(s, "gather_symmetric", "dst is src", {}, [&b](F& f) { return b.gather_symmetric(f.B.mat(), f.B.mat(), f.perm.mat()); });
}

}  // namespace

void error_cases(Suite& s) {
  device_cases(s);
  dtype_cases(s);
  shape_cases(s);
  index_cases(s);
}

}  // namespace vlmq::conformance
