// safetensors checkpoints, memory-mapped: a single model.safetensors or a sharded set
// named by model.safetensors.index.json. Tensors come back as zero-copy views in their
// file dtype (bf16/fp16/fp32/int), kept alive by the mapping. The mapping is read-only
// (PROT_READ, so a 400 GB checkpoint costs no commit charge): writing through a view
// faults; copy first (Tensor::clone / to) to modify weights.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace longctx {

struct SafetensorsEntry {
  DType dtype;
  Shape shape;
  size_t offset = 0;  // bytes from the start of the data section
  size_t nbytes = 0;
  int file = 0;  // index into the checkpoint's files
};

// The format's name of a dtype ("F32", "BF16", ...).
const char* safetensors_dtype_name(DType t);

class Checkpoint {
 public:
  // dir holds model.safetensors, or model.safetensors.index.json and its shards; a path
  // to a single .safetensors file also works. Validates every header (offsets inside the
  // file, sizes matching dtype × shape, no overlap) before returning.
  static Result<Checkpoint> open(const std::filesystem::path& dir_or_file);

  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  std::vector<std::string> names() const;
  // A view of the named tensor; NotFound names the checkpoint when absent.
  Result<Tensor> get(const std::string& name) const;
  // Same, and checks the shape: InvalidArgument "tensor X in FILE has shape [..], expected [..]".
  Result<Tensor> get(const std::string& name, const Shape& expected_shape) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::string describe() const;  // the path(s), for error messages

 private:
  struct MappedFile;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
  std::string source_;  // what describe() returns
};

}  // namespace longctx
