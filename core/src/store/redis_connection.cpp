#include "redis_connection.hpp"

#include <algorithm>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <utility>

#include <evosip/log/log.hpp>

#include "redis_asio.hpp"
#include "redis_reply.hpp"

namespace evosip::store::detail {

namespace asio = boost::asio;

RedisConnection::RedisConnection(RedisSettings settings, asio::any_io_executor executor)
    : settings_(std::move(settings)),
      executor_(std::move(executor)),
      resolver_(executor_),
      reconnectTimer_(executor_),
      connectTimer_(executor_),
      deadlineTimer_(executor_),
      backoff_(settings_.reconnectMin),
      log_(log::get("store")) {}

void RedisConnection::close() {
  closed_ = true;
  resolver_.cancel();
  drop(Errc::kUnavailable);
  state_ = State::kClosed;
}

void RedisConnection::command(const std::vector<std::string>& args, ReplyFn fn) {
  if (state_ != State::kReady) {
    reconnectOnDemand();
    fn(makeError(Errc::kUnavailable, "redis: not connected"));
    return;
  }
  send(args, std::move(fn));
}

void RedisConnection::send(const std::vector<std::string>& args, ReplyFn fn) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto pending = std::make_unique<Pending>(Pending{std::move(fn)});
  if (redisAsyncCommandArgv(context_, &RedisConnection::onReply, pending.get(),
                            static_cast<int>(args.size()), argv.data(),
                            lengths.data()) != REDIS_OK) {
    pending->fn(makeError(Errc::kUnavailable, "redis: command not sent"));
    return;
  }
  pending.release();  // owned by hiredis until onReply
  deadlines_.push_back(std::chrono::steady_clock::now() + settings_.commandTimeout);
  armDeadline();
}

void RedisConnection::onReply(redisAsyncContext* context, void* reply, void* privdata) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(privdata));
  auto* self = static_cast<RedisConnection*>(context->data);
  if (!self->deadlines_.empty()) {
    self->deadlines_.pop_front();  // replies come in the order of the commands
  }
  if (reply == nullptr) {
    pending->fn(makeError(self->failReason_, self->failReason_ == Errc::kTimeout
                                                 ? "redis: no reply in time"
                                                 : "redis: connection lost"));
    return;
  }
  const auto* r = static_cast<const redisReply*>(reply);
  if (r->type == REDIS_REPLY_ERROR) {
    pending->fn(makeError(Errc::kIo, "redis: " + describe(*r)));
    return;
  }
  pending->fn(r);
}

void RedisConnection::reconnectOnDemand() {
  // Not from inside drop(): its caller arms the back-off right after.
  if (state_ != State::kWaiting || closed_ || dropping_ ||
      std::chrono::steady_clock::now() - lastAttempt_ < settings_.reconnectMin) {
    return;
  }
  reconnectTimer_.cancel();
  resolve();
}

void RedisConnection::resolve() {
  if (closed_) {
    return;
  }
  lastAttempt_ = std::chrono::steady_clock::now();
  state_ = State::kResolving;
  resolver_.async_resolve(
      settings_.host, std::to_string(settings_.port),
      [weak = weak_from_this()](boost::system::error_code ec,
                                asio::ip::tcp::resolver::results_type results) {
        auto self = weak.lock();
        if (!self || self->closed_) {
          return;
        }
        if (ec || results.empty()) {
          self->lost("cannot resolve " + self->settings_.host + ": " + ec.message());
          return;
        }
        self->connect(results.begin()->endpoint().address().to_string());
      });
}

void RedisConnection::connect(const std::string& address) {
  ++generation_;
  redisAsyncContext* c = redisAsyncConnect(address.c_str(), settings_.port);
  if (c == nullptr) {
    lost("cannot allocate a connection");
    return;
  }
  if (c->err != 0) {
    std::string why = c->errstr;
    redisAsyncFree(c);
    lost(why);
    return;
  }
  c->data = this;
  attachToAsio(c, executor_);
  context_ = c;
  state_ = State::kConnecting;
  redisAsyncSetDisconnectCallback(c, &RedisConnection::onDisconnect);
  redisAsyncSetConnectCallback(c, &RedisConnection::onConnect);
  connectTimer_.expires_after(settings_.connectTimeout);
  connectTimer_.async_wait(
      [weak = weak_from_this(), generation = generation_](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->generation_ != generation) {
          return;
        }
        if (self->state_ == State::kConnecting || self->state_ == State::kHandshake) {
          self->drop(Errc::kUnavailable);
          self->lost("connect timeout");
        }
      });
}

void RedisConnection::onConnect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisConnection*>(context->data);
  if (status != REDIS_OK) {
    self->context_ = nullptr;  // hiredis frees it after this callback
    self->lost(context->errstr);
    return;
  }
  self->state_ = State::kHandshake;
  self->handshake();
}

void RedisConnection::onDisconnect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisConnection*>(context->data);
  if (self->dropping_) {
    return;  // our own drop(); it handles the rest
  }
  self->context_ = nullptr;  // hiredis frees it after this callback
  self->lost(status == REDIS_OK ? "closed" : context->errstr);
}

void RedisConnection::handshake() {
  auto onError = [weak = weak_from_this(), ex = executor_,
                  generation = generation_](const Error& e) {
    // Not from inside the hiredis callback: drop the connection from the executor.
    asio::post(ex, [weak, generation, message = e.message]() {
      auto self = weak.lock();
      if (self && self->generation_ == generation && self->state_ == State::kHandshake) {
        self->drop(Errc::kUnavailable);
        self->lost(message);
      }
    });
  };
  if (settings_.password) {
    send({"AUTH", *settings_.password}, [onError](Result<const redisReply*> r) {
      if (!r) {
        onError(r.error());
      }
    });
  }
  if (settings_.db != 0) {
    send({"SELECT", std::to_string(settings_.db)}, [onError](Result<const redisReply*> r) {
      if (!r) {
        onError(r.error());
      }
    });
  }
  send({"PING"},
       [weak = weak_from_this(), generation = generation_, onError](Result<const redisReply*> r) {
         auto self = weak.lock();
         if (!self || self->generation_ != generation || self->state_ != State::kHandshake) {
           return;
         }
         if (!r) {
           onError(r.error());
           return;
         }
         self->state_ = State::kReady;
         self->backoff_ = self->settings_.reconnectMin;
         self->log_->info("redis {}:{} connected", self->settings_.host, self->settings_.port);
         self->wasReady_ = true;
       });
}

void RedisConnection::drop(Errc reason) {
  if (context_ == nullptr) {
    return;
  }
  redisAsyncContext* c = std::exchange(context_, nullptr);
  state_ = State::kWaiting;
  failReason_ = reason;
  dropping_ = true;
  redisAsyncFree(c);
  dropping_ = false;
  failReason_ = Errc::kUnavailable;
}

void RedisConnection::lost(const std::string& why) {
  deadlines_.clear();
  if (closed_) {
    state_ = State::kClosed;
    return;
  }
  if (wasReady_) {
    log_->warn("redis {}:{} unavailable: {}", settings_.host, settings_.port, why);
    wasReady_ = false;
  } else {
    log_->debug("redis {}:{} connect failed: {} (retry in {} ms)", settings_.host, settings_.port,
                why, backoff_.count());
  }
  state_ = State::kWaiting;
  reconnectTimer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, settings_.reconnectMax);
  reconnectTimer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && self->state_ == State::kWaiting) {
      self->resolve();
    }
  });
}

void RedisConnection::armDeadline() {
  if (deadlineArmed_ || deadlines_.empty()) {
    return;
  }
  deadlineArmed_ = true;
  deadlineTimer_.expires_at(deadlines_.front());
  deadlineTimer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self) {
      return;
    }
    self->deadlineArmed_ = false;
    if (!self->deadlines_.empty() && self->deadlines_.front() <= std::chrono::steady_clock::now()) {
      self->drop(Errc::kTimeout);
      self->lost("no reply within " + std::to_string(self->settings_.commandTimeout.count()) +
                 " ms");
      return;
    }
    self->armDeadline();
  });
}

}  // namespace evosip::store::detail
