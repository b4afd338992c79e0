// The error a Jinja template raises while it is lexed, parsed or rendered.
//
// Inside the interpreter errors travel as this exception (they may start deep in a
// filter or a macro call); Template::parse and Template::render turn it into a Status
// naming the template line, so no exception crosses the public boundary.
#pragma once

#include <stdexcept>
#include <string>

namespace longctx::jinja {

class Error : public std::runtime_error {
 public:
  // line 0: not known where it is thrown; the interpreter fills in the line it was at.
  explicit Error(const std::string& message, int line = 0) : std::runtime_error(message), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

// raise_exception(msg) from a template: surfaced as the message alone, no prefix.
class RaisedError : public Error {
 public:
  using Error::Error;
};

}  // namespace longctx::jinja
