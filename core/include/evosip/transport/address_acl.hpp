#pragma once
// Address access lists: which peers may talk to a listener that is not for everybody (the media
// relay's ng socket, the app's SIP socket). An entry is an address ("192.0.2.7", "::1",
// "[2001:db8::1]") or a network in CIDR notation ("10.0.0.0/8", "2001:db8::/32"). A
// network's host bits must be zero ("10.0.0.1/8" is refused: a typo, not a network). An
// IPv4-mapped IPv6 source (::ffff:10.0.0.1, as a dual-stack socket reports it) is matched as the
// IPv4 address it carries.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include <evosip/base/result.hpp>

namespace evosip::transport {

// One address or network. IPv4 networks are kept as IPv4 (prefix 0..32), IPv6 as IPv6 (0..128).
struct AddressRange {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // network address, first 4 bytes used for IPv4
  uint8_t prefix = 0;

  bool contains(const boost::asio::ip::address& a) const;
  std::string str() const;  // "10.0.0.0/8", "::1/128"
  bool operator==(const AddressRange&) const = default;
};

// "ADDRESS" or "ADDRESS/PREFIX" (blanks around it ignored). Error (Errc::kParse) naming the text.
Result<AddressRange> parseAddressRange(std::string_view text);

class AddressAcl {
 public:
  AddressAcl() = default;  // allows nobody

  // Every entry must parse; the error names the first bad one.
  static Result<AddressAcl> parse(const std::vector<std::string>& entries);
  // 127.0.0.0/8 and ::1: the loopback peers of a single-host installation.
  static AddressAcl loopback();

  bool allows(const boost::asio::ip::address& a) const;
  // A raw socket address (AF_INET / AF_INET6); anything else is refused.
  bool allows(const sockaddr* sa, socklen_t len) const;

  bool empty() const { return ranges_.empty(); }
  // Every entry is inside 127.0.0.0/8 or ::1: nobody on another host is allowed.
  bool onlyLoopback() const;
  const std::vector<AddressRange>& ranges() const { return ranges_; }
  std::string str() const;  // "127.0.0.0/8, ::1/128"

 private:
  std::vector<AddressRange> ranges_;
};

}  // namespace evosip::transport
