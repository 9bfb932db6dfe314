#include <optional>

#include <evosip/base/strings.hpp>
#include <evosip/sip/framing.hpp>

namespace evosip::sip {

namespace {

constexpr std::string_view kCrlfCrlf = "\r\n\r\n";

bool isWsp(char c) {
  return c == ' ' || c == '\t';
}

// Content-Length of a complete header block (start line excluded). nullopt when it is missing,
// not a number, or given twice with different values.
std::optional<uint64_t> findContentLength(std::string_view block, bool& invalid) {
  std::optional<uint64_t> length;
  size_t pos = block.find("\r\n");
  if (pos == std::string_view::npos) {
    return std::nullopt;
  }
  pos += 2;  // skip the start line
  while (pos < block.size()) {
    size_t eol = block.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      eol = block.size();
    }
    std::string_view line = block.substr(pos, eol - pos);
    size_t next = eol + 2;
    // Folded continuation lines (CRLF + SP/HT) belong to this header's value.
    while (next < block.size() && isWsp(block[next])) {
      size_t more = block.find("\r\n", next);
      if (more == std::string_view::npos) {
        more = block.size();
      }
      next = more + 2;
    }
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      while (!name.empty() && isWsp(name.back())) {
        name.remove_suffix(1);
      }
      if (iequals(name, "content-length") || iequals(name, "l")) {
        size_t valueBegin = pos + colon + 1;
        size_t valueEnd = std::min(next, block.size());
        std::string_view value = trim(block.substr(valueBegin, valueEnd - valueBegin));
        auto v = parseDecimal(value);
        if (!v || (length && *length != *v)) {
          invalid = true;
          return std::nullopt;
        }
        length = v;
      }
    }
    pos = next;
  }
  return length;
}

}  // namespace

Result<StreamFrame> frameStream(std::string_view data, size_t maxSize) {
  StreamFrame out;
  if (data.empty()) {
    return out;  // kNeedMore
  }
  // Keep-alives and stray line ends between messages.
  if (data.front() == '\r' || data.front() == '\n') {
    if (data.size() >= 4 && data.substr(0, 4) == kCrlfCrlf) {
      out.frame = {Frame::Kind::kKeepAlive, 4};
      out.pong = true;
      return out;
    }
    if (data.size() < 4 && kCrlfCrlf.substr(0, data.size()) == data) {
      return out;  // could still become a CRLF CRLF ping
    }
    size_t skip = (data.size() >= 2 && data[0] == '\r' && data[1] == '\n') ? 2 : 1;
    out.frame = {Frame::Kind::kKeepAlive, skip};
    return out;
  }

  size_t end = data.find(kCrlfCrlf);
  if (end == std::string_view::npos) {
    // Leave room for a CRLF CRLF split between this read and the next.
    if (data.size() > maxSize) {
      return makeError(Errc::kTooLarge, "SIP header block exceeds the size limit");
    }
    return out;
  }
  size_t headerBytes = end + kCrlfCrlf.size();
  if (headerBytes > maxSize) {
    return makeError(Errc::kTooLarge, "SIP header block exceeds the size limit");
  }
  bool invalid = false;
  auto length = findContentLength(data.substr(0, end + 2), invalid);
  if (invalid) {
    return makeError(Errc::kParse, "invalid Content-Length");
  }
  if (!length) {
    return makeError(Errc::kParse, "Content-Length is mandatory on stream transports");
  }
  if (*length > maxSize || headerBytes + *length > maxSize) {
    return makeError(Errc::kTooLarge, "SIP message exceeds the size limit");
  }
  size_t total = headerBytes + static_cast<size_t>(*length);
  if (data.size() < total) {
    return out;  // body incomplete
  }
  out.frame = {Frame::Kind::kMessage, total};
  return out;
}

}  // namespace evosip::sip
