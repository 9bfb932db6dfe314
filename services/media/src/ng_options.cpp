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

namespace {

// The body of one ng command, read by key whatever the spelling (findKey).
class NgBody {
 public:
  explicit NgBody(const bencode::Value& body) : body_(body) {}
  const bencode::Value* find(std::string_view key) const { return findKey(body_, key); }
  // The key's string value, or "".
  std::string str(std::string_view key) const {
    const auto* v = find(key);
    return v && v->isString() ? toString(v->asString()) : std::string();
  }
  // The key as a list of strings, whether it was sent as a list or as one string.
  std::vector<std::string> list(std::string_view key) const {
    std::vector<std::string> out;
    const auto* v = find(key);
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
  }

 private:
  const bencode::Value& body_;
};

// Which call, which parties, the SDP and the addresses signalling gives.
void readIdentity(const NgBody& b, NgOptions& o) {
  o.callId = b.str("call-id");
  o.fromTag = b.str("from-tag");
  o.toTag = b.str("to-tag");
  o.viaBranch = b.str("via-branch");
  o.label = b.str("label");
  if (o.label.empty()) {
    o.label = b.str("from-label");
  }
  o.sdp = b.str("sdp");
  o.mediaAddress = b.str("media-address");
  if (auto rf = b.list("received-from"); rf.size() == 2) {
    o.receivedFrom = rf[1];
  }
  if (const auto* lim = b.find("limit"); lim && lim->isInteger()) {
    o.limit = lim->asInteger();
  }
}

void readReplace(const NgBody& b, NgOptions& o) {
  for (const auto& r : b.list("replace")) {
    const std::string n = normalizeFlag(r);
    if (n == "origin") {
      o.replaceOrigin = true;
    } else if (n == "session-connection") {
      o.replaceSessionConnection = true;
    } else {
      // force-increment-sdp-ver, sdp-version, username, session-name, zero-address, unknown.
      o.ignoredFlags.push_back("replace " + r);
    }
  }
}

// ICE, address family and transport protocol: what this relay's one interface and
// passthrough can honour.
Result<void> readInterfaceKeys(const NgBody& b, NgOptions& o) {
  if (const auto ice = b.str("ice"); !ice.empty()) {
    const std::string n = normalizeFlag(ice);
    if (n == "remove" || n == "default") {
      o.removeIce = true;
    } else {
      return unsupported(fmt::format("ICE={} (this relay removes ICE; only ICE=remove)", ice));
    }
  }
  if (const auto af = b.str("address-family"); !af.empty()) {
    const std::string n = normalizeFlag(af);
    if (n != "ip4" && n != "ip6") {
      return makeError(Errc::kInvalid, fmt::format("Invalid address family '{}'", af));
    }
    o.addressFamily = n == "ip4" ? "IP4" : "IP6";
  }
  if (const auto tp = b.str("transport-protocol"); !tp.empty()) {
    // Passthrough only: RTP/AVP (and "accept" in answers) keep the SDP's own protocol; asking for
    // SRTP or AVPF would need crypto/feedback translation.
    if (tp != "RTP/AVP" && tp != "accept") {
      return unsupported(
          fmt::format("transport-protocol {} (no SRTP/DTLS/AVPF translation; only "
                      "RTP/AVP passthrough)",
                      tp));
    }
  }
  return {};
}

// This relay forwards media; recording calls is outside what it offers.
Result<void> refuseRecording() {
  return unsupported("record call (this relay does not record calls)");
}

// Keys that ask for recording, DTLS/SDES termination, rtcp-mux changes or media manipulation:
// refused, never ignored ("off" values are accepted).
Result<void> refuseUnsupportedKeys(const NgBody& b) {
  if (const auto* rc = b.find("record-call"); rc && rc->isString() && isYes(rc->asString())) {
    return refuseRecording();
  }
  if (const auto dtls = b.str("dtls"); !dtls.empty()) {
    const std::string n = normalizeFlag(dtls);
    if (n != "off" && n != "no" && n != "disable") {
      return unsupported(fmt::format("DTLS={} (no DTLS-SRTP termination)", dtls));
    }
  }
  for (const auto& m : b.list("rtcp-mux")) {
    if (normalizeFlag(m) != "accept") {
      return unsupported(fmt::format("rtcp-mux {} (rtcp-mux is passed through as offered)", m));
    }
  }
  if (const auto* codec = b.find("codec"); codec && codec->isDict() && !codec->asDict().empty()) {
    return unsupported("codec manipulation / transcoding");
  }
  for (std::string_view key : {"ptime", "ptime-reverse", "t.38", "media-echo", "osrtp",
                               "generate-rtcp", "delay-buffer", "dtmf-security", "sdes"}) {
    const auto* v = b.find(key);
    if (!v) {
      continue;
    }
    if (key == "sdes") {
      bool off = true;
      for (const auto& s : b.list("sdes")) {
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
    return unsupported(fmt::format("{} (this relay forwards media unchanged)", key));
  }
  return {};
}

// Flags accepted without effect: what this relay does anyway, or a no-op for a single-interface,
// kernel-less, Redis-less relay.
bool isAcceptedNoOp(const std::string& n) {
  return n == "port-latching" || n == "no-port-latching" || n == "loop-protect" ||
         n == "unidirectional" || n == "force" || n == "debug" || n == "debugging" ||
         n == "reset" || n == "full-rtcp-attribute" || n == "all" || n == "no-redis-update" ||
         n == "force-answer" || n == "early-media" || n == "rtcp-mux-accept" || n == "rtcp-mux" ||
         n == "ip4" || n == "ip6" || n == "internal" || n == "external" ||
         n == "address-family=ip4" || n == "address-family=ip6" ||
         n == "transport-protocol=rtp/avp";
}

// Flags that ask for what this relay does not do: the reason, or "" for any other flag.
std::string refusedFlagReason(const std::string& n) {
  if (n == "always-transcode" || n == "allow-transcoding" || n == "inject-dtmf" ||
      n == "detect-dtmf" || n.rfind("codec-", 0) == 0 || n.rfind("transcode", 0) == 0 ||
      n == "single-codec" || n == "reuse-codecs" || n == "no-codec-renegotiation") {
    return "codec manipulation / transcoding";
  }
  if (n == "generate-rtcp" || n == "pierce-nat" || n == "nat-wait" || n == "block-short" ||
      n == "block-short-packets" || n == "generate-mid" || n == "strip-extmap" ||
      n == "trickle-ice") {
    return "outside what this relay offers";
  }
  if (n.rfind("sdes-", 0) == 0 && n != "sdes-off" && n != "sdes-no" && n != "sdes-disable") {
    return "SRTP is passed through, not negotiated";
  }
  return "";
}

// One entry of "flags".
Result<void> readFlag(const std::string& f, NgOptions& o) {
  const std::string n = normalizeFlag(f);
  if (n == "record-call" || n == "start-recording") {
    return refuseRecording();
  }
  if (const std::string why = refusedFlagReason(n); !why.empty()) {
    return unsupported(fmt::format("{} ({})", f, why));
  }
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
  } else if (n == "ice-remove" || n == "ice=remove" || n == "reject-ice") {
    o.removeIce = true;
  } else if (!isAcceptedNoOp(n) && n.rfind("sdes-", 0) != 0) {
    o.ignoredFlags.push_back(f);
  }
  return {};
}

}  // namespace

Result<NgOptions> readNgOptions(const bencode::Value& body) {
  const NgBody b(body);
  NgOptions o;
  readIdentity(b, o);
  readReplace(b, o);
  if (auto ok = readInterfaceKeys(b, o); !ok) {
    return tl::unexpected(ok.error());
  }
  if (auto ok = refuseUnsupportedKeys(b); !ok) {
    return tl::unexpected(ok.error());
  }
  for (const auto& f : b.list("flags")) {
    if (auto ok = readFlag(f, o); !ok) {
      return tl::unexpected(ok.error());
    }
  }
  return o;
}

}  // namespace evosip::media
