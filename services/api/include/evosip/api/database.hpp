#pragma once
// The API's database: one parameterised statement at a time, answered asynchronously. Two
// backends run the same SQL (placeholders $1, $2, ...): SQLite on the blocking thread pool and
// PostgreSQL through async libpq on an event loop. Nothing above this interface knows which one
// is in use.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <tl/expected.hpp>

namespace evosip::api {

using DbValue = std::variant<std::nullptr_t, int64_t, std::string>;
using DbRow = std::vector<std::optional<std::string>>;  // every column as text, nullopt = NULL

struct DbResult {
  std::vector<DbRow> rows;
  int64_t affected = 0;  // rows changed by INSERT/UPDATE/DELETE
};

enum class DbErrorKind {
  kUniqueViolation,      // a primary key or unique constraint
  kForeignKeyViolation,  // a row refers to a missing one, or is referred to
  kUnavailable,          // no connection, connection lost, database busy or full
  kOther,
};

struct DbError {
  DbErrorKind kind = DbErrorKind::kOther;
  std::string message;
};

using DbCallback = std::function<void(tl::expected<DbResult, DbError>)>;

class Database {
 public:
  virtual ~Database() = default;

  virtual std::string_view kind() const = 0;  // "sqlite" or "postgresql"
  // Creates the schema or brings it to the current version (table schema_version). Blocking;
  // for start-up. Throws std::runtime_error saying what failed.
  virtual void migrate() = 0;
  // Starts serving execute() (connects, for PostgreSQL).
  virtual void start() = 0;
  // Runs one statement; done is called once, on a thread of the backend.
  virtual void execute(std::string sql, std::vector<DbValue> params, DbCallback done) = 0;
  // False while the backend cannot reach its database (readiness).
  virtual bool connected() const = 0;
};

// The schema, one entry per version: entry i brings the schema from version i to i + 1. The
// same statements run on both backends.
const std::vector<std::vector<std::string>>& schemaMigrations();

// "sqlite:///var/lib/evosip/evosip.db" (absolute), "sqlite://evosip.db" (relative) -> the path;
// nullopt for other schemes. An empty path is an error.
tl::expected<std::optional<std::string>, std::string> sqlitePathFromUrl(std::string_view url);
// True for "postgresql://..." and "postgres://...".
bool isPostgresUrl(std::string_view url);
// The URL without its password, for log lines.
std::string redactDatabaseUrl(std::string_view url);

// Runs work off the event loops (WorkerPool::postBlocking, or inline in tests).
using BlockingExecutor = std::function<void(std::function<void()>)>;

// SQLite file at path (created when missing), one connection serialised by a mutex, WAL journal,
// foreign keys enforced. Throws std::runtime_error naming the file when it cannot be opened.
std::unique_ptr<Database> openSqlite(const std::string& path, BlockingExecutor blocking);

// PostgreSQL at url (libpq connection URI) on io: one connection, statements queued and sent one
// at a time, reconnection with back-off when the connection drops. Destroy it only while io is
// not running.
std::unique_ptr<Database> openPostgres(const std::string& url, boost::asio::io_context& io);

}  // namespace evosip::api
