#pragma once
// Plain blocking sockets for the other end of the wire, with bounded waits (no sleeps), and a
// fixture that runs a SipTransport on its own worker pool.

#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <sip_message_builder.hpp>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/runtime/worker_pool.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::transport::testing {

using namespace std::chrono_literals;

// Polls `done` until it holds or the deadline passes.
inline bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

inline socklen_t toSockaddr(const Endpoint& ep, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof(ss));
  if (ep.ip.is_v6()) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(ep.port);
    auto bytes = ep.ip.to_v6().to_bytes();
    std::memcpy(&s6->sin6_addr, bytes.data(), bytes.size());
    return sizeof(sockaddr_in6);
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(ep.port);
  s4->sin_addr.s_addr = htonl(ep.ip.to_v4().to_uint());
  return sizeof(sockaddr_in);
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    reset();
    fd_ = o.fd_;
    o.fd_ = -1;
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

 private:
  int fd_;
};

// Waits up to `limit` for the socket to become readable.
inline bool readable(int fd, std::chrono::milliseconds limit = 5s) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
}

class UdpPeer {
 public:
  explicit UdpPeer(bool v6 = false) : fd_(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0)) {
    int size = 4 * 1024 * 1024;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  bool sendTo(const Endpoint& to, std::string_view data) {
    sockaddr_storage ss;
    socklen_t len = toSockaddr(to, ss);
    return ::sendto(fd_.get(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss),
                    len) == static_cast<ssize_t>(data.size());
  }
  std::optional<std::string> receive(std::chrono::milliseconds limit = 5s) {
    if (!readable(fd_.get(), limit)) {
      return std::nullopt;
    }
    std::string buf(70000, '\0');
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      return std::nullopt;
    }
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  // A datagram and the port it came from.
  std::optional<std::pair<std::string, uint16_t>> receiveFrom(
      std::chrono::milliseconds limit = 5s) {
    if (!readable(fd_.get(), limit)) {
      return std::nullopt;
    }
    std::string buf(70000, '\0');
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ssize_t n =
        ::recvfrom(fd_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) {
      return std::nullopt;
    }
    buf.resize(static_cast<size_t>(n));
    const uint16_t port = ss.ss_family == AF_INET6
                              ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                              : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return std::make_pair(std::move(buf), port);
  }

 private:
  Fd fd_;
};

class TcpPeer {
 public:
  // `from`: the local address to connect from (e.g. another loopback address); none = any.
  explicit TcpPeer(const Endpoint& to, const char* from = nullptr) {
    fd_ = Fd(::socket(to.ip.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
    int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (from != nullptr) {
      sockaddr_storage local;
      socklen_t localLen = toSockaddr(Endpoint{boost::asio::ip::make_address(from), 0}, local);
      if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), localLen) != 0) {
        return;
      }
    }
    sockaddr_storage ss;
    socklen_t len = toSockaddr(to, ss);
    connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0;
  }
  // A connection accepted by a TcpListenPeer.
  explicit TcpPeer(Fd accepted) : fd_(std::move(accepted)), connected_(fd_.get() >= 0) {}
  bool connected() const { return connected_; }
  bool write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until `expected` bytes arrived, the peer closed, or the deadline.
  std::string read(size_t expected, std::chrono::milliseconds limit = 5s) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (out.size() < expected) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !readable(fd_.get(), left)) {
        break;
      }
      char buf[4096];
      ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n <= 0) {
        closedByPeer_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Reads everything until the server closes (true) or the deadline (false).
  bool readUntilClosed(std::string& out, std::chrono::milliseconds limit = 5s) {
    out += read(SIZE_MAX, limit);
    return closedByPeer_;
  }

 private:
  Fd fd_;
  bool connected_ = false;
  bool closedByPeer_ = false;
};

// A listening socket on an ephemeral port (a next hop the transport connects to).
class TcpListenPeer {
 public:
  explicit TcpListenPeer(const char* host = "127.0.0.1", int backlog = 16) {
    endpoint_ = Endpoint{boost::asio::ip::make_address(host), 0};
    fd_ = Fd(::socket(endpoint_.ip.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
    sockaddr_storage ss;
    socklen_t len = toSockaddr(endpoint_, ss);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(fd_.get(), backlog) != 0) {
      ADD_FAILURE() << "cannot listen on " << host;
      return;
    }
    len = sizeof(ss);
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    endpoint_.port = ss.ss_family == AF_INET6
                         ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                         : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  const Endpoint& endpoint() const { return endpoint_; }
  // The next connection, once one is waiting (nullopt after `limit`).
  std::optional<TcpPeer> accept(std::chrono::milliseconds limit = 5s) {
    if (!readable(fd_.get(), limit)) {
      return std::nullopt;
    }
    return TcpPeer(Fd(::accept(fd_.get(), nullptr, nullptr)));
  }
  void close() { fd_.reset(); }

 private:
  Fd fd_;
  Endpoint endpoint_;
};

// A received message as the handler saw it, copied out of the worker.
struct Received {
  std::string data;
  Source source;
  size_t worker = 0;
};

class TransportFixture : public ::testing::Test {
 protected:
  // The reply hook runs on the worker, inside the handler.
  using Reply = std::function<void(SipTransport&, const Packet&)>;

  // EVOSIP_TEST_SIP_IO (auto, io_uring, epoll; default epoll): what the workers wait in, so
  // that the same tests cover both UDP paths (ctest runs them once per path).
  // Where the kernel (or a seccomp profile) refuses io_uring, the io_uring run repeats the
  // tests on epoll and says so, rather than failing every test on the start-up error.
  static runtime::IoMode testIoMode() {
    runtime::IoMode mode = runtime::IoMode::kEpoll;
    const char* env = std::getenv("EVOSIP_TEST_SIP_IO");
    if (env != nullptr && !runtime::parseIoMode(env, mode)) {
      ADD_FAILURE() << "EVOSIP_TEST_SIP_IO=" << env;
    }
    if (mode == runtime::IoMode::kIoUring && !ioUringUsable()) {
      std::fprintf(stderr, "io_uring not available here: this run uses epoll\n");
      return runtime::IoMode::kEpoll;
    }
    return mode;
  }

  static bool ioUringUsable() {
    static const bool usable = [] {
      runtime::WorkerPool probe(1, 1);
      probe.setIoMode(runtime::IoMode::kAuto);
      probe.start();
      const bool ok = probe.ioMode() == runtime::IoMode::kIoUring;
      probe.stop();
      return ok;
    }();
    return usable;
  }

  void startTransport(TransportSettings settings, size_t workers = 2) {
    pool_ = std::make_unique<runtime::WorkerPool>(workers, 1);
    pool_->setIoMode(testIoMode());
    transport_ = std::make_unique<SipTransport>(
        *pool_, std::move(settings), [this](runtime::Worker& w, const Packet& p) {
          {
            std::lock_guard lock(mutex_);
            received_.push_back(Received{std::string(p.data), p.source, w.index()});
          }
          if (reply_) {
            reply_(*transport_, p);
          }
        });
    transport_->onSendFailure([this](runtime::Worker& w, const Destination& to) {
      std::lock_guard lock(mutex_);
      sendFailures_.push_back({to, w.index()});
    });
    pool_->start();
    transport_->start();
  }

  void TearDown() override {
    if (transport_) {
      transport_->stop();
    }
    if (pool_) {
      pool_->stop();
    }
    transport_.reset();
    pool_.reset();
  }

  size_t receivedCount() {
    std::lock_guard lock(mutex_);
    return received_.size();
  }
  std::vector<Received> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  const Endpoint& boundAt(size_t i) { return transport_->bound().at(i).endpoint; }
  // What the SendFailureHandler heard: the destination and the worker it ran on.
  std::vector<std::pair<Destination, size_t>> sendFailures() {
    std::lock_guard lock(mutex_);
    return sendFailures_;
  }
  // Runs `fn` on worker `w` and returns its result (a send from a worker thread).
  bool onWorker(size_t w, std::function<bool()> fn) {
    std::promise<bool> done;
    pool_->post(w, [&] { done.set_value(fn()); });
    auto f = done.get_future();
    return f.wait_for(5s) == std::future_status::ready && f.get();
  }

  std::unique_ptr<runtime::WorkerPool> pool_;
  std::unique_ptr<SipTransport> transport_;
  Reply reply_;
  std::mutex mutex_;
  std::vector<Received> received_;
  std::vector<std::pair<Destination, size_t>> sendFailures_;
};

inline ListenSpec listen(std::string_view text) {
  auto spec = parseListenSpec(text);
  EXPECT_TRUE(spec) << text;
  return *spec;
}

// A request as the TCP peer of these tests sends it; replies quote its Call-ID and branch.
inline test::SipMessageBuilder tcpRequest(std::string method) {
  return test::SipMessageBuilder::request(std::move(method))
      .via("SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK74bf9")
      .fromTag("9fxced76sl")
      .callId("3848276298220188511@example.com");
}

}  // namespace evosip::transport::testing
