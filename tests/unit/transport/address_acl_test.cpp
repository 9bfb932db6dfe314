#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <evosip/transport/address_acl.hpp>

namespace evosip::transport {
namespace {

namespace ip = boost::asio::ip;

ip::address addr(const char* text) {
  return ip::make_address(text);
}

TEST(AddressAcl, AddressesAndNetworks) {
  auto acl =
      AddressAcl::parse({"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "[::1]", " 0.0.0.0/32 "});
  ASSERT_TRUE(acl) << acl.error().message;
  EXPECT_TRUE(acl->allows(addr("10.1.2.3")));
  EXPECT_TRUE(acl->allows(addr("10.255.255.255")));
  EXPECT_FALSE(acl->allows(addr("11.0.0.1")));
  EXPECT_TRUE(acl->allows(addr("192.0.2.7")));
  EXPECT_FALSE(acl->allows(addr("192.0.2.8")));
  EXPECT_TRUE(acl->allows(addr("2001:db8:ffff::1")));
  EXPECT_FALSE(acl->allows(addr("2001:db9::1")));
  EXPECT_TRUE(acl->allows(addr("::1")));
  EXPECT_FALSE(acl->allows(addr("::2")));
  EXPECT_EQ(acl->str(), "10.0.0.0/8, 192.0.2.7/32, 2001:db8::/32, ::1/128, 0.0.0.0/32");
}

TEST(AddressAcl, PrefixesThatAreNotWholeBytes) {
  auto acl = AddressAcl::parse({"172.16.0.0/12", "fe80::/10"});
  ASSERT_TRUE(acl);
  EXPECT_TRUE(acl->allows(addr("172.31.255.1")));
  EXPECT_FALSE(acl->allows(addr("172.32.0.1")));
  EXPECT_FALSE(acl->allows(addr("172.15.255.255")));
  EXPECT_TRUE(acl->allows(addr("febf::1")));
  EXPECT_FALSE(acl->allows(addr("fec0::1")));
}

TEST(AddressAcl, Ipv4MappedSourcesMatchIpv4Entries) {
  auto acl = AddressAcl::parse({"127.0.0.0/8"});
  ASSERT_TRUE(acl);
  EXPECT_TRUE(acl->allows(addr("::ffff:127.0.0.1")));
  EXPECT_FALSE(acl->allows(addr("::ffff:128.0.0.1")));
  auto mapped = AddressAcl::parse({"::ffff:10.0.0.0/104"});
  ASSERT_TRUE(mapped) << mapped.error().message;
  EXPECT_TRUE(mapped->allows(addr("10.9.9.9")));
  EXPECT_EQ(mapped->str(), "10.0.0.0/8");
}

TEST(AddressAcl, EverybodyOnlyWhenWrittenOut) {
  auto all = AddressAcl::parse({"0.0.0.0/0", "::/0"});
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->allows(addr("203.0.113.9")));
  EXPECT_TRUE(all->allows(addr("2001:db8::9")));
  EXPECT_FALSE(AddressAcl().allows(addr("127.0.0.1")));
}

TEST(AddressAcl, BadEntriesNameThemselves) {
  for (const char* text :
       {"", "10.0.0.0/33", "::/129", "10.0.0.1/8", "host.example", "10.0.0.0/", "10.0.0.0/-1",
        "10.0.0.0/0008", "fe80::1%eth0", "::ffff:10.0.0.0/8", "10.0.0.0/8/8", "[10.0.0.1"}) {
    auto acl = AddressAcl::parse({"127.0.0.1", text});
    ASSERT_FALSE(acl) << text;
    if (*text != '\0') {
      EXPECT_NE(acl.error().message.find(text), std::string::npos) << acl.error().message;
    }
  }
}

TEST(AddressAcl, LoopbackDefault) {
  const AddressAcl acl = AddressAcl::loopback();
  EXPECT_TRUE(acl.onlyLoopback());
  EXPECT_TRUE(AddressAcl::parse({"127.0.0.1"})->onlyLoopback());
  EXPECT_FALSE(AddressAcl::parse({"127.0.0.1", "10.0.0.0/8"})->onlyLoopback());
  EXPECT_FALSE(AddressAcl::parse({"0.0.0.0/0"})->onlyLoopback());
  EXPECT_FALSE(AddressAcl::parse({"::/0"})->onlyLoopback());
  EXPECT_TRUE(acl.allows(addr("127.0.0.1")));
  EXPECT_TRUE(acl.allows(addr("127.0.0.2")));
  EXPECT_TRUE(acl.allows(addr("::1")));
  EXPECT_FALSE(acl.allows(addr("192.0.2.1")));
}

TEST(AddressAcl, RawSocketAddresses) {
  const AddressAcl acl = AddressAcl::loopback();
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
  EXPECT_TRUE(acl.allows(reinterpret_cast<sockaddr*>(&v4), sizeof v4));
  EXPECT_FALSE(acl.allows(reinterpret_cast<sockaddr*>(&v4), sizeof v4 - 1));
  ::inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr);
  EXPECT_FALSE(acl.allows(reinterpret_cast<sockaddr*>(&v4), sizeof v4));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  ::inet_pton(AF_INET6, "::1", &v6.sin6_addr);
  EXPECT_TRUE(acl.allows(reinterpret_cast<sockaddr*>(&v6), sizeof v6));
  sockaddr other{};
  other.sa_family = AF_UNIX;
  EXPECT_FALSE(acl.allows(&other, sizeof other));
  EXPECT_FALSE(acl.allows(nullptr, 0));
}

}  // namespace
}  // namespace evosip::transport
