// libFuzzer target: the SDP parser, the attribute value parsers and the relay rewriter on
// arbitrary text. What parses is rewritten (plain and with every option); the result must
// parse again with the relay's address and ports in place.
#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/sdp/sdp.hpp>

#include "fuzz_check.hpp"

using namespace evosip::sdp;
using evosip::fuzz::check;

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void checkAttributes(const std::vector<Attribute>& attrs, std::string_view text) {
  for (const auto& a : attrs) {
    check(inside(a.name, text) && inside(a.value, text) && !a.name.empty());
    if (a.name == "rtpmap") {
      (void)parseRtpmap(a.value);
    } else if (a.name == "fmtp") {
      (void)parseFmtp(a.value);
    } else if (a.name == "candidate") {
      if (auto c = parseCandidate(a.value)) {
        check(inside(c->address, text) && inside(c->extensions, text));
      }
    }
  }
}

// The rewriter adds lines (c=, a=rtcp, a=<direction>); its output may exceed the input limits.
const Limits kRoomy{1 << 22, 1 << 16, 1 << 10, 1 << 12};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parseRtpmap(text);
  (void)parseFmtp(text);
  (void)parseRtcp(text);
  (void)parseCandidate(text);

  auto sd = parse(text);
  if (!sd) {
    return 0;
  }
  check(inside(sd->origin.address, text) && inside(sd->sessionName, text));
  checkAttributes(sd->attributes, text);
  for (const auto& m : sd->media) {
    check(!m.formats.empty() && m.portCount >= 1);
    check(!m.lines.empty() && m.lines[0].type == 'm');
    checkAttributes(m.attributes, text);
    (void)effectiveConnection(*sd, m);
    (void)effectiveRtcpPort(m);
    (void)effectiveDirection(*sd, m);
    (void)isOnHold(*sd, m);
  }

  // No options: the same lines with CRLF endings, which parse to the same shape.
  auto plain = rewrite(*sd, RewriteOptions{});
  check(plain.has_value());
  auto plainAgain = parse(*plain, kRoomy);
  check(plainAgain.has_value() && plainAgain->media.size() == sd->media.size());

  // Everything a relay does.
  RewriteOptions opt;
  for (size_t i = 0; i < sd->media.size(); ++i) {
    opt.media.push_back(
        {i % 2 == 0 ? "192.0.2.1" : "2001:db8::1", static_cast<uint16_t>(30000 + 2 * i), 0});
  }
  opt.replaceOrigin = true;
  opt.bumpOriginVersion = true;
  opt.removeIce = true;
  opt.direction = Direction::kSendRecv;
  auto relayed = rewrite(*sd, opt);
  if (sd->media.empty()) {
    check(!relayed.has_value());  // replace origin without any address to take
    return 0;
  }
  check(relayed.has_value());
  auto again = parse(*relayed, kRoomy);
  check(again.has_value() && again->media.size() == sd->media.size());
  for (size_t i = 0; i < again->media.size(); ++i) {
    const auto& m = again->media[i];
    const Connection* c = effectiveConnection(*again, m);
    check(c != nullptr && c->address == opt.media[i].address);
    check(m.port == (sd->media[i].port == 0 ? 0 : opt.media[i].rtpPort));
    check(effectiveDirection(*again, m) == Direction::kSendRecv);
    for (const auto& a : m.attributes) {
      check(!isIceAttribute(a.name));
    }
  }
  return 0;
}
