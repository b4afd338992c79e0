#include "text/jinja_filters.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "text/jinja_access.h"
#include "text/jinja_error.h"
#include "text/jinja_operators.h"
#include "text/jinja_strings.h"

namespace longctx::jinja {
namespace {

const Value* arg(const CallArgs& a, std::string_view name, size_t index) {
  const Value* v = a.get(name, index);
  return v && !v->is_undefined() ? v : nullptr;
}

bool bool_arg(const CallArgs& a, std::string_view name, size_t index, bool fallback) {
  const Value* v = arg(a, name, index);
  return v ? v->truthy() : fallback;
}

std::optional<std::string> string_arg(const CallArgs& a, std::string_view name, size_t index) {
  const Value* v = arg(a, name, index);
  if (!v || v->is_none()) return std::nullopt;
  return to_str(*v);
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(utf8_length(v.as_string()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: return static_cast<int64_t>(v.as_array().size());
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: return static_cast<int64_t>(v.as_object().entries.size());
    default: throw Error(fmt::format("object of type '{}' has no len()", v.type_name()));
  }
}

// jinja2's attribute="a.b.0" paths: each part an item lookup, digits as an index.
Value attribute_path(const Value& v, const std::string& path) {
  Value cur = v;
  for (const std::string& part : py_split(path, std::string("."), -1)) {
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = get_item(cur, digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
  }
  return cur;
}

// Sort/unique/min/max key: the attribute, lower-cased when comparing case-insensitively.
Value sort_key(const Value& v, const std::optional<std::string>& attribute, bool case_sensitive) {
  Value key = attribute ? attribute_path(v, *attribute) : v;
  if (!case_sensitive && key.is_string()) return py_lower(key.as_string());
  return key;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// jinja2's title filter: words begin after whitespace or any of -({[<.
std::string jinja_title(const std::string& s) {
  std::string out;
  bool at_word_start = true;
  for (char c : s) {
    const bool sep = is_py_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    const auto u = static_cast<unsigned char>(c);
    if (sep) {
      out += c;  // separators have no case
      at_word_start = true;
      continue;
    }
    out += static_cast<char>(at_word_start ? std::toupper(u) : std::tolower(u));
    at_word_start = false;
  }
  return out;
}

std::string indent_text(const std::string& s, const std::string& indention, bool first, bool blank) {
  std::vector<std::string> lines = py_split(s + "\n", std::string("\n"), -1);
  lines.pop_back();  // the "\n" appended above ends the last line, as jinja2 does
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : indention) + lines[i];
  }
  return first ? indention + rv : rv;
}

Value tojson(const Value& v, const CallArgs& a, const FilterSettings& settings) {
  JsonOptions o;
  const Value* indent = nullptr;
  const Value* separators = nullptr;
  if (settings.tojson_html_safe) {
    o.sort_keys = true;
    o.ensure_ascii = true;
    o.html_safe = true;
    indent = arg(a, "indent", 0);
  } else {
    o.ensure_ascii = bool_arg(a, "ensure_ascii", 0, false);
    indent = arg(a, "indent", 1);
    separators = arg(a, "separators", 2);
    o.sort_keys = bool_arg(a, "sort_keys", 3, false);
  }
  if (indent && !indent->is_none()) {
    if (indent->is_string()) {
      o.indent = indent->as_string();
    } else if (indent->is_int()) {
      o.indent = std::string(std::max<int64_t>(0, std::min<int64_t>(indent->as_int(), 1024)), ' ');
    } else {
      throw Error("tojson: indent must be an integer or a string");
    }
    o.item_separator.assign(1, ',');  // Python drops the space after "," when indenting
  }
  if (separators && !separators->is_none()) {
    if (!separators->is_sequence() || separators->as_array().size() != 2 ||
        !separators->as_array()[0].is_string() || !separators->as_array()[1].is_string()) {
      throw Error("tojson: separators must be a pair of strings");
    }
    o.item_separator = separators->as_array()[0].as_string();
    o.key_separator = separators->as_array()[1].as_string();
  }
  return to_json(v, o);
}

Value round_value(const Value& v, const CallArgs& a) {
  const Value* p = arg(a, "precision", 0);
  const int64_t precision = p ? p->as_int() : 0;
  const std::string method = string_arg(a, "method", 1).value_or("common");
  if (!v.is_number()) throw Error(fmt::format("round: expected a number, got {}", v.type_name()));
  if (method == "common" && !v.is_float()) return v.as_int();
  if (method == "common" && precision >= 0 && precision <= 300 && std::isfinite(v.as_double())) {
    // Python's round() rounds the exact binary value correctly (2.675 -> 2.67, halves to
    // even); so does to_chars with a fixed precision.
    char buf[512];
    auto res = std::to_chars(buf, buf + sizeof(buf), v.as_double(), std::chars_format::fixed,
                             static_cast<int>(precision));
    double r = 0.0;
    std::from_chars(buf, res.ptr, r);
    return r;
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  double r;
  if (method == "common") {
    r = std::round(x);
    if (std::fabs(x - std::trunc(x)) == 0.5) r = 2.0 * std::round(x / 2.0);
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    throw Error("round: method must be 'common', 'ceil' or 'floor'");
  }
  return r / scale;
}

Value to_int(const Value& v, const CallArgs& a) {
  const Value* fallback = arg(a, "default", 0);
  const Value def = fallback ? *fallback : Value(0);
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float()) return std::isfinite(v.as_double()) ? Value(static_cast<int64_t>(v.as_double())) : def;
  if (v.is_string()) {
    std::string s = py_strip(v.as_string(), std::nullopt, true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (s.empty()) return def;
    try {
      size_t used = 0;
      const int64_t i =
          std::stoll(s, &used, static_cast<int>(arg(a, "base", 1) ? arg(a, "base", 1)->as_int() : 10));
      if (used == s.size()) return i;
      const double d = std::stod(s, &used);
      if (used == s.size() && std::isfinite(d)) return static_cast<int64_t>(d);
    } catch (const std::exception&) {
    }
  }
  return def;
}

Value to_float(const Value& v, const CallArgs& a) {
  const Value* fallback = arg(a, "default", 0);
  const Value def = fallback ? *fallback : Value(0.0);
  if (v.is_number()) return v.as_double();
  if (v.is_string()) {
    const std::string s = py_strip(v.as_string(), std::nullopt, true, true);
    try {
      size_t used = 0;
      const double d = std::stod(s, &used);
      if (used == s.size() && !s.empty()) return d;
    } catch (const std::exception&) {
    }
  }
  return def;
}

Value min_max(const Value& v, const CallArgs& a, bool want_max) {
  const bool case_sensitive = bool_arg(a, "case_sensitive", 0, false);
  const auto attribute = string_arg(a, "attribute", 1);
  const Array items = iterate(v);
  if (items.empty())
    return Value::undefined(want_max ? "No largest item, sequence was empty."
                                     : "No smallest item, sequence was empty.");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    const Value ki = sort_key(items[i], attribute, case_sensitive);
    const Value kb = sort_key(items[best], attribute, case_sensitive);
    if (want_max ? less_than(kb, ki) : less_than(ki, kb)) best = i;
  }
  return items[best];
}

// select/reject/selectattr/rejectattr: args after the attribute are (test name, test args...).
Value select_items(const Value& v, const CallArgs& a, bool by_attribute, bool keep_when) {
  size_t next = 0;
  std::optional<std::string> attribute;
  if (by_attribute) {
    if (a.args.empty()) throw Error("selectattr/rejectattr need an attribute name");
    attribute = to_str(a.args[next++]);
  }
  std::optional<std::string> test;
  if (next < a.args.size()) test = to_str(a.args[next++]);
  const std::vector<Value> test_args(a.args.begin() + static_cast<std::ptrdiff_t>(next), a.args.end());
  Array out;
  for (const Value& item : iterate(v)) {
    const Value subject = attribute ? attribute_path(item, *attribute) : item;
    const bool passed = test ? apply_test(*test, subject, test_args) : subject.truthy();
    if (passed == keep_when) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value map_items(const Value& v, const CallArgs& a, const FilterSettings& settings) {
  Array out;
  if (const Value* attribute = arg(a, "attribute", 99)) {
    const Value* fallback = arg(a, "default", 99);
    for (const Value& item : iterate(v)) {
      Value x = attribute_path(item, to_str(*attribute));
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value::list(std::move(out));
  }
  if (a.args.empty()) throw Error("map needs a filter name or attribute=");
  const std::string filter = to_str(a.args[0]);
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (const Value& item : iterate(v)) out.push_back(apply_filter(filter, item, rest, settings));
  return Value::list(std::move(out));
}

Value sort_items(const Value& v, const CallArgs& a, bool unique) {
  Array items = iterate(v);
  const bool case_sensitive = bool_arg(a, "case_sensitive", unique ? 0 : 1, false);
  const auto attribute = string_arg(a, "attribute", unique ? 1 : 2);
  if (unique) {
    Array out;
    std::vector<Value> seen;
    for (const Value& item : items) {
      const Value key = sort_key(item, attribute, case_sensitive);
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::list(std::move(out));
  }
  const bool reverse = bool_arg(a, "reverse", 0, false);
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) keyed.emplace_back(sort_key(item, attribute, case_sensitive), item);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
  });
  Array out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return Value::list(std::move(out));
}

Value dict_items(const Value& v) {
  Array out;
  if (v.is_undefined()) return Value::list({});
  if (!v.is_mapping()) throw Error(fmt::format("items: expected a mapping, got {}", v.type_name()));
  for (const auto& [k, x] : v.as_object().entries) out.push_back(Value::tuple({Value(k), x}));
  return Value::list(std::move(out));
}

}  // namespace

Value apply_filter(std::string_view name, const Value& v, const CallArgs& a, const FilterSettings& settings) {
  if (name == "default" || name == "d") {
    const Value* fallback = a.get("default_value", 0);
    const bool boolean = bool_arg(a, "boolean", 1, false);
    if (v.is_undefined() || (boolean && !v.truthy())) return fallback ? *fallback : Value("");
    return v;
  }
  if (name == "length" || name == "count") return length_of(v);
  if (name == "string") return to_str(v);
  if (name == "safe") return v;
  if (name == "escape" || name == "e" || name == "forceescape") return html_escape(to_str(v));
  if (name == "upper") return py_upper(to_str(v));
  if (name == "lower") return py_lower(to_str(v));
  if (name == "capitalize") return py_capitalize(to_str(v));
  if (name == "title") return jinja_title(to_str(v));
  if (name == "trim") return py_strip(to_str(v), string_arg(a, "chars", 0), true, true);
  if (name == "replace") {
    const auto count = arg(a, "count", 2);
    return py_replace(to_str(v), to_str(a.args.size() > 0 ? a.args[0] : Value()),
                      to_str(a.args.size() > 1 ? a.args[1] : Value()),
                      count && !count->is_none() ? count->as_int() : -1);
  }
  if (name == "tojson") return tojson(v, a, settings);
  if (name == "first" || name == "last") {
    const Array items = iterate(v);
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const std::string sep = string_arg(a, "d", 0).value_or("");
    const auto attribute = string_arg(a, "attribute", 1);
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(attribute ? attribute_path(item, *attribute) : item);
      if (out.size() > settings.max_string_bytes) throw Error("join: result too large");
    }
    return out;
  }
  if (name == "list") return Value::list(iterate(v));
  if (name == "items") return dict_items(v);
  if (name == "keys" || name == "values") {
    Array out;
    for (const Value& kv : dict_items(v).as_array()) out.push_back(kv.as_array()[name == "keys" ? 0 : 1]);
    return Value::list(std::move(out));
  }
  if (name == "dictsort") {
    const bool case_sensitive = bool_arg(a, "case_sensitive", 0, false);
    const bool by_value = string_arg(a, "by", 1).value_or("key") == "value";
    const bool reverse = bool_arg(a, "reverse", 2, false);
    Array items = dict_items(v).as_array();
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value kx = sort_key(x.as_array()[by_value ? 1 : 0], std::nullopt, case_sensitive);
      const Value ky = sort_key(y.as_array()[by_value ? 1 : 0], std::nullopt, case_sensitive);
      return reverse ? less_than(ky, kx) : less_than(kx, ky);
    });
    return Value::list(std::move(items));
  }
  if (name == "int") return to_int(v, a);
  if (name == "float") return to_float(v, a);
  if (name == "abs") {
    if (v.is_float()) return std::fabs(v.as_double());
    if (v.is_number()) return v.as_int() < 0 ? negate(v) : Value(v.as_int());
    throw Error(fmt::format("bad operand type for abs(): '{}'", v.type_name()));
  }
  if (name == "round") return round_value(v, a);
  if (name == "reverse") {
    if (v.is_string()) return get_slice(v, Value(), Value(), Value(-1));
    Array items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "sort") return sort_items(v, a, false);
  if (name == "unique") return sort_items(v, a, true);
  if (name == "min" || name == "max") return min_max(v, a, name == "max");
  if (name == "sum") {
    const auto attribute = string_arg(a, "attribute", 0);
    const Value* start = arg(a, "start", 1);
    Value total = start ? *start : Value(0);
    for (const Value& item : iterate(v)) {
      total = binary_op("+", total, attribute ? attribute_path(item, *attribute) : item,
                        settings.max_string_bytes);
    }
    return total;
  }
  if (name == "map") return map_items(v, a, settings);
  if (name == "select" || name == "reject") return select_items(v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select_items(v, a, true, name == "selectattr");
  if (name == "attr") return get_attr(v, to_str(a.args.empty() ? Value() : a.args[0]));
  if (name == "indent") {
    const Value* width = arg(a, "width", 0);
    const std::string indention =
        width && width->is_string()
            ? width->as_string()
            : std::string(width ? std::clamp<int64_t>(width->as_int(), 0, 1024) : 4, ' ');
    return indent_text(to_str(v), indention, bool_arg(a, "first", 1, false), bool_arg(a, "blank", 2, false));
  }
  if (name == "wordcount") return static_cast<int64_t>(py_split(to_str(v), std::nullopt, -1).size());
  if (name == "format") {
    return binary_op("%", Value(to_str(v)), Value::tuple(a.args), settings.max_string_bytes);
  }
  throw Error(fmt::format("no filter named '{}'", name));
}

bool apply_test(std::string_view name, const Value& v, const std::vector<Value>& args) {
  auto need_arg = [&]() -> const Value& {
    if (args.empty()) throw Error(fmt::format("test '{}' needs an argument", name));
    return args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind() == Value::Kind::kDict;
  if (name == "sequence") return v.is_string() || v.is_sequence() || v.kind() == Value::Kind::kDict;
  if (name == "iterable")
    return v.is_string() || v.is_sequence() || v.kind() == Value::Kind::kDict || v.is_undefined();
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && py_lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && py_upper(v.as_string()) == v.as_string();
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool())
      throw Error(fmt::format("test '{}' expects an integer, got {}", name, v.type_name()));
    if (name == "divisibleby") {
      const Value& d = need_arg();
      if (!d.is_int() || d.as_int() == 0) throw Error("divisibleby needs a non-zero integer");
      return v.as_int() % d.as_int() == 0;
    }
    return (v.as_int() % 2 == 0) == (name == "even");
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, need_arg());
  if (name == "ne" || name == "!=") return !equals(v, need_arg());
  if (name == "lt" || name == "lessthan" || name == "<") return less_than(v, need_arg());
  if (name == "le" || name == "<=") return !less_than(need_arg(), v);
  if (name == "gt" || name == "greaterthan" || name == ">") return less_than(need_arg(), v);
  if (name == "ge" || name == ">=") return !less_than(v, need_arg());
  if (name == "in") return contains(need_arg(), v);
  if (name == "sameas") {
    // Identity in Python; for the immutable values templates compare, equal kind and value.
    const Value& other = need_arg();
    return v.kind() == other.kind() && equals(v, other);
  }
  if (name == "filter" || name == "test") return false;
  throw Error(fmt::format("no test named '{}'", name));
}

}  // namespace longctx::jinja
