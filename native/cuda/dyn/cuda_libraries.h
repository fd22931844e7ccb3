// Run-time loading of cuBLAS and cuSOLVER (no headers or link-time dependency: the toolkit used
// to build vlmq may not have them, and machines without a GPU must still load the addon).
// This issue only probes for them; the CUDA backend will resolve its entry points here.
#pragma once
#include <string>

namespace vlmq::cuda {

struct LibraryProbe {
  bool cublas = false, cusolver = false;
  std::string summary;  // where each library was found, or every path tried
};

// Search order (docs/ecosystem.md §2.5): VLMQ_CUDA_LIB_DIR, $CUDA_PATH / $CUDA_HOME, the default
// toolkit prefix, then the plain soname through the dynamic loader. CUDA 13 sonames first.
LibraryProbe probe_libraries();

}  // namespace vlmq::cuda
