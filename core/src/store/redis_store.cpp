#include <algorithm>
#include <cctype>
#include <deque>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <evosip/log/log.hpp>
#include <evosip/store/json.hpp>
#include <evosip/store/redis_store.hpp>

#include "order.hpp"
#include "redis_asio.hpp"

namespace evosip::store {

namespace asio = boost::asio;

namespace {

// Upserts one field of a hash of records (bindings of an AoR, dialogs of a call) whose values
// are JSON objects with "expires" (ms since the epoch), drops the fields that have expired and
// sets the key's TTL to the latest expiry: the key lives exactly as long as its last record.
// KEYS[1] hash, ARGV[1] field, ARGV[2] value, ARGV[3] the writer's clock (ms since the epoch).
// Relative PEXPIRE, so the server's clock does not matter. Returns the fields left.
constexpr const char* kPutScript = R"lua(
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local latest = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, v = pcall(cjson.decode, all[i + 1])
  local e = nil
  if ok and type(v) == 'table' then e = tonumber(v['expires']) end
  if e == nil or e <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif e > latest then
    latest = e
  end
end
if latest > now then
  redis.call('PEXPIRE', KEYS[1], latest - now)
end
return redis.call('HLEN', KEYS[1])
)lua";

// Digest nonce-count check-and-set. KEYS[1] nonce key, ARGV[1] nc, ARGV[2] TTL in ms.
constexpr const char* kNonceScript = R"lua(
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > last then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
)lua";

std::string globEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

std::string dialogField(const DialogId& id) {
  return boost::json::serialize(boost::json::array{id.fromTag.c_str(), id.toTag.c_str()});
}

std::string_view text(const redisReply& r) {
  return {r.str, r.len};
}

std::string describe(const redisReply& r) {
  if (r.type == REDIS_REPLY_ERROR || r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS) {
    return std::string(text(r));
  }
  return "reply of type " + std::to_string(r.type);
}

Error unexpectedReply(const redisReply& r) {
  return Error{Errc::kIo, "redis: unexpected " + describe(r)};
}

bool isCursor(const std::string& s) {
  return !s.empty() && s.size() <= 20 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

namespace detail {

// One hiredis connection, used only on its executor's thread.
class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  // Called with the reply (valid only during the call) or the reason there is none; from the
  // hiredis callback, or at once when the command could not be sent.
  using ReplyFn = std::function<void(Result<const redisReply*>)>;

  RedisConnection(RedisSettings settings, asio::any_io_executor executor)
      : settings_(std::move(settings)),
        executor_(std::move(executor)),
        resolver_(executor_),
        reconnectTimer_(executor_),
        connectTimer_(executor_),
        deadlineTimer_(executor_),
        backoff_(settings_.reconnectMin),
        log_(log::get("store")) {}

  ~RedisConnection() { close(); }

  const asio::any_io_executor& executor() const { return executor_; }
  const RedisSettings& settings() const { return settings_; }
  TimePoint now() const { return settings_.now ? settings_.now() : systemNow(); }
  bool ready() const { return state_ == State::kReady; }

  void start() { resolve(); }

  // No more reconnects; pending commands complete with kUnavailable.
  void close() {
    closed_ = true;
    resolver_.cancel();
    drop(Errc::kUnavailable);
    state_ = State::kClosed;
  }

  // Sends a command when the connection is established; otherwise `fn` gets kUnavailable now.
  void command(const std::vector<std::string>& args, ReplyFn fn) {
    if (state_ != State::kReady) {
      reconnectOnDemand();
      fn(makeError(Errc::kUnavailable, "redis: not connected"));
      return;
    }
    send(args, std::move(fn));
  }

  template <typename T, typename Parse>
  void run(const std::vector<std::string>& args, Callback<T> done, Parse parse) {
    command(args, [ex = executor_, done = std::move(done),
                   parse = std::move(parse)](Result<const redisReply*> reply) {
      Result<T> result = reply ? parse(**reply) : Result<T>(tl::unexpected(reply.error()));
      asio::post(ex, [done, result = std::move(result)]() mutable { done(std::move(result)); });
    });
  }

 private:
  enum class State { kIdle, kResolving, kConnecting, kHandshake, kReady, kWaiting, kClosed };

  struct Pending {
    ReplyFn fn;
  };

  void send(const std::vector<std::string>& args, ReplyFn fn) {
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

  static void onReply(redisAsyncContext* context, void* reply, void* privdata) {
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

  // A command while the connection waits for its next attempt: attempt now, if the last one is
  // at least reconnectMin old. A worker that has traffic then recovers with its first requests
  // after the server is back, not after its back-off (up to reconnectMax), and every worker of
  // every instance does so at about the same time.
  void reconnectOnDemand() {
    // Not from inside drop(): its caller arms the back-off right after.
    if (state_ != State::kWaiting || closed_ || dropping_ ||
        std::chrono::steady_clock::now() - lastAttempt_ < settings_.reconnectMin) {
      return;
    }
    reconnectTimer_.cancel();
    resolve();
  }

  // Host names are resolved asynchronously: hiredis would block the worker in getaddrinfo.
  void resolve() {
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

  void connect(const std::string& address) {
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

  static void onConnect(const redisAsyncContext* context, int status) {
    auto* self = static_cast<RedisConnection*>(context->data);
    if (status != REDIS_OK) {
      self->context_ = nullptr;  // hiredis frees it after this callback
      self->lost(context->errstr);
      return;
    }
    self->state_ = State::kHandshake;
    self->handshake();
  }

  static void onDisconnect(const redisAsyncContext* context, int status) {
    auto* self = static_cast<RedisConnection*>(context->data);
    if (self->dropping_) {
      return;  // our own drop(); it handles the rest
    }
    self->context_ = nullptr;  // hiredis frees it after this callback
    self->lost(status == REDIS_OK ? "closed" : context->errstr);
  }

  // AUTH and SELECT when configured, then PING: the connection is ready on PONG.
  void handshake() {
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

  // Frees the context (if any): pending commands complete with `reason`. Not from inside a
  // hiredis callback.
  void drop(Errc reason) {
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

  // The context is gone: retry after the back-off.
  void lost(const std::string& why) {
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

  // One timer for the oldest command without a reply (replies come in order).
  void armDeadline() {
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
      if (!self->deadlines_.empty() &&
          self->deadlines_.front() <= std::chrono::steady_clock::now()) {
        self->drop(Errc::kTimeout);
        self->lost("no reply within " + std::to_string(self->settings_.commandTimeout.count()) +
                   " ms");
        return;
      }
      self->armDeadline();
    });
  }

  RedisSettings settings_;
  asio::any_io_executor executor_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer reconnectTimer_;
  asio::steady_timer connectTimer_;
  asio::steady_timer deadlineTimer_;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point lastAttempt_;
  std::shared_ptr<spdlog::logger> log_;

  redisAsyncContext* context_ = nullptr;
  State state_ = State::kIdle;
  uint64_t generation_ = 0;  // one per connection attempt; stale timers compare it
  std::deque<std::chrono::steady_clock::time_point> deadlines_;
  bool deadlineArmed_ = false;
  Errc failReason_ = Errc::kUnavailable;
  bool dropping_ = false;
  bool wasReady_ = false;
  bool closed_ = false;
};

}  // namespace detail

namespace {

using detail::RedisConnection;

std::string key(const RedisConnection& c, std::string_view kind, std::string_view id) {
  std::string k = c.settings().keyPrefix;
  k.append(kind).append(id);
  return k;
}

Result<void> expectOk(const redisReply&) {
  return {};
}

// Values of HGETALL (every second element) or HVALS (every element) decoded; expired and
// undecodable records are left out.
template <typename T, typename Decode>
std::vector<T> decodeRecords(const redisReply& r, size_t first, size_t step, TimePoint now,
                             Decode decode) {
  std::vector<T> out;
  if (r.type != REDIS_REPLY_ARRAY) {
    return out;
  }
  for (size_t i = first; i < r.elements; i += step) {
    const redisReply* e = r.element[i];
    if (e->type != REDIS_REPLY_STRING) {
      continue;
    }
    auto record = decode(text(*e));
    if (!record) {
      log::get("store")->warn("skipping a stored record: {}", record.error().message);
      continue;
    }
    if (record->expires > now) {
      out.push_back(std::move(*record));
    }
  }
  return out;
}

// Pages through SCAN until `count` keys matching `pattern` are collected or the scan is done,
// then calls finish(keys, nextCursor) on the connection's thread.
struct Scan : std::enable_shared_from_this<Scan> {
  using Finish = std::function<void(Result<std::pair<std::vector<std::string>, std::string>>)>;

  std::shared_ptr<RedisConnection> connection;
  std::string pattern;
  size_t count = 1;
  std::string cursor;
  std::vector<std::string> keys;
  Finish finish;

  void step() {
    connection->command(
        {"SCAN", cursor, "MATCH", pattern, "COUNT", std::to_string(std::max<size_t>(count, 10))},
        [self = shared_from_this()](Result<const redisReply*> reply) {
          if (!reply) {
            self->finish(tl::unexpected(reply.error()));
            return;
          }
          const redisReply& r = **reply;
          if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
              r.element[0]->type != REDIS_REPLY_STRING || r.element[1]->type != REDIS_REPLY_ARRAY) {
            self->finish(tl::unexpected(unexpectedReply(r)));
            return;
          }
          self->cursor = std::string(text(*r.element[0]));
          const redisReply& keys = *r.element[1];
          for (size_t i = 0; i < keys.elements; ++i) {
            if (keys.element[i]->type == REDIS_REPLY_STRING) {
              self->keys.emplace_back(text(*keys.element[i]));
            }
          }
          if (self->cursor == "0") {
            self->finish(std::pair{std::move(self->keys), std::string()});
          } else if (self->keys.size() >= self->count) {
            self->finish(std::pair{std::move(self->keys), self->cursor});
          } else {
            self->step();
          }
        });
  }
};

// Runs fn(connection) on the connection's executor (inline when already on it).
template <typename Fn>
void onExecutor(const std::shared_ptr<RedisConnection>& connection, Fn fn) {
  asio::dispatch(connection->executor(),
                 [connection, fn = std::move(fn)]() mutable { fn(connection); });
}

template <typename T>
void post(const RedisConnection& c, Callback<T> done, Result<T> result) {
  asio::post(c.executor(), [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

}  // namespace

RedisStore::RedisStore(RedisSettings settings, boost::asio::any_io_executor executor)
    : connection_(std::make_shared<RedisConnection>(std::move(settings), executor)) {
  onExecutor(connection_, [](const std::shared_ptr<RedisConnection>& c) { c->start(); });
}

RedisStore::~RedisStore() {
  connection_->close();
}

bool RedisStore::connected() const {
  return connection_->ready();
}

using Connection = std::shared_ptr<RedisConnection>;

void RedisStore::putBinding(Binding binding, Callback<void> done) {
  onExecutor(connection_, [b = std::move(binding), done = std::move(done)](const Connection& c) {
    if (b.aor.empty() || b.contact.empty()) {
      post<void>(*c, done, makeError(Errc::kInvalid, "binding without AoR or contact"));
      return;
    }
    c->run<void>({"EVAL", kPutScript, "1", key(*c, "loc:", b.aor), b.contact, toJson(b),
                  std::to_string(c->now().time_since_epoch().count())},
                 done, expectOk);
  });
}

void RedisStore::removeBinding(std::string aor, std::string contact, Callback<void> done) {
  onExecutor(connection_, [aor = std::move(aor), contact = std::move(contact),
                           done = std::move(done)](const Connection& c) {
    c->run<void>({"HDEL", key(*c, "loc:", aor), contact}, done, expectOk);
  });
}

void RedisStore::removeBindings(std::string aor, Callback<void> done) {
  onExecutor(connection_, [aor = std::move(aor), done = std::move(done)](const Connection& c) {
    c->run<void>({"DEL", key(*c, "loc:", aor)}, done, expectOk);
  });
}

void RedisStore::getBindings(std::string aor, Callback<std::vector<Binding>> done) {
  onExecutor(connection_, [aor = std::move(aor), done = std::move(done)](const Connection& c) {
    c->run<std::vector<Binding>>(
        {"HGETALL", key(*c, "loc:", aor)}, done,
        [now = c->now()](const redisReply& r) -> Result<std::vector<Binding>> {
          if (r.type != REDIS_REPLY_ARRAY) {
            return tl::unexpected(unexpectedReply(r));
          }
          auto bindings = decodeRecords<Binding>(r, 1, 2, now, bindingFromJson);
          sortBindings(bindings);
          return bindings;
        });
  });
}

void RedisStore::listAors(std::string cursor, size_t count, Callback<Page<std::string>> done) {
  onExecutor(connection_,
             [cursor = std::move(cursor), count, done = std::move(done)](const Connection& c) {
               if (!cursor.empty() && !isCursor(cursor)) {
                 post<Page<std::string>>(*c, done, makeError(Errc::kInvalid, "bad cursor"));
                 return;
               }
               auto scan = std::make_shared<Scan>();
               scan->connection = c;
               const std::string prefix = key(*c, "loc:", "");
               scan->pattern = globEscape(prefix) + "*";
               scan->count = std::max<size_t>(count, 1);
               scan->cursor = cursor.empty() ? "0" : cursor;
               scan->finish = [c, done, prefix](auto result) {
                 if (!result) {
                   post<Page<std::string>>(*c, done, tl::unexpected(result.error()));
                   return;
                 }
                 Page<std::string> page;
                 for (auto& k : result->first) {
                   page.items.push_back(k.substr(prefix.size()));
                 }
                 page.next = std::move(result->second);
                 post<Page<std::string>>(*c, done, std::move(page));
               };
               scan->step();
             });
}

void RedisStore::putDialog(DialogRecord record, Callback<void> done) {
  onExecutor(connection_, [d = std::move(record), done = std::move(done)](const Connection& c) {
    if (d.id.callId.empty()) {
      post<void>(*c, done, makeError(Errc::kInvalid, "dialog without Call-ID"));
      return;
    }
    c->run<void>({"EVAL", kPutScript, "1", key(*c, "dlg:", d.id.callId), dialogField(d.id),
                  toJson(d), std::to_string(c->now().time_since_epoch().count())},
                 done, expectOk);
  });
}

void RedisStore::getDialog(DialogId id, Callback<DialogRecord> done) {
  onExecutor(connection_, [id = std::move(id), done = std::move(done)](const Connection& c) {
    c->run<DialogRecord>({"HGET", key(*c, "dlg:", id.callId), dialogField(id)}, done,
                         [now = c->now(), id](const redisReply& r) -> Result<DialogRecord> {
                           if (r.type == REDIS_REPLY_NIL) {
                             return makeError(Errc::kNotFound, "no such dialog");
                           }
                           if (r.type != REDIS_REPLY_STRING) {
                             return tl::unexpected(unexpectedReply(r));
                           }
                           auto d = dialogFromJson(text(r));
                           if (!d) {
                             return d;
                           }
                           if (d->expires <= now || !(d->id == id)) {
                             return makeError(Errc::kNotFound, "no such dialog");
                           }
                           return d;
                         });
  });
}

void RedisStore::getDialogs(std::string callId, Callback<std::vector<DialogRecord>> done) {
  onExecutor(connection_,
             [callId = std::move(callId), done = std::move(done)](const Connection& c) {
               c->run<std::vector<DialogRecord>>(
                   {"HVALS", key(*c, "dlg:", callId)}, done,
                   [now = c->now()](const redisReply& r) -> Result<std::vector<DialogRecord>> {
                     if (r.type != REDIS_REPLY_ARRAY) {
                       return tl::unexpected(unexpectedReply(r));
                     }
                     auto dialogs = decodeRecords<DialogRecord>(r, 0, 1, now, dialogFromJson);
                     sortDialogs(dialogs);
                     return dialogs;
                   });
             });
}

void RedisStore::removeDialog(DialogId id, Callback<void> done) {
  onExecutor(connection_, [id = std::move(id), done = std::move(done)](const Connection& c) {
    c->run<void>({"HDEL", key(*c, "dlg:", id.callId), dialogField(id)}, done, expectOk);
  });
}

void RedisStore::listDialogs(std::string cursor, size_t count, Callback<Page<DialogRecord>> done) {
  onExecutor(connection_, [cursor = std::move(cursor), count,
                           done = std::move(done)](const Connection& c) {
    if (!cursor.empty() && !isCursor(cursor)) {
      post<Page<DialogRecord>>(*c, done, makeError(Errc::kInvalid, "bad cursor"));
      return;
    }
    auto scan = std::make_shared<Scan>();
    scan->connection = c;
    scan->pattern = globEscape(key(*c, "dlg:", "")) + "*";
    scan->count = std::max<size_t>(count, 1);
    scan->cursor = cursor.empty() ? "0" : cursor;
    scan->finish = [c, done](auto result) {
      if (!result) {
        post<Page<DialogRecord>>(*c, done, tl::unexpected(result.error()));
        return;
      }
      // The dialogs of every call found, fetched in one pipeline.
      struct Gather {
        Page<DialogRecord> page;
        size_t remaining = 0;
        std::optional<Error> error;
      };
      auto gather = std::make_shared<Gather>();
      gather->page.next = std::move(result->second);
      gather->remaining = result->first.size();
      auto finish = [c, done, gather]() {
        if (gather->error) {
          post<Page<DialogRecord>>(*c, done, tl::unexpected(*gather->error));
          return;
        }
        sortDialogs(gather->page.items);
        post<Page<DialogRecord>>(*c, done, std::move(gather->page));
      };
      if (gather->remaining == 0) {
        finish();
        return;
      }
      for (const auto& k : result->first) {
        c->command({"HVALS", k}, [gather, finish, now = c->now()](Result<const redisReply*> r) {
          if (!r) {
            gather->error = r.error();
          } else {
            auto dialogs = decodeRecords<DialogRecord>(**r, 0, 1, now, dialogFromJson);
            std::move(dialogs.begin(), dialogs.end(), std::back_inserter(gather->page.items));
          }
          if (--gather->remaining == 0) {
            finish();
          }
        });
      }
    };
    scan->step();
  });
}

void RedisStore::checkAndSetNonceCount(std::string nonce, uint32_t nc,
                                       std::chrono::milliseconds ttl, Callback<bool> done) {
  onExecutor(connection_,
             [nonce = std::move(nonce), nc, ttl, done = std::move(done)](const Connection& c) {
               if (nonce.empty() || ttl.count() <= 0) {
                 post<bool>(*c, done, makeError(Errc::kInvalid, "empty nonce or TTL"));
                 return;
               }
               c->run<bool>({"EVAL", kNonceScript, "1", key(*c, "nc:", nonce), std::to_string(nc),
                             std::to_string(ttl.count())},
                            done, [](const redisReply& r) -> Result<bool> {
                              if (r.type != REDIS_REPLY_INTEGER) {
                                return tl::unexpected(unexpectedReply(r));
                              }
                              return r.integer == 1;
                            });
             });
}

void RedisStore::ping(Callback<void> done) {
  onExecutor(connection_, [done = std::move(done)](const Connection& c) {
    c->run<void>({"PING"}, done, expectOk);
  });
}

}  // namespace evosip::store
