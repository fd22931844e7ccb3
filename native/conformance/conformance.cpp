// run_conformance: every section of the suite on one backend (conformance.h).
#include "vlmq/conformance.h"

#include "harness.h"

namespace vlmq {

std::vector<ConformanceResult> run_conformance(Backend& backend) {
  conformance::Suite suite(backend);
  conformance::memory_cases(suite);
  conformance::movement_cases(suite);
  conformance::linalg_cases(suite);
  conformance::transformer_cases(suite);
  conformance::quantization_cases(suite);
  conformance::error_cases(suite);
  return std::move(suite.results);
}

}  // namespace vlmq
