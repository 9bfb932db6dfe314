#pragma once
// What a SIP component under test sent, as its peers see it: one entry of a recording send
// callback, and endpoints written as text.
#include <string>

#include <boost/asio/ip/address.hpp>

#include <evosip/transport/sip_transport.hpp>

namespace evosip::test {

inline transport::Endpoint ep(const char* ip, uint16_t port) {
  return {boost::asio::ip::make_address(ip), port};
}

struct Sent {
  transport::Destination to;
  std::string bytes;
};

}  // namespace evosip::test
