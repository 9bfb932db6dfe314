#pragma once
// Shared by the transaction and proxy tests: the request and response shapes they use (on the
// shared SipMessageBuilder), a recording send callback.

#include <manual_clock.hpp>
#include <sent_message.hpp>
#include <sip_message_builder.hpp>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>
#include <evosip/transaction/transaction.hpp>

namespace evosip::transaction::txntest {

using transport::Endpoint;
using transport::Protocol;

using test::ep;
using test::Sent;

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
  auto b = test::SipMessageBuilder::request(s.method, s.uri)
               .via(s.via)
               .from("Alice <sip:alice@evosip.local>")
               .fromTag(s.fromTag)
               .to("Bob <sip:bob@evosip.local>")
               .callId(s.callId)
               .cseq(s.cseq, s.cseqMethod)
               .lines(s.extra);
  if (!s.toTag.empty()) {
    b.toTag(s.toTag);
  }
  return b.str();
}

// A response to `req` (its Vias, Record-Routes, From, To with `toTag` unless it has one,
// Call-ID, CSeq) with extra lines.
inline std::string responseTo(const std::string& req, int code, const std::string& toTag,
                              const std::string& extra = "") {
  auto b = test::SipMessageBuilder::responseTo(req, code, "Reason").lines(extra);
  if (!toTag.empty() && wireTag(parsed(req)).empty()) {
    b.toTag(toTag);
  }
  return b.str();
}

}  // namespace evosip::transaction::txntest
