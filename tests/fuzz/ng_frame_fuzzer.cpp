// libFuzzer target: rtpengine ng framing ("<cookie> <bencoded dictionary>") on arbitrary bytes.
// A datagram that parses has a cookie of 1..kMaxCookie bytes and a dictionary body, and the
// reply framed with its cookie parses again with the same cookie and the same body.
#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/bencode/ng_frame.hpp>

#include "fuzz_check.hpp"

using namespace evosip::bencode;
using evosip::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = parseNgDatagram(text);
  if (!m) {
    return 0;
  }
  check(!m->cookie.empty() && m->cookie.size() <= kMaxCookie);
  check(m->cookie.find(' ') == std::string_view::npos);
  check(m->body.isDict());
  (void)m->body.string("command");
  (void)m->body.stringList("flags");
  const std::string reply = formatNgReply(m->cookie, m->body);
  auto again = parseNgDatagram(reply);
  check(again.has_value() && again->cookie == m->cookie);
  check(again.has_value() && encode(again->body) == encode(m->body));
  return 0;
}
