#include <future>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>

#include "test_peer.hpp"

namespace evosip::transport::testing {
namespace {

class TcpTransportTest : public TransportFixture {
 protected:
  void start(TransportSettings s = {}, size_t workers = 2) {
    if (s.listen.empty()) {
      s.listen = {listen("tcp:127.0.0.1:0")};
    }
    startTransport(std::move(s), workers);
  }
  const TransportStats& stats() { return transport_->stats(); }
};

TEST_F(TcpTransportTest, TwoMessagesInOneWrite) {
  start();
  std::string a = tcpRequest("OPTIONS").str();
  std::string b = tcpRequest("MESSAGE").body("hi there", "text/plain").str();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write(a + b));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 2; }));
  auto got = received();
  EXPECT_EQ(got[0].data, a);
  EXPECT_EQ(got[1].data, b);
  EXPECT_EQ(got[0].source.protocol, Protocol::kTcp);
  EXPECT_TRUE(got[0].source.connection.valid());
  EXPECT_EQ(got[0].source.connection, got[1].source.connection);
  EXPECT_EQ(got[0].source.connection.worker, got[0].worker);
  EXPECT_EQ(got[0].source.local, boundAt(0));
  EXPECT_TRUE(waitUntil([&] { return stats().tcpReceived.load() == 2u; })) << "tcpReceived";
  EXPECT_TRUE(waitUntil([&] { return stats().tcpAccepted.load() == 1u; })) << "tcpAccepted";
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 1; })) << "tcpOpen";
}

TEST_F(TcpTransportTest, OneMessageSplitOverSeveralWrites) {
  start();
  std::string m = tcpRequest("INVITE").body("v=0\r\no=- 1 1 IN\r\n").str();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  // Header block cut mid-line and mid-CRLFCRLF, body cut in two.
  size_t headerEnd = m.find("\r\n\r\n");
  std::vector<size_t> cuts = {10, headerEnd - 5, headerEnd + 2, headerEnd + 6, m.size()};
  size_t from = 0;
  for (size_t cut : cuts) {
    ASSERT_TRUE(peer.write(std::string_view(m).substr(from, cut - from)));
    from = cut;
    if (cut < m.size()) {
      EXPECT_EQ(receivedCount(), 0u);
    }
  }
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  EXPECT_EQ(received()[0].data, m);
}

TEST_F(TcpTransportTest, BodySplitAcrossWritesAndMessagesBackToBack) {
  start();
  std::string a = tcpRequest("MESSAGE").body(std::string(3000, 'a'), "text/plain").str();
  std::string b = tcpRequest("MESSAGE").body(std::string(5000, 'b'), "text/plain").str();
  std::string all = a + b;
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  size_t cut1 = a.size() - 1000;  // inside a's body
  size_t cut2 = a.size() + 100;   // inside b's headers
  ASSERT_TRUE(peer.write(all.substr(0, cut1)));
  ASSERT_TRUE(peer.write(all.substr(cut1, cut2 - cut1)));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  ASSERT_TRUE(peer.write(all.substr(cut2)));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 2; }));
  auto got = received();
  EXPECT_EQ(got[0].data, a);
  EXPECT_EQ(got[1].data, b);
}

TEST_F(TcpTransportTest, KeepAlivePingGetsAPong) {
  start();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write("\r\n\r\n"));
  EXPECT_EQ(peer.read(2), "\r\n");
  EXPECT_TRUE(waitUntil([&] { return stats().tcpKeepAlives.load() == 1u; })) << "tcpKeepAlives";
  // A stray CRLF gets no answer; the connection keeps working.
  std::string m = tcpRequest("OPTIONS").str();
  ASSERT_TRUE(peer.write("\r\n" + m));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  EXPECT_EQ(received()[0].data, m);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpKeepAlives.load() == 1u; })) << "tcpKeepAlives";
}

TEST_F(TcpTransportTest, MissingContentLengthGets400AndClose) {
  start();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write(tcpRequest("OPTIONS").contentLength(std::nullopt).str()));
  std::string reply;
  ASSERT_TRUE(peer.readUntilClosed(reply));
  EXPECT_EQ(reply.rfind("SIP/2.0 400 ", 0), 0u) << reply;
  EXPECT_NE(reply.find("Call-ID: 3848276298220188511@example.com"), std::string::npos) << reply;
  EXPECT_NE(reply.find("branch=z9hG4bK74bf9"), std::string::npos) << reply;
  EXPECT_TRUE(waitUntil([&] { return stats().tcpMisframed.load() == 1u; })) << "tcpMisframed";
  EXPECT_EQ(receivedCount(), 0u);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 0; }));
}

TEST_F(TcpTransportTest, UnparsableMisframedMessageIsClosedWithoutReply) {
  start();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write("garbage without sip\r\nfoo: bar\r\n\r\n"));
  std::string reply;
  ASSERT_TRUE(peer.readUntilClosed(reply));
  EXPECT_EQ(reply, "");
  EXPECT_TRUE(waitUntil([&] { return stats().tcpMisframed.load() == 1u; })) << "tcpMisframed";
}

TEST_F(TcpTransportTest, OversizeGets413AndClose) {
  TransportSettings s;
  s.maxMessageSize = 2000;
  start(s);
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  std::string m = tcpRequest("MESSAGE").str();
  m.replace(m.find("Content-Length: 0"), 17, "Content-Length: 5000");
  ASSERT_TRUE(peer.write(m));
  std::string reply;
  ASSERT_TRUE(peer.readUntilClosed(reply));
  EXPECT_EQ(reply.rfind("SIP/2.0 413 ", 0), 0u) << reply;
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOversize.load() == 1u; })) << "tcpOversize";
  EXPECT_EQ(receivedCount(), 0u);
}

TEST_F(TcpTransportTest, EndlessHeaderBlockIsClosed) {
  TransportSettings s;
  s.maxMessageSize = 2000;
  start(s);
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  std::string m = "INVITE sip:a@b SIP/2.0\r\nSubject: " + std::string(5000, 'x');
  peer.write(m);  // the server may close before all of it is written
  std::string reply;
  ASSERT_TRUE(peer.readUntilClosed(reply));
  EXPECT_EQ(reply, "");
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOversize.load() == 1u; })) << "tcpOversize";
}

TEST_F(TcpTransportTest, IdleConnectionIsClosed) {
  TransportSettings s;
  s.tcpIdleTimeout = std::chrono::seconds(1);
  start(s);
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  auto begin = std::chrono::steady_clock::now();
  std::string reply;
  ASSERT_TRUE(peer.readUntilClosed(reply, 10s));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 900ms);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpClosedIdle.load() == 1u; })) << "tcpClosedIdle";
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 0; }));
}

TEST_F(TcpTransportTest, ConnectionLimitOverAllWorkers) {
  TransportSettings s;
  s.maxConnections = 2;
  start(s, 2);
  auto a = std::make_unique<TcpPeer>(boundAt(0));
  auto b = std::make_unique<TcpPeer>(boundAt(0));
  ASSERT_TRUE(a->connected() && b->connected());
  ASSERT_TRUE(waitUntil([&] { return stats().tcpAccepted.load() == 2; }));
  TcpPeer c(boundAt(0));  // the kernel completes the handshake; the transport closes it
  std::string reply;
  EXPECT_TRUE(c.readUntilClosed(reply));
  EXPECT_TRUE(waitUntil([&] { return stats().tcpRejectedLimit.load() == 1u; }))
      << "tcpRejectedLimit";
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 2; })) << "tcpOpen";
  a.reset();
  ASSERT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 1; }));
  TcpPeer d(boundAt(0));
  ASSERT_TRUE(d.connected());
  ASSERT_TRUE(waitUntil([&] { return stats().tcpAccepted.load() == 3; }));
  std::string m = tcpRequest("OPTIONS").str();
  ASSERT_TRUE(d.write(m));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
}

// One address cannot take every connection slot: over its cap a new connection is closed at
// accept, while other addresses still get in.
TEST_F(TcpTransportTest, ConnectionsPerSourceAddressAreCapped) {
  TransportSettings s;
  s.maxConnectionsPerIp = 2;
  start(s, 2);
  auto a = std::make_unique<TcpPeer>(boundAt(0));
  auto b = std::make_unique<TcpPeer>(boundAt(0));
  ASSERT_TRUE(a->connected() && b->connected());
  ASSERT_TRUE(waitUntil([&] { return stats().tcpAccepted.load() == 2; }));
  TcpPeer c(boundAt(0));
  std::string reply;
  EXPECT_TRUE(c.readUntilClosed(reply));
  EXPECT_TRUE(waitUntil([&] { return stats().tcpRejectedPerIp.load() == 1u; }));
  TcpPeer other(boundAt(0), "127.0.0.2");
  ASSERT_TRUE(other.connected());
  ASSERT_TRUE(other.write(tcpRequest("OPTIONS").str()));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  EXPECT_EQ(received()[0].source.remote.ip, boost::asio::ip::make_address("127.0.0.2"));
  // A closed connection gives its slot back.
  a.reset();
  ASSERT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 2; }));
  TcpPeer d(boundAt(0));
  ASSERT_TRUE(d.write(tcpRequest("OPTIONS").str()));
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 2; }));
  EXPECT_EQ(stats().tcpRejectedPerIp.load(), 1u);
}

// A peer that keeps a message incomplete (slowloris: a byte now and then, never the end) is
// closed once the message is older than the message timeout, although it is never idle.
TEST_F(TcpTransportTest, IncompleteMessageIsClosedAtTheMessageDeadline) {
  TransportSettings s;
  s.tcpMessageTimeout = std::chrono::seconds(1);
  s.tcpIdleTimeout = std::chrono::seconds(60);
  start(s);
  TcpPeer slow(boundAt(0));
  TcpPeer quiet(boundAt(0));
  ASSERT_TRUE(slow.connected() && quiet.connected());
  // A complete message, then silence: nothing pending, only the idle timeout applies.
  ASSERT_TRUE(quiet.write(tcpRequest("OPTIONS").str()));
  const std::string m = tcpRequest("INVITE").str();
  const auto begin = std::chrono::steady_clock::now();
  bool closed = false;
  for (size_t i = 0; i < 12 && !closed; ++i) {
    closed = !slow.write(m.substr(i, 1));
    std::string got;
    closed = closed || slow.readUntilClosed(got, 250ms);
  }
  EXPECT_TRUE(closed) << "a message trickled for 3 s was not cut";
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 900ms);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpClosedMessageTimeout.load() == 1u; }));
  std::string got;
  EXPECT_FALSE(quiet.readUntilClosed(got, 500ms)) << "a connection without a pending message";
  EXPECT_EQ(stats().tcpClosedIdle.load(), 0u);
}

TEST_F(TcpTransportTest, ReplyFromTheHandlerOnTheSameConnection) {
  reply_ = [](SipTransport& t, const Packet& p) {
    EXPECT_TRUE(t.send(Destination{Protocol::kTcp, p.source.remote, p.source.connection},
                       "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
  };
  start();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write(tcpRequest("OPTIONS").str() + tcpRequest("OPTIONS").str()));
  std::string expected = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(peer.read(2 * expected.size()), expected + expected);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpSent.load() == 2u; })) << "tcpSent";
}

TEST_F(TcpTransportTest, SendToAConnectionFromAnotherThread) {
  std::promise<Source> firstSource;
  bool first = true;
  reply_ = [&](SipTransport&, const Packet& p) {
    if (std::exchange(first, false)) {
      firstSource.set_value(p.source);
    }
  };
  start();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write(tcpRequest("REGISTER").str()));
  auto future = firstSource.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  Source src = future.get();

  std::string note = "NOTIFY sip:alice SIP/2.0\r\nContent-Length: 0\r\n\r\n";
  std::thread other([&] {
    EXPECT_TRUE(transport_->send(Destination{Protocol::kTcp, src.remote, src.connection}, note));
  });
  other.join();
  EXPECT_EQ(peer.read(note.size()), note);

  // A connection that does not exist: posted to its owner, which counts it.
  ConnectionId gone{src.connection.worker, src.connection.seq + 1000};
  EXPECT_TRUE(transport_->send(Destination{Protocol::kTcp, src.remote, gone}, note));
  EXPECT_TRUE(waitUntil([&] { return stats().tcpSendNoConnection.load() == 1; }));
  // TLS: not supported by this build.
  EXPECT_FALSE(transport_->send(Destination{Protocol::kTls, src.remote, {}}, note));
  // A worker index out of range.
  EXPECT_FALSE(transport_->send(Destination{Protocol::kTcp, src.remote, {99, 1}}, note));
}

TEST_F(TcpTransportTest, UnknownConnectionOnTheOwnerReturnsFalse) {
  std::promise<bool> result;
  reply_ = [&](SipTransport& t, const Packet& p) {
    ConnectionId gone{p.source.connection.worker, p.source.connection.seq + 7};
    result.set_value(t.send(Destination{Protocol::kTcp, p.source.remote, gone}, "x"));
  };
  start();
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.write(tcpRequest("OPTIONS").str()));
  auto future = result.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(future.get());
  EXPECT_TRUE(waitUntil([&] { return stats().tcpSendNoConnection.load() == 1u; }))
      << "tcpSendNoConnection";
}

// ---- outbound connections (connect on send) ----

const std::string kNote = "NOTIFY sip:gw SIP/2.0\r\nContent-Length: 0\r\n\r\n";

TEST_F(TcpTransportTest, ASendWithoutAConnectionOpensOneAndTheAnswersComeBackOverIt) {
  start();
  TcpListenPeer gw;
  const Destination to{Protocol::kTcp, gw.endpoint(), {}};
  // From a worker, twice before the connect completed: both wait for it, in order.
  ASSERT_TRUE(onWorker(0, [&] {
    return transport_->send(to, kNote) && transport_->send(to, "MESSAGE " + kNote.substr(7));
  }));
  auto conn = gw.accept();
  ASSERT_TRUE(conn.has_value());
  EXPECT_EQ(conn->read(2 * kNote.size() + 1), kNote + "MESSAGE " + kNote.substr(7));
  EXPECT_TRUE(waitUntil([&] { return stats().tcpConnected.load() == 1u; })) << "tcpConnected";
  EXPECT_EQ(stats().tcpOutboundOpen.load(), 1);
  EXPECT_EQ(stats().tcpOpen.load(), 1);

  // The peer's answer is read, framed and delivered with the connection, on the sender.
  const std::string answer = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  ASSERT_TRUE(conn->write(answer + "\r\n\r\n"));  // and a keep-alive ping
  ASSERT_TRUE(waitUntil([&] { return receivedCount() == 1; }));
  const Received got = received()[0];
  EXPECT_EQ(got.data, answer);
  EXPECT_EQ(got.worker, 0u);
  EXPECT_EQ(got.source.protocol, Protocol::kTcp);
  EXPECT_EQ(got.source.remote, gw.endpoint());
  EXPECT_EQ(got.source.connection.worker, 0u);
  EXPECT_TRUE(got.source.connection.valid());
  EXPECT_EQ(conn->read(2), "\r\n");  // pong

  // Later sends reuse it, with or without its id; no second connection.
  ASSERT_TRUE(onWorker(0, [&] { return transport_->send(to, kNote); }));
  ASSERT_TRUE(
      transport_->send(Destination{Protocol::kTcp, gw.endpoint(), got.source.connection}, kNote));
  EXPECT_EQ(conn->read(2 * kNote.size()), kNote + kNote);
  EXPECT_FALSE(gw.accept(200ms).has_value()) << "a second connection";
  EXPECT_EQ(stats().tcpConnected.load(), 1u);
  EXPECT_TRUE(sendFailures().empty());
}

TEST_F(TcpTransportTest, AConnectionThePeerOpenedIsReusedForSendsToItsAddress) {
  std::promise<Source> first;
  bool once = true;
  reply_ = [&](SipTransport&, const Packet& p) {
    if (std::exchange(once, false)) {
      first.set_value(p.source);
    }
  };
  start({}, 1);
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.write(tcpRequest("REGISTER").str()));
  auto f = first.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  const Source src = f.get();
  ASSERT_TRUE(onWorker(0, [&] {
    return transport_->send(Destination{Protocol::kTcp, src.remote}, kNote);
  }));
  EXPECT_EQ(peer.read(kNote.size()), kNote);
  EXPECT_EQ(stats().tcpOutboundOpen.load(), 0);
  EXPECT_EQ(stats().tcpConnected.load(), 0u);
}

TEST_F(TcpTransportTest, ARefusedConnectIsReportedToTheSendingWorker) {
  start();
  Endpoint closed;
  {
    TcpListenPeer gone;
    closed = gone.endpoint();
  }  // nothing listens there any more
  const Destination to{Protocol::kTcp, closed, {}};
  ASSERT_TRUE(onWorker(1, [&] { return transport_->send(to, kNote); }));
  ASSERT_TRUE(waitUntil([&] { return !sendFailures().empty(); }));
  const auto failures = sendFailures();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].first.protocol, Protocol::kTcp);
  EXPECT_EQ(failures[0].first.remote, closed);
  EXPECT_FALSE(failures[0].first.connection.valid());
  EXPECT_EQ(failures[0].second, 1u);
  EXPECT_EQ(stats().tcpConnectFailed.load(), 1u);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOutboundOpen.load() == 0; }));
  EXPECT_EQ(stats().tcpOpen.load(), 0);
  // The next send tries again (a connection is not remembered as dead).
  ASSERT_TRUE(onWorker(1, [&] { return transport_->send(to, kNote); }));
  EXPECT_TRUE(waitUntil([&] { return sendFailures().size() == 2; }));
}

TEST_F(TcpTransportTest, AConnectThatHangsTimesOut) {
  TransportSettings s;
  s.tcpConnectTimeout = 300ms;
  start(std::move(s));
  // A listener whose accept queue is full: the kernel drops further SYNs, the connect hangs.
  TcpListenPeer full("127.0.0.1", 0);
  std::vector<Fd> fillers;  // non-blocking: a blocking connect would hang here too
  for (int i = 0; i < 3; ++i) {
    fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    sockaddr_storage ss;
    socklen_t len = toSockaddr(full.endpoint(), ss);
    ::connect(fillers.back().get(), reinterpret_cast<sockaddr*>(&ss), len);
  }
  std::this_thread::sleep_for(50ms);  // the fillers' handshakes fill the queue
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(onWorker(0, [&] {
    return transport_->send(Destination{Protocol::kTcp, full.endpoint()}, kNote);
  }));
  ASSERT_TRUE(waitUntil([&] { return !sendFailures().empty(); }, 3s));
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms);
  EXPECT_EQ(stats().tcpConnectFailed.load(), 1u);
  EXPECT_EQ(stats().tcpOutboundOpen.load(), 0);
}

TEST_F(TcpTransportTest, OutboundConnectionsAreBoundedPerWorkerAndPerRemote) {
  TransportSettings s;
  s.maxOutboundPerWorker = 2;
  s.maxOutboundPerRemote = 3;
  start(std::move(s));
  std::vector<std::unique_ptr<TcpListenPeer>> gws;
  for (int i = 0; i < 4; ++i) {
    gws.push_back(std::make_unique<TcpListenPeer>());
  }
  auto sendTo = [&](size_t w, size_t gw) {
    return onWorker(w, [&] {
      return transport_->send(Destination{Protocol::kTcp, gws[gw]->endpoint()}, kNote);
    });
  };
  // Worker 0: two connections, then its bound; a known address still goes out.
  EXPECT_TRUE(sendTo(0, 0));
  EXPECT_TRUE(sendTo(0, 1));
  EXPECT_FALSE(sendTo(0, 2));
  EXPECT_TRUE(sendTo(0, 0));
  // Worker 1: one more to 127.0.0.1 fits the remote's bound of 3, the next does not.
  EXPECT_TRUE(sendTo(1, 2));
  EXPECT_FALSE(sendTo(1, 3));
  EXPECT_EQ(stats().tcpOutboundRejectedLimit.load(), 2u);
  EXPECT_TRUE(waitUntil([&] { return stats().tcpConnected.load() == 3u; }));
  EXPECT_EQ(stats().tcpOutboundOpen.load(), 3);
  EXPECT_FALSE(gws[3]->accept(100ms).has_value());
}

TEST_F(TcpTransportTest, NoOutboundConnectionsWhenTheBoundIsZero) {
  TransportSettings s;
  s.maxOutboundPerWorker = 0;
  start(std::move(s));
  TcpListenPeer gw;
  EXPECT_FALSE(onWorker(0, [&] {
    return transport_->send(Destination{Protocol::kTcp, gw.endpoint()}, kNote);
  }));
  EXPECT_FALSE(gw.accept(100ms).has_value());
  EXPECT_EQ(stats().tcpOutboundRejectedLimit.load(), 1u);
}

TEST_F(TcpTransportTest, WhatWaitsForAConnectIsBounded) {
  TransportSettings s;
  s.tcpConnectQueue = 2 * kNote.size();
  start(std::move(s), 1);
  TcpListenPeer gw;
  const Destination to{Protocol::kTcp, gw.endpoint()};
  bool third = true;
  ASSERT_TRUE(onWorker(0, [&] {
    const bool two = transport_->send(to, kNote) && transport_->send(to, kNote);
    third = transport_->send(to, kNote);  // the connect has not completed: queued
    return two;
  }));
  EXPECT_FALSE(third);
  EXPECT_EQ(stats().tcpConnectQueueFull.load(), 1u);
  auto conn = gw.accept();
  ASSERT_TRUE(conn.has_value());
  EXPECT_EQ(conn->read(3 * kNote.size(), 500ms), kNote + kNote);
}

TEST_F(TcpTransportTest, Ipv6Loopback) {
  {
    Fd probe(::socket(AF_INET6, SOCK_STREAM, 0));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    if (probe.get() < 0 || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      GTEST_SKIP() << "IPv6 loopback unavailable";
    }
  }
  TransportSettings s;
  s.listen = {listen("tcp:[::1]:0")};
  reply_ = [](SipTransport& t, const Packet& p) {
    t.send(Destination{Protocol::kTcp, p.source.remote, p.source.connection}, "ok");
  };
  start(s);
  EXPECT_TRUE(boundAt(0).ip.is_v6());
  TcpPeer peer(boundAt(0));
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.write(tcpRequest("OPTIONS").str()));
  EXPECT_EQ(peer.read(2), "ok");
  EXPECT_TRUE(received()[0].source.remote.ip.is_v6());
}

TEST_F(TcpTransportTest, StopWithOpenConnectionsClosesThem) {
  start();
  TcpPeer a(boundAt(0));
  TcpPeer b(boundAt(0));
  ASSERT_TRUE(a.connected() && b.connected());
  ASSERT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 2; }));
  transport_->stop();
  EXPECT_TRUE(waitUntil([&] { return stats().tcpOpen.load() == 0; })) << "tcpOpen";
  std::string rest;
  EXPECT_TRUE(a.readUntilClosed(rest));
  EXPECT_TRUE(b.readUntilClosed(rest));
  transport_->stop();  // idempotent
}

}  // namespace
}  // namespace evosip::transport::testing
