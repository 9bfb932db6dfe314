#include <atomic>
#include <future>
#include <netinet/in.h>
#include <set>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>

#include "test_peer.hpp"

namespace evosip::transport::testing {
namespace {

class UdpTransportTest : public TransportFixture {};

TEST_F(UdpTransportTest, BoundResolvesPortZero) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  startTransport(s);
  ASSERT_EQ(transport_->bound().size(), 1u);
  EXPECT_EQ(transport_->bound()[0].protocol, Protocol::kUdp);
  EXPECT_EQ(boundAt(0).ip.to_string(), "127.0.0.1");
  EXPECT_NE(boundAt(0).port, 0);
}

TEST_F(UdpTransportTest, RoundTripWithReplyFromTheHandler) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  reply_ = [](SipTransport& t, const Packet& p) {
    EXPECT_TRUE(
        t.send(Destination{Protocol::kUdp, p.source.remote, {}}, "re:" + std::string(p.data)));
  };
  startTransport(s, 2);
  UdpPeer peer;
  ASSERT_TRUE(peer.sendTo(boundAt(0), "OPTIONS sip:x SIP/2.0\r\n\r\n"));
  auto reply = peer.receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, "re:OPTIONS sip:x SIP/2.0\r\n\r\n");
  auto got = received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].source.protocol, Protocol::kUdp);
  EXPECT_EQ(got[0].source.local, boundAt(0));
  EXPECT_EQ(got[0].source.remote.ip.to_string(), "127.0.0.1");
  EXPECT_FALSE(got[0].source.connection.valid());
  EXPECT_LT(got[0].worker, 2u);
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpReceived.load() == 1u; }))
      << "udpReceived";
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpSent.load() == 1u; })) << "udpSent";
}

TEST_F(UdpTransportTest, HundredDatagramsAllDeliveredAndAnswered) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  s.udpBatch = 8;  // several recvmmsg rounds and sendmmsg flushes
  reply_ = [](SipTransport& t, const Packet& p) {
    t.send(Destination{Protocol::kUdp, p.source.remote, {}}, p.data);
  };
  startTransport(s, 2);
  UdpPeer peer;
  std::set<std::string> sent;
  for (int i = 0; i < 100; ++i) {
    std::string d = "datagram-" + std::to_string(i);
    sent.insert(d);
    ASSERT_TRUE(peer.sendTo(boundAt(0), d));
  }
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 100; })) << "received " << receivedCount();
  std::set<std::string> got;
  for (auto& r : received()) {
    got.insert(r.data);
  }
  EXPECT_EQ(got, sent);
  std::set<std::string> echoed;
  for (int i = 0; i < 100; ++i) {
    auto d = peer.receive();
    ASSERT_TRUE(d) << "reply " << i;
    echoed.insert(*d);
  }
  EXPECT_EQ(echoed, sent);
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpReceived.load() == 100u; }))
      << "udpReceived";
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpSent.load() == 100u; })) << "udpSent";
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpSendErrors.load() == 0u; }))
      << "udpSendErrors";
}

// A burst far beyond the worker's receive buffers, while the worker is busy: with io_uring the
// multishot receive takes the few provided buffers, ends for want of one (-ENOBUFS, no
// IORING_CQE_F_MORE) and is armed again, many times over, with the answers filling the
// submission queue meanwhile. Every datagram is received and answered, and the socket keeps
// receiving afterwards.
TEST_F(UdpTransportTest, ABurstBeyondTheReceiveBuffersIsReceivedWholeAndReceivingGoesOn) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  s.udpBatch = 4;
  s.udpRingBuffers = 4;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  reply_ = [released, &first](SipTransport& t, const Packet& p) {
    if (first.exchange(false)) {
      released.wait();  // the worker is busy while the burst arrives
    }
    t.send(Destination{Protocol::kUdp, p.source.remote, {}}, p.data);
  };
  startTransport(s, 1);
  UdpPeer peer;
  ASSERT_TRUE(peer.sendTo(boundAt(0), "first"));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  constexpr size_t kBurst = 1500;  // more answers than the submission queue holds, too
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(peer.sendTo(boundAt(0), "burst-" + std::to_string(i)));
  }
  release.set_value();
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1 + kBurst; }))
      << "received " << receivedCount();
  std::set<std::string> got;
  for (const auto& r : received()) {
    got.insert(r.data);
  }
  EXPECT_EQ(got.size(), 1 + kBurst);
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpSent.load() == 1 + kBurst; }))
      << "udpSent " << transport_->stats().udpSent.load();
  EXPECT_EQ(transport_->stats().udpSendErrors.load(), 0u);
  // Afterwards: a new peer's request is received and answered.
  UdpPeer later;
  for (int i = 0; i < 3; ++i) {
    const std::string text = "after-" + std::to_string(i);
    ASSERT_TRUE(later.sendTo(boundAt(0), text));
    auto echo = later.receive();
    ASSERT_TRUE(echo) << text;
    EXPECT_EQ(*echo, text);
  }
  EXPECT_EQ(transport_->stats().udpReceived.load(), 1 + kBurst + 3);
}

TEST_F(UdpTransportTest, OversizeDatagramIsDroppedAndCounted) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  s.maxMessageSize = 1000;
  startTransport(s, 1);
  UdpPeer peer;
  ASSERT_TRUE(peer.sendTo(boundAt(0), std::string(1001, 'x')));
  ASSERT_TRUE(peer.sendTo(boundAt(0), std::string(1000, 'y')));  // exactly the limit: kept
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  EXPECT_TRUE(waitUntil([&] { return transport_->stats().udpDroppedOversize.load() == 1; }));
  auto got = received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, std::string(1000, 'y'));
}

TEST_F(UdpTransportTest, SendFromANonWorkerThreadGoesOut) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  std::promise<Endpoint> peerAddress;
  reply_ = [&](SipTransport&, const Packet& p) { peerAddress.set_value(p.source.remote); };
  startTransport(s, 2);
  UdpPeer peer;
  ASSERT_TRUE(peer.sendTo(boundAt(0), "hello"));
  auto future = peerAddress.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  Endpoint remote = future.get();
  EXPECT_TRUE(transport_->send(Destination{Protocol::kUdp, remote, {}}, "from main"));
  auto d = peer.receive();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, "from main");
  // No IPv6 socket: refused at once.
  auto v6 = parseEndpoint("[::1]:5060");
  EXPECT_FALSE(transport_->send(Destination{Protocol::kUdp, *v6, {}}, "x"));
}

TEST_F(UdpTransportTest, EgressSocketsSendFromTheirPortAndDeliverToTheirWorker) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  s.egressPerWorker = 2;
  // Each request is answered from the egress socket its text names.
  reply_ = [](SipTransport& t, const Packet& p) {
    if (p.data.rfind("via ", 0) == 0) {
      const int32_t index = std::stoi(std::string(p.data.substr(4)));
      t.send(Destination{Protocol::kUdp, p.source.remote, {}, index}, "sent");
    }
  };
  startTransport(s, 2);
  ASSERT_EQ(transport_->egressCount(), 4u);
  std::set<uint16_t> ports;
  for (size_t i = 0; i < 4; ++i) {
    auto port = transport_->egressPort(i, false);
    ASSERT_TRUE(port);
    EXPECT_NE(*port, boundAt(0).port);
    ports.insert(*port);
    EXPECT_FALSE(transport_->egressPort(i, true)) << "no IPv6 listen address";
    EXPECT_EQ(transport_->egressWorker(i), i / 2);
  }
  EXPECT_EQ(ports.size(), 4u);
  EXPECT_FALSE(transport_->egressPort(4, false));

  UdpPeer peer;
  for (int32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(peer.sendTo(boundAt(0), "via " + std::to_string(i)));
    auto got = peer.receiveFrom();
    ASSERT_TRUE(got) << i;
    EXPECT_EQ(got->first, "sent");
    EXPECT_EQ(got->second, *transport_->egressPort(static_cast<size_t>(i), false)) << i;
  }
  // What reaches an egress port is delivered to the worker that owns it.
  for (size_t i = 0; i < 4; ++i) {
    Endpoint to{boundAt(0).ip, *transport_->egressPort(i, false)};
    ASSERT_TRUE(peer.sendTo(to, "answer " + std::to_string(i)));
  }
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 8; }));
  for (const auto& r : received()) {
    if (r.data.rfind("answer ", 0) == 0) {
      const size_t i = std::stoul(r.data.substr(7));
      EXPECT_EQ(r.worker, transport_->egressWorker(i)) << r.data;
      EXPECT_EQ(r.source.local.port, *transport_->egressPort(i, false)) << r.data;
    } else {
      EXPECT_EQ(r.source.local, boundAt(0)) << r.data;
    }
  }
  // No such egress socket: refused and counted.
  EXPECT_FALSE(transport_->send(Destination{Protocol::kUdp, boundAt(0), {}, 9}, "x"));
  EXPECT_EQ(transport_->stats().udpSendErrors.load(), 1u);
}

// Behind a shared (anycast) listen address the egress sockets sit on a unicast address, so that
// what answers them reaches this host: they receive there and not on the listen address.
TEST_F(UdpTransportTest, EgressSocketsBindTheEgressAddressWhenOneIsGiven) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  s.egressPerWorker = 1;
  s.egressAddresses = {boost::asio::ip::make_address("127.0.0.2")};
  startTransport(s, 1);
  const uint16_t port = *transport_->egressPort(0, false);
  UdpPeer peer;
  ASSERT_TRUE(peer.sendTo(Endpoint{boost::asio::ip::make_address("127.0.0.2"), port}, "a"));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  EXPECT_EQ(received()[0].source.local.ip.to_string(), "127.0.0.2");
  ASSERT_TRUE(peer.sendTo(Endpoint{boundAt(0).ip, port}, "b"));
  ASSERT_TRUE(peer.sendTo(boundAt(0), "c"));  // the listen socket still receives
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 2; }));
  for (const auto& r : received()) {
    EXPECT_NE(r.data, "b") << "an egress socket received on the listen address";
  }
}

// sip.free_bind: a listen address that is not (yet) on this host binds only with it.
TEST_F(UdpTransportTest, FreeBindListensOnAnAddressNotOnThisHost) {
  TransportSettings s;
  s.listen = {listen("udp:192.0.2.77:0")};  // TEST-NET-1: on no interface here
  pool_ = std::make_unique<runtime::WorkerPool>(1, 1);
  transport_ = std::make_unique<SipTransport>(*pool_, s, [](runtime::Worker&, const Packet&) {});
  EXPECT_THROW(transport_->start(), std::runtime_error);
  transport_.reset();
  s.freeBind = true;
  startTransport(s, 1);
  EXPECT_EQ(boundAt(0).ip.to_string(), "192.0.2.77");
}

namespace {
// This process's UDP sockets bound to 127.0.0.1:port.
std::vector<int> udpFdsOnPort(uint16_t port) {
  std::vector<int> fds;
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    int type = 0;
    socklen_t tlen = sizeof type;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && a.sin_family == AF_INET &&
        ntohs(a.sin_port) == port && ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
        type == SOCK_DGRAM) {
      fds.push_back(fd);
    }
  }
  return fds;
}

// The fd of this process's UDP socket bound to 127.0.0.1:port, or -1.
int udpFdOnPort(uint16_t port) {
  auto fds = udpFdsOnPort(port);
  return fds.empty() ? -1 : fds.front();
}
}  // namespace

// A worker may hold another worker's egress fd in a send batch it has not flushed yet. So stop()
// keeps every egress socket open until all workers are past their close, and closes them after.
TEST_F(UdpTransportTest, StopClosesEgressSocketsOnlyOnceEveryWorkerHasStopped) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  s.egressPerWorker = 1;
  startTransport(s, 2);
  const uint16_t port1 = *transport_->egressPort(1, false);
  ASSERT_GE(udpFdOnPort(port1), 0);
  // Worker 0 is busy: stop() cannot get past it, while worker 1 runs its close at once.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> busy;
  boost::asio::post(pool_->at(0).io(), [&busy, released] {
    busy.set_value();
    released.wait();
  });
  busy.get_future().wait();
  const uint16_t listenPort = boundAt(0).port;
  ASSERT_EQ(udpFdsOnPort(listenPort).size(), 2u) << "one listen socket per worker";
  std::thread stopper([this] { transport_->stop(); });
  // Worker 1 is idle: it runs its close, which takes its listen socket with it.
  EXPECT_TRUE(waitUntil([&] { return udpFdsOnPort(listenPort).size() == 1u; }))
      << "worker 1 did not close its listen socket";
  EXPECT_GE(udpFdOnPort(port1), 0) << "worker 1's egress socket closed while worker 0 runs";
  release.set_value();
  stopper.join();
  EXPECT_EQ(udpFdOnPort(port1), -1) << "egress socket left open after stop()";
  EXPECT_EQ(udpFdOnPort(*transport_->egressPort(0, false)), -1);
}

TEST_F(UdpTransportTest, NoEgressSocketsByDefault) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  startTransport(s, 2);
  EXPECT_EQ(transport_->egressCount(), 0u);
  EXPECT_FALSE(transport_->egressPort(0, false));
}

TEST_F(UdpTransportTest, Ipv6Loopback) {
  {
    Fd probe(::socket(AF_INET6, SOCK_DGRAM, 0));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    if (probe.get() < 0 || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      GTEST_SKIP() << "IPv6 loopback unavailable";
    }
  }
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0"), listen("udp:[::1]:0")};
  reply_ = [](SipTransport& t, const Packet& p) {
    t.send(Destination{Protocol::kUdp, p.source.remote, {}}, "v6:" + std::string(p.data));
  };
  startTransport(s, 2);
  ASSERT_EQ(transport_->bound().size(), 2u);
  EXPECT_EQ(transport_->bound()[1].str(), "udp:[::1]:" + std::to_string(boundAt(1).port));
  UdpPeer peer(true);
  ASSERT_TRUE(peer.sendTo(boundAt(1), "ping"));
  auto d = peer.receive();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, "v6:ping");
  auto got = received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].source.remote.ip.is_v6());
  EXPECT_EQ(got[0].source.local, boundAt(1));
}

TEST_F(UdpTransportTest, BindFailureNamesTheAddress) {
  // A socket without SO_REUSEPORT holds the port: the transport cannot share it.
  Fd holder(::socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&a), &len);
  std::string spec = "udp:127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  TransportSettings s;
  s.listen = {listen(spec)};
  pool_ = std::make_unique<runtime::WorkerPool>(2, 1);
  transport_ = std::make_unique<SipTransport>(*pool_, s, [](runtime::Worker&, const Packet&) {});
  try {
    transport_->start();
    FAIL() << "start() should throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(spec), std::string::npos) << e.what();
  }
}

TEST_F(UdpTransportTest, UnsupportedTransportIsAStartupError) {
  TransportSettings s;
  s.listen = {listen("tls:127.0.0.1:0")};
  pool_ = std::make_unique<runtime::WorkerPool>(1, 1);
  transport_ = std::make_unique<SipTransport>(*pool_, s, [](runtime::Worker&, const Packet&) {});
  EXPECT_THROW(transport_->start(), std::runtime_error);
}

TEST_F(UdpTransportTest, SendBeforeStartOrAfterStopIsRefused) {
  TransportSettings s;
  s.listen = {listen("udp:127.0.0.1:0")};
  pool_ = std::make_unique<runtime::WorkerPool>(1, 1);
  transport_ = std::make_unique<SipTransport>(*pool_, s, [](runtime::Worker&, const Packet&) {});
  auto to = parseEndpoint("127.0.0.1:9");
  EXPECT_FALSE(transport_->send(Destination{Protocol::kUdp, *to, {}}, "x"));
  pool_->start();
  transport_->start();
  transport_->stop();
  EXPECT_FALSE(transport_->send(Destination{Protocol::kUdp, *to, {}}, "x"));
}

}  // namespace
}  // namespace evosip::transport::testing
