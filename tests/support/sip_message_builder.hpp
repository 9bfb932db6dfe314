#pragma once
// SIP requests and responses for tests, with sane defaults that any header can override:
//
//   auto invite = SipMessageBuilder::request("INVITE", "sip:bob@example.com")
//                     .via("SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-1")
//                     .route("<sip:10.0.0.1;lr>")
//                     .body("v=0\r\n", "application/sdp")
//                     .str();
//   auto ok = SipMessageBuilder::responseTo(invite, 200).toTag("b1").str();
//
// A request carries one Via, Max-Forwards: 70, From (with a tag), To, Call-ID, CSeq (the
// request's method), Content-Length; a response to a request copies its Vias, Record-Routes,
// From, To, Call-ID and CSeq. Headers are written in the order Via, Route, Record-Route,
// Max-Forwards, From, To, Call-ID, CSeq, Contact, the extra headers, Content-Type,
// Content-Length. Text only: it neither parses nor checks what it writes, so a test can build a
// malformed message on purpose.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evosip::test {

class SipMessageBuilder {
 public:
  static SipMessageBuilder request(std::string method, std::string uri = "sip:bob@example.com") {
    SipMessageBuilder b;
    b.cseqMethod_ = method;
    b.startLine_ = method + " " + uri + " SIP/2.0";
    b.vias_ = {"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-74bf9"};
    b.maxForwards_ = "70";
    return b;
  }

  // A response with the default From, To, Call-ID and CSeq 1 INVITE; reason "" picks the
  // usual phrase for the code.
  static SipMessageBuilder response(int code, std::string_view reason = "") {
    SipMessageBuilder b;
    b.startLine_ = statusLine(code, reason);
    b.cseqMethod_ = "INVITE";
    b.vias_ = {"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-74bf9"};
    return b;
  }

  // A response to `request`: its Vias and Record-Routes (in order), From, To, Call-ID and CSeq
  // (long or compact names, one header a line).
  static SipMessageBuilder responseTo(std::string_view request, int code,
                                      std::string_view reason = "") {
    SipMessageBuilder b;
    b.startLine_ = statusLine(code, reason);
    for (const auto& [name, value] : headerLines(request)) {
      if (name == "via" || name == "v") {
        b.vias_.push_back(value);
      } else if (name == "record-route") {
        b.recordRoutes_.push_back(value);
      } else if (name == "from" || name == "f") {
        b.from_ = value;
      } else if (name == "to" || name == "t") {
        b.to_ = value;
      } else if (name == "call-id" || name == "i") {
        b.callId_ = value;
      } else if (name == "cseq") {
        b.cseq_ = value;
      }
    }
    return b;
  }

  // The one Via (replaces the others); addVia puts another below those already there.
  SipMessageBuilder& via(std::string value) {
    vias_ = {std::move(value)};
    return *this;
  }
  SipMessageBuilder& addVia(std::string value) {
    vias_.push_back(std::move(value));
    return *this;
  }
  SipMessageBuilder& noVia() {
    vias_.clear();
    return *this;
  }
  // Each call adds one Route (Record-Route) header line, in order.
  SipMessageBuilder& route(std::string value) {
    routes_.push_back(std::move(value));
    return *this;
  }
  SipMessageBuilder& recordRoute(std::string value) {
    recordRoutes_.push_back(std::move(value));
    return *this;
  }
  SipMessageBuilder& maxForwards(int hops) {
    maxForwards_ = std::to_string(hops);
    return *this;
  }
  SipMessageBuilder& noMaxForwards() {
    maxForwards_.reset();
    return *this;
  }
  // From and To as name-addr (with any parameters); fromTag/toTag set or replace the tag.
  SipMessageBuilder& from(std::string nameAddr) {
    from_ = std::move(nameAddr);
    return *this;
  }
  SipMessageBuilder& to(std::string nameAddr) {
    to_ = std::move(nameAddr);
    return *this;
  }
  SipMessageBuilder& fromTag(std::string_view tag) {
    from_ = withTag(from_, tag);
    return *this;
  }
  SipMessageBuilder& toTag(std::string_view tag) {
    to_ = withTag(to_, tag);
    return *this;
  }
  SipMessageBuilder& callId(std::string value) {
    callId_ = std::move(value);
    return *this;
  }
  // CSeq number; the method defaults to the request's (INVITE for a bare response).
  SipMessageBuilder& cseq(uint32_t number, std::string method = "") {
    cseq_ = std::to_string(number) + " " + (method.empty() ? cseqMethod_ : method);
    return *this;
  }
  SipMessageBuilder& contact(std::string value) {
    contact_ = std::move(value);
    return *this;
  }
  // Any other header line, after Contact, in the order added.
  SipMessageBuilder& header(std::string_view name, std::string_view value) {
    extra_.append(name).append(": ").append(value).append("\r\n");
    return *this;
  }
  // Header lines exactly as written, each ending in CRLF (folded, compact or malformed ones),
  // in the same place as header().
  SipMessageBuilder& lines(std::string_view text) {
    extra_.append(text);
    return *this;
  }
  SipMessageBuilder& body(std::string text, std::string contentType = "application/sdp") {
    body_ = std::move(text);
    contentType_ = std::move(contentType);
    return *this;
  }
  // Content-Length as given (a lie about the body, or none at all with nullopt).
  SipMessageBuilder& contentLength(std::optional<size_t> length) {
    contentLength_ = length;
    contentLengthSet_ = true;
    return *this;
  }

  std::string str() const {
    std::string out = startLine_ + "\r\n";
    for (const auto& v : vias_) {
      line(out, "Via", v);
    }
    for (const auto& r : routes_) {
      line(out, "Route", r);
    }
    for (const auto& r : recordRoutes_) {
      line(out, "Record-Route", r);
    }
    if (maxForwards_) {
      line(out, "Max-Forwards", *maxForwards_);
    }
    line(out, "From", from_);
    line(out, "To", to_);
    line(out, "Call-ID", callId_);
    line(out, "CSeq", cseq_.empty() ? "1 " + cseqMethod_ : cseq_);
    if (!contact_.empty()) {
      line(out, "Contact", contact_);
    }
    out += extra_;
    if (!body_.empty()) {
      line(out, "Content-Type", contentType_);
    }
    const std::optional<size_t> length = contentLengthSet_ ? contentLength_ : body_.size();
    if (length) {
      line(out, "Content-Length", std::to_string(*length));
    }
    return out + "\r\n" + body_;
  }

 private:
  SipMessageBuilder() = default;

  static void line(std::string& out, std::string_view name, std::string_view value) {
    out.append(name).append(": ").append(value).append("\r\n");
  }

  static std::string statusLine(int code, std::string_view reason) {
    return "SIP/2.0 " + std::to_string(code) + " " +
           std::string(reason.empty() ? defaultReason(code) : reason);
  }

  static std::string_view defaultReason(int code) {
    switch (code) {
      case 100:
        return "Trying";
      case 180:
        return "Ringing";
      case 183:
        return "Session Progress";
      case 200:
        return "OK";
      case 401:
        return "Unauthorized";
      case 403:
        return "Forbidden";
      case 404:
        return "Not Found";
      case 407:
        return "Proxy Authentication Required";
      case 408:
        return "Request Timeout";
      case 480:
        return "Temporarily Unavailable";
      case 486:
        return "Busy Here";
      case 487:
        return "Request Terminated";
      case 500:
        return "Server Internal Error";
      case 503:
        return "Service Unavailable";
      case 603:
        return "Decline";
      default:
        return "Reason";
    }
  }

  // addr with ";tag=" set to tag (replacing one already there).
  static std::string withTag(std::string_view addr, std::string_view tag) {
    std::string out(addr);
    const auto at = out.find(";tag=");
    if (at != std::string::npos) {
      const auto end = out.find(';', at + 1);
      out.erase(at, end == std::string::npos ? std::string::npos : end - at);
    }
    return out + ";tag=" + std::string(tag);
  }

  // The header lines of a message up to the blank line: (lower-case name, value).
  static std::vector<std::pair<std::string, std::string>> headerLines(std::string_view msg) {
    std::vector<std::pair<std::string, std::string>> out;
    size_t pos = msg.find("\r\n");
    while (pos != std::string_view::npos) {
      pos += 2;
      const size_t end = msg.find("\r\n", pos);
      if (end == std::string_view::npos || end == pos) {
        break;
      }
      const std::string_view text = msg.substr(pos, end - pos);
      const size_t colon = text.find(':');
      if (colon != std::string_view::npos) {
        std::string name(trim(text.substr(0, colon)));
        for (char& c : name) {
          c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        out.emplace_back(std::move(name), std::string(trim(text.substr(colon + 1))));
      }
      pos = end;
    }
    return out;
  }

  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
      s.remove_suffix(1);
    }
    return s;
  }

  std::string startLine_;
  std::string cseqMethod_;
  std::vector<std::string> vias_;
  std::vector<std::string> routes_;
  std::vector<std::string> recordRoutes_;
  std::optional<std::string> maxForwards_;
  std::string from_ = "Alice <sip:alice@example.com>;tag=1928301774";
  std::string to_ = "Bob <sip:bob@example.com>";
  std::string callId_ = "a84b4c76e66710@pc33.atlanta.com";
  std::string cseq_;
  std::string contact_;
  std::string extra_;  // complete header lines
  std::string body_;
  std::string contentType_;
  std::optional<size_t> contentLength_;
  bool contentLengthSet_ = false;
};

}  // namespace evosip::test
