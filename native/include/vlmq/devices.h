// Beside the Backend contract: which backends this binary holds, whether each can run here and
// why not, how one is chosen by name, and the host facts `vlmq doctor` reports (threads, BLAS,
// the CUDA probe). None of this is a primitive.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "vlmq/backend.h"

namespace vlmq {

// One entry of the registry.
struct BackendInfo {
  std::string name;         // "cpu", "cuda:0", ...
  std::string kind;         // "cpu" or "cuda"
  bool compiled = false;    // this binary holds the backend's code
  bool usable = false;      // it can run on this machine
  std::string reason;       // why not usable (set whenever usable is false)
  std::string device_name;  // e.g. the CPU's or the GPU's marketing name
  uint64_t memory_bytes = 0;  // device memory (host RAM for the CPU)
};

// Every backend compiled in or known to the build, the CPU first.
std::vector<BackendInfo> list_backends();

// The backend a device name selects: "cpu", "cuda" (= "cuda:0"), "cuda:N", or "auto" (CUDA when
// usable, else the CPU). An explicit device that is not usable is an error with the reason; the
// backend lives as long as the process.
Status open_backend(const std::string& device, Backend** out);

// The process-wide CPU backend (always available).
Backend& cpu_backend();

// Threads of the CPU backend's kernels and of OpenBLAS (changed between jobs only).
int cpu_threads();
void set_cpu_threads(int n);

// Facts about the CPU backend's BLAS for `vlmq doctor`.
struct BlasInfo {
  std::string name;     // e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... Cooperlake"
  std::string core;     // the kernel family OpenBLAS picked for this CPU
  int threads = 1;
};
BlasInfo cpu_blas_info();

// What the CUDA side of the binary can do on this machine. `compiled` is false in builds without
// nvcc (binding.gyp, or no toolkit).
struct CudaInfo {
  bool compiled = false;
  bool usable = false;          // a device is present and the backend can run on it
  std::string reason;           // why not usable (always set when usable is false)
  int runtime_version = 0;      // e.g. 13000
  int driver_version = 0;
  int device_count = 0;
  std::string device_name;      // device 0
  uint64_t device_memory = 0;   // device 0, bytes
  std::string libraries;        // what the dynamic loader found (cuBLAS, cuSOLVER)
};
CudaInfo cuda_info();

}  // namespace vlmq
