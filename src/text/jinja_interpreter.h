// Template: a parsed Jinja template (the syntax tree, kept) that renders many times.
//
//   LONGCTX_ASSIGN_OR_RETURN(auto t, jinja::Template::parse(source, options));
//   LONGCTX_ASSIGN_OR_RETURN(std::string text, t.render(context));
//
// Rendering follows jinja2: undefined names render as "" and are falsy, `set` inside a
// for loop is local to that iteration (use namespace() to carry state out), macros see
// the variables of the scope they were defined in, break/continue as in the loopcontrols
// extension. Resource use is bounded (output bytes, loop iterations, call depth), so a
// hostile template fails with an error instead of hanging or exhausting memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "text/jinja_ast.h"
#include "text/jinja_filters.h"
#include "text/jinja_lexer.h"
#include "text/jinja_value.h"

namespace longctx::jinja {

struct TemplateOptions {
  LexerOptions lexer;
  FilterSettings filters;
  size_t max_output_bytes = 64u << 20;
  int64_t max_loop_iterations = 10'000'000;  // summed over all loops of one render
  int max_macro_depth = 100;
  int max_eval_depth = 1500;  // nested statements + expressions + calls; bounds stack use
};

class Template {
 public:
  // Syntax errors: InvalidArgument "template syntax error at line N: ...".
  static Result<Template> parse(std::string_view source, TemplateOptions options = {});

  // context: the template's variables. Globals range(), namespace() and dict() are
  // visible beneath them. Errors: InvalidArgument "template error at line N: ..."; an
  // error raised by a context function (jinja::RaisedError) keeps its message.
  Result<std::string> render(const Object& context) const;

 private:
  Template(std::shared_ptr<const Body> body, TemplateOptions options)
      : body_(std::move(body)), options_(std::move(options)) {}

  std::shared_ptr<const Body> body_;
  TemplateOptions options_;
};

}  // namespace longctx::jinja
