// libFuzzer target: DNS response messages (the resolver's answers from a name server) on
// arbitrary bytes. Whatever parses holds only records of the used types with sane fields, and the
// address walk over CNAMEs ends.
#include <cstdint>
#include <span>

#include <evosip/transport/resolver.hpp>

#include "fuzz_check.hpp"

using evosip::fuzz::check;
using namespace evosip::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto answer = parseDnsAnswer(std::span<const uint8_t>(data, size));
  if (!answer) {
    return 0;
  }
  check(answer->rcode >= 0 && answer->rcode < 16);
  for (const auto* section : {&answer->answers, &answer->additional}) {
    for (const auto& rec : *section) {
      check(rec.name.size() <= 1025);
      if (rec.type == DnsRecord::Type::kA) {
        check(rec.address.is_v4());
      } else if (rec.type == DnsRecord::Type::kAaaa) {
        check(rec.address.is_v6());
      }
    }
  }
  for (const auto& rec : answer->answers) {
    uint32_t ttl = UINT32_MAX;
    const auto addresses = addressesOf(*answer, rec.name, ttl);
    check(addresses.empty() || ttl != UINT32_MAX);
  }
  return 0;
}
