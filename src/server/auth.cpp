#include "server/auth.h"

namespace longctx::server {
namespace {

// Runs in time independent of where the strings first differ.
bool equal_constant_time(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())] ^ (b.empty() ? 1 : 0));
  return diff == 0;
}

}  // namespace

bool has_valid_api_key(const httplib::Request& req, const std::string& api_key) {
  if (api_key.empty()) return true;
  const std::string auth = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() < kBearer.size() || auth.compare(0, kBearer.size(), kBearer) != 0) return false;
  return equal_constant_time(std::string_view(auth).substr(kBearer.size()), api_key);
}

int64_t header_bytes(const httplib::Request& req) {
  int64_t n = 0;
  for (const auto& [k, v] : req.headers) n += static_cast<int64_t>(k.size() + v.size() + 4);
  return n;
}

}  // namespace longctx::server
