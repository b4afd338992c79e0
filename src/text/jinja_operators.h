// Python semantics of the operators a template can apply: arithmetic (+ - * / // % **),
// ~ concatenation, ordering, `in`, and iteration. Type errors throw jinja::Error with
// Python's wording ("can only concatenate str (not "int") to str").
#pragma once

#include <string_view>

#include "text/jinja_value.h"

namespace longctx::jinja {

// op: one of + - * / // % ** ~
Value binary_op(std::string_view op, const Value& a, const Value& b, size_t max_string_bytes);
Value negate(const Value& v);
// Python a < b for numbers, strings and sequences; throws for other pairs.
bool less_than(const Value& a, const Value& b);
// Python `needle in haystack`.
bool contains(const Value& haystack, const Value& needle);
// The items `for x in v` visits: list/tuple items, dict keys, string characters;
// undefined iterates as empty.
Array iterate(const Value& v);
// Throws the UndefinedError a use of `v` raises ("'x' is undefined").
[[noreturn]] void fail_undefined(const Value& v);

}  // namespace longctx::jinja
