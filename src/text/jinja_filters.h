// Built-in filters (`x | name(args)`) and tests (`x is name args`): the jinja2 set that
// chat templates use, with jinja2's argument names and defaults.
#pragma once

#include <string_view>
#include <vector>

#include "text/jinja_value.h"

namespace longctx::jinja {

struct FilterSettings {
  // false: tojson is transformers' override, json.dumps(x, ensure_ascii=False,
  // indent=None, separators=None, sort_keys=False). true: jinja2's own htmlsafe_json_dumps
  // (sorted keys, ASCII only, <>&' escaped).
  bool tojson_html_safe = false;
  size_t max_string_bytes = 64u << 20;
};

// Throws jinja::Error for an unknown filter ("no filter named 'foo'") or bad arguments.
Value apply_filter(std::string_view name, const Value& value, const CallArgs& args,
                   const FilterSettings& settings);
// Throws jinja::Error for an unknown test.
bool apply_test(std::string_view name, const Value& value, const std::vector<Value>& args);

}  // namespace longctx::jinja
