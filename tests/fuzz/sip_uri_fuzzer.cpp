// libFuzzer target: URI, name-addr, Via, CSeq and parameter parsers on arbitrary text.
#include <cstdint>
#include <string_view>

#include <evosip/sip/address.hpp>
#include <evosip/sip/uri.hpp>

#include "fuzz_check.hpp"

using namespace evosip::sip;
using evosip::fuzz::check;

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void checkUri(const Uri& u, std::string_view text) {
  check(inside(u.schemeText, text) && inside(u.user, text) && inside(u.password, text) &&
        inside(u.host, text) && inside(u.hostText, text) && inside(u.params.raw(), text) &&
        inside(u.headers, text));
  if (u.hostType == HostType::kIpv4) {
    check(isIpv4(u.host));
  }
  (void)u.looseRouting();
  (void)u.portOrDefault();
  u.params.forEach([&](const ParamList::Param& p) {
    check(inside(p.name, text) && inside(p.value, text));
    return true;
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto u = parseUri(text)) {
    checkUri(*u, text);
  }
  if (auto na = parseNameAddr(text)) {
    if (!na->star) {
      checkUri(na->uri, text);
    }
    (void)na->tag();
  }
  for (auto kind : {HopText::kRoute, HopText::kUri}) {
    if (auto hop = parseHopUri(text, kind)) {
      checkUri(*hop, text);
    }
  }
  if (auto via = parseVia(text)) {
    check(inside(via->host, text) && via->hostType != HostType::kNone);
    (void)via->branch();
    (void)via->rport();
    (void)via->rfc3261Branch();
  }
  (void)parseCSeq(text);
  (void)isIpv4(text);
  (void)isIpv6(text);
  ValueSplitter split(text);
  while (auto v = split.next()) {
    check(inside(*v, text) && !v->empty());
  }
  ParamList(text).forEach([](const ParamList::Param&) { return true; });
  (void)stripQuotes(text);
  return 0;
}
