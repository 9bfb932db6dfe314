// Control and api listen addresses: "host:port" parsing and the loopback test that decides
// whether a listener may run without a token.

#include <arpa/inet.h>
#include <array>
#include <cstring>

#include <evosip/base/strings.hpp>
#include <evosip/control/client.hpp>

namespace evosip::control {

tl::expected<HostPort, std::string> splitHostPort(std::string_view text) {
  HostPort result;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return tl::unexpected(std::string("missing ']'"));
    }
    result.host = std::string(text.substr(1, close - 1));
    rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return tl::unexpected(std::string("expected ':port' after ']'"));
    }
    rest.remove_prefix(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return tl::unexpected(std::string("expected host:port"));
    }
    result.host = std::string(text.substr(0, colon));
    if (result.host.find(':') != std::string::npos) {
      return tl::unexpected(std::string("an IPv6 address must be written in brackets"));
    }
    rest = text.substr(colon + 1);
  }
  if (result.host.empty()) {
    return tl::unexpected(std::string("missing host"));
  }
  if (!parseDecimal(rest, 65535)) {
    return tl::unexpected(std::string("the port must be a number from 0 to 65535"));
  }
  result.port = std::string(rest);
  return result;
}

bool isLoopbackHost(std::string_view host) {
  if (iequals(host, "localhost")) {
    return true;
  }
  if (host.size() >= INET6_ADDRSTRLEN) {
    return false;
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  std::memcpy(text.data(), host.data(), host.size());
  std::array<unsigned char, 16> bytes{};
  if (inet_pton(AF_INET, text.data(), bytes.data()) == 1) {
    return bytes[0] == 127;  // 127.0.0.0/8
  }
  if (inet_pton(AF_INET6, text.data(), bytes.data()) != 1) {
    return false;  // a host name: it may resolve to anything
  }
  static constexpr std::array<unsigned char, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                            0, 0, 0, 0, 0, 0, 0, 1};
  static constexpr std::array<unsigned char, 12> kMapped4{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (bytes == kLoopback6) {
    return true;
  }
  // ::ffff:127.x.y.z
  return std::memcmp(bytes.data(), kMapped4.data(), kMapped4.size()) == 0 && bytes[12] == 127;
}

bool isLoopbackListen(std::string_view listen) {
  auto address = splitHostPort(listen);
  return address && isLoopbackHost(address->host);
}

}  // namespace evosip::control
