#pragma once
// The framing of rtpengine's ng control protocol over UDP: every datagram is
// "<cookie> <bencoded dictionary>" and its reply is "<same cookie> <bencoded dictionary>"; and
// the reply bodies every ng command shares. The dictionary itself is plain bencode
// (bencode.hpp).
//
//   auto msg = bencode::parseNgDatagram(datagram);
//   if (!msg) { ... msg.error().message ... }
//   auto command = msg->body.string("command");
//   bencode::Value reply = bencode::ngOk();
//   reply.set("sdp", rewrittenSdp);
//   send(bencode::formatNgReply(msg->cookie, reply));

#include <cstddef>
#include <string>
#include <string_view>

#include <evosip/base/result.hpp>
#include <evosip/bencode/bencode.hpp>

namespace evosip::bencode {

struct NgMessage {
  std::string_view cookie;  // points into the datagram
  Value body;               // always a dictionary
};

// "<cookie> <dict>": cookie is 1..kMaxCookie bytes without spaces, one space, then a bencoded
// dictionary and nothing after it. Errors: empty/missing cookie or space (kParse), bad bencode
// (kParse, offset relative to the datagram), body not a dictionary (kInvalid).
inline constexpr size_t kMaxCookie = 128;
Result<NgMessage> parseNgDatagram(std::string_view datagram, const Limits& limits = {});

// "<cookie> " followed by encode(body): a reply, or a request a client sends.
std::string formatNgReply(std::string_view cookie, const Value& body);

// Reply bodies every ng command shares: {"result":"ok"}, {"result":"pong"} and
// {"result":"error","error-reason":reason}.
Value ngOk();
Value ngPong();
Value ngError(std::string_view reason);

}  // namespace evosip::bencode
