// PostgreSQL backend: one connection driven by async libpq on an Asio event loop
// (PQconnectPoll / PQsendQueryParams / PQconsumeInput, woken by async_wait on PQsocket).
// Statements are queued and sent one at a time with their parameters (never spliced into SQL).
// A dropped connection is noticed while idle (the socket turns readable) or by a failing
// statement; the backend then reconnects with back-off. A statement that libpq could not send
// waits for the new connection; one that was sent when the connection dropped fails (it may
// have run), and so does every statement that arrives while the database is unreachable.

#include <atomic>
#include <deque>
#include <libpq-fe.h>
#include <stdexcept>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include <evosip/api/database.hpp>
#include <evosip/log/log.hpp>

namespace evosip::api {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto kMinBackoff = 100ms;
constexpr auto kMaxBackoff = 5000ms;
constexpr int kConnectTimeoutSeconds = 5;
constexpr size_t kMaxQueued = 10000;

std::string oneLine(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  for (char& c : s) {
    if (c == '\n') {
      c = ' ';
    }
  }
  return s;
}

DbErrorKind classifySqlState(std::string_view state) {
  if (state == "23505") {
    return DbErrorKind::kUniqueViolation;
  }
  if (state == "23503") {
    return DbErrorKind::kForeignKeyViolation;
  }
  // 08: connection exception, 53: insufficient resources, 57P: operator intervention.
  if (state.substr(0, 2) == "08" || state.substr(0, 2) == "53" || state.substr(0, 3) == "57P") {
    return DbErrorKind::kUnavailable;
  }
  return DbErrorKind::kOther;
}

// Blocking statements for start-up (migration); throws naming the step.
void execBlocking(PGconn* conn, const std::string& sql, std::string_view what) {
  PGresult* res = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(res);
  std::string error = oneLine(PQresultErrorMessage(res));
  PQclear(res);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error(fmt::format("api.database: PostgreSQL: {}: {}", what, error));
  }
}

struct Job {
  std::string sql;
  std::vector<DbValue> params;
  DbCallback done;
};

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(std::string url, asio::io_context& io)
      : impl_(std::make_shared<Impl>(std::move(url), io)) {}

  ~PostgresDatabase() override { impl_->shutdown(); }

  std::string_view kind() const override { return "postgresql"; }

  void migrate() override {
    PGconn* conn = PQconnectdb(impl_->conninfo.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string error = oneLine(PQerrorMessage(conn));
      PQfinish(conn);
      throw std::runtime_error("api.database: cannot connect to PostgreSQL at " +
                               redactDatabaseUrl(impl_->url) + ": " + error);
    }
    try {
      execBlocking(conn, "SET client_min_messages = warning", "session settings");
      execBlocking(conn, "BEGIN", "begin");
      // Several API instances may start together: one migrates, the others wait for it.
      execBlocking(conn, "SELECT pg_advisory_xact_lock(7231943)", "lock the schema");
      execBlocking(conn, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                   "create schema_version");
      PGresult* res = PQexec(conn, "SELECT max(version) FROM schema_version");
      if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        std::string error = oneLine(PQresultErrorMessage(res));
        PQclear(res);
        throw std::runtime_error("api.database: PostgreSQL: read the schema version: " + error);
      }
      int64_t version = PQgetisnull(res, 0, 0) != 0 ? 0 : std::stoll(PQgetvalue(res, 0, 0));
      PQclear(res);
      const auto& migrations = schemaMigrations();
      if (version > static_cast<int64_t>(migrations.size())) {
        throw std::runtime_error(
            fmt::format("api.database: schema version {} is newer than this evosip knows ({})",
                        version, migrations.size()));
      }
      for (auto v = static_cast<size_t>(version); v < migrations.size(); ++v) {
        for (const auto& statement : migrations[v]) {
          execBlocking(conn, statement, fmt::format("migration to version {}", v + 1));
        }
        execBlocking(conn, fmt::format("INSERT INTO schema_version (version) VALUES ({})", v + 1),
                     "record the schema version");
      }
      execBlocking(conn, "COMMIT", "commit the schema");
    } catch (...) {
      PQfinish(conn);
      throw;
    }
    PQfinish(conn);
  }

  void start() override {
    asio::post(impl_->io, [impl = impl_] { impl->connect(); });
  }

  void execute(std::string sql, std::vector<DbValue> params, DbCallback done) override {
    asio::post(impl_->io, [impl = impl_, job = Job{std::move(sql), std::move(params),
                                                   std::move(done)}]() mutable {
      impl->submit(std::move(job));
    });
  }

  bool connected() const override { return impl_->up.load(); }

 private:
  // Everything below runs on the io thread; handlers hold a shared_ptr, and a generation number
  // tells them whether the connection they were waiting on is still the current one.
  struct Impl : std::enable_shared_from_this<Impl> {
    enum class State { kDown, kConnecting, kReady, kBusy, kStopped };

    Impl(std::string u, asio::io_context& context)
        : url(std::move(u)),
          conninfo(url.find('?') == std::string::npos
                       ? url + "?connect_timeout=" + std::to_string(kConnectTimeoutSeconds)
                       : url),
          io(context),
          retry(std::make_unique<asio::steady_timer>(context)) {}

    std::string url;
    std::string conninfo;
    asio::io_context& io;
    std::shared_ptr<spdlog::logger> log = log::get("api");
    PGconn* conn = nullptr;
    std::unique_ptr<asio::posix::stream_descriptor> socket;
    std::unique_ptr<asio::steady_timer> retry;
    std::chrono::milliseconds backoff = kMinBackoff;
    uint64_t generation = 0;
    State state = State::kDown;
    std::atomic<bool> up{false};
    std::deque<Job> queue;
    // Results of the statement in flight.
    std::optional<tl::expected<DbResult, DbError>> outcome;

    void submit(Job job) {
      if (state == State::kStopped || state == State::kDown) {
        job.done(tl::unexpected(DbError{DbErrorKind::kUnavailable, "PostgreSQL is unreachable"}));
        return;
      }
      if (queue.size() >= kMaxQueued) {
        job.done(tl::unexpected(DbError{DbErrorKind::kUnavailable, "too many queued statements"}));
        return;
      }
      queue.push_back(std::move(job));
      pump();
    }

    void connect() {
      if (state == State::kStopped) {
        return;
      }
      closeConnection();
      conn = PQconnectStart(conninfo.c_str());
      if (conn == nullptr || PQstatus(conn) == CONNECTION_BAD) {
        connectFailed(conn != nullptr ? oneLine(PQerrorMessage(conn)) : "out of memory");
        return;
      }
      PQsetnonblocking(conn, 1);
      state = State::kConnecting;
      waitSocket(asio::posix::stream_descriptor::wait_write,
                 [](Impl& self) { self.pollConnect(); });
    }

    void pollConnect() {
      switch (PQconnectPoll(conn)) {
        case PGRES_POLLING_OK:
          state = State::kReady;
          up = true;
          backoff = kMinBackoff;
          log->info("connected to PostgreSQL at {}", redactDatabaseUrl(url));
          pump();
          return;
        case PGRES_POLLING_READING:
          waitSocket(asio::posix::stream_descriptor::wait_read,
                     [](Impl& self) { self.pollConnect(); });
          return;
        case PGRES_POLLING_WRITING:
          waitSocket(asio::posix::stream_descriptor::wait_write,
                     [](Impl& self) { self.pollConnect(); });
          return;
        default:
          connectFailed(oneLine(PQerrorMessage(conn)));
          return;
      }
    }

    void connectFailed(const std::string& why) {
      log->warn("cannot connect to PostgreSQL at {}: {}; retrying in {} ms", redactDatabaseUrl(url),
                why, backoff.count());
      closeConnection();
      state = State::kDown;
      failQueued("PostgreSQL is unreachable: " + why);
      retry->expires_after(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(kMaxBackoff));
      retry->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec && self->state == State::kDown) {
          self->connect();
        }
      });
    }

    // The connection broke: fail what was sent, keep what was not, reconnect at once.
    void connectionLost(const std::string& why) {
      log->warn("PostgreSQL connection lost: {}; reconnecting", why);
      up = false;
      closeConnection();
      state = State::kDown;
      connect();
    }

    void pump() {
      if (state != State::kReady) {
        return;
      }
      if (queue.empty()) {
        watchIdle();
        return;
      }
      const Job& job = queue.front();
      std::vector<std::string> text(job.params.size());
      std::vector<const char*> values(job.params.size(), nullptr);
      for (size_t i = 0; i < job.params.size(); ++i) {
        if (const auto* s = std::get_if<std::string>(&job.params[i])) {
          text[i] = *s;
          values[i] = text[i].c_str();
        } else if (const auto* n = std::get_if<int64_t>(&job.params[i])) {
          text[i] = std::to_string(*n);
          values[i] = text[i].c_str();
        }
      }
      // A wait for idle input may be pending on the socket: drop it, the statement's wait
      // takes over.
      ++generation;
      if (socket) {
        socket->cancel();
      }
      if (PQsendQueryParams(conn, job.sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0) == 0) {
        if (PQstatus(conn) == CONNECTION_BAD) {
          // Not sent: it stays queued for the next connection.
          connectionLost(oneLine(PQerrorMessage(conn)));
          return;
        }
        finishJob(tl::unexpected(DbError{DbErrorKind::kOther, oneLine(PQerrorMessage(conn))}));
        pump();
        return;
      }
      state = State::kBusy;
      outcome.reset();
      flush();
    }

    void flush() {
      const int rc = PQflush(conn);
      if (rc < 0) {
        failInFlight(oneLine(PQerrorMessage(conn)));
        return;
      }
      if (rc == 1) {
        waitSocket(asio::posix::stream_descriptor::wait_write, [](Impl& self) { self.flush(); });
        return;
      }
      readResults();
    }

    void readResults() {
      if (PQconsumeInput(conn) == 0) {
        failInFlight(oneLine(PQerrorMessage(conn)));
        return;
      }
      while (PQisBusy(conn) == 0) {
        PGresult* res = PQgetResult(conn);
        if (res == nullptr) {
          finishJob(outcome ? std::move(*outcome)
                            : tl::unexpected(DbError{DbErrorKind::kOther, "no result"}));
          state = State::kReady;
          pump();
          return;
        }
        collect(res);
        PQclear(res);
      }
      waitSocket(asio::posix::stream_descriptor::wait_read, [](Impl& self) { self.readResults(); });
    }

    void collect(PGresult* res) {
      if (outcome && !*outcome) {
        return;  // keep the first error
      }
      switch (PQresultStatus(res)) {
        case PGRES_TUPLES_OK: {
          DbResult r;
          const int rows = PQntuples(res);
          const int columns = PQnfields(res);
          r.rows.reserve(static_cast<size_t>(rows));
          for (int i = 0; i < rows; ++i) {
            DbRow row;
            row.reserve(static_cast<size_t>(columns));
            for (int c = 0; c < columns; ++c) {
              if (PQgetisnull(res, i, c) != 0) {
                row.emplace_back();
              } else {
                row.emplace_back(std::string(PQgetvalue(res, i, c),
                                             static_cast<size_t>(PQgetlength(res, i, c))));
              }
            }
            r.rows.push_back(std::move(row));
          }
          outcome = std::move(r);
          return;
        }
        case PGRES_COMMAND_OK: {
          DbResult r;
          const char* tuples = PQcmdTuples(res);
          r.affected = tuples != nullptr && *tuples != '\0' ? std::stoll(tuples) : 0;
          outcome = std::move(r);
          return;
        }
        default: {
          const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
          outcome = tl::unexpected(DbError{classifySqlState(state != nullptr ? state : ""),
                                           oneLine(PQresultErrorMessage(res))});
          return;
        }
      }
    }

    // The statement in flight may have run: report it failed, then reconnect.
    void failInFlight(const std::string& why) {
      finishJob(
          tl::unexpected(DbError{DbErrorKind::kUnavailable, "PostgreSQL connection lost: " + why}));
      connectionLost(why);
    }

    void finishJob(tl::expected<DbResult, DbError> result) {
      if (queue.empty()) {
        return;
      }
      Job job = std::move(queue.front());
      queue.pop_front();
      job.done(std::move(result));
    }

    void failQueued(const std::string& why) {
      std::deque<Job> failed;
      failed.swap(queue);
      for (Job& job : failed) {
        job.done(tl::unexpected(DbError{DbErrorKind::kUnavailable, why}));
      }
    }

    // While idle the server may close the connection (restart, idle timeout): notice it now
    // rather than with the next statement.
    void watchIdle() {
      waitSocket(asio::posix::stream_descriptor::wait_read, [](Impl& self) {
        if (self.state != State::kReady) {
          return;
        }
        if (PQconsumeInput(self.conn) == 0 || PQstatus(self.conn) == CONNECTION_BAD) {
          self.connectionLost(oneLine(PQerrorMessage(self.conn)));
          return;
        }
        // A notice or a parameter status: nothing to do but keep watching.
        while (PQisBusy(self.conn) == 0) {
          PGresult* res = PQgetResult(self.conn);
          if (res == nullptr) {
            break;
          }
          PQclear(res);
        }
        self.watchIdle();
      });
    }

    template <typename Next>
    void waitSocket(asio::posix::stream_descriptor::wait_type type, Next next) {
      const int fd = PQsocket(conn);
      if (fd < 0) {
        connectionLost("no socket");
        return;
      }
      if (!socket || socket->native_handle() != fd) {
        releaseSocket();
        socket = std::make_unique<asio::posix::stream_descriptor>(io, fd);
      }
      socket->async_wait(type, [self = shared_from_this(), gen = generation,
                                next](const boost::system::error_code& ec) {
        if (ec || gen != self->generation || self->state == State::kStopped) {
          return;
        }
        next(*self);
      });
    }

    // libpq owns the descriptor: take it back from Asio without closing it.
    void releaseSocket() {
      if (socket) {
        socket->release();
        socket.reset();
      }
    }

    void closeConnection() {
      ++generation;
      up = false;
      releaseSocket();
      if (conn != nullptr) {
        PQfinish(conn);
        conn = nullptr;
      }
    }

    // Called by the owner's destructor while io does not run.
    void shutdown() {
      state = State::kStopped;
      closeConnection();
      retry.reset();
      failQueued("the API is stopping");
    }
  };

  std::shared_ptr<Impl> impl_;
};

}  // namespace

std::unique_ptr<Database> openPostgres(const std::string& url, asio::io_context& io) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    std::string why = error != nullptr ? oneLine(error) : "out of memory";
    PQfreemem(error);
    throw std::runtime_error("api.database: not a usable PostgreSQL URL (" +
                             redactDatabaseUrl(url) + "): " + why);
  }
  PQconninfoFree(options);
  return std::make_unique<PostgresDatabase>(url, io);
}

}  // namespace evosip::api
