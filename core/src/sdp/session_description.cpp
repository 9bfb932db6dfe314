#include <string>

#include <evosip/base/hex.hpp>
#include <evosip/sdp/attributes.hpp>
#include <evosip/sdp/session_description.hpp>

#include "detail.hpp"
#include "lex.hpp"

namespace evosip::sdp {

namespace detail {

AddrType addrTypeOf(std::string_view addrType) {
  if (addrType == "IP4") {
    return AddrType::kIp4;
  }
  if (addrType == "IP6") {
    return AddrType::kIp6;
  }
  return AddrType::kOther;
}

std::optional<Connection> parseConnection(std::string_view value) {
  lex::Tokens t(value);
  auto net = t.next();
  auto type = t.next();
  auto addr = t.next();
  if (!addr || !t.atEnd()) {
    return std::nullopt;
  }
  Connection c;
  c.netType = *net;
  c.addrType = *type;
  c.type = addrTypeOf(*type);
  // IPv4 multicast carries "/ttl[/count]", IPv6 multicast "/count"; the address is before.
  c.address = addr->substr(0, addr->find('/'));
  if (c.address.empty()) {
    return std::nullopt;
  }
  const char* begin = net->data();
  c.text = std::string_view(begin, static_cast<size_t>(addr->data() + addr->size() - begin));
  return c;
}

}  // namespace detail

std::string_view toString(Direction d) {
  switch (d) {
    case Direction::kSendRecv:
      return "sendrecv";
    case Direction::kSendOnly:
      return "sendonly";
    case Direction::kRecvOnly:
      return "recvonly";
    case Direction::kInactive:
      return "inactive";
  }
  return "sendrecv";
}

std::optional<Direction> parseDirection(std::string_view name) {
  if (name == "sendrecv") {
    return Direction::kSendRecv;
  }
  if (name == "sendonly") {
    return Direction::kSendOnly;
  }
  if (name == "recvonly") {
    return Direction::kRecvOnly;
  }
  if (name == "inactive") {
    return Direction::kInactive;
  }
  return std::nullopt;
}

namespace {

const Attribute* findAttribute(const std::vector<Attribute>& attrs, std::string_view name) {
  for (const auto& a : attrs) {
    if (a.name == name) {
      return &a;
    }
  }
  return nullptr;
}

class Parser {
 public:
  Parser(std::string_view text, const Limits& limits) : text_(text), limits_(limits) {}

  Result<SessionDescription> run() {
    if (text_.size() > limits_.maxSize) {
      return makeError(Errc::kTooLarge, "sdp: " + std::to_string(text_.size()) +
                                            " bytes exceed the limit of " +
                                            std::to_string(limits_.maxSize));
    }
    sd_.text = text_;
    size_t pos = 0;
    size_t counted = 0;
    while (pos < text_.size()) {
      size_t eol = text_.find('\n', pos);
      if (eol == std::string_view::npos) {
        eol = text_.size();
      }
      std::string_view line = text_.substr(pos, eol - pos);
      pos = eol + 1;
      ++lineNo_;
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      if (line.empty()) {
        continue;  // blank lines (often a trailing extra CRLF) are dropped
      }
      if (++counted > limits_.maxLines) {
        return fail(Errc::kTooLarge, "more than " + std::to_string(limits_.maxLines) + " lines");
      }
      if (auto r = onLine(line); !r) {
        return tl::unexpected(r.error());
      }
    }
    if (!sawVersion_) {
      return makeError(Errc::kParse, "sdp: empty description (no v= line)");
    }
    if (!sawOrigin_) {
      return makeError(Errc::kParse, "sdp: no o= line");
    }
    return std::move(sd_);
  }

 private:
  tl::unexpected<Error> fail(Errc code, const std::string& what) const {
    return makeError(code, "sdp: line " + std::to_string(lineNo_) + ": " + what);
  }

  Result<void> onLine(std::string_view line) {
    if (line.size() < 2 || line[1] != '=') {
      return fail(Errc::kParse, "expected '<type>=' at the start of the line");
    }
    const char type = line[0];
    if (type < 'a' || type > 'z') {
      return fail(Errc::kParse, "bad line type '" + printable(type) + "'");
    }
    for (char c : line) {
      if (c == '\r' || c == '\0') {
        return fail(Errc::kParse, c == '\r' ? "stray CR inside the line" : "NUL byte in the line");
      }
    }
    const std::string_view value = line.substr(2);
    if (!sawVersion_) {
      if (type != 'v') {
        return fail(Errc::kParse, "the first line must be v=");
      }
      // Trailing spaces ("v=0 ") are seen from some phones; the number is what matters.
      const std::string_view number = value.substr(0, value.find_last_not_of(' ') + 1);
      if (!lex::parseUnsigned(number, 255)) {
        return fail(Errc::kParse, "bad protocol version in v= line");
      }
      sawVersion_ = true;
      sd_.version = value;
      sd_.lines.push_back(Line{type, value});
      return {};
    }
    if (type == 'v') {
      return fail(Errc::kParse, "second v= line");
    }
    if (type == 'm') {
      return onMedia(value);
    }
    if (media_ != nullptr) {
      media_->lines.push_back(Line{type, value});
    } else {
      sd_.lines.push_back(Line{type, value});
    }
    switch (type) {
      case 'o':
        return onOrigin(value);
      case 's':
        if (media_ == nullptr) {
          sd_.sessionName = value;
        }
        return {};
      case 't':
        if (media_ == nullptr) {
          sd_.times.push_back(value);
        }
        return {};
      case 'c':
        return onConnection(value);
      case 'b':
        return onBandwidth(value);
      case 'a':
        return onAttribute(value);
      default:
        return {};  // i=, u=, e=, p=, k=, z=, r= and unknown letters are kept as they are
    }
  }

  static std::string printable(char c) {
    if (c >= 0x21 && c < 0x7f) {
      return std::string(1, c);
    }
    return hexEscape(static_cast<unsigned char>(c));
  }

  Result<void> onOrigin(std::string_view value) {
    if (media_ != nullptr) {
      return fail(Errc::kParse, "o= inside a media section");
    }
    if (sawOrigin_) {
      return fail(Errc::kParse, "second o= line");
    }
    lex::Tokens t(value);
    std::string_view f[6];
    for (auto& field : f) {
      auto tok = t.next();
      if (!tok) {
        return fail(Errc::kParse, "o= needs six fields");
      }
      field = *tok;
    }
    if (!t.atEnd()) {
      return fail(Errc::kParse, "o= has more than six fields");
    }
    sawOrigin_ = true;
    Origin& o = sd_.origin;
    o.username = f[0];
    o.sessionId = f[1];
    o.sessionVersion = f[2];
    o.netType = f[3];
    o.addrType = f[4];
    o.address = f[5];
    o.type = detail::addrTypeOf(f[4]);
    return {};
  }

  Result<void> onConnection(std::string_view value) {
    auto c = detail::parseConnection(value);
    if (!c) {
      return fail(Errc::kParse, "c= needs <nettype> <addrtype> <address>");
    }
    auto& slot = media_ != nullptr ? media_->connection : sd_.connection;
    if (!slot) {
      slot = *c;  // several c= lines (layered multicast): the first is the one used
    }
    return {};
  }

  Result<void> onBandwidth(std::string_view value) {
    const size_t colon = value.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return fail(Errc::kParse, "b= needs <bwtype>:<bandwidth>");
    }
    auto bw = lex::parseUnsigned(value.substr(colon + 1), UINT64_MAX);
    if (!bw) {
      return fail(Errc::kParse, "bad bandwidth value in b= line");
    }
    auto& list = media_ != nullptr ? media_->bandwidths : sd_.bandwidths;
    list.push_back(Bandwidth{value.substr(0, colon), *bw});
    return {};
  }

  Result<void> onAttribute(std::string_view value) {
    const auto split = lex::splitAttribute(value);
    if (split.name.empty()) {
      return fail(Errc::kParse, "a= without an attribute name");
    }
    Attribute a{split.name, split.value, split.hasValue};
    if (media_ == nullptr) {
      sd_.attributes.push_back(a);
      if (auto d = parseDirection(a.name); d && !a.hasValue) {
        sd_.direction = d;
      } else if (a.name == "ice-lite") {
        sd_.iceLite = true;
      }
      return {};
    }
    MediaDescription& m = *media_;
    m.attributes.push_back(a);
    if (auto d = parseDirection(a.name); d && !a.hasValue) {
      m.direction = d;
    } else if (a.name == "rtcp-mux") {
      m.rtcpMux = true;
    } else if (a.name == "rtcp") {
      auto r = parseRtcp(a.value);
      if (!r) {
        return fail(Errc::kParse, "bad a=rtcp: " + r.error().message);
      }
      m.rtcpPort = r->port;
      m.rtcpAddress = r->address;
    }
    return {};
  }

  Result<void> onMedia(std::string_view value) {
    if (!sawOrigin_) {
      return fail(Errc::kParse, "m= before the o= line");
    }
    if (sd_.media.size() >= limits_.maxMedia) {
      return fail(Errc::kTooLarge,
                  "more than " + std::to_string(limits_.maxMedia) + " media sections");
    }
    lex::Tokens t(value);
    auto media = t.next();
    auto port = t.next();
    auto proto = t.next();
    if (!proto) {
      return fail(Errc::kParse, "m= needs <media> <port> <proto> <fmt>...");
    }
    MediaDescription m;
    m.media = *media;
    const size_t slash = port->find('/');
    auto p = lex::parsePort(port->substr(0, slash));
    if (!p) {
      return fail(Errc::kParse, "bad port in m= line");
    }
    m.port = *p;
    if (slash != std::string_view::npos) {
      auto count = lex::parsePort(port->substr(slash + 1));
      if (!count || *count == 0) {
        return fail(Errc::kParse, "bad port count in m= line");
      }
      m.portCount = *count;
    }
    m.proto = *proto;
    while (auto f = t.next()) {
      if (m.formats.size() >= limits_.maxFormats) {
        return fail(Errc::kTooLarge,
                    "more than " + std::to_string(limits_.maxFormats) + " formats in m= line");
      }
      m.formats.push_back(*f);
    }
    if (m.formats.empty()) {
      return fail(Errc::kParse, "m= line without formats");
    }
    m.lines.push_back(Line{'m', value});
    sd_.media.push_back(std::move(m));
    media_ = &sd_.media.back();
    return {};
  }

  std::string_view text_;
  const Limits& limits_;
  SessionDescription sd_;
  MediaDescription* media_ = nullptr;
  size_t lineNo_ = 0;
  bool sawVersion_ = false;
  bool sawOrigin_ = false;
};

}  // namespace

bool MediaDescription::isRtp() const {
  return proto.find("RTP") != std::string_view::npos;
}

const Attribute* MediaDescription::attribute(std::string_view name) const {
  return findAttribute(attributes, name);
}

std::vector<std::string_view> MediaDescription::attributeValues(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& a : attributes) {
    if (a.name == name) {
      out.push_back(a.value);
    }
  }
  return out;
}

const Attribute* SessionDescription::attribute(std::string_view name) const {
  return findAttribute(attributes, name);
}

Result<SessionDescription> parse(std::string_view text, const Limits& limits) {
  return Parser(text, limits).run();
}

const Connection* effectiveConnection(const SessionDescription& sd, const MediaDescription& m) {
  if (m.connection) {
    return &*m.connection;
  }
  if (sd.connection) {
    return &*sd.connection;
  }
  return nullptr;
}

uint16_t effectiveRtcpPort(const MediaDescription& m) {
  if (m.port == 0) {
    return 0;
  }
  if (m.rtcpPort != 0) {
    return m.rtcpPort;
  }
  if (m.rtcpMux) {
    return m.port;
  }
  return m.port == 65535 ? 0 : static_cast<uint16_t>(m.port + 1);
}

Direction effectiveDirection(const SessionDescription& sd, const MediaDescription& m) {
  if (m.direction) {
    return *m.direction;
  }
  return sd.direction.value_or(Direction::kSendRecv);
}

bool isOnHold(const SessionDescription& sd, const MediaDescription& m) {
  const Connection* c = effectiveConnection(sd, m);
  if (c != nullptr && c->isHoldAddress() && !m.hasAttribute("ice-ufrag") &&
      !sd.hasAttribute("ice-ufrag")) {
    return true;
  }
  const Direction d = effectiveDirection(sd, m);
  return d == Direction::kSendOnly || d == Direction::kInactive;
}

}  // namespace evosip::sdp
