// Kernel baselines for the benchmark suite (see native/cpu/cpu_bench.cpp).
#pragma once
#include <cstdint>
#include <string>

#include "vlmq/status.h"

namespace vlmq {

struct BenchRequest {
  std::string kernel;  // sgemm, ssyrk, sgemm-cross, spotrf, chain-reference, chain-vlmq
  int64_t m = 0, n = 0, k = 0;
  int repeats = 1;
};

struct BenchResult {
  double seconds = 0;  // best of the repeats
  double flops = 0;    // nominal flop count of one run
};

Status cpu_benchmark(const BenchRequest& request, BenchResult* result);

}  // namespace vlmq
