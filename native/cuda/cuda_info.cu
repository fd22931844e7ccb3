// The CUDA side of the addon in this release: a device probe. The CUDA runtime is linked
// statically, so this file loads on machines with no driver at all and reports why no GPU is
// used; the kernels of the CUDA backend arrive with the CUDA issue.
#include <cuda_runtime.h>

#include <string>

#include "dyn/cuda_libraries.h"
#include "vlmq/devices.h"

namespace vlmq {

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  info.libraries = "not probed (no device)";
  const cudaError_t err = cudaGetDeviceCount(&info.device_count);
  if (err != cudaSuccess) {
    info.device_count = 0;
    info.reason = std::string("no CUDA device: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
    return info;
  }
  if (info.device_count == 0) {
    info.reason = "no CUDA device: the driver reports 0 devices";
    return info;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    info.device_name = prop.name;
    info.device_name += " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                        std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
    info.device_memory = prop.totalGlobalMem;
  }
  const cuda::LibraryProbe libs = cuda::probe_libraries();
  info.libraries = libs.summary;
  info.reason = "a CUDA device is present, but this release has no CUDA kernels yet: the CPU backend is used";
  return info;
}

}  // namespace vlmq
