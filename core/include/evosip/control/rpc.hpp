#pragma once
// JSON-RPC 2.0 dispatch for POST /rpc (DESIGN.md section 4). The parser never throws and never
// crashes on any input: malformed JSON, wrong shapes, batches, notifications, throwing handlers.

#include <functional>
#include <map>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>
#include <tl/expected.hpp>

namespace evosip::control {

// Standard JSON-RPC error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

struct RpcError {
  int code = kInternalError;
  std::string message;
  boost::json::value data;  // null -> no "data" member in the reply
};

using RpcResult = tl::expected<boost::json::value, RpcError>;

// Shorthand for a handler's "invalid params" answer.
inline tl::unexpected<RpcError> invalidParams(std::string message) {
  return tl::unexpected<RpcError>(RpcError{kInvalidParams, std::move(message), nullptr});
}

class RpcRegistry {
 public:
  // params is the request's "params" (an object or array), or null when it had none.
  using Handler = std::function<RpcResult(const boost::json::value& params)>;

  // Registers "rpc.methods", which returns the sorted list of method names.
  RpcRegistry();

  // Register methods before the control server starts. Throws std::invalid_argument for an
  // empty or already registered name.
  void add(std::string method, Handler handler);

  // Handles one HTTP request body: a request, a notification or a batch. Returns the reply body,
  // or "" when nothing must be sent back (only notifications). Handlers run on the calling
  // thread; an exception thrown by one becomes a -32603 reply.
  std::string handle(std::string_view requestBody) const;

  // Sorted method names, "rpc.methods" included.
  std::vector<std::string> methods() const;

 private:
  boost::json::value handleOne(const boost::json::value& request, bool& reply) const;

  mutable std::shared_mutex mutex_;
  std::map<std::string, Handler, std::less<>> handlers_;
};

}  // namespace evosip::control
