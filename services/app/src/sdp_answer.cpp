#include <fmt/format.h>

#include <evosip/app/sdp_answer.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/sdp/attributes.hpp>

namespace evosip::app {

namespace {

struct Format {
  uint8_t pt = 0;
  std::string_view encoding;  // from a=rtpmap, "" when absent
  uint32_t rate = 0;
};

std::optional<Format> formatOf(const sdp::MediaDescription& m, std::string_view token) {
  auto pt = parseDecimal(token, 127);
  if (!pt) {
    return std::nullopt;
  }
  Format f;
  f.pt = static_cast<uint8_t>(*pt);
  for (const auto& a : m.attributes) {
    if (a.name != "rtpmap") {
      continue;
    }
    auto map = sdp::parseRtpmap(a.value);
    if (map && map->payloadType == f.pt) {
      f.encoding = map->encoding;
      f.rate = map->clockRate;
      break;
    }
  }
  return f;
}

std::optional<audio::G711Law> lawOf(const Format& f) {
  if (!f.encoding.empty()) {
    if (f.rate != 8000) {
      return std::nullopt;
    }
    if (iequals(f.encoding, "PCMU")) {
      return audio::G711Law::kUlaw;
    }
    if (iequals(f.encoding, "PCMA")) {
      return audio::G711Law::kAlaw;
    }
    return std::nullopt;
  }
  if (f.pt == 0) {
    return audio::G711Law::kUlaw;
  }
  if (f.pt == 8) {
    return audio::G711Law::kAlaw;
  }
  return std::nullopt;
}

bool plainRtp(std::string_view proto) {
  return proto == "RTP/AVP" || proto == "RTP/AVPF";
}

}  // namespace

bool Negotiated::canSend() const {
  if (remotePort == 0 || remoteAddress.empty() || remoteAddress == "0.0.0.0" ||
      remoteAddress == "::") {
    return false;
  }
  return remoteDirection == sdp::Direction::kSendRecv ||
         remoteDirection == sdp::Direction::kRecvOnly;
}

Result<Negotiated> negotiate(std::string_view offer, std::optional<audio::G711Law> keep) {
  auto sd = sdp::parse(offer);
  if (!sd) {
    return makeError(Errc::kParse, sd.error().message);
  }
  Negotiated n;
  bool found = false;
  for (size_t i = 0; i < sd->media.size(); ++i) {
    const auto& m = sd->media[i];
    n.lines.push_back({std::string(m.media), std::string(m.proto),
                       m.formats.empty() ? std::string("0") : std::string(m.formats.front())});
    if (found || m.media != "audio" || m.isRejected() || !plainRtp(m.proto)) {
      continue;
    }
    const sdp::Connection* c = sdp::effectiveConnection(*sd, m);
    if (c == nullptr || (c->type != sdp::AddrType::kIp4 && c->type != sdp::AddrType::kIp6)) {
      continue;
    }
    std::optional<Format> chosen;
    std::optional<audio::G711Law> law;
    std::optional<uint8_t> te;
    for (auto token : m.formats) {
      auto f = formatOf(m, token);
      if (!f) {
        continue;
      }
      if (auto l = lawOf(*f)) {
        if (!chosen || (keep && *l == *keep && *law != *keep)) {
          chosen = f;
          law = l;
        }
        continue;
      }
      if (!te && iequals(f->encoding, "telephone-event") && f->rate == 8000) {
        te = f->pt;
      }
    }
    if (!chosen) {
      continue;
    }
    found = true;
    n.law = *law;
    n.payloadType = chosen->pt;
    n.telephoneEvent = te;
    n.remoteAddress = std::string(c->address);
    n.remoteIpv6 = c->type == sdp::AddrType::kIp6;
    n.remotePort = m.port;
    n.remoteDirection = sdp::effectiveDirection(*sd, m);
    n.hold = sdp::isOnHold(*sd, m);
    if (c->isHoldAddress() && n.remoteDirection == sdp::Direction::kSendRecv) {
      n.remoteDirection = sdp::Direction::kSendOnly;
    } else if (c->isHoldAddress() && n.remoteDirection == sdp::Direction::kRecvOnly) {
      n.remoteDirection = sdp::Direction::kInactive;
    }
    n.rtcpMux = m.rtcpMux;
    n.audioIndex = i;
  }
  if (!found) {
    return makeError(Errc::kInvalid, "no audio stream with PCMU or PCMA over RTP/AVP");
  }
  return n;
}

sdp::Direction answerDirection(const Negotiated& n) {
  switch (n.remoteDirection) {
    case sdp::Direction::kSendOnly:
      return sdp::Direction::kRecvOnly;
    case sdp::Direction::kRecvOnly:
      return sdp::Direction::kSendOnly;
    case sdp::Direction::kInactive:
      return sdp::Direction::kInactive;
    case sdp::Direction::kSendRecv:
      break;
  }
  return sdp::Direction::kSendRecv;
}

std::string buildAnswer(const Negotiated& n, const AnswerAddress& a) {
  const char* family = a.ipv6 ? "IP6" : "IP4";
  std::string out =
      fmt::format("v=0\r\no=evosip {} {} IN {} {}\r\ns=evosip\r\nc=IN {} {}\r\nt=0 0\r\n",
                  a.sessionId, a.version, family, a.address, family, a.address);
  for (size_t i = 0; i < n.lines.size(); ++i) {
    const auto& l = n.lines[i];
    if (i != n.audioIndex) {
      out += fmt::format("m={} 0 {} {}\r\n", l.media, l.proto, l.format);
      continue;
    }
    const char* name = n.law == audio::G711Law::kUlaw ? "PCMU" : "PCMA";
    out += fmt::format("m=audio {} {} {}", a.port, l.proto, n.payloadType);
    if (n.telephoneEvent) {
      out += fmt::format(" {}", *n.telephoneEvent);
    }
    out += fmt::format("\r\na=rtpmap:{} {}/8000\r\n", n.payloadType, name);
    if (n.telephoneEvent) {
      out += fmt::format("a=rtpmap:{0} telephone-event/8000\r\na=fmtp:{0} 0-16\r\n",
                         *n.telephoneEvent);
    }
    out += "a=ptime:20\r\n";
    if (n.rtcpMux) {
      out += "a=rtcp-mux\r\n";
    }
    out += fmt::format("a={}\r\n", sdp::toString(answerDirection(n)));
  }
  return out;
}

}  // namespace evosip::app
