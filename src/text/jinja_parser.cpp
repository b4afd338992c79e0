#include "text/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <string_view>

#include "text/jinja_error.h"

namespace longctx::jinja {
namespace {

constexpr int kMaxNesting = 200;

template <typename Node>
ExprPtr make_expr(int line, Node node) {
  auto e = std::make_unique<Expr>();
  e->line = line;
  e->node = std::move(node);
  return e;
}

template <typename Node>
StmtPtr make_stmt(int line, Node node) {
  auto s = std::make_unique<Stmt>();
  s->line = line;
  s->node = std::move(node);
  return s;
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::kText: return "template text";
    case TokenKind::kVarBegin: return "'{{'";
    case TokenKind::kVarEnd: return "'}}'";
    case TokenKind::kBlockBegin: return "'{%'";
    case TokenKind::kBlockEnd: return "'%}'";
    case TokenKind::kString: return "string literal";
    case TokenKind::kEnd: return "end of template";
    default: return "'" + t.text + "'";
  }
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Body run() {
    Body body = parse_body({});
    if (peek().kind != TokenKind::kEnd) fail(fmt::format("unexpected {}", describe(peek())));
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& peek(size_t ahead = 0) const { return t_[std::min(pos_ + ahead, t_.size() - 1)]; }
  const Token& next() {
    const Token& tok = t_[pos_];
    if (pos_ + 1 < t_.size()) ++pos_;
    return tok;
  }
  bool is_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::kOperator && peek(ahead).text == op;
  }
  bool is_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::kName && peek(ahead).text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& message) const { throw Error(message, peek().line); }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(peek())));
  }
  std::string expect_name(std::string_view what = "a name") {
    if (peek().kind != TokenKind::kName) fail(fmt::format("expected {}, got {}", what, describe(peek())));
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != TokenKind::kBlockEnd)
      fail(fmt::format("expected end of tag '%}}', got {}", describe(peek())));
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting) parser.fail("template nested too deeply");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  // ---- statements ----

  // Parses until `{% <one of stop> ...`, leaving the stop word as the next token.
  Body parse_body(std::initializer_list<std::string_view> stop) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& tok = peek();
      switch (tok.kind) {
        case TokenKind::kText: body.push_back(make_stmt(tok.line, TextStmt{next().text})); break;
        case TokenKind::kVarBegin: {
          next();
          ExprPtr e = parse_tuple(/*explicit_parens=*/false);
          if (peek().kind != TokenKind::kVarEnd)
            fail(fmt::format("expected '}}}}', got {}", describe(peek())));
          next();
          body.push_back(make_stmt(tok.line, OutputStmt{std::move(e)}));
          break;
        }
        case TokenKind::kBlockBegin: {
          const Token& word = peek(1);
          if (word.kind == TokenKind::kName && std::find(stop.begin(), stop.end(), word.text) != stop.end()) {
            next();
            return body;
          }
          next();
          body.push_back(parse_statement());
          break;
        }
        case TokenKind::kEnd:
          if (stop.size() != 0) {
            std::string expected;
            for (std::string_view s : stop)
              expected += (expected.empty() ? "'" : " or '") + std::string(s) + "'";
            fail(fmt::format("unexpected end of template, expected {}", expected));
          }
          return body;
        default: fail(fmt::format("unexpected {}", describe(tok)));
      }
    }
  }

  StmtPtr parse_statement() {
    const int line = peek().line;
    const std::string word = expect_name("a statement name");
    if (word == "if") return parse_if(line);
    if (word == "for") return parse_for(line);
    if (word == "set") return parse_set(line);
    if (word == "macro") return parse_macro(line);
    if (word == "call") return parse_call_block(line);
    if (word == "filter") return parse_filter_block(line);
    if (word == "with" || word == "generation") return parse_with(line, word);
    if (word == "break" || word == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a loop", word));
      expect_block_end();
      if (word == "break") return make_stmt(line, BreakStmt{});
      return make_stmt(line, ContinueStmt{});
    }
    if (word.rfind("end", 0) == 0 || word == "elif" || word == "else") {
      fail(fmt::format("unexpected '{}' (no open block it could close)", word));
    }
    fail(fmt::format("unknown or unsupported tag '{}'", word));
  }

  StmtPtr parse_if(int line) {
    IfStmt stmt;
    while (true) {
      ExprPtr cond = parse_tuple(false);
      expect_block_end();
      Body body = parse_body({"elif", "else", "endif"});
      stmt.branches.emplace_back(std::move(cond), std::move(body));
      const std::string word = next().text;
      if (word == "elif") continue;
      if (word == "else") {
        expect_block_end();
        stmt.otherwise = parse_body({"endif"});
        next();
      }
      break;
    }
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  StmtPtr parse_for(int line) {
    ForStmt stmt;
    const bool parens = skip_op("(");
    do {
      stmt.targets.push_back(expect_name("a loop variable"));
    } while (skip_op(","));
    if (parens) expect_op(")");
    if (!skip_name("in")) fail(fmt::format("expected 'in' in for loop, got {}", describe(peek())));
    stmt.iterable = parse_tuple(false, /*with_condexpr=*/false);
    if (skip_name("if")) stmt.filter = parse_expression();
    if (is_name("recursive")) fail("recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    stmt.body = parse_body({"else", "endfor"});
    --loop_depth_;
    if (next().text == "else") {
      expect_block_end();
      stmt.otherwise = parse_body({"endfor"});
      next();
    }
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  Target parse_target() {
    Target target{expect_name("an assignment target"), ""};
    if (skip_op(".")) target.attr = expect_name("an attribute name");
    return target;
  }

  StmtPtr parse_set(int line) {
    std::vector<Target> targets;
    do {
      targets.push_back(parse_target());
    } while (skip_op(","));
    if (skip_op("=")) {
      SetStmt stmt{std::move(targets), parse_tuple(false)};
      expect_block_end();
      return make_stmt(line, std::move(stmt));
    }
    if (targets.size() != 1) fail("a block set assigns exactly one name");
    SetBlockStmt stmt;
    stmt.target = std::move(targets[0]);
    while (skip_op("|")) stmt.filters.push_back(parse_filter(nullptr));
    expect_block_end();
    // Loop controls inside a block set act on the enclosing loop, so they are fine here.
    stmt.body = parse_body({"endset"});
    next();
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  std::vector<Param> parse_params() {
    std::vector<Param> params;
    expect_op("(");
    while (!skip_op(")")) {
      if (!params.empty()) expect_op(",");
      if (skip_op(")")) break;
      Param p{expect_name("a parameter name"), nullptr};
      if (skip_op("=")) p.default_value = parse_expression();
      params.push_back(std::move(p));
    }
    return params;
  }

  StmtPtr parse_macro(int line) {
    MacroStmt stmt;
    stmt.name = expect_name("a macro name");
    stmt.params = parse_params();
    expect_block_end();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // a macro body is not inside the caller's loop
    stmt.body = parse_body({"endmacro"});
    loop_depth_ = saved_loops;
    next();
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  StmtPtr parse_call_block(int line) {
    CallBlockStmt stmt;
    if (is_op("(")) stmt.caller_params = parse_params();
    stmt.call = parse_expression();
    if (!std::holds_alternative<CallExpr>(stmt.call->node)) fail("{% call %} expects a macro call");
    expect_block_end();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    stmt.body = parse_body({"endcall"});
    loop_depth_ = saved_loops;
    next();
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  StmtPtr parse_filter_block(int line) {
    FilterBlockStmt stmt;
    do {
      stmt.filters.push_back(parse_filter(nullptr));
    } while (skip_op("|"));
    expect_block_end();
    stmt.body = parse_body({"endfilter"});
    next();
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  StmtPtr parse_with(int line, const std::string& word) {
    WithStmt stmt;
    if (word == "with") {
      while (peek().kind != TokenKind::kBlockEnd) {
        if (!stmt.assignments.empty()) expect_op(",");
        std::string name = expect_name("a variable name");
        expect_op("=");
        stmt.assignments.emplace_back(std::move(name), parse_expression());
      }
    }
    expect_block_end();
    const std::string end = "end" + word;
    stmt.body = parse_body({end});
    next();
    expect_block_end();
    return make_stmt(line, std::move(stmt));
  }

  // ---- expressions ----

  // `a, b` is a tuple where a bare list of expressions is allowed ({{ }}, set, for).
  ExprPtr parse_tuple(bool explicit_parens, bool with_condexpr = true) {
    const int line = peek().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end()) break;
      items.push_back(with_condexpr ? parse_expression() : parse_or());
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail(fmt::format("expected an expression, got {}", describe(peek())));
    }
    return make_expr(line, ListExpr{std::move(items), true});
  }

  bool is_tuple_end() const {
    const Token& tok = peek();
    return tok.kind == TokenKind::kVarEnd || tok.kind == TokenKind::kBlockEnd ||
           tok.kind == TokenKind::kEnd || is_op(")") || is_op("]") || is_op("}") || is_op("=") ||
           is_name("if") || is_name("in");
  }

  ExprPtr parse_expression() {
    DepthGuard guard(*this);
    const int line = peek().line;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      CondExpr cond;
      cond.then = std::move(expr);
      cond.cond = parse_or();
      if (skip_name("else")) cond.otherwise = parse_expression();
      expr = make_expr(line, std::move(cond));
    }
    return expr;
  }

  ExprPtr parse_binary_chain(ExprPtr (Parser::*operand)(), std::initializer_list<std::string_view> ops,
                             bool names) {
    ExprPtr lhs = (this->*operand)();
    while (true) {
      const Token& tok = peek();
      const bool match = (names ? tok.kind == TokenKind::kName : tok.kind == TokenKind::kOperator) &&
                         std::find(ops.begin(), ops.end(), tok.text) != ops.end();
      if (!match) return lhs;
      const int line = tok.line;
      std::string op = next().text;
      ExprPtr rhs = (this->*operand)();
      lhs = make_expr(line, BinaryExpr{std::move(op), std::move(lhs), std::move(rhs)});
    }
  }

  ExprPtr parse_or() { return parse_binary_chain(&Parser::parse_and, {"or"}, true); }
  ExprPtr parse_and() { return parse_binary_chain(&Parser::parse_not, {"and"}, true); }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const int line = next().line;
      return make_expr(line, UnaryExpr{"not", parse_not()});
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = peek().line;
    ExprPtr first = parse_math1();
    CompareExpr cmp;
    while (true) {
      std::string op;
      if (peek().kind == TokenKind::kOperator &&
          (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      cmp.rest.emplace_back(std::move(op), parse_math1());
    }
    if (cmp.rest.empty()) return first;
    cmp.first = std::move(first);
    return make_expr(line, std::move(cmp));
  }

  ExprPtr parse_math1() { return parse_binary_chain(&Parser::parse_concat, {"+", "-"}, false); }
  ExprPtr parse_concat() { return parse_binary_chain(&Parser::parse_math2, {"~"}, false); }
  ExprPtr parse_math2() { return parse_binary_chain(&Parser::parse_pow, {"*", "/", "//", "%"}, false); }
  ExprPtr parse_pow() { return parse_binary_chain(&Parser::parse_unary_filtered, {"**"}, false); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    const int line = peek().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      std::string op = next().text;
      node = make_expr(line, UnaryExpr{std::move(op), parse_unary(false)});
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    const int line = tok.line;
    switch (tok.kind) {
      case TokenKind::kName: {
        const std::string& n = next().text;
        if (n == "true" || n == "True") return make_expr(line, LiteralExpr{Value(true)});
        if (n == "false" || n == "False") return make_expr(line, LiteralExpr{Value(false)});
        if (n == "none" || n == "None") return make_expr(line, LiteralExpr{Value::none()});
        return make_expr(line, NameExpr{n});
      }
      case TokenKind::kString: {
        std::string s = next().text;
        while (peek().kind == TokenKind::kString) s += next().text;  // adjacent literals join
        return make_expr(line, LiteralExpr{Value(std::move(s))});
      }
      case TokenKind::kInteger: {
        const std::string& text = next().text;
        int64_t v = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc()) return make_expr(line, LiteralExpr{Value(std::stod(text))});
        return make_expr(line, LiteralExpr{Value(v)});
      }
      case TokenKind::kFloat: return make_expr(line, LiteralExpr{Value(std::stod(next().text))});
      case TokenKind::kOperator:
        if (skip_op("(")) {
          ExprPtr e = parse_tuple(/*explicit_parens=*/true);
          expect_op(")");
          return e;
        }
        if (skip_op("[")) {
          ListExpr list;
          while (!skip_op("]")) {
            if (!list.items.empty()) expect_op(",");
            if (skip_op("]")) break;
            list.items.push_back(parse_expression());
          }
          return make_expr(line, std::move(list));
        }
        if (skip_op("{")) {
          DictExpr dict;
          while (!skip_op("}")) {
            if (!dict.entries.empty()) expect_op(",");
            if (skip_op("}")) break;
            ExprPtr key = parse_expression();
            expect_op(":");
            dict.entries.emplace_back(std::move(key), parse_expression());
          }
          return make_expr(line, std::move(dict));
        }
        break;
      default: break;
    }
    fail(fmt::format("unexpected {} in expression", describe(tok)));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      const int line = peek().line;
      if (skip_op(".")) {
        if (peek().kind == TokenKind::kInteger) {
          ExprPtr key = make_expr(line, LiteralExpr{Value(static_cast<int64_t>(std::stoll(next().text)))});
          node = make_expr(line, ItemExpr{std::move(node), std::move(key)});
        } else {
          node = make_expr(line, AttrExpr{std::move(node), expect_name("an attribute name")});
        }
      } else if (skip_op("[")) {
        node = parse_subscript(std::move(node), line);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr object, int line) {
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression();
      if (skip_op("]")) return make_expr(line, ItemExpr{std::move(object), std::move(start)});
    }
    expect_op(":");
    SliceExpr slice{std::move(object), std::move(start), nullptr, nullptr};
    if (!is_op("]") && !is_op(":")) slice.stop = parse_expression();
    if (skip_op(":") && !is_op("]")) slice.step = parse_expression();
    expect_op("]");
    return make_expr(line, std::move(slice));
  }

  void parse_call_args(std::vector<ExprPtr>& args, std::vector<Keyword>& kwargs) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (skip_op(")")) break;
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (peek().kind == TokenKind::kName && is_op("=", 1)) {
        std::string name = next().text;
        next();
        kwargs.push_back({std::move(name), parse_expression()});
      } else {
        if (!kwargs.empty()) fail("positional argument after keyword argument");
        args.push_back(parse_expression());
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    const int line = peek().line;
    CallExpr call;
    call.callee = std::move(callee);
    parse_call_args(call.args, call.kwargs);
    return make_expr(line, std::move(call));
  }

  std::string parse_dotted_name(std::string_view what) {
    std::string name = expect_name(what);
    while (skip_op(".")) {
      name += '.';
      name += expect_name(what);
    }
    return name;
  }

  // After '|': name[(args)], applied to `operand` (null inside filter blocks).
  ExprPtr parse_filter(ExprPtr operand) {
    const int line = peek().line;
    FilterExpr f;
    f.operand = std::move(operand);
    f.name = parse_dotted_name("a filter name");
    if (is_op("(")) parse_call_args(f.args, f.kwargs);
    return make_expr(line, std::move(f));
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (skip_op("|")) {
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        const int line = next().line;
        TestExpr test;
        test.operand = std::move(node);
        test.negated = skip_name("not");
        test.name = parse_dotted_name("a test name");
        const Token& tok = peek();
        if (is_op("(")) {
          std::vector<Keyword> kwargs;
          parse_call_args(test.args, kwargs);
          if (!kwargs.empty()) fail("keyword arguments to tests are not supported");
        } else if ((tok.kind == TokenKind::kName || tok.kind == TokenKind::kString ||
                    tok.kind == TokenKind::kInteger || tok.kind == TokenKind::kFloat || is_op("[") ||
                    is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") &&
                   !is_name("in") && !is_name("not") && !is_name("is")) {
          test.args.push_back(parse_postfix(parse_primary()));
        }
        node = make_expr(line, std::move(test));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Result<Body> parse(const std::vector<Token>& tokens) {
  if (tokens.empty() || tokens.back().kind != TokenKind::kEnd)
    return invalid_argument("parse: token list must end with kEnd");
  try {
    return Parser(tokens).run();
  } catch (const Error& e) {
    return invalid_argument(fmt::format("template syntax error at line {}: {}", e.line(), e.what()));
  }
}

}  // namespace longctx::jinja
