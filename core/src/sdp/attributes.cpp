#include <evosip/sdp/attributes.hpp>

#include "detail.hpp"
#include "lex.hpp"

namespace evosip::sdp {

Result<Rtpmap> parseRtpmap(std::string_view value) {
  lex::Tokens t(value);
  auto pt = t.next();
  auto spec = t.next();
  if (!spec || !t.atEnd()) {
    return makeError(Errc::kParse, "rtpmap needs <payload type> <encoding>/<clock rate>");
  }
  auto payloadType = lex::parseUnsigned(*pt, 127);
  if (!payloadType) {
    return makeError(Errc::kParse, "rtpmap payload type is not 0..127");
  }
  Rtpmap r;
  r.payloadType = static_cast<uint8_t>(*payloadType);
  const size_t slash = spec->find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return makeError(Errc::kParse, "rtpmap needs <encoding>/<clock rate>");
  }
  r.encoding = spec->substr(0, slash);
  std::string_view rest = spec->substr(slash + 1);
  const size_t slash2 = rest.find('/');
  auto clock = lex::parseUnsigned(rest.substr(0, slash2), UINT32_MAX);
  if (!clock || *clock == 0) {
    return makeError(Errc::kParse, "rtpmap clock rate is not a positive number");
  }
  r.clockRate = static_cast<uint32_t>(*clock);
  if (slash2 != std::string_view::npos) {
    auto channels = lex::parseUnsigned(rest.substr(slash2 + 1), UINT32_MAX);
    if (!channels || *channels == 0) {
      return makeError(Errc::kParse, "rtpmap encoding parameters are not a positive number");
    }
    r.channels = static_cast<uint32_t>(*channels);
  }
  return r;
}

Result<Fmtp> parseFmtp(std::string_view value) {
  lex::Tokens t(value);
  auto format = t.next();
  if (!format) {
    return makeError(Errc::kParse, "fmtp needs <format> <parameters>");
  }
  return Fmtp{*format, t.rest()};
}

Result<RtcpAttribute> parseRtcp(std::string_view value) {
  lex::Tokens t(value);
  auto port = t.next();
  if (!port) {
    return makeError(Errc::kParse, "rtcp needs a port");
  }
  auto p = lex::parsePort(*port);
  if (!p) {
    return makeError(Errc::kParse, "rtcp port is not 0..65535");
  }
  RtcpAttribute r;
  r.port = *p;
  const std::string_view rest = t.rest();
  if (!rest.empty()) {
    r.address = detail::parseConnection(rest);
    if (!r.address) {
      return makeError(Errc::kParse, "rtcp address needs <nettype> <addrtype> <address>");
    }
  }
  return r;
}

Result<Candidate> parseCandidate(std::string_view value) {
  lex::Tokens t(value);
  std::string_view f[8];
  for (auto& field : f) {
    auto tok = t.next();
    if (!tok) {
      return makeError(Errc::kParse,
                       "candidate needs <foundation> <component> <transport> "
                       "<priority> <address> <port> typ <type>");
    }
    field = *tok;
  }
  Candidate c;
  c.foundation = f[0];
  auto component = lex::parseUnsigned(f[1], 256);
  auto priority = lex::parseUnsigned(f[3], UINT32_MAX);
  auto port = lex::parsePort(f[5]);
  if (!component || *component == 0) {
    return makeError(Errc::kParse, "candidate component is not 1..256");
  }
  if (!priority) {
    return makeError(Errc::kParse, "candidate priority is not a 32-bit number");
  }
  if (!port) {
    return makeError(Errc::kParse, "candidate port is not 0..65535");
  }
  if (f[6] != "typ") {
    return makeError(Errc::kParse, "candidate has no 'typ' after the port");
  }
  c.component = static_cast<uint32_t>(*component);
  c.transport = f[2];
  c.priority = static_cast<uint32_t>(*priority);
  c.address = f[4];
  c.port = *port;
  c.type = f[7];
  // Optional raddr/rport, in this order, then extension pairs kept as written.
  while (true) {
    lex::Tokens probe = t;
    auto name = probe.next();
    if (!name || (*name != "raddr" && *name != "rport")) {
      break;
    }
    auto v = probe.next();
    if (!v) {
      return makeError(Errc::kParse, "candidate " + std::string(*name) + " without a value");
    }
    if (*name == "raddr") {
      c.relatedAddress = *v;
    } else {
      auto rport = lex::parsePort(*v);
      if (!rport) {
        return makeError(Errc::kParse, "candidate rport is not 0..65535");
      }
      c.relatedPort = *rport;
    }
    t = probe;
  }
  c.extensions = t.rest();
  return c;
}

bool isIceAttribute(std::string_view name) {
  return name == "candidate" || name == "remote-candidates" || name == "ice-ufrag" ||
         name == "ice-pwd" || name == "ice-options" || name == "ice-lite" ||
         name == "ice-mismatch" || name == "ice-pacing" || name == "end-of-candidates";
}

}  // namespace evosip::sdp
