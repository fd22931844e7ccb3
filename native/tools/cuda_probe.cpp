// A stand-alone view of what the addon's CUDA side sees on this machine (the same code as the
// `cuda` block of `vlmq doctor`), for GPU machines without Node. Built by scripts/cuda-probe.sh.
#include <cstdio>

#include "vlmq/devices.h"

int main() {
  const vlmq::CudaInfo info = vlmq::cuda_info();
  std::printf("compiled: %s\nusable: %s\nreason: %s\nruntime: %d\ndriver: %d\ndevices: %d\ndevice 0: %s\nlibraries: %s\n",
              info.compiled ? "yes" : "no", info.usable ? "yes" : "no", info.reason.c_str(), info.runtime_version,
              info.driver_version, info.device_count, info.device_name.c_str(), info.libraries.c_str());
  return info.compiled ? 0 : 1;
}
