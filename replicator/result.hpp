#pragma once
// Expected failures travel as values: Result<T> holds either a T or an Error that says what went
// wrong, where, and how to fix it. Exceptions are kept for start-up and programmer errors.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace pgferry {

/// What a failure is about; decides the process exit code.
enum class ErrorKind : unsigned char {
  Config,   // The configuration or the command line is wrong: exit code 2.
  Runtime,  // A server, the network or the environment failed: exit code 1.
};

/// A failure a user can act on.
struct Error {
  ErrorKind kind = ErrorKind::Runtime;
  std::string where;    // File and key, table, or connection the failure is about; may be empty.
  std::string message;  // What is wrong, in one sentence.
  std::string fix;      // What to do about it; may be empty.

  /// The whole error as one or more lines of text for a person.
  [[nodiscard]] std::string describe() const {
    std::string out = where.empty() ? message : where + ": " + message;
    if (!fix.empty()) out += "\n  fix: " + fix;
    return out;
  }
};

/// Builds a configuration error.
inline Error config_error(std::string where, std::string message, std::string fix = {}) {
  return Error{ErrorKind::Config, std::move(where), std::move(message), std::move(fix)};
}

/// Builds a runtime error.
inline Error runtime_error(std::string where, std::string message, std::string fix = {}) {
  return Error{ErrorKind::Runtime, std::move(where), std::move(message), std::move(fix)};
}

/// The exit code a command returns for this error.
[[nodiscard]] inline int exit_code_for(const Error& e) noexcept { return e.kind == ErrorKind::Config ? 2 : 1; }

/// Either a value or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

/// A Result with no value: success or an Error.
struct Ok {};
using Status = Result<Ok>;

}  // namespace pgferry
