// The store operations of the redis backend: each runs on the connection's executor as one
// command, one Lua script (redis_scripts.hpp) or a SCAN listing (redis_scan.hpp). Keys and
// failure behaviour: README.md.

#include <algorithm>
#include <hiredis/hiredis.h>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <evosip/store/json.hpp>
#include <evosip/store/redis_store.hpp>

#include "order.hpp"
#include "redis_connection.hpp"
#include "redis_keys.hpp"
#include "redis_reply.hpp"
#include "redis_scan.hpp"
#include "redis_scripts.hpp"

namespace evosip::store {

namespace asio = boost::asio;

namespace {

using detail::decodeRecords;
using detail::dialogField;
using detail::expectOk;
using detail::globEscape;
using detail::isCursor;
using detail::key;
using detail::kNonceScript;
using detail::kPutIfScript;
using detail::kPutScript;
using detail::RedisConnection;
using detail::Scan;
using detail::text;
using detail::unexpectedReply;

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

// Runs command(key) for every key in one pipeline; collect(key, reply, items) adds what each
// reply holds to one page, which done gets, ordered by order(items), once every reply is in.
template <typename T, typename Command, typename Collect, typename Order>
void fetchPage(const std::shared_ptr<RedisConnection>& c, const std::vector<std::string>& keys,
               std::string next, Command command, Collect collect, Order order,
               Callback<Page<T>> done) {
  struct Gather {
    Page<T> page;
    size_t remaining = 0;
    std::optional<Error> error;
  };
  auto gather = std::make_shared<Gather>();
  gather->page.next = std::move(next);
  gather->remaining = keys.size();
  auto finish = [c, done, gather, order]() {
    if (gather->error) {
      post<Page<T>>(*c, done, tl::unexpected(*gather->error));
      return;
    }
    order(gather->page.items);
    post<Page<T>>(*c, done, std::move(gather->page));
  };
  if (gather->remaining == 0) {
    finish();
    return;
  }
  for (const auto& k : keys) {
    c->command(command(k), [gather, finish, collect, k](Result<const redisReply*> r) {
      if (!r) {
        gather->error = r.error();
      } else {
        collect(k, **r, gather->page.items);
      }
      if (--gather->remaining == 0) {
        finish();
      }
    });
  }
}

// The dialogs of every call in `keys`, as one page.
void fetchDialogs(const std::shared_ptr<RedisConnection>& c, const std::vector<std::string>& keys,
                  std::string next, Callback<Page<DialogRecord>> done) {
  fetchPage<DialogRecord>(
      c, keys, std::move(next),
      [](const std::string& k) {
        return std::vector<std::string>{"HVALS", k};
      },
      [now = c->now()](const std::string&, const redisReply& r, std::vector<DialogRecord>& out) {
        auto dialogs = decodeRecords<DialogRecord>(r, 0, 1, now, dialogFromJson);
        std::move(dialogs.begin(), dialogs.end(), std::back_inserter(out));
      },
      [](std::vector<DialogRecord>& items) { sortDialogs(items); }, std::move(done));
}

// The values of `keys` (full redis keys), as one page; `strip` characters of each key are left
// out of the page's keys. Keys that expired meanwhile are skipped.
void fetchValues(const std::shared_ptr<RedisConnection>& c, const std::vector<std::string>& keys,
                 size_t strip, std::string next, Callback<Page<KeyValue>> done) {
  fetchPage<KeyValue>(
      c, keys, std::move(next),
      [](const std::string& k) {
        return std::vector<std::string>{"GET", k};
      },
      [strip](const std::string& k, const redisReply& r, std::vector<KeyValue>& out) {
        if (r.type == REDIS_REPLY_STRING) {
          out.push_back({k.substr(std::min(strip, k.size())), std::string(text(r))});
        }
      },
      [](std::vector<KeyValue>&) {}, std::move(done));
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
  onExecutor(connection_, [cursor = std::move(cursor), count,
                           done = std::move(done)](const Connection& c) {
    if (!cursor.empty() && !isCursor(cursor)) {
      post<Page<std::string>>(*c, done, makeError(Errc::kInvalid, "bad cursor"));
      return;
    }
    const std::string prefix = key(*c, "loc:", "");
    Scan::start(c, globEscape(prefix) + "*", cursor, count, [c, done, prefix](auto result) {
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
    });
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
    Scan::start(c, globEscape(key(*c, "dlg:", "")) + "*", cursor, count, [c, done](auto result) {
      if (!result) {
        post<Page<DialogRecord>>(*c, done, tl::unexpected(result.error()));
        return;
      }
      fetchDialogs(c, result->first, std::move(result->second), done);
    });
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

void RedisStore::putValue(std::string k, std::string value, std::chrono::milliseconds ttl,
                          bool onlyIfAbsent, Callback<bool> done) {
  onExecutor(connection_, [k = std::move(k), value = std::move(value), ttl, onlyIfAbsent,
                           done = std::move(done)](const Connection& c) {
    if (k.empty() || ttl.count() <= 0) {
      post<bool>(*c, done, makeError(Errc::kInvalid, "empty key or TTL"));
      return;
    }
    std::vector<std::string> args{"SET", key(*c, "v:", k), value, "PX",
                                  std::to_string(ttl.count())};
    if (onlyIfAbsent) {
      args.emplace_back("NX");
    }
    c->run<bool>(args, done, [](const redisReply& r) -> Result<bool> {
      if (r.type == REDIS_REPLY_NIL) {
        return false;  // NX: the key holds a value
      }
      if (r.type == REDIS_REPLY_STATUS) {
        return true;
      }
      return tl::unexpected(unexpectedReply(r));
    });
  });
}

void RedisStore::putValueIf(std::string k, std::string value, std::chrono::milliseconds ttl,
                            std::vector<std::string> expected, Callback<bool> done) {
  onExecutor(connection_,
             [k = std::move(k), value = std::move(value), ttl, expected = std::move(expected),
              done = std::move(done)](const Connection& c) {
               if (k.empty() || ttl.count() <= 0) {
                 post<bool>(*c, done, makeError(Errc::kInvalid, "empty key or TTL"));
                 return;
               }
               std::vector<std::string> args{
                   "EVAL", kPutIfScript, "1", key(*c, "v:", k), value, std::to_string(ttl.count())};
               args.insert(args.end(), expected.begin(), expected.end());
               c->run<bool>(args, done, [](const redisReply& r) -> Result<bool> {
                 if (r.type != REDIS_REPLY_INTEGER) {
                   return tl::unexpected(unexpectedReply(r));
                 }
                 return r.integer == 1;
               });
             });
}

void RedisStore::getValue(std::string k, Callback<std::string> done) {
  onExecutor(connection_, [k = std::move(k), done = std::move(done)](const Connection& c) {
    c->run<std::string>({"GET", key(*c, "v:", k)}, done,
                        [](const redisReply& r) -> Result<std::string> {
                          if (r.type == REDIS_REPLY_NIL) {
                            return makeError(Errc::kNotFound, "no such value");
                          }
                          if (r.type != REDIS_REPLY_STRING) {
                            return tl::unexpected(unexpectedReply(r));
                          }
                          return std::string(text(r));
                        });
  });
}

void RedisStore::removeValue(std::string k, Callback<void> done) {
  onExecutor(connection_, [k = std::move(k), done = std::move(done)](const Connection& c) {
    c->run<void>({"DEL", key(*c, "v:", k)}, done, expectOk);
  });
}

void RedisStore::listValues(std::string prefix, std::string cursor, size_t count,
                            Callback<Page<KeyValue>> done) {
  onExecutor(connection_, [prefix = std::move(prefix), cursor = std::move(cursor), count,
                           done = std::move(done)](const Connection& c) {
    if (!cursor.empty() && !isCursor(cursor)) {
      post<Page<KeyValue>>(*c, done, makeError(Errc::kInvalid, "bad cursor"));
      return;
    }
    const size_t strip = key(*c, "v:", "").size();
    Scan::start(c, globEscape(key(*c, "v:", prefix)) + "*", cursor, count,
                [c, done, strip](auto result) {
                  if (!result) {
                    post<Page<KeyValue>>(*c, done, tl::unexpected(result.error()));
                    return;
                  }
                  fetchValues(c, result->first, strip, std::move(result->second), done);
                });
  });
}

void RedisStore::ping(Callback<void> done) {
  onExecutor(connection_, [done = std::move(done)](const Connection& c) {
    c->run<void>({"PING"}, done, expectOk);
  });
}

}  // namespace evosip::store
