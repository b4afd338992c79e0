// The syntax tree of a Jinja template: expressions and statements, each with the line
// it came from so render errors can name it. Built once by the parser, then read-only.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "text/jinja_value.h"

namespace longctx::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Keyword {
  std::string name;
  ExprPtr value;
};

// ---- expressions ----
struct LiteralExpr {
  Value value;
};
struct NameExpr {
  std::string name;
};
struct ListExpr {
  std::vector<ExprPtr> items;
  bool is_tuple = false;
};
struct DictExpr {
  std::vector<std::pair<ExprPtr, ExprPtr>> entries;
};
struct AttrExpr {  // obj.name
  ExprPtr object;
  std::string name;
};
struct ItemExpr {  // obj[key]
  ExprPtr object;
  ExprPtr key;
};
struct SliceExpr {  // obj[start:stop:step], absent parts null
  ExprPtr object;
  ExprPtr start, stop, step;
};
struct CallExpr {
  ExprPtr callee;
  std::vector<ExprPtr> args;
  std::vector<Keyword> kwargs;
};
struct FilterExpr {  // operand | name(args)
  ExprPtr operand;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<Keyword> kwargs;
};
struct TestExpr {  // operand is [not] name(args)
  ExprPtr operand;
  std::string name;
  std::vector<ExprPtr> args;
  bool negated = false;
};
struct UnaryExpr {  // "-", "+", "not"
  std::string op;
  ExprPtr operand;
};
struct BinaryExpr {  // + - * / // % ** ~ and or
  std::string op;
  ExprPtr lhs, rhs;
};
struct CompareExpr {  // first op1 e1 op2 e2 ... (chained as in Python); ops: == != < <= > >= in notin
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> rest;
};
struct CondExpr {  // then if cond else otherwise (otherwise null: undefined)
  ExprPtr cond, then, otherwise;
};

struct Expr {
  int line = 0;
  std::variant<LiteralExpr, NameExpr, ListExpr, DictExpr, AttrExpr, ItemExpr, SliceExpr, CallExpr, FilterExpr,
               TestExpr, UnaryExpr, BinaryExpr, CompareExpr, CondExpr>
      node;
};

// ---- statements ----
struct TextStmt {
  std::string text;
};
struct OutputStmt {  // {{ expr }}
  ExprPtr expr;
};
struct IfStmt {
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body otherwise;
};
struct ForStmt {
  std::vector<std::string> targets;  // one name, or several to unpack
  ExprPtr iterable;
  ExprPtr filter;  // `for x in xs if cond`, may be null
  Body body;
  Body otherwise;  // runs when no item was iterated
};
// An assignment target: a name, or `ns.attr` on a namespace.
struct Target {
  std::string name;
  std::string attr;  // empty: plain name
};
struct SetStmt {
  std::vector<Target> targets;  // several: tuple unpacking
  ExprPtr value;
};
struct SetBlockStmt {  // {% set x %}...{% endset %}, optionally `set x | filter`
  Target target;
  Body body;
  std::vector<ExprPtr> filters;  // FilterExprs whose operand is null (applied in order)
};
struct Param {
  std::string name;
  ExprPtr default_value;  // may be null
};
struct MacroStmt {
  std::string name;
  std::vector<Param> params;
  Body body;
};
struct CallBlockStmt {  // {% call(params) macro(args) %}body{% endcall %}: body is caller()
  std::vector<Param> caller_params;
  ExprPtr call;
  Body body;
};
struct FilterBlockStmt {  // {% filter upper %}body{% endfilter %}
  std::vector<ExprPtr> filters;
  Body body;
};
struct WithStmt {  // {% with a = 1 %}...{% endwith %}; also {% generation %}
  std::vector<std::pair<std::string, ExprPtr>> assignments;
  Body body;
};
struct BreakStmt {};
struct ContinueStmt {};

struct Stmt {
  int line = 0;
  std::variant<TextStmt, OutputStmt, IfStmt, ForStmt, SetStmt, SetBlockStmt, MacroStmt, CallBlockStmt,
               FilterBlockStmt, WithStmt, BreakStmt, ContinueStmt>
      node;
};

}  // namespace longctx::jinja
