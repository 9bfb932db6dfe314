#include <fmt/format.h>

#include <evosip/media/ng_options.hpp>

namespace evosip::media {

namespace {

std::string toString(std::string_view v) {
  return std::string(v);
}

tl::unexpected<Error> unsupported(std::string_view what) {
  return makeError(Errc::kInvalid, fmt::format("Unsupported: {}", what));
}

bool isYes(std::string_view v) {
  std::string n = normalizeFlag(v);
  return n == "yes" || n == "on" || n == "true" || n == "1";
}

}  // namespace

std::string normalizeFlag(std::string_view flag) {
  std::string out;
  out.reserve(flag.size());
  for (char c : flag) {
    if (c == ' ' || c == '_') {
      out.push_back('-');
    } else if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const bencode::Value* findKey(const bencode::Value& body, std::string_view hyphenated) {
  if (const auto* v = body.find(hyphenated)) {
    return v;
  }
  std::string spaced(hyphenated);
  for (char& c : spaced) {
    if (c == '-') {
      c = ' ';
    }
  }
  if (spaced != hyphenated) {
    if (const auto* v = body.find(spaced)) {
      return v;
    }
  }
  // Case variants rtpengine documents in upper case ("ICE", "DTLS", "SDES", "T.38").
  for (const auto& e : body.asDict()) {
    if (normalizeFlag(e.key) == hyphenated) {
      return &e.value;
    }
  }
  return nullptr;
}

Result<NgOptions> readNgOptions(const bencode::Value& body) {
  NgOptions o;
  auto str = [&](std::string_view key) -> std::string {
    const auto* v = findKey(body, key);
    return v && v->isString() ? toString(v->asString()) : std::string();
  };
  auto list = [&](std::string_view key) -> std::vector<std::string> {
    std::vector<std::string> out;
    const auto* v = findKey(body, key);
    if (!v) {
      return out;
    }
    if (v->isString()) {
      out.emplace_back(v->asString());
    } else {
      for (const auto& item : v->asList()) {
        if (item.isString()) {
          out.emplace_back(item.asString());
        }
      }
    }
    return out;
  };

  o.callId = str("call-id");
  o.fromTag = str("from-tag");
  o.toTag = str("to-tag");
  o.viaBranch = str("via-branch");
  o.label = str("label");
  if (o.label.empty()) {
    o.label = str("from-label");
  }
  o.sdp = str("sdp");
  o.mediaAddress = str("media-address");
  if (auto rf = list("received-from"); rf.size() == 2) {
    o.receivedFrom = rf[1];
  }
  if (const auto* lim = findKey(body, "limit"); lim && lim->isInteger()) {
    o.limit = lim->asInteger();
  }

  for (const auto& r : list("replace")) {
    const std::string n = normalizeFlag(r);
    if (n == "origin") {
      o.replaceOrigin = true;
    } else if (n == "session-connection") {
      o.replaceSessionConnection = true;
    } else if (n == "force-increment-sdp-ver" || n == "sdp-version" || n == "username" ||
               n == "session-name" || n == "zero-address") {
      o.ignoredFlags.push_back("replace " + r);
    } else {
      o.ignoredFlags.push_back("replace " + r);
    }
  }

  if (const auto ice = str("ice"); !ice.empty()) {
    const std::string n = normalizeFlag(ice);
    if (n == "remove" || n == "default") {
      o.removeIce = true;
    } else {
      return unsupported(fmt::format("ICE={} (this relay removes ICE; only ICE=remove)", ice));
    }
  }
  if (const auto af = str("address-family"); !af.empty()) {
    const std::string n = normalizeFlag(af);
    if (n != "ip4" && n != "ip6") {
      return makeError(Errc::kInvalid, fmt::format("Invalid address family '{}'", af));
    }
    o.addressFamily = n == "ip4" ? "IP4" : "IP6";
  }
  if (const auto tp = str("transport-protocol"); !tp.empty()) {
    // Passthrough only: RTP/AVP (and "accept" in answers) keep the SDP's own protocol; asking for
    // SRTP or AVPF would need crypto/feedback translation.
    if (tp != "RTP/AVP" && tp != "accept") {
      return unsupported(
          fmt::format("transport-protocol {} (no SRTP/DTLS/AVPF translation; only "
                      "RTP/AVP passthrough)",
                      tp));
    }
  }
  if (const auto* rc = findKey(body, "record-call");
      rc && rc->isString() && isYes(rc->asString())) {
    return unsupported("record call (recording is not implemented)");
  }
  if (const auto dtls = str("dtls"); !dtls.empty()) {
    const std::string n = normalizeFlag(dtls);
    if (n != "off" && n != "no" && n != "disable") {
      return unsupported(fmt::format("DTLS={} (no DTLS-SRTP termination)", dtls));
    }
  }
  for (const auto& m : list("rtcp-mux")) {
    const std::string n = normalizeFlag(m);
    if (n != "accept") {
      return unsupported(fmt::format("rtcp-mux {} (rtcp-mux is passed through as offered)", m));
    }
  }
  if (const auto* codec = findKey(body, "codec");
      codec && codec->isDict() && !codec->asDict().empty()) {
    return unsupported("codec manipulation / transcoding");
  }
  for (std::string_view key : {"ptime", "ptime-reverse", "t.38", "media-echo", "osrtp",
                               "generate-rtcp", "delay-buffer", "dtmf-security", "sdes"}) {
    if (const auto* v = findKey(body, key)) {
      if (key == "sdes") {
        bool off = true;
        for (const auto& s : list("sdes")) {
          const std::string n = normalizeFlag(s);
          off = off && (n == "off" || n == "no" || n == "disable");
        }
        if (off) {
          continue;
        }
      }
      if (key == "generate-rtcp" && v->isString() && normalizeFlag(v->asString()) == "off") {
        continue;
      }
      return unsupported(fmt::format("{} (media manipulation is not implemented)", key));
    }
  }

  for (const auto& f : list("flags")) {
    const std::string n = normalizeFlag(f);
    if (n == "trust-address") {
      o.sipSourceAddress = false;
    } else if (n == "sip-source-address") {
      o.sipSourceAddress = true;
    } else if (n == "symmetric") {
      o.asymmetric = false;
    } else if (n == "asymmetric") {
      o.asymmetric = true;
    } else if (n == "strict-source") {
      o.strictSource = true;
    } else if (n == "media-handover") {
      o.mediaHandover = true;
    } else if (n == "replace-origin") {
      o.replaceOrigin = true;
    } else if (n == "replace-session-connection") {
      o.replaceSessionConnection = true;
    } else if (n == "no-rtcp-attribute") {
      o.noRtcpAttribute = true;
    } else if (n == "original-sendrecv") {
      o.originalSendrecv = true;
    } else if (n == "fatal") {
      o.fatal = true;
    } else if (n == "record-call" || n == "start-recording") {
      return unsupported("record call (recording is not implemented)");
    } else if (n == "always-transcode" || n == "allow-transcoding" || n == "inject-dtmf" ||
               n == "detect-dtmf" || n.rfind("codec-", 0) == 0 || n.rfind("transcode", 0) == 0 ||
               n == "single-codec" || n == "reuse-codecs" || n == "no-codec-renegotiation") {
      return unsupported(fmt::format("{} (codec manipulation / transcoding)", f));
    } else if (n == "generate-rtcp" || n == "pierce-nat" || n == "nat-wait" || n == "block-short" ||
               n == "block-short-packets" || n == "generate-mid" || n == "strip-extmap" ||
               n == "trickle-ice") {
      return unsupported(fmt::format("{} (not implemented by this relay)", f));
    } else if (n == "ice-remove" || n == "ice=remove" || n == "reject-ice") {
      o.removeIce = true;
    } else if (n.rfind("sdes-", 0) == 0) {
      if (n != "sdes-off" && n != "sdes-no" && n != "sdes-disable") {
        return unsupported(fmt::format("{} (SRTP is passed through, not negotiated)", f));
      }
    } else if (n == "port-latching" || n == "no-port-latching" || n == "loop-protect" ||
               n == "unidirectional" || n == "force" || n == "debug" || n == "debugging" ||
               n == "reset" || n == "full-rtcp-attribute" || n == "all" || n == "no-redis-update" ||
               n == "force-answer" || n == "early-media" || n == "rtcp-mux-accept" ||
               n == "rtcp-mux" || n == "ip4" || n == "ip6" || n == "internal" || n == "external" ||
               n == "address-family=ip4" || n == "address-family=ip6" ||
               n == "transport-protocol=rtp/avp") {
      // Accepted: either what this relay does anyway, or a no-op for a single-interface,
      // kernel-less, Redis-less relay.
    } else {
      o.ignoredFlags.push_back(f);
    }
  }
  return o;
}

}  // namespace evosip::media
