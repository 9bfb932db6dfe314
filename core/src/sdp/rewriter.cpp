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

}  // namespace

Result<std::string> rewrite(const SessionDescription& sd, const RewriteOptions& opt) {
  // The first media rewrite's address stands for the whole session (session c=, origin).
  std::string_view sessionAddress;
  for (size_t i = 0; i < opt.media.size() && i < sd.media.size(); ++i) {
    const std::string_view a = opt.media[i].address;
    if (!a.empty() && !isAddressText(a)) {
      return makeError(Errc::kInvalid, "sdp rewrite: bad address '" + std::string(a) +
                                           "' for media " + std::to_string(i));
    }
    if (sessionAddress.empty()) {
      sessionAddress = a;
    }
  }
  std::string_view originAddress;
  if (opt.replaceOrigin) {
    originAddress = opt.originAddress.empty() ? sessionAddress : opt.originAddress;
    if (!isAddressText(originAddress)) {
      return makeError(Errc::kInvalid, originAddress.empty()
                                           ? "sdp rewrite: replace origin without an address"
                                           : "sdp rewrite: bad origin address '" +
                                                 std::string(originAddress) + "'");
    }
  }
  const bool rewriteSessionC = sd.connection.has_value() && !sessionAddress.empty();

  Writer w(sd.text.size() + 128);
  for (const Line& l : sd.lines) {
    switch (l.type) {
      case 'o':
        if (opt.replaceOrigin || opt.bumpOriginVersion) {
          writeOrigin(w, sd.origin, originAddress, opt.bumpOriginVersion);
          continue;
        }
        break;
      case 'c':
        if (rewriteSessionC) {
          w.connection(sessionAddress);
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

  for (size_t i = 0; i < sd.media.size(); ++i) {
    const MediaDescription& m = sd.media[i];
    const MediaRewrite* mr = i < opt.media.size() ? &opt.media[i] : nullptr;
    const std::string_view address = mr != nullptr ? mr->address : std::string_view();
    const bool writePorts = mr != nullptr && mr->rtpPort != 0 && m.port != 0;
    uint16_t rtcpPort = 0;
    if (writePorts) {
      if (mr->rtcpPort != 0) {
        rtcpPort = mr->rtcpPort;
      } else if (m.rtcpMux) {
        rtcpPort = mr->rtpPort;
      } else if (mr->rtpPort == 65535) {
        return makeError(Errc::kInvalid, "sdp rewrite: RTP port 65535 leaves no port for RTCP");
      } else {
        rtcpPort = static_cast<uint16_t>(mr->rtpPort + 1);
      }
    }

    // The c= line this section needs when it has none of its own.
    std::string_view insertAddress;   // write "c=IN IPx <address>"
    std::string_view insertOriginal;  // or keep the old session c= for an untouched section
    if (!m.connection) {
      if (!address.empty() && (!rewriteSessionC || address != sessionAddress)) {
        insertAddress = address;
      } else if (address.empty() && rewriteSessionC) {
        insertOriginal = sd.connection->text;
      }
    }
    bool pendingC = !insertAddress.empty() || !insertOriginal.empty();
    auto flushC = [&] {
      if (pendingC) {
        if (!insertAddress.empty()) {
          w.connection(insertAddress);
        } else {
          w.line('c', insertOriginal);
        }
        pendingC = false;
      }
    };

    bool sawRtcp = false;
    for (const Line& l : m.lines) {
      if (l.type != 'm' && l.type != 'i') {
        flushC();  // c= goes after m= and i=, before b=, k= and a= (RFC 4566 5)
      }
      switch (l.type) {
        case 'm':
          if (writePorts) {
            lex::Tokens t(l.value);
            (void)t.next();
            const std::string_view portToken = *t.next();
            std::string& out = w.raw();
            out += "m=";
            out += l.value.substr(0, static_cast<size_t>(portToken.data() - l.value.data()));
            out += std::to_string(mr->rtpPort);
            const size_t slash = portToken.find('/');
            if (slash != std::string_view::npos) {
              out += portToken.substr(slash);  // "/count" kept
            }
            out += l.value.substr(
                static_cast<size_t>(portToken.data() + portToken.size() - l.value.data()));
            out += "\r\n";
            continue;
          }
          break;
        case 'c':
          if (!address.empty()) {
            w.connection(address);
            continue;
          }
          break;
        case 'a': {
          if (dropAttribute(l.value, opt)) {
            continue;
          }
          if (writePorts && lex::splitAttribute(l.value).name == "rtcp") {
            if (!sawRtcp) {
              w.rtcp(rtcpPort);
            }
            sawRtcp = true;
            continue;
          }
          break;
        }
        default:
          break;
      }
      w.line(l.type, l.value);
    }
    flushC();
    if (writePorts && !sawRtcp && opt.addRtcp && m.isRtp()) {
      w.rtcp(rtcpPort);
    }
    if (opt.direction) {
      w.line('a', toString(*opt.direction));
    }
  }
  return w.take();
}

}  // namespace evosip::sdp
