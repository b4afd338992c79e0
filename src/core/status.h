// Status and Result<T>: errors as values at the boundaries (I/O, parsing, user input).
// A message says what was wrong, where (file, field, flag, request) and what would be right.
#pragma once

#include <cassert>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace longctx {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad user input: a flag, a request field, a token id
  kNotFound,         // a file, a tensor, a key
  kDataLoss,         // a corrupt or truncated file
  kUnimplemented,    // a valid input this build does not handle (e.g. an architecture)
  kOutOfRange,
  kResourceExhausted,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: <message>"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status data_loss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status out_of_range(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Thrown only where the caller cannot go on (see STYLE.md §6); carries a Status.
class StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status s) : std::runtime_error(s.to_string()), status_(std::move(s)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.is_ok()); }  // NOLINT

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }
  T& operator*() & { return checked(); }

 private:
  T& checked() {
    if (!value_) throw StatusError(status_);
    return *value_;
  }
  Status status_;  // OK exactly when value_ holds a value
  std::optional<T> value_;
};

inline Status status_of(Status s) { return s; }
template <typename T>
Status status_of(const Result<T>& r) {
  return r.status();
}

}  // namespace longctx

// Propagate a failed Status/Result from the current function.
#define LONGCTX_RETURN_IF_ERROR(expr)                         \
  do {                                                        \
    ::longctx::Status _lc_st = ::longctx::status_of((expr)); \
    if (!_lc_st.is_ok()) return _lc_st;                       \
  } while (0)

#define LONGCTX_CONCAT_INNER(a, b) a##b
#define LONGCTX_CONCAT(a, b) LONGCTX_CONCAT_INNER(a, b)
// LONGCTX_ASSIGN_OR_RETURN(auto x, make_x()): binds the value or returns the error.
#define LONGCTX_ASSIGN_OR_RETURN(lhs, expr) \
  LONGCTX_ASSIGN_OR_RETURN_IMPL(LONGCTX_CONCAT(_lc_res_, __LINE__), lhs, expr)
#define LONGCTX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.is_ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
