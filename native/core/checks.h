// Internal to native/core: input checks shared by the algorithms, with messages that name the
// tensor and the first offending position.
#pragma once
#include <string>

#include "vlmq/backend.h"

namespace vlmq {

inline Status check_finite(Backend& backend, MatrixView a, const char* name) {
  int64_t count = 0, first = 0;
  VLMQ_TRY(backend.count_nonfinite(a, &count, &first));
  if (count == 0) return Status::Ok();
  return InvalidArgument(std::string(name) + " holds " + std::to_string(count) + " NaN or infinite values (first at [" +
                         std::to_string(first / a.cols) + ", " + std::to_string(first % a.cols) + "])");
}

}  // namespace vlmq
