// libFuzzer target: address access list entries (media.ng_allow, app.routers) on arbitrary text.
// An entry that parses prints as a network that parses back to itself and contains its own
// network address.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/transport/address_acl.hpp>

#include "fuzz_check.hpp"

using evosip::fuzz::check;
using namespace evosip::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = parseAddressRange(text);
  if (r) {
    check(r->prefix <= (r->v6 ? 128 : 32));
    auto again = parseAddressRange(r->str());
    check(again.has_value() && *again == *r);
    const std::string printed = r->str();
    const std::string host = printed.substr(0, printed.find('/'));
    check(r->contains(boost::asio::ip::make_address(host)));
  }
  // Comma-separated, as an environment variable gives a list.
  std::vector<std::string> entries;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = text.find(',', at);
    entries.emplace_back(text.substr(at, comma == std::string_view::npos ? comma : comma - at));
    if (comma == std::string_view::npos) {
      break;
    }
    at = comma + 1;
  }
  if (auto acl = AddressAcl::parse(entries)) {
    check(acl->ranges().size() == entries.size());
    for (const auto& range : acl->ranges()) {
      check(AddressAcl::parse({range.str()}).has_value());
    }
  }
  return 0;
}
