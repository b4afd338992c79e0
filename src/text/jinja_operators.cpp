#include "text/jinja_operators.h"

#include <fmt/format.h>

#include <cmath>

#include "text/jinja_error.h"

namespace longctx::jinja {
namespace {

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  throw Error(
      fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
}

void check_overflow(bool overflow) {
  if (overflow) throw Error("integer overflow");
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  if (a.is_float() || b.is_float() || op == "/") {
    const double x = a.as_double(), y = b.as_double();
    if (op == "+") return x + y;
    if (op == "-") return x - y;
    if (op == "*") return x * y;
    if (op == "**") return std::pow(x, y);
    if (y == 0.0) throw Error(op == "/" ? "division by zero" : "float modulo or floor division by zero");
    if (op == "/") return x / y;
    if (op == "//") return std::floor(x / y);
    double r = std::fmod(x, y);
    if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
    return r;
  }
  const int64_t x = a.as_int(), y = b.as_int();
  int64_t r = 0;
  if (op == "+" || op == "-" || op == "*") {
    check_overflow(op == "+"   ? __builtin_add_overflow(x, y, &r)
                   : op == "-" ? __builtin_sub_overflow(x, y, &r)
                               : __builtin_mul_overflow(x, y, &r));
    return r;
  }
  if (op == "**") {
    if (y < 0) return std::pow(static_cast<double>(x), static_cast<double>(y));
    int64_t result = 1;
    for (int64_t k = 0; k < y; ++k) {
      if (__builtin_mul_overflow(result, x, &result)) throw Error("integer overflow");
      if (result == 0 || result == 1) break;
    }
    return result;
  }
  if (y == 0) throw Error("integer division or modulo by zero");
  // Python floors: -7 // 2 == -4 and -7 % 3 == 2.
  int64_t q = x / y, m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) {
    --q;
    m += y;
  }
  return op == "//" ? q : m;
}

Value repeat(const Value& seq, int64_t n, size_t max_bytes) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && static_cast<uint64_t>(n) > max_bytes / s.size())
      throw Error("string repetition too large");
    std::string out;
    out.reserve(s.size() * n);
    for (int64_t i = 0; i < n; ++i) out += s;
    return out;
  }
  const Array& items = seq.as_array();
  if (!items.empty() && static_cast<uint64_t>(n) > max_bytes / items.size())
    throw Error("list repetition too large");
  Array out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.kind() == Value::Kind::kTuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace

void fail_undefined(const Value& v) {
  throw Error(v.undefined_hint().empty() ? std::string("undefined value used") : v.undefined_hint());
}

Value binary_op(std::string_view op, const Value& a, const Value& b, size_t max_string_bytes) {
  if (op == "~") {
    std::string s = to_str(a) + to_str(b);
    if (s.size() > max_string_bytes) throw Error("string too large");
    return s;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > max_string_bytes) throw Error("string too large");
      return a.as_string() + b.as_string();
    }
    if (a.is_string())
      throw Error(fmt::format("can only concatenate str (not \"{}\") to str", b.type_name()));
    if (a.is_sequence() && b.kind() == a.kind()) {
      Array out = a.as_array();
      out.insert(out.end(), b.as_array().begin(), b.as_array().end());
      return a.kind() == Value::Kind::kTuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    if (a.is_sequence() && b.is_sequence()) {
      throw Error(fmt::format("can only concatenate {} (not \"{}\") to {}", a.type_name(), b.type_name(),
                              a.type_name()));
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_sequence()) && (b.is_int() || b.is_bool()))
      return repeat(a, b.as_int(), max_string_bytes);
    if ((b.is_string() || b.is_sequence()) && (a.is_int() || a.is_bool()))
      return repeat(b, a.as_int(), max_string_bytes);
  }
  if (op == "%" && a.is_string()) {
    // printf-style formatting, the %s/%d/%r/%% subset.
    const std::string& f = a.as_string();
    Array args = b.kind() == Value::Kind::kTuple ? b.as_array() : Array{b};
    std::string out;
    size_t next = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] != '%') {
        out += f[i];
        continue;
      }
      if (++i >= f.size()) throw Error("incomplete format");
      if (f[i] == '%') {
        out += '%';
        continue;
      }
      if (next >= args.size()) throw Error("not enough arguments for format string");
      const Value& arg = args[next++];
      switch (f[i]) {
        case 's': out += to_str(arg); break;
        case 'r': out += to_repr(arg); break;
        case 'd':
        case 'i':
          if (!arg.is_number())
            throw Error(fmt::format("%d format: a number is required, not {}", arg.type_name()));
          out += std::to_string(arg.is_float() ? static_cast<int64_t>(arg.as_double()) : arg.as_int());
          break;
        default: throw Error(fmt::format("unsupported format character '{}'", f[i]));
      }
    }
    if (next < args.size()) throw Error("not all arguments converted during string formatting");
    return out;
  }
  unsupported(op, a, b);
}

Value negate(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_float()) return -v.as_double();
  if (v.is_number()) {
    check_overflow(v.as_int() == INT64_MIN);
    return -v.as_int();
  }
  throw Error(fmt::format("bad operand type for unary -: '{}'", v.type_name()));
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string())
    return a.as_string() < b.as_string();  // UTF-8 byte order == code point order
  if (a.is_sequence() && b.kind() == a.kind()) {
    const Array& x = a.as_array();
    const Array& y = b.as_array();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw Error(
      fmt::format("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name()));
}

bool contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::kString:
      if (!needle.is_string()) {
        throw Error(fmt::format("'in <string>' requires string as left operand, not {}", needle.type_name()));
      }
      return haystack.as_string().find(needle.as_string()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (const Value& item : haystack.as_array()) {
        if (equals(item, needle)) return true;
      }
      return false;
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      return needle.is_string() && haystack.as_object().find(needle.as_string()) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: throw Error(fmt::format("argument of type '{}' is not iterable", haystack.type_name()));
  }
}

Array iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kList:
    case Value::Kind::kTuple: return v.as_array();
    case Value::Kind::kDict: {
      Array keys;
      for (const auto& entry : v.as_object().entries) keys.emplace_back(entry.first);
      return keys;
    }
    case Value::Kind::kString: {
      Array chars;
      for (std::string_view c : utf8_chars(v.as_string())) chars.emplace_back(std::string(c));
      return chars;
    }
    default: throw Error(fmt::format("'{}' object is not iterable", v.type_name()));
  }
}

}  // namespace longctx::jinja
