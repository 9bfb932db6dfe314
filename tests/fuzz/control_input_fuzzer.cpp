// libFuzzer target: what the control servers and the api take from whoever reaches their
// ports before a token is checked, and the listen addresses that decide whether a token is
// required. The input is split at the first NUL byte: the first part is used as a listen
// address, an Authorization header value and a JSON-RPC body; the second as the token.
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include <evosip/control/client.hpp>
#include <evosip/control/http_message.hpp>
#include <evosip/control/rpc.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace control = evosip::control;
  using evosip::fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const size_t nul = text.find('\0');
  const std::string_view input = text.substr(0, nul);
  const std::string token(nul == std::string_view::npos ? std::string_view()
                                                        : text.substr(nul + 1));

  // Listen addresses: loopback only when the host part parses as one.
  if (auto address = control::splitHostPort(input)) {
    check(!address->host.empty());
    check(control::isLoopbackListen(input) == control::isLoopbackHost(address->host));
  } else {
    check(!control::isLoopbackListen(input));
  }

  // Authorization headers: only the exact token opens, and the 401 never repeats what was sent.
  control::HttpRequest request;
  request.headers.emplace_back("Authorization", std::string(input));
  const bool matches = control::bearerTokenMatches(request, token);
  if (token.empty()) {
    check(matches);
  }
  control::HttpResponse denied = control::unauthorizedResponse(request);
  check(denied.status == 401 && denied.body == "unauthorized\n");
  const std::string challenge = denied.header("www-authenticate");
  check(challenge == "Bearer realm=\"evosip\"" ||
        challenge == "Bearer realm=\"evosip\", error=\"invalid_token\"");

  // JSON-RPC bodies: always a reply that is JSON (or nothing for notifications), never a throw.
  static const control::RpcRegistry* registry = [] {
    auto* r = new control::RpcRegistry();
    r->add("echo", [](const boost::json::value& params) -> control::RpcResult { return params; });
    r->add("fail", [](const boost::json::value&) -> control::RpcResult {
      return control::invalidParams("no");
    });
    return r;
  }();
  const std::string reply = registry->handle(input);
  if (!reply.empty()) {
    boost::system::error_code ec;
    (void)boost::json::parse(reply, ec);
    check(!ec);
  }
  return 0;
}
