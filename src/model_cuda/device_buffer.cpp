#include "model_cuda/device_buffer.h"

#include <cuda_runtime_api.h>

#include "model_cuda/cuda_check.h"

namespace longctx::cuda {

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes, const std::string& what) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  const cudaError_t e = cudaMalloc(&b.ptr_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // cudaMalloc's error is not sticky: clear it for the next call
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return cuda_status(e, "allocating " + std::to_string(bytes) + " bytes of device memory for " + what +
                              " (" + std::to_string(free_b) + " of " + std::to_string(total_b) +
                              " bytes free)");
  }
  b.bytes_ = bytes;
  return b;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = o.ptr_, bytes_ = o.bytes_;
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (ptr_) cudaFree(ptr_);
  ptr_ = nullptr, bytes_ = 0;
}

Result<HostStaging> HostStaging::allocate(size_t bytes) {
  HostStaging h;
  if (bytes == 0) return h;
  LONGCTX_CUDA_OK(cudaMallocHost(&h.ptr_, bytes),
                  "allocating " + std::to_string(bytes) + " bytes of pinned host memory");
  h.bytes_ = bytes;
  return h;
}

HostStaging& HostStaging::operator=(HostStaging&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = o.ptr_, bytes_ = o.bytes_;
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

void HostStaging::reset() {
  if (ptr_) cudaFreeHost(ptr_);
  ptr_ = nullptr, bytes_ = 0;
}

}  // namespace longctx::cuda
