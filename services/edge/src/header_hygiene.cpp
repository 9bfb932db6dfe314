#include <evosip/base/byte_scan.hpp>
#include <evosip/edge/header_hygiene.hpp>

namespace evosip::edge {
namespace {

// Offset of the first forbidden byte in [begin, end) of buf, or end. Every CR the parser let
// through is either a line end (CRLF) or a lone CR; LF never comes without its CR.
size_t firstForbidden(std::string_view buf, size_t begin, size_t end) {
  size_t i = begin;
  while ((i = findControlByte(buf, i, end)) < end) {
    if (buf[i] == '\r' && i + 1 < buf.size() && buf[i + 1] == '\n') {
      i += 2;  // a line end, or the CRLF of a folded line (the parser checked what follows it)
      continue;
    }
    return i;
  }
  return end;
}

}  // namespace

std::optional<std::string_view> findControlCharacter(const sip::Message& msg) {
  const std::string_view buf = msg.buffer();
  const size_t end = msg.headersEnd();
  const size_t bad = firstForbidden(buf, msg.startOffset(), end);
  if (bad == end) {
    return std::nullopt;
  }
  for (const auto& h : msg.headers()) {
    if (bad >= h.begin && bad < h.end) {
      return h.name;
    }
  }
  return std::string_view("start line");
}

}  // namespace evosip::edge
