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

template <class T>
Status alloc_mat(Backend& backend, Buffer* out, int64_t rows, int64_t cols, BufferUsage usage, Mat<T>* view) {
  if (rows < 0 || cols < 0) return InvalidArgument("negative matrix dimensions");
  VLMQ_TRY(backend.alloc(out, static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(T), usage));
  if (view) *view = out->mat<T>(rows, cols);
  return Status::Ok();
}

template Status alloc_mat<float>(Backend&, Buffer*, int64_t, int64_t, BufferUsage, MatF*);
template Status alloc_mat<double>(Backend&, Buffer*, int64_t, int64_t, BufferUsage, MatD*);
template Status alloc_mat<int32_t>(Backend&, Buffer*, int64_t, int64_t, BufferUsage, MatI*);
template Status alloc_mat<uint8_t>(Backend&, Buffer*, int64_t, int64_t, BufferUsage, MatU8*);

Status alloc_matrix(Backend& backend, Buffer* out, int64_t rows, int64_t cols, BufferUsage usage) {
  return alloc_mat<float>(backend, out, rows, cols, usage);
}

template <class T>
Status to_host(Buffer&& buffer, size_t count, HostArray<T>* out) {
  if (count * sizeof(T) > buffer.bytes()) return Internal("to_host: buffer smaller than requested");
  Backend* owner = buffer.owner();
  if (owner && owner->device().kind == DeviceKind::kHost) {
    // Host memory comes from aligned_alloc, so std::free releases it: hand it over as is.
    out->data.reset(static_cast<T*>(buffer.release()));
    out->size = count;
    return Status::Ok();
  }
  T* host = static_cast<T*>(std::malloc(count * sizeof(T) + 1));
  if (!host) return {Code::kOutOfMemory, "out of host memory for a result"};
  out->data.reset(host);
  out->size = count;
  if (!owner) return Internal("to_host: buffer has no backend");
  return owner->download(host, buffer.vec<T>(static_cast<int64_t>(count)).view());
}

Status to_backend(Backend& backend, MatrixView host, Buffer* staging, MatrixView* out) {
  if (backend.device() == host.device) return *out = host, Status::Ok();  // already there
  if (host.device.kind != DeviceKind::kHost) return InvalidArgument("to_backend: the source lives on another device");
  if (host.elements() > 0 && host.ld != host.cols) return InvalidArgument("to_backend: the source must be contiguous");
  VLMQ_TRY(backend.alloc(staging, static_cast<size_t>(host.elements()) * dtype_size(host.dtype), BufferUsage::kScratch));
  MatrixView staged = host;
  staged.data = staging->as<void>();
  staged.device = backend.device();
  VLMQ_TRY(backend.upload(staged, host.data));
  *out = staged;
  return Status::Ok();
}

template Status to_host<float>(Buffer&&, size_t, HostArray<float>*);
template Status to_host<uint8_t>(Buffer&&, size_t, HostArray<uint8_t>*);
template Status to_host<int32_t>(Buffer&&, size_t, HostArray<int32_t>*);

}  // namespace vlmq
