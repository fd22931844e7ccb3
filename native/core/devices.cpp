// The registry of backends (devices.h): what this binary holds, what can run here, and the
// choice of a backend by device name. Nothing here knows CUDA beyond the probe's plain facts.
#include "vlmq/devices.h"

#include <unistd.h>

#include <cctype>
#include <fstream>

namespace vlmq {
namespace {

// The CPU's marketing name from /proc/cpuinfo (Linux), or "" where there is none.
std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "";
}

uint64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(size) : 0;
}

BackendInfo cpu_entry() {
  BackendInfo info;
  info.name = "cpu";
  info.kind = "cpu";
  info.compiled = true;
  info.usable = true;
  info.device_name = cpu_model_name();
  info.memory_bytes = host_memory_bytes();
  return info;
}

// One entry per CUDA device, or one "cuda" entry saying why there is none. This release has no
// CUDA backend yet, so no entry is usable; the probe's reason says so on machines with a GPU.
std::vector<BackendInfo> cuda_entries() {
  const CudaInfo cuda = cuda_info();
  std::vector<BackendInfo> entries;
  for (int i = 0; i < std::max(cuda.device_count, 1); i++) {
    BackendInfo info;
    info.name = cuda.device_count > 0 ? "cuda:" + std::to_string(i) : "cuda";
    info.kind = "cuda";
    info.compiled = cuda.compiled;
    info.usable = cuda.usable;
    info.reason = cuda.reason;
    if (i == 0) {
      info.device_name = cuda.device_name;
      info.memory_bytes = cuda.device_memory;
    }
    entries.push_back(info);
  }
  return entries;
}

// "cuda" is "cuda:0"; "cuda:N" must name a non-negative integer.
bool parse_cuda_ordinal(const std::string& device, int* ordinal) {
  if (device == "cuda") return *ordinal = 0, true;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5 || device.size() > 9) return false;
  for (size_t i = 5; i < device.size(); i++)
    if (!std::isdigit(static_cast<unsigned char>(device[i]))) return false;
  *ordinal = std::stoi(device.substr(5));
  return true;
}

}  // namespace

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> all{cpu_entry()};
  for (BackendInfo& info : cuda_entries()) all.push_back(std::move(info));
  return all;
}

Status open_backend(const std::string& device, Backend** out) {
  if (device == "cpu") return *out = &cpu_backend(), Status::Ok();
  if (device == "auto") {
    // CUDA when a device is usable; the caller logs which backend it got (Backend::name()).
    for (const BackendInfo& info : cuda_entries())
      if (info.usable) return open_backend(info.name, out);
    return *out = &cpu_backend(), Status::Ok();
  }
  int ordinal = 0;
  if (!parse_cuda_ordinal(device, &ordinal))
    return InvalidArgument("unknown device '" + device + "': expected auto, cpu, cuda or cuda:N");
  const CudaInfo cuda = cuda_info();
  if (!cuda.usable) return Unsupported("device '" + device + "' is not usable: " + cuda.reason);
  if (ordinal >= cuda.device_count)
    return Unsupported("device '" + device + "' does not exist: this machine has " + std::to_string(cuda.device_count) + " CUDA device(s)");
  return Unsupported("device '" + device + "': this binary has no CUDA backend");
}

}  // namespace vlmq
