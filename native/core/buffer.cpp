// Buffer ownership and host transfer, shared by every backend.
#include <cstring>
#include <new>

#include "vlmq/core.h"

namespace vlmq {

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = other.owner_;
    data_ = other.data_;
    bytes_ = other.bytes_;
    usage_ = other.usage_;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void Buffer::reset() {
  if (data_ && owner_) owner_->free(data_, bytes_);
  data_ = nullptr;
  bytes_ = 0;
}

MatF Buffer::matrix(int64_t rows, int64_t cols) const {
  return {static_cast<float*>(data_), rows, cols, cols, owner_ ? owner_->device() : DeviceKind::kHost};
}

Status alloc_matrix(Backend& backend, Buffer* out, int64_t rows, int64_t cols, BufferUsage usage) {
  if (rows < 0 || cols < 0) return InvalidArgument("negative matrix dimensions");
  return backend.alloc(out, static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(float), usage);
}

template <class T>
Status to_host(Buffer&& buffer, size_t count, HostArray<T>* out) {
  if (count * sizeof(T) > buffer.bytes()) return Internal("to_host: buffer smaller than requested");
  Backend* owner = buffer.owner();
  if (owner && owner->device() == DeviceKind::kHost) {
    // Host memory comes from aligned_alloc, so std::free releases it: hand it over as is.
    out->data.reset(static_cast<T*>(buffer.release()));
    out->size = count;
    return Status::Ok();
  }
  T* host = static_cast<T*>(std::malloc(count * sizeof(T) + 1));
  if (!host) return {Code::kOutOfMemory, "out of host memory for a result"};
  out->data.reset(host);
  out->size = count;
  return owner ? owner->download(host, buffer, count * sizeof(T)) : Internal("to_host: buffer has no backend");
}

template Status to_host<float>(Buffer&&, size_t, HostArray<float>*);
template Status to_host<uint8_t>(Buffer&&, size_t, HostArray<uint8_t>*);
template Status to_host<int32_t>(Buffer&&, size_t, HostArray<int32_t>*);

}  // namespace vlmq
