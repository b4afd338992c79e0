// DeviceBuffer: one cudaMalloc'd block of device memory, freed with its owner (move-only).
// HostStaging: the same for page-locked host memory (asynchronous copies, graph inputs).
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace longctx::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // `what` names the buffer in the out-of-memory error (with the bytes asked for).
  static Result<DeviceBuffer> allocate(size_t bytes, const std::string& what);
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }
  void reset();

  void* get() const { return ptr_; }
  template <class T>
  T* as(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<unsigned char*>(ptr_) + byte_offset);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class HostStaging {
 public:
  HostStaging() = default;
  static Result<HostStaging> allocate(size_t bytes);
  HostStaging(HostStaging&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  HostStaging& operator=(HostStaging&& o) noexcept;
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  ~HostStaging() { reset(); }
  void reset();
  template <class T>
  T* as(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<unsigned char*>(ptr_) + byte_offset);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

inline size_t round_up_256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace longctx::cuda
