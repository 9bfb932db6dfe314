// libFuzzer target: what the provisioning API and the edge take from the outside besides SIP:
// domain, user name and password fields, paging parameters, and the edge's flow tokens (the user
// part of its Record-Route/Path URIs, which any client can rewrite). The input is split at the
// first two NUL bytes into three fields.
#include <cstdint>
#include <string_view>

#include <evosip/api/validation.hpp>
#include <evosip/edge/flow_token.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (auto& p : parts) {
    const size_t nul = text.find('\0');
    p = text.substr(0, nul);
    text = nul == std::string_view::npos ? std::string_view() : text.substr(nul + 1);
  }
  namespace api = evosip::api;
  if (auto d = api::normalizeDomain(parts[0])) {
    auto again = api::normalizeDomain(*d);  // normal form is a fixed point
    evosip::fuzz::check(again && *again == *d);
  }
  (void)api::validateUsername(parts[1]);
  (void)api::validatePassword(parts[2]);
  if (auto p = api::parsePaging(parts[0], parts[1])) {
    evosip::fuzz::check(p->page >= 1 && p->perPage >= 1 && p->perPage <= api::kMaxPerPage &&
                        p->offset() >= 0);
  }
  static const evosip::edge::FlowTokenCodec codec("fuzz");
  (void)codec.decode(parts[0]);
  return 0;
}
