#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>

namespace longctx {

std::string Device::to_string() const {
  return type == DeviceType::kCPU ? "cpu" : "cuda:" + std::to_string(index);
}

std::string shape_to_string(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

int64_t Tensor::numel() const {
  return std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<>());
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("Tensor::empty: negative dimension in " + shape_to_string(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  size_t bytes = t.nbytes();
  size_t alloc = ((bytes + 63) / 64) * 64;
  if (alloc == 0) alloc = 64;
  void* p = std::aligned_alloc(64, alloc);
  if (!p) throw std::bad_alloc();
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = static_cast<std::byte*>(p);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner,
                    Device device) {
  Tensor t;
  t.owner_ = std::move(owner);
  t.data_ = static_cast<std::byte*>(data);
  t.dtype_ = dtype;
  t.device_ = device;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape) {
  Tensor t = empty(shape, DType::kF32);
  if (static_cast<size_t>(t.numel()) != v.size())
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(v.size()) +
                                " values for shape " + shape_to_string(shape));
  std::memcpy(t.data_, v.data(), v.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_vector(const std::vector<int32_t>& v, const Shape& shape) {
  Tensor t = empty(shape, DType::kI32);
  if (static_cast<size_t>(t.numel()) != v.size())
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(v.size()) +
                                " values for shape " + shape_to_string(shape));
  std::memcpy(t.data_, v.data(), v.size() * sizeof(int32_t));
  return t;
}

Tensor Tensor::view(const Shape& shape) const {
  if (!is_contiguous()) throw std::invalid_argument("Tensor::view of a non-contiguous tensor " + to_string());
  Shape s = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("Tensor::view: more than one -1");
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[infer] = known == 0 ? 0 : numel() / known;
  int64_t n = std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
  if (n != numel())
    throw std::invalid_argument("Tensor::view: " + to_string() + " cannot be viewed as " + shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int d, int64_t start, int64_t end) const {
  d = norm_dim(d);
  if (d < 0 || d >= dim() || start < 0 || end < start || end > shape_[d])
    throw std::out_of_range("Tensor::slice(" + std::to_string(d) + ", " + std::to_string(start) + ", " +
                            std::to_string(end) + ") of " + to_string());
  Tensor t = *this;
  t.data_ += start * strides_[d] * static_cast<int64_t>(dtype_size(dtype_));
  t.shape_[d] = end - start;
  return t;
}

Tensor Tensor::select(int d, int64_t index) const {
  d = norm_dim(d);
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::transpose(int d0, int d1) const {
  Tensor t = *this;
  std::swap(t.shape_.at(norm_dim(d0)), t.shape_.at(norm_dim(d1)));
  std::swap(t.strides_.at(norm_dim(d0)), t.strides_.at(norm_dim(d1)));
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape_ != shape_)
    throw std::invalid_argument("Tensor::copy_from: shape " + src.to_string() + " into " + to_string());
  if (!device_.is_cpu() || !src.device_.is_cpu())
    throw std::invalid_argument("Tensor::copy_from: CPU tensors only (" + device_.to_string() + ")");
  if (is_contiguous() && src.is_contiguous()) {
    convert_elements(src.data_, src.dtype_, data_, dtype_, static_cast<size_t>(numel()));
    return;
  }
  // Generic strided walk, one innermost row at a time.
  const int nd = dim();
  const int64_t n = numel();
  if (n == 0) return;
  const int64_t inner = nd ? shape_[nd - 1] : 1;
  std::vector<int64_t> idx(nd, 0);
  const size_t ss = dtype_size(src.dtype_), ds = dtype_size(dtype_);
  for (int64_t row = 0; row < n / inner; ++row) {
    int64_t so = 0, doff = 0;
    for (int i = 0; i < nd - 1; ++i) {
      so += idx[i] * src.strides_[i];
      doff += idx[i] * strides_[i];
    }
    const int64_t sst = nd ? src.strides_[nd - 1] : 1, dst = nd ? strides_[nd - 1] : 1;
    for (int64_t j = 0; j < inner; ++j)
      convert_elements(src.data_ + (so + j * sst) * ss, src.dtype_, data_ + (doff + j * dst) * ds, dtype_, 1);
    for (int i = nd - 2; i >= 0; --i) {
      if (++idx[i] < shape_[i]) break;
      idx[i] = 0;
    }
  }
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return to(dtype_);
}

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype);
  t.copy_from(*this);
  return t;
}

std::string Tensor::to_string() const { return std::string(dtype_name(dtype_)) + shape_to_string(shape_); }

}  // namespace longctx
