#include "model/safetensors_writer.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

namespace longctx {
namespace {

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
  }
  return "?";
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

}  // namespace

Status write_safetensors_streaming(const std::filesystem::path& path, std::vector<SafetensorsTensorSpec> specs,
                                   const SafetensorsFill& fill,
                                   const std::map<std::string, std::string>& metadata, int64_t chunk_elements) {
  std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& s : specs) {
    const size_t bytes = static_cast<size_t>(numel_of(s.shape)) * dtype_size(s.dtype);
    header[s.name] = {{"dtype", safetensors_dtype(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return not_found("cannot create " + path.string());
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f.get()) == 8 && std::fwrite(text.data(), 1, text.size(), f.get()) == text.size();
  std::vector<unsigned char> buf;
  for (const auto& s : specs) {
    const int64_t total = numel_of(s.shape);
    const size_t es = dtype_size(s.dtype);
    for (int64_t first = 0; ok && first < total; first += chunk_elements) {
      const int64_t count = std::min(chunk_elements, total - first);
      buf.resize(static_cast<size_t>(count) * es);
      fill(s, first, count, buf.data());
      ok = std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
    }
  }
  if (!ok) return internal_error("write failed for " + path.string() + " (disk full?)");
  if (std::fclose(f.release()) != 0) return internal_error("closing " + path.string() + " failed (disk full?)");
  return Status::ok();
}

}  // namespace longctx
