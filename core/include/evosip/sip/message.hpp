#pragma once
// A SIP message parsed from one buffer into views (RFC 3261 7). Parsing finds the start line,
// the header lines (name, raw value, byte range) and the body; header values are parsed only
// when a role asks (lazily), with the parsers of address.hpp, uri.hpp and auth.hpp.
//
// The Message does not own its bytes: the buffer must outlive it.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <boost/container/small_vector.hpp>

#include <evosip/base/result.hpp>
#include <evosip/sip/address.hpp>
#include <evosip/sip/header.hpp>
#include <evosip/sip/method.hpp>

namespace evosip::sip {

struct HeaderField {
  HeaderId id = HeaderId::kOther;
  std::string_view name;   // as written (may be compact)
  std::string_view value;  // trimmed; folded lines (CRLF + WSP) left in place
  uint32_t begin = 0;      // offset of the first byte of the header line in the buffer
  uint32_t end = 0;        // offset just after the line's CRLF (including folded lines)
};

struct ParseLimits {
  size_t maxHeaders = 128;
  size_t maxSize = 65535;
};

class Message {
 public:
  // Parses exactly one message that fills `buffer` (a datagram or a framed stream message).
  // Checks: start line syntax and version SIP/2.0, header line syntax (name token, ':'), the
  // blank line, Content-Length consistent with the bytes present (a datagram may carry extra
  // bytes after the body: they are ignored, RFC 3261 18.3). Value syntax is NOT checked here.
  // Errors: kTooLarge (maxSize, maxHeaders), kInvalid (well-formed but not SIP/2.0: answer 505),
  // kParse (anything else, including more than one Content-Length).
  static Result<Message> parse(std::string_view buffer, const ParseLimits& limits = {});

  bool isRequest() const { return statusCode_ == 0; }
  bool isResponse() const { return statusCode_ != 0; }

  // Request line.
  Method method() const { return method_; }
  std::string_view methodText() const { return methodText_; }
  std::string_view requestUri() const { return requestUri_; }
  uint32_t requestUriOffset() const;  // offset of the Request-URI in the buffer
  // Status line.
  int statusCode() const { return statusCode_; }
  std::string_view reasonPhrase() const { return reason_; }

  std::string_view buffer() const { return buffer_; }
  // Offset of the start line (after any CRLFs that preceded it, RFC 3261 7.5).
  uint32_t startOffset() const { return start_; }
  // Offset of the first header line (just after the start line's CRLF).
  uint32_t headersBegin() const { return headersBegin_; }
  // Offset of the blank line that ends the headers.
  uint32_t headersEnd() const { return headersEnd_; }
  std::string_view body() const { return body_; }
  uint32_t bodyOffset() const { return headersEnd_ + 2; }
  // End offset of the message in the buffer: the message is [startOffset(), size()). Bytes a
  // datagram carries after the body are not part of it.
  size_t size() const { return bodyOffset() + body_.size(); }

  std::span<const HeaderField> headers() const { return {headers_.data(), headers_.size()}; }
  // First header with this id / name (case-insensitive, compact forms match their id).
  const HeaderField* find(HeaderId id) const;
  const HeaderField* find(std::string_view name) const;
  size_t count(HeaderId id) const;

  // Frequently needed values, parsed on demand (not cached: callers keep what they need).
  std::string_view callId() const;  // "" when missing
  Result<Via> topVia() const;       // first value of the first Via header
  Result<CSeq> cseq() const;
  Result<NameAddr> from() const;
  Result<NameAddr> to() const;
  std::optional<uint32_t> maxForwards() const;  // nullopt when missing or invalid
  std::optional<uint32_t> contentLength() const;
  std::optional<uint32_t> expires() const;  // Expires header; nullopt when missing or invalid

 private:
  std::string_view buffer_;
  std::string_view methodText_;
  std::string_view requestUri_;
  std::string_view reason_;
  Method method_ = Method::kOther;
  int statusCode_ = 0;
  uint32_t start_ = 0;
  uint32_t headersBegin_ = 0;
  uint32_t headersEnd_ = 0;
  std::string_view body_;
  boost::container::small_vector<HeaderField, 24> headers_;
};

}  // namespace evosip::sip
