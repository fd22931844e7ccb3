// Status codes returned by every fallible native function. Library code never aborts the
// process: errors travel up as a Status until napi/ turns them into a rejected Promise.
#pragma once
#include <string>
#include <utility>

namespace vlmq {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // a shape, dtype, option or value that the caller should have checked
  kOutOfMemory,
  kNotPositiveDefinite, // Cholesky failed; detail() carries the failing minor
  kUnsupported,         // the backend lacks this primitive or this device
  kCancelled,           // the caller's cancel flag was raised
  kBackend,             // the BLAS/LAPACK/CUDA library reported an error
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string message) { return {Code::kInvalidArgument, std::move(message)}; }
inline Status Unsupported(std::string message) { return {Code::kUnsupported, std::move(message)}; }
inline Status Cancelled() { return {Code::kCancelled, "cancelled"}; }
inline Status Internal(std::string message) { return {Code::kInternal, std::move(message)}; }

}  // namespace vlmq

// Propagate a non-ok Status to the caller.
#define VLMQ_TRY(expr)                      \
  do {                                      \
    ::vlmq::Status vlmq_status_ = (expr);   \
    if (!vlmq_status_.ok()) return vlmq_status_; \
  } while (0)
