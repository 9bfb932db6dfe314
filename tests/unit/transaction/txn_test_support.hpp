#pragma once
// Shared by the transaction and proxy tests: message builders, a recording send callback.

#include <manual_clock.hpp>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>
#include <evosip/transaction/transaction.hpp>

namespace evosip::transaction::txntest {

using transport::Endpoint;
using transport::Protocol;

inline Endpoint ep(const char* ip, uint16_t port) {
  return {boost::asio::ip::make_address(ip), port};
}

struct Sent {
  Destination to;
  std::string bytes;
};

inline sip::Message parsed(const std::string& bytes) {
  auto m = sip::Message::parse(bytes);
  EXPECT_TRUE(m.has_value()) << bytes;
  return *m;
}

inline std::string header(const std::string& bytes, sip::HeaderId id) {
  auto m = sip::Message::parse(bytes);
  if (!m) {
    return "<unparsable>";
  }
  const auto* h = m->find(id);
  return h ? std::string(h->value) : std::string();
}

inline std::string wireTag(const sip::Message& m) {
  auto to = m.to();
  return to && to->tag() ? std::string(*to->tag()) : std::string();
}

struct RequestSpec {
  std::string method = "INVITE";
  std::string uri = "sip:bob@evosip.local";
  std::string via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-abc1";
  std::string fromTag = "1928301774";
  std::string toTag;
  std::string callId = "a84b4c76e66710@pc33.atlanta.com";
  uint32_t cseq = 314159;
  std::string cseqMethod;  // defaults to method
  std::string extra;       // complete lines
};

inline std::string request(const RequestSpec& s) {
  std::string to = "Bob <sip:bob@evosip.local>";
  if (!s.toTag.empty()) {
    to += ";tag=" + s.toTag;
  }
  return s.method + " " + s.uri + " SIP/2.0\r\n" + "Via: " + s.via + "\r\n" +
         "Max-Forwards: 70\r\n" + "To: " + to + "\r\n" +
         "From: Alice <sip:alice@evosip.local>;tag=" + s.fromTag + "\r\n" + "Call-ID: " + s.callId +
         "\r\n" + "CSeq: " + std::to_string(s.cseq) + " " +
         (s.cseqMethod.empty() ? s.method : s.cseqMethod) + "\r\n" + s.extra +
         "Content-Length: 0\r\n\r\n";
}

// A response to `req` (its Vias, From, To with `toTag`, Call-ID, CSeq) with extra lines.
inline std::string responseTo(const std::string& req, int code, const std::string& toTag,
                              const std::string& extra = "") {
  auto m = sip::Message::parse(req);
  EXPECT_TRUE(m.has_value());
  std::string out = "SIP/2.0 " + std::to_string(code) + " Reason\r\n";
  for (const auto& h : m->headers()) {
    if (h.id == sip::HeaderId::kVia || h.id == sip::HeaderId::kFrom ||
        h.id == sip::HeaderId::kCallId || h.id == sip::HeaderId::kCSeq ||
        h.id == sip::HeaderId::kRecordRoute) {
      out += std::string(h.name) + ": " + std::string(h.value) + "\r\n";
    } else if (h.id == sip::HeaderId::kTo) {
      out += "To: " + std::string(h.value);
      if (!toTag.empty() && std::string(h.value).find(";tag=") == std::string::npos) {
        out += ";tag=" + toTag;
      }
      out += "\r\n";
    }
  }
  return out + extra + "Content-Length: 0\r\n\r\n";
}

}  // namespace evosip::transaction::txntest
