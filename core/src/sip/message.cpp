#include <cstring>
#include <span>

#include <evosip/base/strings.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/sip/params.hpp>

#include "lex.hpp"

namespace evosip::sip {

namespace {

constexpr std::string_view kVersion = "SIP/2.0";

// Offset of the CR of the first CRLF at or after `from`; kNoLine when the buffer ends first,
// kBareLf when a LF without CR comes first.
constexpr size_t kNoLine = std::string_view::npos;
constexpr size_t kBareLf = std::string_view::npos - 1;

size_t findCrlf(std::string_view buf, size_t from) {
  if (from >= buf.size()) {
    return kNoLine;
  }
  const void* p = std::memchr(buf.data() + from, '\n', buf.size() - from);
  if (p == nullptr) {
    return kNoLine;
  }
  const size_t lf = static_cast<size_t>(static_cast<const char*>(p) - buf.data());
  return (lf > from && buf[lf - 1] == '\r') ? lf - 1 : kBareLf;
}

bool hasControlOrSpace(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return true;
    }
  }
  return false;
}

// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
Result<void> parseStatusLine(std::string_view line, int& statusCode, std::string_view& reason) {
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos) {
    return makeError(Errc::kParse, "bad status line");
  }
  if (!iequals(line.substr(0, sp), kVersion)) {
    return makeError(Errc::kInvalid, "unsupported SIP version");
  }
  const std::string_view rest = line.substr(sp + 1);
  if (rest.size() < 3 || !lex::isDigit(rest[0]) || !lex::isDigit(rest[1]) ||
      !lex::isDigit(rest[2]) || (rest.size() > 3 && rest[3] != ' ')) {
    return makeError(Errc::kParse, "bad status code");
  }
  const int code = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
  if (code < 100 || code > 699) {
    return makeError(Errc::kParse, "status code out of range");
  }
  statusCode = code;
  reason = rest.size() > 4 ? rest.substr(4) : rest.substr(rest.size());
  return {};
}

// Request-Line = Method SP Request-URI SP SIP-Version (single SPs, no LWS).
Result<void> parseRequestLine(std::string_view line, std::string_view& methodText,
                              std::string_view& requestUri) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2) {
    return makeError(Errc::kParse, "bad request line");
  }
  methodText = line.substr(0, sp1);
  if (!lex::isToken(methodText)) {
    return makeError(Errc::kParse, "bad method");
  }
  requestUri = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (requestUri.empty() || hasControlOrSpace(requestUri)) {
    return makeError(Errc::kParse, "bad Request-URI");
  }
  const std::string_view version = line.substr(sp2 + 1);
  if (!iequals(version, kVersion)) {
    return makeError(istartsWith(version, "SIP/") ? Errc::kInvalid : Errc::kParse,
                     "unsupported SIP version");
  }
  return {};
}

// The CRLF that ends a header value starting at `scan`, past folded continuation lines.
Result<size_t> headerValueEnd(std::string_view buffer, size_t scan) {
  while (true) {
    const size_t crlf = findCrlf(buffer, scan);
    if (crlf == kNoLine) {
      return makeError(Errc::kParse, "missing blank line after the headers");
    }
    if (crlf == kBareLf) {
      return makeError(Errc::kParse, "bare LF in header line");
    }
    if (crlf + 2 < buffer.size() && lex::isWsp(buffer[crlf + 2])) {
      scan = crlf + 2;  // folded continuation line
      continue;
    }
    return crlf;
  }
}

// The header line at `pos`: a token name, optional whitespace, ':', a value that may fold.
Result<HeaderField> parseHeaderLine(std::string_view buffer, size_t pos) {
  const size_t lineBegin = pos;
  size_t n = pos;
  while (n < buffer.size() && lex::isTokenChar(buffer[n])) {
    ++n;
  }
  if (n == pos) {
    return makeError(Errc::kParse, "header line without a token name");
  }
  const std::string_view name = buffer.substr(pos, n - pos);
  while (n < buffer.size() && lex::isWsp(buffer[n])) {
    ++n;
  }
  if (n >= buffer.size() || buffer[n] != ':') {
    return makeError(Errc::kParse, "header line without ':'");
  }
  const size_t valueBegin = n + 1;
  auto valueEnd = headerValueEnd(buffer, valueBegin);
  if (!valueEnd) {
    return tl::unexpected(valueEnd.error());
  }
  HeaderField h;
  h.id = headerIdFromName(name);
  h.name = name;
  h.value = lex::trimLws(buffer.substr(valueBegin, *valueEnd - valueBegin));
  if (h.value.empty()) {
    h.value = buffer.substr(*valueEnd, 0);
  }
  h.begin = static_cast<uint32_t>(lineBegin);
  h.end = static_cast<uint32_t>(*valueEnd + 2);
  return h;
}

// The body: Content-Length bytes after the blank line (at most one Content-Length, never more
// than the bytes present), else the rest of the buffer.
Result<std::string_view> bodyOf(std::string_view buffer, size_t bodyBegin,
                                std::span<const HeaderField> headers) {
  const size_t available = buffer.size() - bodyBegin;
  const HeaderField* cl = nullptr;
  for (const HeaderField& h : headers) {
    if (h.id == HeaderId::kContentLength) {
      if (cl != nullptr) {
        return makeError(Errc::kParse, "more than one Content-Length");
      }
      cl = &h;
    }
  }
  if (cl == nullptr) {
    return buffer.substr(bodyBegin);
  }
  auto len = parseDecimal(cl->value, UINT32_MAX);
  if (!len) {
    return makeError(Errc::kParse, "bad Content-Length");
  }
  if (*len > available) {
    return makeError(Errc::kParse, "Content-Length larger than the bytes present");
  }
  return buffer.substr(bodyBegin, *len);
}

}  // namespace

Result<Message> Message::parse(std::string_view buffer, const ParseLimits& limits) {
  if (buffer.size() > limits.maxSize || buffer.size() >= UINT32_MAX) {
    return makeError(Errc::kTooLarge, "message larger than the size limit");
  }
  Message m;
  m.buffer_ = buffer;
  size_t pos = 0;
  // RFC 3261 7.5: CRLFs before the start line are ignored.
  while (pos + 1 < buffer.size() && buffer[pos] == '\r' && buffer[pos + 1] == '\n') {
    pos += 2;
  }
  m.start_ = static_cast<uint32_t>(pos);

  const size_t eol = findCrlf(buffer, pos);
  if (eol >= buffer.size()) {
    return makeError(Errc::kParse, "start line not terminated by CRLF");
  }
  const std::string_view line = buffer.substr(pos, eol - pos);
  const bool response = istartsWith(line, "SIP/");
  auto start = response ? parseStatusLine(line, m.statusCode_, m.reason_)
                        : parseRequestLine(line, m.methodText_, m.requestUri_);
  if (!start) {
    return tl::unexpected(start.error());
  }
  if (!response) {
    m.method_ = methodFromName(m.methodText_);
  }

  pos = eol + 2;
  m.headersBegin_ = static_cast<uint32_t>(pos);
  while (!(pos + 1 < buffer.size() && buffer[pos] == '\r' && buffer[pos + 1] == '\n')) {
    if (pos >= buffer.size()) {
      return makeError(Errc::kParse, "missing blank line after the headers");
    }
    auto h = parseHeaderLine(buffer, pos);
    if (!h) {
      return tl::unexpected(h.error());
    }
    if (m.headers_.size() >= limits.maxHeaders) {
      return makeError(Errc::kTooLarge, "too many header fields");
    }
    pos = h->end;
    m.headers_.push_back(*h);
  }
  m.headersEnd_ = static_cast<uint32_t>(pos);

  auto body = bodyOf(buffer, pos + 2, {m.headers_.data(), m.headers_.size()});
  if (!body) {
    return tl::unexpected(body.error());
  }
  m.body_ = *body;
  return m;
}

uint32_t Message::requestUriOffset() const {
  return requestUri_.empty() ? 0 : static_cast<uint32_t>(requestUri_.data() - buffer_.data());
}

const HeaderField* Message::find(HeaderId id) const {
  for (const HeaderField& h : headers_) {
    if (h.id == id) {
      return &h;
    }
  }
  return nullptr;
}

const HeaderField* Message::find(std::string_view name) const {
  const HeaderId id = headerIdFromName(name);
  if (id != HeaderId::kOther) {
    return find(id);
  }
  for (const HeaderField& h : headers_) {
    if (h.id == HeaderId::kOther && iequals(h.name, name)) {
      return &h;
    }
  }
  return nullptr;
}

size_t Message::count(HeaderId id) const {
  size_t n = 0;
  for (const HeaderField& h : headers_) {
    n += h.id == id ? 1 : 0;
  }
  return n;
}

std::string_view Message::callId() const {
  const HeaderField* h = find(HeaderId::kCallId);
  return h != nullptr ? h->value : std::string_view{};
}

Result<Via> Message::topVia() const {
  const HeaderField* h = find(HeaderId::kVia);
  if (h == nullptr) {
    return makeError(Errc::kNotFound, "no Via");
  }
  ValueSplitter split(h->value);
  auto first = split.next();
  if (!first) {
    return makeError(Errc::kParse, "empty or malformed Via");
  }
  return parseVia(*first);
}

Result<CSeq> Message::cseq() const {
  const HeaderField* h = find(HeaderId::kCSeq);
  if (h == nullptr) {
    return makeError(Errc::kNotFound, "no CSeq");
  }
  return parseCSeq(h->value);
}

Result<NameAddr> Message::from() const {
  const HeaderField* h = find(HeaderId::kFrom);
  if (h == nullptr) {
    return makeError(Errc::kNotFound, "no From");
  }
  return parseNameAddr(h->value);
}

Result<NameAddr> Message::to() const {
  const HeaderField* h = find(HeaderId::kTo);
  if (h == nullptr) {
    return makeError(Errc::kNotFound, "no To");
  }
  return parseNameAddr(h->value);
}

std::optional<uint32_t> Message::maxForwards() const {
  const HeaderField* h = find(HeaderId::kMaxForwards);
  if (h == nullptr) {
    return std::nullopt;
  }
  auto v = parseDecimal(h->value, 255);
  if (!v) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(*v);
}

std::optional<uint32_t> Message::contentLength() const {
  const HeaderField* h = find(HeaderId::kContentLength);
  if (h == nullptr) {
    return std::nullopt;
  }
  auto v = parseDecimal(h->value, UINT32_MAX);
  if (!v) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(*v);
}

std::optional<uint32_t> Message::expires() const {
  const HeaderField* h = find(HeaderId::kExpires);
  if (h == nullptr) {
    return std::nullopt;
  }
  auto v = parseDecimal(h->value, UINT32_MAX);
  if (!v) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(*v);
}

}  // namespace evosip::sip
