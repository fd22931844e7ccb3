// Builds without nvcc (binding.gyp, or cmake-js on a machine without the CUDA toolkit).
#include "vlmq/devices.h"

namespace vlmq {

CudaInfo cuda_info() {
  CudaInfo info;
  info.reason = "this binary was built without CUDA (no nvcc at build time; rebuild with cmake-js on a machine with the CUDA toolkit)";
  return info;
}

}  // namespace vlmq
