#include <cerrno>
#include <chrono>
#include <deque>
#include <netinet/in.h>
#include <thread>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <evosip/log/log.hpp>
#include <evosip/media/ng_server.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::media {

namespace asio = boost::asio;
using asio::ip::udp;

const char* ngCommandName(NgCommand c) {
  static constexpr const char* kNames[] = {"ping",  "offer", "answer",     "delete",
                                           "query", "list",  "statistics", "other"};
  return c < NgCommand::kCount ? kNames[size_t(c)] : "other";
}

const char* ngResultName(NgResult r) {
  static constexpr const char* kNames[] = {"ok", "error", "pong"};
  return r < NgResult::kCount ? kNames[size_t(r)] : "error";
}

NgCommand ngCommandFromName(std::string_view name) {
  for (size_t i = 0; i < size_t(NgCommand::kOther); ++i) {
    if (name == ngCommandName(NgCommand(i))) {
      return NgCommand(i);
    }
  }
  return NgCommand::kOther;
}

namespace {

// A retransmission within this time gets the cached reply (rtpengine keeps its cookie cache
// about as long); the cache also holds at most kMaxCached replies.
constexpr auto kCacheTtl = std::chrono::seconds(30);
constexpr size_t kMaxCached = 100000;

// A cookie is the client's own: the same cookie from another address or port is another
// command, never a retransmission (whose cached reply would go to whoever sent the cookie).
std::string cacheKey(const udp::endpoint& peer, std::string_view cookie) {
  std::string key = peer.address().to_string();
  key += ' ';
  key += std::to_string(peer.port());
  key += ' ';
  key += cookie;
  return key;
}

}  // namespace

struct NgServer::Impl : std::enable_shared_from_this<NgServer::Impl> {
  using TimePoint = runtime::Clock::time_point;
  Impl(std::string l, transport::AddressAcl a, Handler h, const runtime::Clock& c)
      : listen(std::move(l)), allow(std::move(a)), handler(std::move(h)), clock(c), socket(io) {}

  std::string listen;
  transport::AddressAcl allow;
  Handler handler;
  const runtime::Clock& clock;
  asio::io_context io{1};
  udp::socket socket;
  bool freeBind = false;
  std::thread thread;
  NgCounters counters;
  std::array<char, 65536> buffer{};
  udp::endpoint from;

  struct Cached {
    std::string reply;  // "" while the command is being handled
    TimePoint at;
  };
  // Keyed by cacheKey(): the source address and port, then the cookie.
  std::unordered_map<std::string, Cached> cache;
  std::deque<std::pair<std::string, TimePoint>> order;

  void receive();
  void onDatagram(std::string_view data, const udp::endpoint& peer);
  void finish(const std::string& key, const std::string& cookie, NgCommand command,
              const udp::endpoint& peer, const bencode::Value& reply);
  void expire(TimePoint now);
};

void NgServer::Impl::receive() {
  socket.async_receive_from(
      asio::buffer(buffer), from,
      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        if (ec == asio::error::operation_aborted || !self->socket.is_open()) {
          return;
        }
        if (!ec) {
          self->onDatagram(std::string_view(self->buffer.data(), n), self->from);
        }
        self->receive();
      });
}

void NgServer::Impl::expire(TimePoint now) {
  while (!order.empty() && (now - order.front().second > kCacheTtl || order.size() > kMaxCached)) {
    auto it = cache.find(order.front().first);
    if (it != cache.end() && it->second.at == order.front().second && !it->second.reply.empty()) {
      cache.erase(it);
    }
    order.pop_front();
  }
}

void NgServer::Impl::onDatagram(std::string_view data, const udp::endpoint& peer) {
  if (!allow.allows(peer.address())) {
    // Not one of our proxies: no reply of any kind (no error either: the source may be forged).
    counters.refused.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto now = clock.now();
  expire(now);
  const size_t space = data.find(' ');
  if (space == std::string_view::npos || space == 0 || space > bencode::kMaxCookie) {
    counters.malformed.fetch_add(1, std::memory_order_relaxed);
    return;  // no cookie: nothing a reply could be matched with
  }
  std::string cookie(data.substr(0, space));
  std::string key = cacheKey(peer, cookie);
  if (auto it = cache.find(key); it != cache.end()) {
    counters.retransmissions.fetch_add(1, std::memory_order_relaxed);
    if (!it->second.reply.empty()) {
      boost::system::error_code ec;
      socket.send_to(asio::buffer(it->second.reply), peer, 0, ec);
    }
    return;  // still being handled: the first reply will answer it
  }
  auto msg = bencode::parseNgDatagram(data);
  if (!msg) {
    finish(key, cookie, NgCommand::kOther, peer,
           bencode::ngError("Could not decode dictionary: " + msg.error().message));
    return;
  }
  const auto name = msg->body.string("command");
  if (!name) {
    finish(key, cookie, NgCommand::kOther, peer,
           bencode::ngError("Dictionary contains no key \"command\""));
    return;
  }
  const NgCommand command = ngCommandFromName(*name);
  cache[key] = Cached{"", now};
  order.emplace_back(key, now);
  std::weak_ptr<Impl> weak = weak_from_this();
  Reply reply = [weak, key, cookie, command, peer](bencode::Value value) {
    if (auto self = weak.lock()) {
      // The queued handler holds no reference: one posted after stop() is never run, and must
      // not keep the Impl (and the io_context holding it) alive.
      asio::post(self->io, [weak, key, cookie, command, peer, value = std::move(value)] {
        if (auto alive = weak.lock()) {
          alive->finish(key, cookie, command, peer, value);
        }
      });
    }
  };
  try {
    handler(*name, std::move(msg->body), std::move(reply));
  } catch (const std::exception& e) {
    finish(key, cookie, command, peer,
           bencode::ngError(fmt::format("internal error: {}", e.what())));
  }
}

void NgServer::Impl::finish(const std::string& key, const std::string& cookie, NgCommand command,
                            const udp::endpoint& peer, const bencode::Value& reply) {
  const auto result = reply.string("result").value_or("error");
  const NgResult r = result == "ok"     ? NgResult::kOk
                     : result == "pong" ? NgResult::kPong
                                        : NgResult::kError;
  counters.commands[size_t(command)][size_t(r)].fetch_add(1, std::memory_order_relaxed);
  const auto now = clock.now();
  auto& entry = cache[key];
  entry.reply = bencode::formatNgReply(cookie, reply);
  entry.at = now;
  order.emplace_back(key, now);  // the entry expires kCacheTtl after its reply
  boost::system::error_code ec;
  socket.send_to(asio::buffer(entry.reply), peer, 0, ec);
}

NgServer::NgServer(std::string listen, transport::AddressAcl allow, Handler handler,
                   const runtime::Clock& clock)
    : impl_(
          std::make_shared<Impl>(std::move(listen), std::move(allow), std::move(handler), clock)) {}

NgServer::~NgServer() {
  stop();
}

void NgServer::start() {
  if (impl_->thread.joinable()) {
    return;
  }
  auto ep = transport::parseEndpoint(impl_->listen, 2223);
  if (!ep) {
    throw std::runtime_error(
        fmt::format("media.ng_listen: '{}': {}", impl_->listen, ep.error().message));
  }
  udp::endpoint endpoint(ep->ip, ep->port);
  boost::system::error_code ec;
  impl_->socket.open(endpoint.protocol(), ec);
  if (!ec && impl_->freeBind) {
    int one = 1;
    if (::setsockopt(impl_->socket.native_handle(), IPPROTO_IP, IP_FREEBIND, &one, sizeof one) !=
        0) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) {
    impl_->socket.bind(endpoint, ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    impl_->socket.close(ignored);  // start() may be tried again
    throw std::runtime_error(
        fmt::format("media.ng_listen: cannot bind {}: {}", ep->str(), ec.message()));
  }
  impl_->receive();
  impl_->io.restart();  // after a stop(): run() had returned
  impl_->thread = std::thread([impl = impl_] { impl->io.run(); });
}

void NgServer::setFreeBind(bool on) {
  impl_->freeBind = on;
}

void NgServer::stop() {
  if (!impl_->thread.joinable()) {
    return;
  }
  // Closing the socket ends the pending receive, whose handler then runs (with
  // operation_aborted) and lets go of the Impl; run() returns once nothing is left. (io.stop()
  // would leave that handler queued, holding the Impl that owns the queue: a leak.)
  asio::post(impl_->io, [impl = impl_] {
    boost::system::error_code ec;
    impl->socket.close(ec);
  });
  impl_->thread.join();
}

bool NgServer::running() const {
  return impl_->thread.joinable();
}

uint16_t NgServer::port() const {
  boost::system::error_code ec;
  auto ep = impl_->socket.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

const NgCounters& NgServer::counters() const {
  return impl_->counters;
}

}  // namespace evosip::media
