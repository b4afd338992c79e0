// Access and size checks applied to every request before its route runs: the API key
// (Authorization: Bearer <key>, compared in constant time) and the total header size.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace longctx::server {

// True when `api_key` is empty (no authentication) or the request carries it.
bool has_valid_api_key(const httplib::Request& req, const std::string& api_key);
// Bytes of all header lines ("Name: value\r\n").
int64_t header_bytes(const httplib::Request& req);

}  // namespace longctx::server
