#include "cuda_libraries.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

namespace vlmq::cuda {
namespace {

std::vector<std::string> search_dirs() {
  std::vector<std::string> dirs;
  for (const char* var : {"VLMQ_CUDA_LIB_DIR", "CUDA_PATH", "CUDA_HOME"}) {
    const char* value = std::getenv(var);
    if (!value || !*value) continue;
    dirs.push_back(value);
    dirs.push_back(std::string(value) + "/lib64");
    dirs.push_back(std::string(value) + "/targets/x86_64-linux/lib");
  }
  dirs.push_back("/usr/local/cuda/lib64");
  dirs.push_back("");  // the plain soname: ld.so cache and LD_LIBRARY_PATH
  return dirs;
}

// dlopen the first candidate that loads (RTLD_GLOBAL, so cuSOLVER later finds cuBLAS).
bool load_first(const std::vector<std::string>& sonames, std::string* log) {
  for (const std::string& dir : search_dirs()) {
    for (const std::string& soname : sonames) {
      const std::string path = dir.empty() ? soname : dir + "/" + soname;
      if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
        *log += path;
        return true;
      }
    }
  }
  *log += "not found (" + sonames.front() + " …)";
  return false;
}

}  // namespace

LibraryProbe probe_libraries() {
  LibraryProbe probe;
  std::string cublas_log, cusolver_log;
  // cuSOLVER imports from cuBLAS(Lt) and nvJitLink: load those first (ecosystem.md §2.5).
  std::string ignored;
  load_first({"libcublasLt.so.13", "libcublasLt.so.12"}, &ignored);
  probe.cublas = load_first({"libcublas.so.13", "libcublas.so.12"}, &cublas_log);
  load_first({"libnvJitLink.so.13", "libnvJitLink.so.12"}, &ignored);
  probe.cusolver = load_first({"libcusolver.so.12", "libcusolver.so.11"}, &cusolver_log);
  probe.summary = "cuBLAS: " + cublas_log + "; cuSOLVER: " + cusolver_log;
  return probe;
}

}  // namespace vlmq::cuda
