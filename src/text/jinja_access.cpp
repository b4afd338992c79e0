#include "text/jinja_access.h"

#include <fmt/format.h>

#include "text/jinja_error.h"
#include "text/jinja_operators.h"
#include "text/jinja_strings.h"

namespace longctx::jinja {
namespace {

std::string object_name(const Value& v) {
  if (v.is_none()) return "'None'";
  return fmt::format("'{} object'", v.type_name());
}

Value missing_attr(const Value& object, std::string_view name) {
  return Value::undefined(fmt::format("{} has no attribute '{}'", object_name(object), name));
}

std::optional<std::string> opt_string_arg(const CallArgs& a, std::string_view name, size_t index) {
  const Value* v = a.get(name, index);
  if (!v || v->is_none() || v->is_undefined()) return std::nullopt;
  if (!v->is_string())
    throw Error(fmt::format("argument '{}' must be str or None, not {}", name, v->type_name()));
  return v->as_string();
}

std::string string_arg(const CallArgs& a, std::string_view name, size_t index, std::string_view method) {
  const Value* v = a.get(name, index);
  if (!v || !v->is_string()) {
    throw Error(
        fmt::format("{}() argument '{}' must be str, not {}", method, name, v ? v->type_name() : "nothing"));
  }
  return v->as_string();
}

int64_t int_arg(const CallArgs& a, std::string_view name, size_t index, int64_t fallback) {
  const Value* v = a.get(name, index);
  if (!v || v->is_none() || v->is_undefined()) return fallback;
  if (!v->is_int() && !v->is_bool()) throw Error(fmt::format("argument '{}' must be an integer", name));
  return v->as_int();
}

Value string_list(std::vector<std::string> parts) {
  Array items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::list(std::move(items));
}

// `'a {} {name}'.format(...)`: positional {} / {0} and named {name} fields, no format specs.
std::string py_format(const std::string& f, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      const size_t close = f.find('}', i);
      if (close == std::string::npos) throw Error("Single '{' encountered in format string");
      const std::string field = f.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!") != std::string::npos)
        throw Error("format specs in str.format are not supported");
      if (field.empty()) {
        if (auto_index >= a.args.size())
          throw Error("Replacement index out of range for positional args tuple");
        out += to_str(a.args[auto_index++]);
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        const size_t k = std::stoul(field);
        if (k >= a.args.size()) throw Error("Replacement index out of range for positional args tuple");
        out += to_str(a.args[k]);
      } else {
        const Value* v = nullptr;
        for (const auto& [key, value] : a.kwargs) {
          if (key == field) v = &value;
        }
        if (!v) throw Error(fmt::format("format: missing argument '{}'", field));
        out += to_str(*v);
      }
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

bool affix_match(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& v) {
    if (!v.is_string()) throw Error("startswith/endswith first arg must be str or a tuple of str");
    const std::string& x = v.as_string();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_sequence()) {
    for (const Value& v : affix.as_array()) {
      if (one(v)) return true;
    }
    return false;
  }
  return one(affix);
}

template <typename Pred>
bool all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

Value string_method(const std::string& s, std::string_view name, const CallArgs& a) {
  if (name == "startswith" || name == "endswith") {
    const Value* affix = a.get("prefix", 0);
    if (!affix) throw Error(fmt::format("{}() takes at least 1 argument", name));
    return affix_match(s, *affix, name == "startswith");
  }
  if (name == "strip") return py_strip(s, opt_string_arg(a, "chars", 0), true, true);
  if (name == "lstrip") return py_strip(s, opt_string_arg(a, "chars", 0), true, false);
  if (name == "rstrip") return py_strip(s, opt_string_arg(a, "chars", 0), false, true);
  if (name == "split" || name == "rsplit") {
    const auto sep = opt_string_arg(a, "sep", 0);
    if (sep && sep->empty()) throw Error("empty separator");
    return string_list(py_split(s, sep, int_arg(a, "maxsplit", 1, -1), name == "rsplit"));
  }
  if (name == "splitlines") {
    std::vector<std::string> lines = py_split(s, std::string("\n"), -1);
    if (!lines.empty() && lines.back().empty()) lines.pop_back();
    for (auto& l : lines) {
      if (!l.empty() && l.back() == '\r') l.pop_back();
    }
    return string_list(std::move(lines));
  }
  if (name == "upper") return py_upper(s);
  if (name == "lower") return py_lower(s);
  if (name == "title") return py_title(s);
  if (name == "capitalize") return py_capitalize(s);
  if (name == "replace") {
    return py_replace(s, string_arg(a, "old", 0, name), string_arg(a, "new", 1, name),
                      int_arg(a, "count", 2, -1));
  }
  if (name == "format") return py_format(s, a);
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const std::string sub = string_arg(a, "sub", 0, name);
    const size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name.find("index") != std::string_view::npos) throw Error("substring not found");
      return -1;
    }
    return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, at)));
  }
  if (name == "count") {
    const std::string sub = string_arg(a, "sub", 0, name);
    if (sub.empty()) return static_cast<int64_t>(utf8_length(s) + 1);
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return n;
  }
  if (name == "join") {
    const Value* items = a.get("iterable", 0);
    if (!items) throw Error("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*items)) {
      if (!v.is_string())
        throw Error(fmt::format("sequence item: expected str instance, {} found", v.type_name()));
      if (!first) out += s;
      first = false;
      out += v.as_string();
    }
    return out;
  }
  if (name == "isdigit") return all_chars(s, [](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "isalpha") return all_chars(s, [](unsigned char c) { return std::isalpha(c) != 0; });
  if (name == "isalnum") return all_chars(s, [](unsigned char c) { return std::isalnum(c) != 0; });
  if (name == "isspace")
    return all_chars(s, [](unsigned char c) { return is_py_space(static_cast<char>(c)); });
  if (name == "islower") return s != py_upper(s) && s == py_lower(s);
  if (name == "isupper") return s != py_lower(s) && s == py_upper(s);
  throw Error(fmt::format("'str' object has no attribute '{}'", name));
}

constexpr std::string_view kStringMethods[] = {
    "startswith", "endswith", "strip",   "lstrip",  "rstrip",     "split",   "rsplit",
    "splitlines", "upper",    "lower",   "title",   "capitalize", "replace", "format",
    "find",       "rfind",    "index",   "rindex",  "count",      "join",    "isdigit",
    "isalpha",    "isalnum",  "isspace", "islower", "isupper"};
// Methods that would mutate: the immutable sandbox refuses them when called.
constexpr std::string_view kDictMutators[] = {"update", "pop", "popitem", "setdefault", "clear"};
constexpr std::string_view kListMutators[] = {"append", "extend",  "insert", "pop",
                                              "remove", "reverse", "sort",   "clear"};

template <size_t N>
bool one_of(std::string_view name, const std::string_view (&names)[N]) {
  for (std::string_view n : names) {
    if (n == name) return true;
  }
  return false;
}

Value unsafe_method(const Value& object, std::string_view name) {
  std::string message =
      fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, object.type_name());
  return Value::function(std::string(name), [message](const CallArgs&) -> Value { throw Error(message); });
}

Value dict_method(const Value& object, std::string_view name) {
  if (name == "items" || name == "keys" || name == "values") {
    std::string which(name);
    return Value::function(which, [object, which](const CallArgs&) {
      Array out;
      for (const auto& [k, v] : object.as_object().entries) {
        if (which == "items")
          out.push_back(Value::tuple({Value(k), v}));
        else if (which == "keys")
          out.emplace_back(k);
        else
          out.push_back(v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return Value::function("get", [object](const CallArgs& a) {
      const Value* key = a.get("key", 0);
      const Value* fallback = a.get("default", 1);
      if (!key) throw Error("get expected at least 1 argument, got 0");
      const Value* found = key->is_string() ? object.as_object().find(key->as_string()) : nullptr;
      if (found) return *found;
      return fallback ? *fallback : Value::none();
    });
  }
  if (one_of(name, kDictMutators)) return unsafe_method(object, name);
  return Value::undefined();
}

}  // namespace

Value get_attr(const Value& object, std::string_view name) {
  switch (object.kind()) {
    case Value::Kind::kUndefined: fail_undefined(object);
    case Value::Kind::kString:
      if (one_of(name, kStringMethods)) {
        std::string n(name);
        return Value::function(
            n, [s = object.as_string(), n](const CallArgs& a) { return string_method(s, n, a); });
      }
      break;
    case Value::Kind::kDict: {
      Value method = dict_method(object, name);
      if (!method.is_undefined()) return method;
      if (const Value* v = object.as_object().find(name)) return *v;
      break;
    }
    case Value::Kind::kNamespace:
      if (const Value* v = object.as_object().find(name)) return *v;
      break;
    case Value::Kind::kList:
      if (one_of(name, kListMutators)) return unsafe_method(object, name);
      break;
    default: break;
  }
  return missing_attr(object, name);
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Value::Kind::kUndefined: fail_undefined(object);
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      if (key.is_string()) {
        if (const Value* v = object.as_object().find(key.as_string())) return *v;
      }
      break;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kString:
      if (key.is_int() || key.is_bool()) {
        const bool is_string = object.is_string();
        std::vector<std::string_view> chars;
        if (is_string) chars = utf8_chars(object.as_string());
        const int64_t n =
            is_string ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(object.as_array().size());
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) {  // jinja2 turns the IndexError into undefined
          return Value::undefined(fmt::format("{} has no element {}", object_name(object), key.as_int()));
        }
        if (is_string) return std::string(chars[i]);
        return object.as_array()[i];
      }
      break;
    default: break;
  }
  if (key.is_string()) return get_attr(object, key.as_string());
  return Value::undefined(fmt::format("{} has no element {}", object_name(object), to_repr(key)));
}

Value get_slice(const Value& object, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (object.is_undefined()) fail_undefined(object);
  auto bound = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) throw Error(fmt::format("slice {} must be an integer or None", what));
    return v.as_int();
  };
  const int64_t step = bound(step_v, "step").value_or(1);
  if (step == 0) throw Error("slice step cannot be zero");
  const bool is_string = object.is_string();
  if (!is_string && !object.is_sequence())
    throw Error(fmt::format("'{}' object is not subscriptable", object.type_name()));
  std::vector<std::string_view> chars;
  if (is_string) chars = utf8_chars(object.as_string());
  const int64_t n =
      is_string ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(object.as_array().size());
  // slice.indices(n), as CPython computes it.
  auto adjust = [&](std::optional<int64_t> b, int64_t fallback) {
    if (!b) return fallback;
    int64_t v = *b;
    if (v < 0) {
      v += n;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= n) {
      v = step < 0 ? n - 1 : n;
    }
    return v;
  };
  const int64_t start = adjust(bound(start_v, "start"), step < 0 ? n - 1 : 0);
  const int64_t stop = adjust(bound(stop_v, "stop"), step < 0 ? -1 : n);
  if (is_string) {
    std::string out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out += chars[i];
    return out;
  }
  Array out;
  const Array& items = object.as_array();
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(items[i]);
  return object.kind() == Value::Kind::kTuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace longctx::jinja
