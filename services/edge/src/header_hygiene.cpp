#include <evosip/edge/header_hygiene.hpp>

namespace evosip::edge {
namespace {

constexpr bool isControl(unsigned char c) {
  return (c < 0x20 && c != '\t') || c == 0x7f;
}

// Offset of the first forbidden byte in [begin, end) of buf, or end. Every CR the parser let
// through is either a line end (CRLF) or a lone CR; LF never comes without its CR.
size_t firstForbidden(std::string_view buf, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    const auto c = static_cast<unsigned char>(buf[i]);
    if (!isControl(c)) {
      continue;
    }
    if (c == '\r' && i + 1 < buf.size() && buf[i + 1] == '\n') {
      ++i;  // a line end, or the CRLF of a folded line (the parser checked what follows it)
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
