#include "text/jinja_interpreter.h"

#include <fmt/format.h>

#include "text/jinja_access.h"
#include "text/jinja_error.h"
#include "text/jinja_operators.h"
#include "text/jinja_parser.h"

namespace longctx::jinja {
namespace {

// Jinja2's sandbox refuses ranges longer than this.
constexpr int64_t kMaxRange = 100000;

// One scope: variables set here, then the enclosing scopes.
struct Frame {
  explicit Frame(std::shared_ptr<Frame> p) : parent(std::move(p)) {}

  const Value* find(std::string_view name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      if (const Value* v = f->vars.find(name)) return v;
    }
    return nullptr;
  }

  Object vars;
  std::shared_ptr<Frame> parent;
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow { kNormal, kBreak, kContinue };

Object make_globals() {
  Object g;
  g.set("range", Value::function("range", [](const CallArgs& a) {
          if (a.args.empty() || a.args.size() > 3) throw Error("range expected 1 to 3 integer arguments");
          for (const Value& v : a.args) {
            if (!v.is_int() && !v.is_bool()) throw Error("range() arguments must be integers");
          }
          int64_t start = 0, stop = 0, step = 1;
          if (a.args.size() == 1) {
            stop = a.args[0].as_int();
          } else {
            start = a.args[0].as_int();
            stop = a.args[1].as_int();
            if (a.args.size() == 3) step = a.args[2].as_int();
          }
          if (step == 0) throw Error("range() arg 3 must not be zero");
          Array out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (static_cast<int64_t>(out.size()) >= kMaxRange) {
              throw Error(fmt::format("range too big: more than {} items", kMaxRange));
            }
            out.emplace_back(i);
          }
          return Value::list(std::move(out));
        }));
  auto make_object = [](const CallArgs& a) {
    Object obj;
    for (const Value& v : a.args) {
      if (!v.is_mapping()) throw Error("expected a mapping as positional argument");
      for (const auto& [k, x] : v.as_object().entries) obj.set(k, x);
    }
    for (const auto& [k, x] : a.kwargs) obj.set(k, x);
    return obj;
  };
  g.set("namespace", Value::function("namespace", [make_object](const CallArgs& a) {
          return Value::make_namespace(make_object(a));
        }));
  g.set("dict",
        Value::function("dict", [make_object](const CallArgs& a) { return Value::dict(make_object(a)); }));
  return g;
}

class Renderer {
 public:
  Renderer(const TemplateOptions& options, std::string* out) : opt_(options), out_(out) {}

  int line() const { return line_; }

  Flow exec_body(const Body& body, const FramePtr& frame) {
    for (const StmtPtr& stmt : body) {
      const Flow flow = exec(*stmt, frame);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Renderer& r) : renderer(r) {
      if (++renderer.depth_ > renderer.opt_.max_eval_depth) throw Error("template recursion too deep");
    }
    ~DepthGuard() { --renderer.depth_; }
    Renderer& renderer;
  };

  // Redirects output into `buffer` for a macro, block set or filter block.
  struct Capture {
    Capture(Renderer& r, std::string* buffer) : renderer(r), saved(r.out_) { r.out_ = buffer; }
    ~Capture() { renderer.out_ = saved; }
    Renderer& renderer;
    std::string* saved;
  };

  void write(std::string_view s) {
    total_bytes_ += s.size();
    if (total_bytes_ > opt_.max_output_bytes) {
      throw Error(fmt::format("rendered output exceeds {} bytes", opt_.max_output_bytes));
    }
    out_->append(s);
  }

  std::string capture(const Body& body, const FramePtr& frame) {
    std::string buffer;
    Capture redirect(*this, &buffer);
    exec_body(body, frame);
    return buffer;
  }

  // ---- statements ----

  Flow exec(const Stmt& stmt, const FramePtr& frame) {
    DepthGuard guard(*this);
    line_ = stmt.line;
    return std::visit([&](const auto& node) { return exec_node(node, frame); }, stmt.node);
  }

  Flow exec_node(const TextStmt& s, const FramePtr&) {
    write(s.text);
    return Flow::kNormal;
  }

  Flow exec_node(const OutputStmt& s, const FramePtr& frame) {
    write(to_str(eval(*s.expr, frame)));
    return Flow::kNormal;
  }

  Flow exec_node(const IfStmt& s, const FramePtr& frame) {
    for (const auto& [cond, body] : s.branches) {
      if (eval(*cond, frame).truthy()) return exec_body(body, frame);
    }
    return exec_body(s.otherwise, frame);
  }

  static void bind_targets(Frame& frame, const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
      frame.vars.set(targets[0], item);
      return;
    }
    const Array parts = iterate(item);
    if (parts.size() != targets.size()) {
      throw Error(
          fmt::format("cannot unpack {} values into {} loop variables", parts.size(), targets.size()));
    }
    for (size_t i = 0; i < parts.size(); ++i) frame.vars.set(targets[i], parts[i]);
  }

  void count_iteration() {
    if (++iterations_ > opt_.max_loop_iterations) {
      throw Error(fmt::format("more than {} loop iterations", opt_.max_loop_iterations));
    }
  }

  Flow exec_node(const ForStmt& s, const FramePtr& frame) {
    const Value iterable = eval(*s.iterable, frame);
    if (iterable.is_none()) throw Error("'NoneType' object is not iterable");
    Array items = iterate(iterable);
    if (s.filter) {
      // `for x in xs if cond`: the condition sees the loop variables but not `loop`.
      Array kept;
      for (const Value& item : items) {
        count_iteration();
        auto scope = std::make_shared<Frame>(frame);
        bind_targets(*scope, s.targets, item);
        if (eval(*s.filter, scope).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      count_iteration();
      // A fresh scope per iteration: a `set` in the body does not survive to the next.
      auto scope = std::make_shared<Frame>(frame);
      bind_targets(*scope, s.targets, items[i]);
      Object loop;
      loop.entries = {{"index", i + 1},
                      {"index0", i},
                      {"revindex", n - i},
                      {"revindex0", n - i - 1},
                      {"first", i == 0},
                      {"last", i == n - 1},
                      {"length", n},
                      {"depth", 1},
                      {"depth0", 0},
                      {"previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
                      {"nextitem", i + 1 < n ? items[i + 1] : Value::undefined("there is no next item")},
                      {"cycle", Value::function("cycle", [i](const CallArgs& a) {
                         if (a.args.empty()) throw Error("no items for cycling given");
                         return a.args[i % static_cast<int64_t>(a.args.size())];
                       })}};
      scope->vars.set("loop", Value::dict(std::move(loop)));
      if (exec_body(s.body, scope) == Flow::kBreak) break;
    }
    if (n == 0) return exec_body(s.otherwise, std::make_shared<Frame>(frame));
    return Flow::kNormal;
  }

  void assign(const Target& target, Value value, const FramePtr& frame) {
    if (target.attr.empty()) {
      frame->vars.set(target.name, std::move(value));
      return;
    }
    const Value* ns = frame->find(target.name);
    if (!ns || ns->kind() != Value::Kind::kNamespace) {
      throw Error(fmt::format("cannot assign attribute '{}' on '{}': it is not a namespace()", target.attr,
                              target.name));
    }
    ns->namespace_object().set(target.attr, std::move(value));
  }

  Flow exec_node(const SetStmt& s, const FramePtr& frame) {
    Value value = eval(*s.value, frame);
    if (s.targets.size() == 1) {
      assign(s.targets[0], std::move(value), frame);
      return Flow::kNormal;
    }
    const Array parts = iterate(value);
    if (parts.size() != s.targets.size()) {
      throw Error(fmt::format("cannot unpack {} values into {} names", parts.size(), s.targets.size()));
    }
    for (size_t i = 0; i < parts.size(); ++i) assign(s.targets[i], parts[i], frame);
    return Flow::kNormal;
  }

  Value apply_filter_chain(const std::vector<ExprPtr>& filters, Value value, const FramePtr& frame) {
    for (const ExprPtr& f : filters) {
      const auto& node = std::get<FilterExpr>(f->node);
      line_ = f->line;
      value = apply_filter(node.name, value, eval_args(node.args, node.kwargs, frame), opt_.filters);
    }
    return value;
  }

  Flow exec_node(const SetBlockStmt& s, const FramePtr& frame) {
    Value value = capture(s.body, std::make_shared<Frame>(frame));
    assign(s.target, apply_filter_chain(s.filters, std::move(value), frame), frame);
    return Flow::kNormal;
  }

  Flow exec_node(const FilterBlockStmt& s, const FramePtr& frame) {
    Value value = capture(s.body, std::make_shared<Frame>(frame));
    write(to_str(apply_filter_chain(s.filters, std::move(value), frame)));
    return Flow::kNormal;
  }

  Flow exec_node(const WithStmt& s, const FramePtr& frame) {
    auto scope = std::make_shared<Frame>(frame);
    for (const auto& [name, expr] : s.assignments) scope->vars.set(name, eval(*expr, frame));
    return exec_body(s.body, scope);
  }

  Flow exec_node(const BreakStmt&, const FramePtr&) { return Flow::kBreak; }
  Flow exec_node(const ContinueStmt&, const FramePtr&) { return Flow::kContinue; }

  // A macro (or a {% call %} body) as a function: binds parameters in a scope under the
  // one it was defined in and returns its rendered output.
  //
  // The function holds its defining scope weakly (the renderer keeps it alive): a scope
  // holding a macro that held the scope would be a reference cycle, leaked per render.
  Value make_macro(std::string name, const std::vector<Param>* params, const Body* body,
                   const FramePtr& closure) {
    closures_.push_back(closure);
    std::weak_ptr<Frame> weak_closure = closure;
    return Value::function(name, [this, name, params, body, weak_closure](const CallArgs& a) -> Value {
      FramePtr defining_scope = weak_closure.lock();
      if (!defining_scope)
        throw Error(fmt::format("macro '{}' called after its template finished rendering", name));
      if (++macro_depth_ > opt_.max_macro_depth) {
        --macro_depth_;
        throw Error(fmt::format("macro calls nested more than {} deep", opt_.max_macro_depth));
      }
      struct Leave {
        int& depth;
        ~Leave() { --depth; }
      } leave{macro_depth_};
      const int saved_line = line_;
      auto scope = std::make_shared<Frame>(defining_scope);
      std::vector<bool> bound(params->size(), false);
      for (size_t i = 0; i < a.args.size() && i < params->size(); ++i) {
        scope->vars.set((*params)[i].name, a.args[i]);
        bound[i] = true;
      }
      Object extra_kwargs;
      for (const auto& [key, value] : a.kwargs) {
        auto it = std::find_if(params->begin(), params->end(), [&k = key](const Param& p) { return p.name == k; });
        if (it != params->end()) {
          scope->vars.set(key, value);
          bound[it - params->begin()] = true;
        } else if (key == "caller") {
          scope->vars.set("caller", value);
        } else {
          extra_kwargs.set(key, value);
        }
      }
      for (size_t i = 0; i < params->size(); ++i) {
        if (bound[i]) continue;
        const Param& p = (*params)[i];
        scope->vars.set(p.name, p.default_value ? eval(*p.default_value, scope)
                                                : Value::undefined(fmt::format(
                                                      "parameter '{}' was not provided", p.name)));
      }
      Array varargs;
      for (size_t i = params->size(); i < a.args.size(); ++i) varargs.push_back(a.args[i]);
      scope->vars.set("varargs", Value::tuple(std::move(varargs)));
      scope->vars.set("kwargs", Value::dict(std::move(extra_kwargs)));
      std::string output = capture(*body, scope);
      line_ = saved_line;
      return output;
    });
  }

  Flow exec_node(const MacroStmt& s, const FramePtr& frame) {
    frame->vars.set(s.name, make_macro(s.name, &s.params, &s.body, frame));
    return Flow::kNormal;
  }

  Flow exec_node(const CallBlockStmt& s, const FramePtr& frame) {
    const auto& call = std::get<CallExpr>(s.call->node);
    const Value callee = eval(*call.callee, frame);
    CallArgs args = eval_args(call.args, call.kwargs, frame);
    args.kwargs.emplace_back("caller", make_macro("caller", &s.caller_params, &s.body, frame));
    write(to_str(invoke(callee, args)));
    return Flow::kNormal;
  }

  // ---- expressions ----

  Value eval(const Expr& expr, const FramePtr& frame) {
    DepthGuard guard(*this);
    line_ = expr.line;
    return std::visit([&](const auto& node) { return eval_node(node, expr, frame); }, expr.node);
  }

  CallArgs eval_args(const std::vector<ExprPtr>& args, const std::vector<Keyword>& kwargs,
                     const FramePtr& frame) {
    CallArgs out;
    out.args.reserve(args.size());
    for (const ExprPtr& a : args) out.args.push_back(eval(*a, frame));
    for (const Keyword& k : kwargs) out.kwargs.emplace_back(k.name, eval(*k.value, frame));
    return out;
  }

  static Value invoke(const Value& callee, const CallArgs& args) {
    if (callee.is_undefined()) fail_undefined(callee);
    if (!callee.is_function()) throw Error(fmt::format("'{}' object is not callable", callee.type_name()));
    return callee.as_function().call(args);
  }

  Value eval_node(const LiteralExpr& e, const Expr&, const FramePtr&) { return e.value; }

  Value eval_node(const NameExpr& e, const Expr&, const FramePtr& frame) {
    if (const Value* v = frame->find(e.name)) return *v;
    return Value::undefined(fmt::format("'{}' is undefined", e.name));
  }

  Value eval_node(const ListExpr& e, const Expr&, const FramePtr& frame) {
    Array items;
    items.reserve(e.items.size());
    for (const ExprPtr& item : e.items) items.push_back(eval(*item, frame));
    return e.is_tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
  }

  Value eval_node(const DictExpr& e, const Expr&, const FramePtr& frame) {
    Object obj;
    for (const auto& [k, v] : e.entries) {
      const Value key = eval(*k, frame);
      obj.set(to_str(key), eval(*v, frame));
    }
    return Value::dict(std::move(obj));
  }

  Value eval_node(const AttrExpr& e, const Expr& self, const FramePtr& frame) {
    const Value object = eval(*e.object, frame);
    line_ = self.line;
    return get_attr(object, e.name);
  }

  Value eval_node(const ItemExpr& e, const Expr& self, const FramePtr& frame) {
    const Value object = eval(*e.object, frame);
    const Value key = eval(*e.key, frame);
    line_ = self.line;
    return get_item(object, key);
  }

  Value eval_node(const SliceExpr& e, const Expr& self, const FramePtr& frame) {
    const Value object = eval(*e.object, frame);
    const Value start = e.start ? eval(*e.start, frame) : Value::none();
    const Value stop = e.stop ? eval(*e.stop, frame) : Value::none();
    const Value step = e.step ? eval(*e.step, frame) : Value::none();
    line_ = self.line;
    return get_slice(object, start, stop, step);
  }

  Value eval_node(const CallExpr& e, const Expr& self, const FramePtr& frame) {
    const Value callee = eval(*e.callee, frame);
    const CallArgs args = eval_args(e.args, e.kwargs, frame);
    line_ = self.line;
    return invoke(callee, args);
  }

  Value eval_node(const FilterExpr& e, const Expr& self, const FramePtr& frame) {
    const Value operand = eval(*e.operand, frame);
    const CallArgs args = eval_args(e.args, e.kwargs, frame);
    line_ = self.line;
    return apply_filter(e.name, operand, args, opt_.filters);
  }

  Value eval_node(const TestExpr& e, const Expr& self, const FramePtr& frame) {
    const Value operand = eval(*e.operand, frame);
    std::vector<Value> args;
    for (const ExprPtr& a : e.args) args.push_back(eval(*a, frame));
    line_ = self.line;
    return apply_test(e.name, operand, args) != e.negated;
  }

  Value eval_node(const UnaryExpr& e, const Expr& self, const FramePtr& frame) {
    const Value operand = eval(*e.operand, frame);
    line_ = self.line;
    if (e.op == "not") return !operand.truthy();
    if (e.op == "-") return negate(operand);
    if (operand.is_undefined()) fail_undefined(operand);
    if (!operand.is_number())
      throw Error(fmt::format("bad operand type for unary +: '{}'", operand.type_name()));
    return operand.is_bool() ? Value(operand.as_int()) : operand;
  }

  Value eval_node(const BinaryExpr& e, const Expr& self, const FramePtr& frame) {
    Value lhs = eval(*e.lhs, frame);
    // and/or return an operand, as in Python, and short-circuit.
    if (e.op == "and") return lhs.truthy() ? eval(*e.rhs, frame) : lhs;
    if (e.op == "or") return lhs.truthy() ? lhs : eval(*e.rhs, frame);
    const Value rhs = eval(*e.rhs, frame);
    line_ = self.line;
    return binary_op(e.op, lhs, rhs, opt_.max_output_bytes);
  }

  Value eval_node(const CompareExpr& e, const Expr& self, const FramePtr& frame) {
    Value lhs = eval(*e.first, frame);
    for (const auto& [op, rhs_expr] : e.rest) {
      Value rhs = eval(*rhs_expr, frame);
      line_ = self.line;
      bool ok = false;
      if (op == "==")
        ok = equals(lhs, rhs);
      else if (op == "!=")
        ok = !equals(lhs, rhs);
      else if (op == "<")
        ok = less_than(lhs, rhs);
      else if (op == ">")
        ok = less_than(rhs, lhs);
      else if (op == "<=")
        ok = !less_than(rhs, lhs);
      else if (op == ">=")
        ok = !less_than(lhs, rhs);
      else if (op == "in")
        ok = contains(rhs, lhs);
      else
        ok = !contains(rhs, lhs);  // notin
      if (!ok) return false;
      lhs = std::move(rhs);
    }
    return true;
  }

  Value eval_node(const CondExpr& e, const Expr&, const FramePtr& frame) {
    if (eval(*e.cond, frame).truthy()) return eval(*e.then, frame);
    return e.otherwise ? eval(*e.otherwise, frame) : Value::undefined("the inline if had no else branch");
  }

  const TemplateOptions& opt_;
  std::string* out_;
  size_t total_bytes_ = 0;
  int64_t iterations_ = 0;
  int depth_ = 0;
  int macro_depth_ = 0;
  int line_ = 0;
  std::vector<FramePtr> closures_;  // scopes macros were defined in, alive for the render
};

}  // namespace

Result<Template> Template::parse(std::string_view source, TemplateOptions options) {
  LONGCTX_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source, options.lexer));
  LONGCTX_ASSIGN_OR_RETURN(Body body, jinja::parse(tokens));
  return Template(std::make_shared<const Body>(std::move(body)), std::move(options));
}

Result<std::string> Template::render(const Object& context) const {
  std::string out;
  Renderer renderer(options_, &out);
  auto globals = std::make_shared<Frame>(nullptr);
  globals->vars = make_globals();
  auto root = std::make_shared<Frame>(globals);
  root->vars = context;
  try {
    renderer.exec_body(*body_, root);
  } catch (const RaisedError& e) {
    return invalid_argument(fmt::format("template raised an error at line {}: {}",
                                        e.line() ? e.line() : renderer.line(), e.what()));
  } catch (const Error& e) {
    return invalid_argument(
        fmt::format("template error at line {}: {}", e.line() ? e.line() : renderer.line(), e.what()));
  } catch (const std::exception& e) {
    return internal_error(fmt::format("template error at line {}: {}", renderer.line(), e.what()));
  }
  return out;
}

}  // namespace longctx::jinja
