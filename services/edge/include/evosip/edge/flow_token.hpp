#pragma once
// A flow token (RFC 5626 section 5.2 idea) names the client flow a Record-Route, Path or Via
// entry of this edge belongs to: the transport, the client's address as seen by the edge and,
// for TCP, the connection. It travels in the user part of the edge's Record-Route/Path URI and in
// a Via parameter, so the edge needs no table to reach a client behind NAT. Tokens are signed
// (HMAC-SHA256, truncated) so a client cannot make the edge send to an address of its choice.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <evosip/auth/hmac.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::edge {

class FlowTokenCodec {
 public:
  // secret empty -> a random secret for this process (tokens then do not survive a restart).
  explicit FlowTokenCodec(std::string_view secret);

  // Appends the token (base64url, no padding, 30-50 characters) to out.
  void encode(const transport::Destination& flow, std::string& out) const;
  std::optional<transport::Destination> decode(std::string_view token) const;

 private:
  static transport::Destination unpack(const unsigned char* body);

  uint64_t id_;  // names this codec in each thread's memo of recent tokens
  std::shared_ptr<const auth::HmacSha256> hmac_;
};

}  // namespace evosip::edge
