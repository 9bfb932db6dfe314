// libFuzzer target: the rules that say where a response goes (Via received / rport / sent-by),
// numeric hosts, and hex numbers, on arbitrary text.
#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/base/hex.hpp>
#include <evosip/sip/address.hpp>
#include <evosip/sip/response_address.hpp>
#include <evosip/transport/address.hpp>
#include <evosip/transport/response_destination.hpp>

#include "fuzz_check.hpp"

using namespace evosip;
using evosip::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto via = sip::parseVia(text)) {
    const sip::ViaAddress to = sip::responseAddress(*via);
    check(!to.host.empty() && to.port != 0);
    check(to.host.data() >= text.data() && to.host.data() + to.host.size() <= text.data() + size);
    if (auto rport = sip::rportValue(*via)) {
      check(*rport == to.port);
    }
    if (auto next = transport::nextViaDestination(*via)) {
      check(next->remote.port == to.port);
    }
    transport::Source src;
    src.remote.port = 4000;
    const transport::Destination back = transport::responseDestination(src, *via);
    check(back.remote.ip == src.remote.ip && back.remote.port != 0);
  }
  if (auto ip = transport::parseNumericHost(text)) {
    check(!text.empty());
    // What is accepted reads back as the same address.
    auto again = transport::parseNumericHost(ip->to_string());
    check(again && *again == *ip);
  }
  if (auto v = parseHex(text)) {
    std::string back;
    appendHex(back, *v, static_cast<int>(text.size()));
    check(back == text);
  }
  return 0;
}
