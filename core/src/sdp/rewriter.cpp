#include <string>

#include <evosip/sdp/attributes.hpp>
#include <evosip/sdp/rewriter.hpp>

#include "lex.hpp"

namespace evosip::sdp {

namespace {

// Letters, digits and what IPv4, IPv6 (with a zone), and host names use. Anything else
// (spaces, CR, LF, '/') would change the meaning of the line it is written into.
bool isAddressText(std::string_view s) {
  if (s.empty() || s.size() > 255) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '.' || c == ':' || c == '-' || c == '_' || c == '%';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string_view addrTypeFor(std::string_view address) {
  return address.find(':') != std::string_view::npos ? "IP6" : "IP4";
}

class Writer {
 public:
  explicit Writer(size_t expected) { out_.reserve(expected); }

  void line(char type, std::string_view value) {
    out_ += type;
    out_ += '=';
    out_ += value;
    out_ += "\r\n";
  }

  void connection(std::string_view address) {
    out_ += "c=IN ";
    out_ += addrTypeFor(address);
    out_ += ' ';
    out_ += address;
    out_ += "\r\n";
  }

  void rtcp(uint16_t port) {
    out_ += "a=rtcp:";
    out_ += std::to_string(port);
    out_ += "\r\n";
  }

  std::string& raw() { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void writeOrigin(Writer& w, const Origin& o, std::string_view address, bool bump) {
  std::string& out = w.raw();
  out += "o=";
  out += o.username;
  out += ' ';
  out += o.sessionId;
  out += ' ';
  auto version = lex::parseUnsigned(o.sessionVersion, UINT64_MAX);
  if (bump && version && *version < UINT64_MAX) {
    out += std::to_string(*version + 1);
  } else {
    out += o.sessionVersion;
  }
  out += ' ';
  out += o.netType;
  out += ' ';
  if (address.empty()) {
    out += o.addrType;
    out += ' ';
    out += o.address;
  } else {
    out += addrTypeFor(address);
    out += ' ';
    out += address;
  }
  out += "\r\n";
}

// Drops the attribute line? (ICE removal, direction override.)
bool dropAttribute(std::string_view value, const RewriteOptions& opt) {
  const auto a = lex::splitAttribute(value);
  if (opt.removeIce && isIceAttribute(a.name)) {
    return true;
  }
  return opt.direction && !a.hasValue && parseDirection(a.name).has_value();
}

// The addresses the session level is written with: the first media rewrite's address stands
// for the whole session (session c=, origin); the origin's own when given.
struct SessionAddresses {
  std::string_view session;
  std::string_view origin;
};

Result<SessionAddresses> sessionAddresses(const SessionDescription& sd, const RewriteOptions& opt) {
  SessionAddresses out;
  for (size_t i = 0; i < opt.media.size() && i < sd.media.size(); ++i) {
    const std::string_view a = opt.media[i].address;
    if (!a.empty() && !isAddressText(a)) {
      return makeError(Errc::kInvalid, "sdp rewrite: bad address '" + std::string(a) +
                                           "' for media " + std::to_string(i));
    }
    if (out.session.empty()) {
      out.session = a;
    }
  }
  if (opt.replaceOrigin) {
    out.origin = opt.originAddress.empty() ? out.session : opt.originAddress;
    if (!isAddressText(out.origin)) {
      return makeError(Errc::kInvalid,
                       out.origin.empty()
                           ? "sdp rewrite: replace origin without an address"
                           : "sdp rewrite: bad origin address '" + std::string(out.origin) + "'");
    }
  }
  return out;
}

// The session-level lines: o= and c= rewritten, attributes dropped as asked.
void writeSessionLines(Writer& w, const SessionDescription& sd, const RewriteOptions& opt,
                       const SessionAddresses& at, bool rewriteSessionC) {
  for (const Line& l : sd.lines) {
    switch (l.type) {
      case 'o':
        if (opt.replaceOrigin || opt.bumpOriginVersion) {
          writeOrigin(w, sd.origin, at.origin, opt.bumpOriginVersion);
          continue;
        }
        break;
      case 'c':
        if (rewriteSessionC) {
          w.connection(at.session);
          continue;
        }
        break;
      case 'a':
        if (dropAttribute(l.value, opt)) {
          continue;
        }
        break;
      default:
        break;
    }
    w.line(l.type, l.value);
  }
}

// The RTCP port of a section whose RTP port is rewritten: the one given, else the RTP port
// under rtcp-mux, else RTP + 1.
Result<uint16_t> rtcpPortFor(const MediaDescription& m, const MediaRewrite& mr) {
  if (mr.rtcpPort != 0) {
    return mr.rtcpPort;
  }
  if (m.rtcpMux) {
    return mr.rtpPort;
  }
  if (mr.rtpPort == 65535) {
    return makeError(Errc::kInvalid, "sdp rewrite: RTP port 65535 leaves no port for RTCP");
  }
  return static_cast<uint16_t>(mr.rtpPort + 1);
}

// "m=<media> <port>[/count] <proto> <fmt>..." with the port replaced.
void writeMediaLine(Writer& w, std::string_view value, uint16_t rtpPort) {
  lex::Tokens t(value);
  (void)t.next();
  const std::string_view portToken = *t.next();
  std::string& out = w.raw();
  out += "m=";
  out += value.substr(0, static_cast<size_t>(portToken.data() - value.data()));
  out += std::to_string(rtpPort);
  const size_t slash = portToken.find('/');
  if (slash != std::string_view::npos) {
    out += portToken.substr(slash);  // "/count" kept
  }
  out += value.substr(static_cast<size_t>(portToken.data() + portToken.size() - value.data()));
  out += "\r\n";
}

// One media section, as rewritten by `mr` (nullptr: only the options that apply to all).
class MediaSectionWriter {
 public:
  MediaSectionWriter(Writer& w, const RewriteOptions& opt, const MediaDescription& m,
                     const MediaRewrite* mr)
      : w_(w), opt_(opt), m_(m), mr_(mr) {}

  Result<void> write(const SessionDescription& sd, const SessionAddresses& at,
                     bool rewriteSessionC) {
    address_ = mr_ != nullptr ? mr_->address : std::string_view();
    writePorts_ = mr_ != nullptr && mr_->rtpPort != 0 && m_.port != 0;
    if (writePorts_) {
      auto rtcp = rtcpPortFor(m_, *mr_);
      if (!rtcp) {
        return tl::unexpected(rtcp.error());
      }
      rtcpPort_ = *rtcp;
    }
    planConnection(sd, at, rewriteSessionC);
    for (const Line& l : m_.lines) {
      if (l.type != 'm' && l.type != 'i') {
        flushConnection();  // c= goes after m= and i=, before b=, k= and a= (RFC 4566 5)
      }
      if (!rewritten(l)) {
        w_.line(l.type, l.value);
      }
    }
    flushConnection();
    if (writePorts_ && !sawRtcp_ && opt_.addRtcp && m_.isRtp()) {
      w_.rtcp(rtcpPort_);
    }
    if (opt_.direction) {
      w_.line('a', toString(*opt_.direction));
    }
    return {};
  }

 private:
  // The c= line this section needs when it has none of its own: the new address, or the old
  // session c= for an untouched section when the session's was rewritten.
  void planConnection(const SessionDescription& sd, const SessionAddresses& at,
                      bool rewriteSessionC) {
    if (m_.connection) {
      return;
    }
    if (!address_.empty() && (!rewriteSessionC || address_ != at.session)) {
      insertAddress_ = address_;
    } else if (address_.empty() && rewriteSessionC) {
      insertOriginal_ = sd.connection->text;
    }
    pendingC_ = !insertAddress_.empty() || !insertOriginal_.empty();
  }

  void flushConnection() {
    if (!pendingC_) {
      return;
    }
    if (!insertAddress_.empty()) {
      w_.connection(insertAddress_);
    } else {
      w_.line('c', insertOriginal_);
    }
    pendingC_ = false;
  }

  // Writes `l` rewritten, or drops it; false when it goes out as it is.
  bool rewritten(const Line& l) {
    switch (l.type) {
      case 'm':
        if (writePorts_) {
          writeMediaLine(w_, l.value, mr_->rtpPort);
          return true;
        }
        return false;
      case 'c':
        if (!address_.empty()) {
          w_.connection(address_);
          return true;
        }
        return false;
      case 'a':
        if (dropAttribute(l.value, opt_)) {
          return true;
        }
        if (writePorts_ && lex::splitAttribute(l.value).name == "rtcp") {
          if (!sawRtcp_) {
            w_.rtcp(rtcpPort_);
          }
          sawRtcp_ = true;
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  Writer& w_;
  const RewriteOptions& opt_;
  const MediaDescription& m_;
  const MediaRewrite* mr_;
  std::string_view address_;
  bool writePorts_ = false;
  uint16_t rtcpPort_ = 0;
  std::string_view insertAddress_;   // write "c=IN IPx <address>"
  std::string_view insertOriginal_;  // or keep the old session c= for an untouched section
  bool pendingC_ = false;
  bool sawRtcp_ = false;
};

}  // namespace

Result<std::string> rewrite(const SessionDescription& sd, const RewriteOptions& opt) {
  auto at = sessionAddresses(sd, opt);
  if (!at) {
    return tl::unexpected(at.error());
  }
  const bool rewriteSessionC = sd.connection.has_value() && !at->session.empty();
  Writer w(sd.text.size() + 128);
  writeSessionLines(w, sd, opt, *at, rewriteSessionC);
  for (size_t i = 0; i < sd.media.size(); ++i) {
    const MediaRewrite* mr = i < opt.media.size() ? &opt.media[i] : nullptr;
    if (auto section = MediaSectionWriter(w, opt, sd.media[i], mr).write(sd, *at, rewriteSessionC);
        !section) {
      return tl::unexpected(section.error());
    }
  }
  return w.take();
}

}  // namespace evosip::sdp
