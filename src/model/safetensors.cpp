#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace longctx {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The reference implementation refuses headers above 100 MB; so do we, before parsing.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Header dtype names: ours map to a DType; names the format defines that we do not hold
// (e.g. DeepSeek-V3's F8_E4M3 weights) are Unimplemented; anything else is corruption.
Result<DType> parse_header_dtype(const std::string& name, const std::string& where) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16, DType::kI32, DType::kI64})
    if (name == safetensors_dtype_name(t)) return t;
  static const std::set<std::string> kOther = {"BOOL", "U8",      "I8",      "I16",     "U16",  "U32",
                                               "U64",  "F64",     "F8_E4M3", "F8_E5M2", "E8M0", "F8_E8M0",
                                               "F4",   "F6_E2M3", "F6_E3M2", "C64"};
  if (kOther.count(name))
    return unimplemented(where + ": dtype " + name +
                         " is not supported; supported: F32, BF16, F16, I32, I64");
  return data_loss(where + ": unknown dtype '" + name + "'");
}

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, size_t size) : base_(base), size_(size) {}
  Mapping(Mapping&& o) noexcept : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Mapping& operator=(Mapping&&) = delete;
  ~Mapping() {
    if (base_) munmap(base_, size_);
  }
  const std::byte* data() const { return static_cast<const std::byte*>(base_); }
  size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  size_t size_ = 0;
};

// Maps the whole file read-only. Files too short to hold the length prefix are rejected
// here, which also keeps zero-length files away from mmap.
Result<Mapping> map_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = "cannot open " + path.string() + ": " + std::strerror(err);
    return err == ENOENT ? not_found(msg) : invalid_argument(msg);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return internal_error("cannot stat " + path.string() + ": " + std::strerror(err));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return data_loss(path.string() + ": " + std::to_string(size) +
                     " bytes, too short for a safetensors file (8-byte header length first)");
  }
  void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file referenced
  if (base == MAP_FAILED) return internal_error("cannot mmap " + path.string() + ": " + std::strerror(err));
  return Mapping(base, size);
}

struct ParsedHeader {
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  size_t data_start = 0;  // 8 + header length
};

Status parse_entry(const std::string& name, const json& v, size_t data_size, const std::string& file,
                   SafetensorsEntry& e) {
  const std::string where = file + ": tensor '" + name + "'";
  if (!v.is_object()) return data_loss(where + ": header entry is not an object");
  auto dtype = v.find("dtype");
  auto shape = v.find("shape");
  auto offsets = v.find("data_offsets");
  if (dtype == v.end() || !dtype->is_string()) return data_loss(where + ": missing or non-string 'dtype'");
  if (shape == v.end() || !shape->is_array()) return data_loss(where + ": missing or non-list 'shape'");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    return data_loss(where + ": 'data_offsets' must be two non-negative integers [begin, end]");
  LONGCTX_ASSIGN_OR_RETURN(e.dtype, parse_header_dtype(dtype->get<std::string>(), where));

  uint64_t numel = 1;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned())
      return data_loss(where + ": shape " + shape->dump() + " has a non-natural dimension");
    const auto dim = d.get<uint64_t>();
    if (dim > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
      return data_loss(where + ": shape " + shape->dump() + " overflows");
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(numel, dtype_size(e.dtype), &expected_bytes))
    return data_loss(where + ": shape " + shape->dump() + " overflows");

  const auto begin = (*offsets)[0].get<uint64_t>();
  const auto end = (*offsets)[1].get<uint64_t>();
  if (end < begin)
    return data_loss(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] end before begin");
  if (end > data_size)
    return data_loss(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] past the end of the data section (" + std::to_string(data_size) +
                     " bytes; file truncated?)");
  if (end - begin != expected_bytes)
    return data_loss(where + ": data_offsets span " + std::to_string(end - begin) + " bytes but " +
                     dtype->get<std::string>() + " " + shape_to_string(e.shape) + " needs " +
                     std::to_string(expected_bytes));
  e.offset = begin;
  e.nbytes = end - begin;
  return Status::ok();
}

// Layout: u64 little-endian N, N bytes of JSON header, then the data section that
// data_offsets index into. Every check names the file and, where there is one, the tensor.
Result<ParsedHeader> parse_header(const Mapping& map, const std::string& file) {
  const std::byte* p = map.data();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<uint64_t>(p[i]);
  if (n > map.size() - 8)
    return data_loss(file + ": header length " + std::to_string(n) + " exceeds the " +
                     std::to_string(map.size()) + "-byte file (truncated or not safetensors)");
  if (n > kMaxHeaderBytes)
    return data_loss(file + ": header length " + std::to_string(n) + " exceeds the 100 MB limit");

  const char* text = reinterpret_cast<const char*>(p + 8);
  json header = json::parse(text, text + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return data_loss(file + ": header is not valid JSON (not a safetensors file?)");
  if (!header.is_object())
    return data_loss(file + ": header is a JSON " + header.type_name() + ", not an object");

  ParsedHeader out;
  out.data_start = 8 + static_cast<size_t>(n);
  const size_t data_size = map.size() - out.data_start;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) return data_loss(file + ": __metadata__ is not an object");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) return data_loss(file + ": __metadata__ value '" + k + "' is not a string");
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e;
    LONGCTX_RETURN_IF_ERROR(parse_entry(name, v, data_size, file, e));
    out.entries.emplace(name, std::move(e));
  }

  // No two tensors may share bytes: sorted by begin, each starts at or after the furthest
  // end seen so far. Empty tensors occupy nothing and are skipped.
  std::vector<std::pair<size_t, const std::string*>> order;
  for (const auto& [name, e] : out.entries)
    if (e.nbytes > 0) order.emplace_back(e.offset, &name);
  std::sort(order.begin(), order.end());
  const std::string* furthest = nullptr;
  size_t furthest_end = 0;
  for (const auto& [begin, name] : order) {
    if (furthest && begin < furthest_end)
      return data_loss(file + ": tensors '" + *furthest + "' and '" + *name +
                       "' overlap in the data section");
    const size_t end = begin + out.entries.at(*name).nbytes;
    if (end > furthest_end) {
      furthest_end = end;
      furthest = name;
    }
  }
  return out;
}

Result<json> read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open " + path.string());
  std::stringstream buf;
  buf << in.rdbuf();
  json j = json::parse(buf.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return data_loss(path.string() + ": not valid JSON");
  return j;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
  }
  return "?";
}

struct Checkpoint::MappedFile {
  std::string path;
  Mapping map;
  size_t data_start = 0;
};

Result<Checkpoint> Checkpoint::open(const std::filesystem::path& dir_or_file) {
  std::error_code ec;
  fs::path single, index;
  if (fs::is_directory(dir_or_file, ec)) {
    if (fs::exists(dir_or_file / "model.safetensors", ec)) {
      single = dir_or_file / "model.safetensors";
    } else if (fs::exists(dir_or_file / "model.safetensors.index.json", ec)) {
      index = dir_or_file / "model.safetensors.index.json";
    } else {
      return not_found("no model.safetensors or model.safetensors.index.json in " + dir_or_file.string());
    }
  } else if (dir_or_file.string().ends_with(".index.json")) {
    index = dir_or_file;
  } else {
    single = dir_or_file;
  }

  Checkpoint ckpt;
  // Maps and validates one file; its tensors are returned, not yet entered.
  auto open_file = [&ckpt](const fs::path& path) -> Result<ParsedHeader> {
    LONGCTX_ASSIGN_OR_RETURN(Mapping map, map_file(path));
    LONGCTX_ASSIGN_OR_RETURN(ParsedHeader header, parse_header(map, path.string()));
    auto file = std::make_shared<MappedFile>(MappedFile{path.string(), std::move(map), header.data_start});
    for (auto& [name, e] : header.entries) e.file = static_cast<int>(ckpt.files_.size());
    for (const auto& [k, v] : header.metadata) ckpt.metadata_.emplace(k, v);  // first shard wins
    ckpt.files_.push_back(std::move(file));
    return header;
  };

  if (!single.empty()) {
    LONGCTX_ASSIGN_OR_RETURN(ParsedHeader header, open_file(single));
    ckpt.entries_ = std::move(header.entries);
    ckpt.source_ = single.string();
    return ckpt;
  }

  // Sharded: the index's weight_map is the authority on which tensor lives where; each
  // shard is mapped once and must actually hold what the index puts in it.
  const std::string idx = index.string();
  LONGCTX_ASSIGN_OR_RETURN(json j, read_json_file(index));
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (!j.is_object() || wm == j.end() || !wm->is_object())
    return data_loss(idx + ": missing 'weight_map' object {tensor name: shard file}");
  std::map<std::string, ParsedHeader> shards;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) return data_loss(idx + ": weight_map entry '" + name + "' is not a file name");
    const fs::path rel = shard.get<std::string>();
    if (rel.is_absolute() || rel.has_parent_path())
      return data_loss(idx + ": weight_map entry '" + name + "' names '" + rel.string() +
                       "', not a file beside the index");
    auto it = shards.find(rel.string());
    if (it == shards.end()) {
      LONGCTX_ASSIGN_OR_RETURN(ParsedHeader header, open_file(index.parent_path() / rel));
      it = shards.emplace(rel.string(), std::move(header)).first;
    }
    auto e = it->second.entries.find(name);
    if (e == it->second.entries.end())
      return data_loss(idx + ": weight_map puts tensor '" + name + "' in " + rel.string() +
                       ", which has no such tensor");
    ckpt.entries_.emplace(name, e->second);
  }
  ckpt.source_ = idx + " (" + std::to_string(ckpt.files_.size()) + " shards)";
  return ckpt;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

Result<Tensor> Checkpoint::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found("tensor '" + name + "' not found in " + describe());
  const SafetensorsEntry& e = it->second;
  const auto& file = files_[static_cast<size_t>(e.file)];
  // Read-only mapping: the const_cast only satisfies Tensor::wrap's signature.
  void* data = const_cast<std::byte*>(file->map.data() + file->data_start + e.offset);
  return Tensor::wrap(data, e.shape, e.dtype, std::shared_ptr<void>(file));
}

Result<Tensor> Checkpoint::get(const std::string& name, const Shape& expected_shape) const {
  LONGCTX_ASSIGN_OR_RETURN(Tensor t, get(name));
  if (t.shape() != expected_shape) {
    const auto& file = files_[static_cast<size_t>(entries_.at(name).file)];
    return invalid_argument("tensor '" + name + "' in " + file->path + " has shape " +
                            shape_to_string(t.shape()) + ", expected " + shape_to_string(expected_shape));
  }
  return t;
}

std::string Checkpoint::describe() const { return source_; }

}  // namespace longctx
