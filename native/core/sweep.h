// Internal to native/core: the pieces GPTQ and GPTAQ share.
#pragma once
#include "vlmq/core.h"

namespace vlmq {

// Everything the column sweep reads and writes, prepared by quantize_linear.
struct SweepState {
  MatF W;                  // [m, n] working weights in processing order; receives lazy updates
  MatF U;                  // [n, n] inverse factor (upper)
  GroupMode mode = GroupMode::kPerChannel;
  int64_t group_size = -1;
  MatI perm;               // [1, n] act-order permutation, or empty
  MatF scales;             // [m, ngroups]
  MatF zeros;
  MatF Q;                  // [m, n] out, processing order
  MatU8 codes;             // [m, n] out, processing order
};

// GPTQ's blocked column sweep (algorithm.md §2(c)). With a non-empty P (GPTAQ, §3(d)) every update also
// carries the asymmetric term. Returns the reference loss estimate Σ (w − q)² / d² / 2.
Status column_sweep(Backend& backend, const SweepState& s, MatF P, const LinearOptions& options,
                    const RunControl& control, double* loss);

Status gptq_quantize(Backend& backend, const SweepState& s, const LinearOptions& options,
                     const RunControl& control, double* loss);

// dXXT: [n, n] cross term in processing order; it is overwritten by P. *seconds_p: time to build P.
Status gptaq_quantize(Backend& backend, const SweepState& s, MatF dXXT, const LinearOptions& options,
                      const RunControl& control, double* loss, double* seconds_p);

}  // namespace vlmq
