// Parser: tokens -> syntax tree (jinja_ast.h), following jinja2's grammar and operator
// precedence (or < and < not < comparisons < + - < ~ < * / // % < ** < unary, with
// filters, tests, attribute/item access and calls binding tightest).
#pragma once

#include <vector>

#include "core/status.h"
#include "text/jinja_ast.h"
#include "text/jinja_lexer.h"

namespace longctx::jinja {

// Errors name the line and what was expected ("line 4: expected 'endfor', got end of
// template"). Statement and expression nesting is bounded, so hostile input cannot
// overflow the stack.
Result<Body> parse(const std::vector<Token>& tokens);

}  // namespace longctx::jinja
