// The conformance suite of the Backend contract (backend.h), written once and run on every
// backend: every primitive on edge shapes (1×1, sizes that are no multiple of any block, strided
// views at an offset inside a larger allocation with guard values around them), the aliasing
// rules the header states, and the errors it promises (an operand of another device, a wrong
// dtype or shape, an index out of range); plus the memory pool the backends allocate from.
//
// Every case allocates its operands on the backend under test, uploads them, runs the primitive
// and downloads the result, and compares with a naive host reference written in the suite itself
// (plain loops in double or float, from the header's comments and docs/algorithm.md), never with
// another backend. Inputs come from a generator seeded by the case's name, so a failure repeats.
// A new backend is correct when run_conformance(backend) reports no failure.
#pragma once
#include <string>
#include <vector>

#include "vlmq/backend.h"

namespace vlmq {

struct ConformanceResult {
  std::string primitive;  // the Backend method the case checks ("memory_pool" for the pool)
  std::string name;       // what the case checks, e.g. "trans_a, alpha 0.5, beta −1, [7, 33] · [33, 67]"
  bool ok = false;
  std::string detail;     // what differed (or the status), or how close the result came
};

// Runs every case on `backend`; never throws, and a failure of one case does not stop the others.
std::vector<ConformanceResult> run_conformance(Backend& backend);

// The suite run against a decorator of the CPU backend that breaks the primitives named in
// kSelfTestBroken (gemm adds 1e-3 to one element of C; gather_rows ignores its index) and forwards
// every other call. The suite must report failures for exactly those primitives.
std::vector<ConformanceResult> run_conformance_self_test();
inline constexpr const char* kSelfTestBroken[] = {"gemm", "gather_rows"};

}  // namespace vlmq
