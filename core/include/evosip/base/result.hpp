#pragma once
// The one result type for untrusted input and runtime failures (STYLE.md, error tier 1).

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace evosip {

enum class Errc {
  kParse,        // malformed input
  kTooLarge,     // input exceeds a size limit
  kIncomplete,   // more bytes needed (stream framing)
  kInvalid,      // well-formed but not acceptable
  kNotFound,
  kUnavailable,  // a peer or store cannot be reached
  kTimeout,
  kIo,
};

struct Error {
  Errc code = Errc::kParse;
  std::string message;
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> makeError(Errc code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace evosip
