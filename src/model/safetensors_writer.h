// Streaming safetensors writer: the header is laid out from names, dtypes and shapes
// first, then each tensor's bytes are produced on demand, so a checkpoint far larger
// than memory can be written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace longctx {

struct SafetensorsTensorSpec {
  std::string name;
  DType dtype;
  Shape shape;
};

// fill(spec, first_element, count, dst) writes elements [first, first+count) of the
// tensor into dst in spec.dtype; it is called in pieces of at most `chunk_elements`.
using SafetensorsFill =
    std::function<void(const SafetensorsTensorSpec&, int64_t first, int64_t count, void* dst)>;

// Written to PATH.tmp and renamed over PATH when complete, so a crash or a full disk
// never leaves a truncated checkpoint under the real name.
Status write_safetensors_streaming(const std::filesystem::path& path, std::vector<SafetensorsTensorSpec> specs,
                                   const SafetensorsFill& fill,
                                   const std::map<std::string, std::string>& metadata = {},
                                   int64_t chunk_elements = int64_t{1} << 24);

// Writes in-memory CPU tensors (any layout; written contiguous, in their dtype), one
// tensor at a time.
Status write_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace longctx
