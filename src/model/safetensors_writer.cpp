#include "model/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Status write_all(int fd, const void* data, size_t n, const fs::path& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return internal_error("cannot write " + path.string() + ": " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

}  // namespace

Status write_safetensors_streaming(const fs::path& path, std::vector<SafetensorsTensorSpec> specs,
                                   const SafetensorsFill& fill, const std::map<std::string, std::string>& metadata,
                                   int64_t chunk_elements) {
  std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& s : specs) {
    if (s.name == "__metadata__") return invalid_argument(path.string() + ": '__metadata__' is not a tensor name");
    if (header.contains(s.name)) return invalid_argument(path.string() + ": tensor '" + s.name + "' given twice");
    const uint64_t bytes = static_cast<uint64_t>(numel_of(s.shape)) * dtype_size(s.dtype);
    header[s.name] = {
        {"dtype", safetensors_dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned

  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return invalid_argument("cannot create " + tmp.string() + ": " + std::strerror(errno));
  auto write_everything = [&]() -> Status {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
    LONGCTX_RETURN_IF_ERROR(write_all(fd, len, 8, tmp));
    LONGCTX_RETURN_IF_ERROR(write_all(fd, text.data(), text.size(), tmp));
    std::vector<unsigned char> buf;
    for (const auto& s : specs) {
      const int64_t total = numel_of(s.shape);
      const size_t es = dtype_size(s.dtype);
      for (int64_t first = 0; first < total; first += chunk_elements) {
        const int64_t count = std::min(chunk_elements, total - first);
        buf.resize(static_cast<size_t>(count) * es);
        fill(s, first, count, buf.data());
        LONGCTX_RETURN_IF_ERROR(write_all(fd, buf.data(), buf.size(), tmp));
      }
    }
    return Status::ok();
  };
  Status st = write_everything();
  if (::close(fd) != 0 && st.is_ok()) st = internal_error("cannot close " + tmp.string() + ": " + std::strerror(errno));
  std::error_code ec;
  if (st.is_ok()) {
    fs::rename(tmp, path, ec);
    if (ec) st = internal_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message());
  }
  if (!st.is_ok()) fs::remove(tmp, ec);
  return st;
}

Status write_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsTensorSpec> specs;
  for (const auto& [name, t] : tensors) {
    if (!t.device().is_cpu())
      return invalid_argument(path.string() + ": tensor '" + name + "' is on " + t.device().to_string() +
                              "; copy it to the CPU before writing");
    if (!t.defined()) return invalid_argument(path.string() + ": tensor '" + name + "' is undefined");
    specs.push_back({name, t.dtype(), t.shape()});
  }
  auto fill = [&](const SafetensorsTensorSpec& s, int64_t first, int64_t count, void* dst) {
    const Tensor& t = tensors.at(s.name);
    const Tensor c = t.contiguous();  // a view when already contiguous
    const size_t es = dtype_size(s.dtype);
    std::memcpy(dst, static_cast<const char*>(c.raw()) + static_cast<size_t>(first) * es, static_cast<size_t>(count) * es);
  };
  return write_safetensors_streaming(path, std::move(specs), fill, metadata);
}

}  // namespace longctx
