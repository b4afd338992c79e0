// What `obj.name`, `obj[key]` and `obj[a:b:c]` mean for each value type, following
// jinja2's sandboxed getattr/getitem: `.name` prefers Python attributes (so
// `message.items` is the dict method) and falls back to the key; `[key]` prefers the key.
// A missing attribute or key is undefined, carrying a hint for the error a later use
// raises. Python methods of str, dict and list come back as bound functions.
#pragma once

#include <string_view>

#include "text/jinja_value.h"

namespace longctx::jinja {

Value get_attr(const Value& object, std::string_view name);
Value get_item(const Value& object, const Value& key);
// Absent bounds are undefined/none values. Python slice semantics, negative steps too.
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

}  // namespace longctx::jinja
