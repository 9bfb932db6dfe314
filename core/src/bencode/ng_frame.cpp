#include <evosip/bencode/ng_frame.hpp>

namespace evosip::bencode {

Result<NgMessage> parseNgDatagram(std::string_view datagram, const Limits& limits) {
  const size_t space = datagram.find(' ');
  if (space == std::string_view::npos) {
    return makeError(Errc::kParse, "ng: no space after the cookie");
  }
  if (space == 0) {
    return makeError(Errc::kParse, "ng: empty cookie");
  }
  if (space > kMaxCookie) {
    return makeError(Errc::kParse,
                     "ng: cookie longer than " + std::to_string(kMaxCookie) + " bytes");
  }
  auto body = decodeFrom(datagram, space + 1, limits);
  if (!body) {
    return tl::unexpected(body.error());
  }
  if (!body->isDict()) {
    return makeError(Errc::kInvalid, "ng: the message body is not a dictionary");
  }
  return NgMessage{datagram.substr(0, space), std::move(*body)};
}

std::string formatNgReply(std::string_view cookie, const Value& body) {
  std::string out;
  out.reserve(cookie.size() + 64);
  out += cookie;
  out += ' ';
  encodeTo(body, out);
  return out;
}

Value ngOk() {
  return Value::makeDict().set("result", "ok");
}
Value ngPong() {
  return Value::makeDict().set("result", "pong");
}
Value ngError(std::string_view reason) {
  return Value::makeDict().set("result", "error").set("error-reason", reason);
}

}  // namespace evosip::bencode
