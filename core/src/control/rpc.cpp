#include <exception>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <boost/json.hpp>

#include <evosip/control/rpc.hpp>

namespace evosip::control {

namespace json = boost::json;

namespace {

// Deep enough for any real request, shallow enough that a hostile body cannot exhaust the stack.
constexpr std::size_t kMaxDepth = 64;

json::object errorReply(json::value id, int code, std::string message, json::value data = nullptr) {
  json::object error;
  error["code"] = code;
  error["message"] = std::move(message);
  if (!data.is_null()) {
    error["data"] = std::move(data);
  }
  json::object reply;
  reply["jsonrpc"] = "2.0";
  reply["error"] = std::move(error);
  reply["id"] = std::move(id);
  return reply;
}

bool isValidId(const json::value& id) {
  return id.is_string() || id.is_number() || id.is_null();
}

}  // namespace

RpcRegistry::RpcRegistry() {
  add("rpc.methods", [this](const json::value&) -> RpcResult {
    json::array names;
    for (const std::string& name : methods()) {
      names.emplace_back(name);
    }
    return json::value(std::move(names));
  });
}

void RpcRegistry::add(std::string method, Handler handler) {
  if (method.empty()) {
    throw std::invalid_argument("RPC method name must not be empty");
  }
  if (!handler) {
    throw std::invalid_argument("RPC method '" + method + "' has no handler");
  }
  std::unique_lock lock(mutex_);
  if (handlers_.count(method) != 0) {
    throw std::invalid_argument("RPC method '" + method + "' is already registered");
  }
  handlers_.emplace(std::move(method), std::move(handler));
}

std::vector<std::string> RpcRegistry::methods() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> names;
  names.reserve(handlers_.size());
  for (const auto& entry : handlers_) {
    names.push_back(entry.first);
  }
  return names;
}

json::value RpcRegistry::handleOne(const json::value& request, bool& reply) const {
  reply = true;  // invalid requests are answered even without an id (JSON-RPC 2.0 section 5)
  if (!request.is_object()) {
    return errorReply(nullptr, kInvalidRequest, "Invalid Request: not an object");
  }
  const json::object& object = request.get_object();

  const json::value* id = object.if_contains("id");
  if (id != nullptr && !isValidId(*id)) {
    return errorReply(nullptr, kInvalidRequest, "Invalid Request: id must be a string or number");
  }
  json::value replyId = id != nullptr ? *id : json::value(nullptr);

  const json::value* version = object.if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
    return errorReply(replyId, kInvalidRequest, "Invalid Request: jsonrpc must be \"2.0\"");
  }
  const json::value* method = object.if_contains("method");
  if (method == nullptr || !method->is_string()) {
    return errorReply(replyId, kInvalidRequest, "Invalid Request: method must be a string");
  }
  const json::value* params = object.if_contains("params");
  if (params != nullptr && !params->is_object() && !params->is_array()) {
    return errorReply(replyId, kInvalidRequest,
                      "Invalid Request: params must be an object or an array");
  }

  // A notification (no id) gets no reply, whatever happens from here on.
  reply = id != nullptr;
  const std::string_view name = method->get_string();

  Handler handler;
  {
    std::shared_lock lock(mutex_);
    auto it = handlers_.find(name);
    if (it != handlers_.end()) {
      handler = it->second;
    }
  }
  if (!handler) {
    json::object data;
    data["method"] = name;
    return errorReply(replyId, kMethodNotFound, "Method not found: '" + std::string(name) + "'",
                      std::move(data));
  }

  static const json::value kNoParams;
  RpcResult result;
  try {
    result = handler(params != nullptr ? *params : kNoParams);
  } catch (const std::exception& e) {
    return errorReply(replyId, kInternalError, std::string("Internal error: ") + e.what());
  } catch (...) {
    return errorReply(replyId, kInternalError, "Internal error");
  }
  if (!result) {
    RpcError& error = result.error();
    return errorReply(replyId, error.code, std::move(error.message), std::move(error.data));
  }
  json::object success;
  success["jsonrpc"] = "2.0";
  success["result"] = std::move(*result);
  success["id"] = std::move(replyId);
  return success;
}

std::string RpcRegistry::handle(std::string_view requestBody) const {
  try {
    json::parse_options options;
    options.max_depth = kMaxDepth;
    boost::system::error_code ec;
    json::value document = json::parse(requestBody, ec, {}, options);
    if (ec) {
      return json::serialize(errorReply(nullptr, kParseError, "Parse error: " + ec.message()));
    }
    bool reply = false;
    if (!document.is_array()) {
      json::value single = handleOne(document, reply);
      return reply ? json::serialize(single) : std::string();
    }
    const json::array& batch = document.get_array();
    if (batch.empty()) {
      return json::serialize(errorReply(nullptr, kInvalidRequest, "Invalid Request: empty batch"));
    }
    json::array replies;
    for (const json::value& request : batch) {
      json::value one = handleOne(request, reply);
      if (reply) {
        replies.push_back(std::move(one));
      }
    }
    return replies.empty() ? std::string() : json::serialize(replies);
  } catch (const std::exception& e) {
    // Only allocation failure or a handler result that cannot be serialized gets here.
    return json::serialize(
        errorReply(nullptr, kInternalError, std::string("Internal error: ") + e.what()));
  }
}

}  // namespace evosip::control
