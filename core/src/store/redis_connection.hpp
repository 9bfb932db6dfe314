#pragma once
// One hiredis connection per RedisStore, used only on its executor's thread: connecting
// (asynchronous resolve, AUTH/SELECT/PING handshake), reconnecting with back-off or on demand,
// and pipelined commands whose replies come back in order under one command deadline.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/base/result.hpp>
#include <evosip/store/store.hpp>

struct redisAsyncContext;
struct redisReply;

namespace spdlog {
class logger;
}

namespace evosip::store::detail {

class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  // Called with the reply (valid only during the call) or the reason there is none; from the
  // hiredis callback, or at once when the command could not be sent.
  using ReplyFn = std::function<void(Result<const redisReply*>)>;

  RedisConnection(RedisSettings settings, boost::asio::any_io_executor executor);
  ~RedisConnection() { close(); }

  const boost::asio::any_io_executor& executor() const { return executor_; }
  const RedisSettings& settings() const { return settings_; }
  TimePoint now() const { return settings_.now ? settings_.now() : systemNow(); }
  bool ready() const { return state_ == State::kReady; }

  void start() { resolve(); }

  // No more reconnects; pending commands complete with kUnavailable.
  void close();

  // Sends a command when the connection is established; otherwise `fn` gets kUnavailable now.
  void command(const std::vector<std::string>& args, ReplyFn fn);

  // command() whose reply is turned into a Result<T> by parse and handed to done, later, on the
  // executor.
  template <typename T, typename Parse>
  void run(const std::vector<std::string>& args, Callback<T> done, Parse parse) {
    command(args, [ex = executor_, done = std::move(done),
                   parse = std::move(parse)](Result<const redisReply*> reply) {
      Result<T> result = reply ? parse(**reply) : Result<T>(tl::unexpected(reply.error()));
      boost::asio::post(ex,
                        [done, result = std::move(result)]() mutable { done(std::move(result)); });
    });
  }

 private:
  enum class State { kIdle, kResolving, kConnecting, kHandshake, kReady, kWaiting, kClosed };

  struct Pending {
    ReplyFn fn;
  };

  void send(const std::vector<std::string>& args, ReplyFn fn);
  static void onReply(redisAsyncContext* context, void* reply, void* privdata);

  // A command while the connection waits for its next attempt: attempt now, if the last one is
  // at least reconnectMin old. A worker that has traffic then recovers with its first requests
  // after the server is back, not after its back-off (up to reconnectMax), and every worker of
  // every instance does so at about the same time.
  void reconnectOnDemand();
  // Host names are resolved asynchronously: hiredis would block the worker in getaddrinfo.
  void resolve();
  void connect(const std::string& address);
  static void onConnect(const redisAsyncContext* context, int status);
  static void onDisconnect(const redisAsyncContext* context, int status);
  // AUTH and SELECT when configured, then PING: the connection is ready on PONG.
  void handshake();
  // Frees the context (if any): pending commands complete with `reason`. Not from inside a
  // hiredis callback.
  void drop(Errc reason);
  // The context is gone: retry after the back-off.
  void lost(const std::string& why);
  // One timer for the oldest command without a reply (replies come in order).
  void armDeadline();

  RedisSettings settings_;
  boost::asio::any_io_executor executor_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer reconnectTimer_;
  boost::asio::steady_timer connectTimer_;
  boost::asio::steady_timer deadlineTimer_;
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

}  // namespace evosip::store::detail
