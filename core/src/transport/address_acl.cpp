#include <cstring>
#include <netinet/in.h>

#include <fmt/format.h>

#include <evosip/base/strings.hpp>
#include <evosip/transport/address_acl.hpp>

namespace evosip::transport {

namespace ip = boost::asio::ip;

namespace {

// An IPv4-mapped IPv6 address is the IPv4 address it carries.
ip::address canonical(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

bool prefixMatches(const uint8_t* net, const uint8_t* addr, unsigned prefix) {
  const unsigned whole = prefix / 8;
  if (std::memcmp(net, addr, whole) != 0) {
    return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) {
    return true;
  }
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (net[whole] & mask) == (addr[whole] & mask);
}

// True when a bit after the first `prefix` bits is set.
bool hostBitsSet(const uint8_t* bytes, unsigned size, unsigned prefix) {
  for (unsigned bit = prefix; bit < size * 8; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return true;
    }
  }
  return false;
}

tl::unexpected<Error> bad(std::string_view text, std::string_view why) {
  return makeError(Errc::kParse, fmt::format("'{}': {}", text, why));
}

}  // namespace

bool AddressRange::contains(const ip::address& a) const {
  const ip::address c = canonical(a);
  if (c.is_v6() != v6) {
    return false;
  }
  if (v6) {
    const auto b = c.to_v6().to_bytes();
    return prefixMatches(bytes.data(), b.data(), prefix);
  }
  const auto b = c.to_v4().to_bytes();
  return prefixMatches(bytes.data(), b.data(), prefix);
}

std::string AddressRange::str() const {
  if (v6) {
    ip::address_v6::bytes_type b;
    std::memcpy(b.data(), bytes.data(), b.size());
    return fmt::format("{}/{}", ip::make_address_v6(b).to_string(), prefix);
  }
  ip::address_v4::bytes_type b;
  std::memcpy(b.data(), bytes.data(), b.size());
  return fmt::format("{}/{}", ip::make_address_v4(b).to_string(), prefix);
}

Result<AddressRange> parseAddressRange(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.empty()) {
    return bad(text, "empty entry");
  }
  if (t.size() > 64) {
    return bad(text.substr(0, 64), "too long for an address or network");
  }
  const size_t slash = t.find('/');
  std::string_view host = t.substr(0, slash);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.find('%') != std::string_view::npos) {
    return bad(text, "zone indexes are not allowed");
  }
  boost::system::error_code ec;
  const ip::address parsed = ip::make_address(std::string(host), ec);
  if (ec) {
    return bad(text, "not an IPv4 or IPv6 address");
  }
  const ip::address a = canonical(parsed);
  AddressRange r;
  r.v6 = a.is_v6();
  const unsigned maxPrefix = parsed.is_v6() ? 128 : 32;  // as written
  r.prefix = static_cast<uint8_t>(r.v6 ? 128 : 32);
  if (slash != std::string_view::npos) {
    const std::string_view digits = t.substr(slash + 1);
    auto p = digits.size() <= 3 ? parseDecimal(digits, maxPrefix) : std::nullopt;
    if (!p) {
      return bad(text, fmt::format("prefix length must be 0..{}", maxPrefix));
    }
    r.prefix = static_cast<uint8_t>(*p);
    if (parsed.is_v6() && !r.v6) {
      // ::ffff:a.b.c.d/N: the IPv4 network of the last 32 bits.
      if (r.prefix < 96) {
        return bad(text, "an IPv4-mapped network needs a prefix of 96 or more");
      }
      r.prefix = static_cast<uint8_t>(r.prefix - 96);
    }
  }
  if (r.v6) {
    const auto b = a.to_v6().to_bytes();
    std::memcpy(r.bytes.data(), b.data(), b.size());
  } else {
    const auto b = a.to_v4().to_bytes();
    std::memcpy(r.bytes.data(), b.data(), b.size());
  }
  if (hostBitsSet(r.bytes.data(), r.v6 ? 16 : 4, r.prefix)) {
    return bad(text, "host bits are set after the prefix (write the network address)");
  }
  return r;
}

Result<AddressAcl> AddressAcl::parse(const std::vector<std::string>& entries) {
  AddressAcl acl;
  for (const auto& e : entries) {
    auto r = parseAddressRange(e);
    if (!r) {
      return tl::unexpected(r.error());
    }
    acl.ranges_.push_back(*r);
  }
  return acl;
}

AddressAcl AddressAcl::loopback() {
  return *parse({"127.0.0.0/8", "::1"});
}

bool AddressAcl::allows(const ip::address& a) const {
  for (const auto& r : ranges_) {
    if (r.contains(a)) {
      return true;
    }
  }
  return false;
}

bool AddressAcl::allows(const sockaddr* sa, socklen_t len) const {
  if (sa == nullptr) {
    return false;
  }
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    ip::address_v4::bytes_type b;
    std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, b.size());
    return allows(ip::address(ip::make_address_v4(b)));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, b.size());
    return allows(ip::address(ip::make_address_v6(b)));
  }
  return false;
}

bool AddressAcl::onlyLoopback() const {
  static const AddressAcl kLoopback = loopback();
  for (const auto& r : ranges_) {
    const bool v4Inside = !r.v6 && r.prefix >= 8 && r.bytes[0] == 127;
    const bool v6Inside = r.v6 && r.prefix == 128 && kLoopback.ranges_[1] == r;
    if (!v4Inside && !v6Inside) {
      return false;
    }
  }
  return true;
}

std::string AddressAcl::str() const {
  std::string out;
  for (const auto& r : ranges_) {
    if (!out.empty()) {
      out += ", ";
    }
    out += r.str();
  }
  return out;
}

}  // namespace evosip::transport
