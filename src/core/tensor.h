// Tensor: a typed, strided view over memory that is kept alive by a shared owner
// (an owned buffer, a memory-mapped file, or device memory). Views share the owner.
// Strides are in elements. Kernels take raw pointers from tensors; the tensor itself
// never computes (STYLE.md §7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace longctx {

enum class DeviceType : uint8_t { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i) { return {DeviceType::kCUDA, i}; }
  bool is_cpu() const { return type == DeviceType::kCPU; }
  bool operator==(const Device&) const = default;
  std::string to_string() const;
};

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape& s);  // "[2, 3]"

class Tensor {
 public:
  Tensor() = default;

  // New contiguous CPU tensor (64-byte aligned); contents uninitialised / zeroed.
  static Tensor empty(const Shape& shape, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype);
  // A contiguous view over memory owned by `owner` (e.g. an mmap of a safetensors file).
  static Tensor wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner,
                     Device device = Device::cpu());
  // Copies a vector into a new 1-D or shaped tensor.
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape);
  static Tensor from_vector(const std::vector<int32_t>& v, const Shape& shape);

  bool defined() const { return data_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int d) const { return shape_.at(norm_dim(d)); }
  int64_t stride(int d) const { return strides_.at(norm_dim(d)); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() {
    return reinterpret_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(data_);
  }

  // Views (share memory).
  Tensor view(const Shape& shape) const;  // contiguous only; one dim may be -1
  Tensor slice(int d, int64_t start, int64_t end) const;
  Tensor select(int d, int64_t index) const;  // drops dimension d
  Tensor transpose(int d0, int d1) const;

  // Copies.
  Tensor contiguous() const;
  Tensor to(DType dtype) const;  // contiguous copy converted element-wise
  Tensor clone() const { return to(dtype_); }
  void copy_from(const Tensor& src);  // same shape; converts dtype

  std::string to_string() const;  // "f32[2, 3]"

 private:
  int norm_dim(int d) const { return d < 0 ? d + dim() : d; }
  std::shared_ptr<void> owner_;
  std::byte* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Device device_{};
  Shape shape_;
  Shape strides_;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace longctx
