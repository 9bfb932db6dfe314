#include <random>

#include <fmt/format.h>

#include <evosip/bencode/ng_frame.hpp>
#include <evosip/router/ng_client.hpp>

namespace evosip::router {

namespace asio = boost::asio;
using asio::ip::udp;

NgClient::NgClient(asio::io_context& io, Settings settings) : io_(io), settings_(settings) {
  std::random_device rd;
  prefix_ = fmt::format("{:08x}", rd());
}

NgClient::~NgClient() {
  // Callers are not called back after this: their owner is going away too.
  for (auto& [cookie, p] : pending_) {
    p.timer->cancel();
  }
  pending_.clear();
}

NgClient::Socket* NgClient::socketFor(const udp::endpoint& to) {
  Socket& s = to.address().is_v6() ? v6_ : v4_;
  if (!s.socket) {
    auto sock = std::make_unique<udp::socket>(io_);
    boost::system::error_code ec;
    sock->open(to.address().is_v6() ? udp::v6() : udp::v4(), ec);
    if (ec) {
      return nullptr;
    }
    s.socket = std::move(sock);
    receive(s);
  }
  return &s;
}

void NgClient::request(const transport::Endpoint& relay, const bencode::Value& command,
                       Callback done) {
  std::string cookie = fmt::format("{}_{}", prefix_, ++next_);
  Pending p;
  p.to = udp::endpoint(relay.ip, relay.port);
  p.datagram = bencode::formatNgReply(cookie, command);
  p.left = settings_.retries;
  p.done = std::move(done);
  p.timer = std::make_unique<asio::steady_timer>(io_);
  auto [it, inserted] = pending_.emplace(cookie, std::move(p));
  ++stats_.sent;
  send(it->second);
  arm(cookie);
}

void NgClient::send(Pending& p) {
  Socket* s = socketFor(p.to);
  if (s == nullptr) {
    return;  // the timer reports it
  }
  boost::system::error_code ec;
  s->socket->send_to(asio::buffer(p.datagram), p.to, 0, ec);
}

void NgClient::arm(const std::string& cookie) {
  auto it = pending_.find(cookie);
  if (it == pending_.end()) {
    return;
  }
  it->second.timer->expires_after(settings_.timeout);
  it->second.timer->async_wait(
      [this, cookie, alive = std::weak_ptr<char>(alive_)](boost::system::error_code ec) {
        if (ec || alive.expired()) {
          return;
        }
        auto it = pending_.find(cookie);
        if (it == pending_.end()) {
          return;
        }
        if (it->second.left-- > 0) {
          ++stats_.retransmitted;
          send(it->second);
          arm(cookie);
          return;
        }
        ++stats_.timeouts;
        finish(cookie, makeError(Errc::kTimeout, "media relay did not answer"));
      });
}

void NgClient::receive(Socket& s) {
  s.socket->async_receive_from(
      asio::buffer(s.buffer), s.from,
      [this, &s, alive = std::weak_ptr<char>(alive_)](boost::system::error_code ec, size_t n) {
        if (alive.expired() || ec == asio::error::operation_aborted) {
          return;
        }
        if (!ec) {
          auto msg = bencode::parseNgDatagram(std::string_view(s.buffer.data(), n));
          if (msg) {
            std::string cookie(msg->cookie);
            auto it = pending_.find(cookie);
            // Only the relay the command went to may answer it.
            if (it != pending_.end() && it->second.to == s.from) {
              const auto result = msg->body.string("result");
              if (result == "error") {
                ++stats_.errors;
                finish(cookie,
                       makeError(Errc::kInvalid, std::string(msg->body.string("error-reason")
                                                                 .value_or("media relay error"))));
              } else {
                finish(cookie, std::move(msg->body));
              }
            }
          }
        }
        receive(s);
      });
}

void NgClient::finish(const std::string& cookie, Result<bencode::Value> r) {
  auto it = pending_.find(cookie);
  if (it == pending_.end()) {
    return;
  }
  Callback done = std::move(it->second.done);
  it->second.timer->cancel();
  pending_.erase(it);
  done(std::move(r));
}

}  // namespace evosip::router
