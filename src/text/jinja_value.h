// Value: the dynamic value a Jinja template computes with, modelled on the Python objects
// jinja2 sees (str, int, float, bool, None, list, tuple, dict, Undefined, namespace,
// callables) so that truthiness, equality, str() and json.dumps match Python's.
//
// Lists, tuples and dicts are immutable once built (transformers renders in an
// ImmutableSandboxedEnvironment) and shared by pointer, so copying a Value is cheap.
// A namespace() is the one mutable object: `set ns.x = ...` writes through every copy.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace longctx::jinja {

class Value;
struct Object;
using Array = std::vector<Value>;

// Arguments of a call: positional first, then keyword arguments in call order.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;

  // The argument named `name`, or else the positional one at `index`; nullptr if neither.
  const Value* get(std::string_view name, size_t index) const;
};

using NativeFunction = std::function<Value(const CallArgs&)>;

struct Function {
  std::string name;
  NativeFunction call;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kDict,
    kNamespace,
    kFunction
  };

  Value() = default;                                  // undefined
  Value(bool b) : kind_(Kind::kBool), data_(b) {}     // NOLINT: implicit, like Python literals
  Value(int v) : Value(static_cast<int64_t>(v)) {}    // NOLINT
  Value(int64_t v) : kind_(Kind::kInt), data_(v) {}   // NOLINT
  Value(double v) : kind_(Kind::kFloat), data_(v) {}  // NOLINT
  Value(std::string s) : kind_(Kind::kString), data_(std::move(s)) {}  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                      // NOLINT

  // `hint` says what was looked up ("'x' is undefined") for the error raised on misuse.
  static Value undefined(std::string hint = {});
  static Value none();
  static Value list(Array items);
  static Value tuple(Array items);
  static Value dict(Object entries);
  static Value make_namespace(Object entries);
  static Value function(std::string name, NativeFunction fn);

  // JSON null/bool/number/string/array/object -> None/bool/int|float/str/list/dict,
  // keeping object key order (use nlohmann::ordered_json to keep the caller's order).
  static Value from_json(const nlohmann::json& j);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // int, float or bool (Python's bool is an int).
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_sequence() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return std::get<bool>(data_); }
  // int or bool as an integer.
  int64_t as_int() const;
  // int, bool or float as a double.
  double as_double() const;
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const Array& as_array() const { return *std::get<std::shared_ptr<const Array>>(data_); }
  const Object& as_object() const { return *std::get<std::shared_ptr<Object>>(data_); }
  // The namespace's attributes, for `set ns.x = ...`.
  Object& namespace_object() const { return *std::get<std::shared_ptr<Object>>(data_); }
  const Function& as_function() const { return *std::get<std::shared_ptr<const Function>>(data_); }
  const std::string& undefined_hint() const { return std::get<Undefined>(data_).hint; }

  // Python truthiness: empty string/list/dict, 0, None and undefined are false.
  bool truthy() const;
  // Python's type name: "str", "int", "list", "dict", "NoneType", "Undefined", ...
  std::string type_name() const;

 private:
  struct Undefined {
    std::string hint;
  };
  Kind kind_ = Kind::kUndefined;
  std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::string, std::shared_ptr<const Array>,
               std::shared_ptr<Object>, std::shared_ptr<const Function>>
      data_;
};

// An insertion-ordered dict with string keys, like a Python dict from JSON.
struct Object {
  std::vector<std::pair<std::string, Value>> entries;

  const Value* find(std::string_view key) const;
  // Replaces the value of an existing key in place, else appends.
  void set(std::string key, Value value);
};

// Python's str(v) (undefined -> ""), and repr(v) as used inside str() of containers.
std::string to_str(const Value& v);
std::string to_repr(const Value& v);
// Python's repr of a float: shortest round-trip digits, exponent form outside [1e-4, 1e16).
std::string format_float(double x);

// Python ==: 1 == 1.0 == True, element-wise for lists, undefined equals only undefined.
bool equals(const Value& a, const Value& b);

// json.dumps(v, indent=..., separators=..., sort_keys=..., ensure_ascii=...), and with
// html_safe jinja2's own tojson (<, >, &, ' written as \u003c etc.).
struct JsonOptions {
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_separator = ", ";  // ", " on one line, "," when indented (as Python)
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
  bool html_safe = false;
};
// Throws jinja::Error for values JSON cannot hold (undefined, functions).
std::string to_json(const Value& v, const JsonOptions& options);

// UTF-8 helpers: Python indexes strings by code point.
std::vector<std::string_view> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);

}  // namespace longctx::jinja
