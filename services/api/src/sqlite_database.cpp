// SQLite backend: statements run on the blocking pool over one connection guarded by a mutex.

#include <mutex>
#include <sqlite3.h>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>

#include <evosip/api/database.hpp>

namespace evosip::api {

namespace {

DbErrorKind classify(int extendedCode) {
  switch (extendedCode) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
      return DbErrorKind::kUniqueViolation;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return DbErrorKind::kForeignKeyViolation;
    default:
      break;
  }
  switch (extendedCode & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      return DbErrorKind::kUnavailable;
    default:
      return DbErrorKind::kOther;
  }
}

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(std::string path, BlockingExecutor blocking)
      : path_(std::move(path)), blocking_(std::move(blocking)) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("api.database: cannot open SQLite file '" + path_ + "': " + why);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    for (const char* pragma :
         {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL"}) {
      auto done = run(pragma, {});
      if (!done) {
        sqlite3_close(db_);
        throw std::runtime_error("api.database: SQLite file '" + path_ +
                                 "': " + done.error().message);
      }
    }
  }

  ~SqliteDatabase() override {
    for (auto& [sql, stmt] : statements_) {
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db_);
  }

  std::string_view kind() const override { return "sqlite"; }

  void migrate() override {
    auto check = [&](const tl::expected<DbResult, DbError>& r, std::string_view what) {
      if (!r) {
        run("ROLLBACK", {});
        throw std::runtime_error(
            fmt::format("api.database: SQLite file '{}': {}: {}", path_, what, r.error().message));
      }
    };
    check(run("BEGIN IMMEDIATE", {}), "cannot lock the database");
    check(run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", {}),
          "cannot create schema_version");
    auto current = run("SELECT max(version) FROM schema_version", {});
    check(current, "cannot read the schema version");
    int64_t version = 0;
    if (!current->rows.empty() && current->rows[0][0]) {
      version = std::stoll(*current->rows[0][0]);
    }
    const auto& migrations = schemaMigrations();
    if (version > static_cast<int64_t>(migrations.size())) {
      run("ROLLBACK", {});
      throw std::runtime_error(
          fmt::format("api.database: schema version {} is newer than this evosip knows ({})",
                      version, migrations.size()));
    }
    for (auto v = static_cast<size_t>(version); v < migrations.size(); ++v) {
      for (const auto& statement : migrations[v]) {
        check(run(statement, {}), fmt::format("migration to version {}", v + 1));
      }
      check(run("INSERT INTO schema_version (version) VALUES ($1)", {static_cast<int64_t>(v + 1)}),
            "cannot record the schema version");
    }
    check(run("COMMIT", {}), "cannot commit the schema");
  }

  void start() override {}

  void execute(std::string sql, std::vector<DbValue> params, DbCallback done) override {
    blocking_([this, sql = std::move(sql), params = std::move(params), done = std::move(done)] {
      done(run(sql, params));
    });
  }

  bool connected() const override { return true; }

 private:
  tl::expected<DbResult, DbError> run(const std::string& sql, const std::vector<DbValue>& params) {
    std::lock_guard lock(mutex_);
    // Statements are compiled once and kept (compiling was most of a credential lookup's cost);
    // a kept statement is reset after every use. Statements with no parameters (pragmas,
    // migrations, BEGIN/COMMIT) are not kept.
    sqlite3_stmt* stmt = nullptr;
    const bool keep = !params.empty();
    if (keep) {
      if (auto it = statements_.find(sql); it != statements_.end()) {
        stmt = it->second;
      }
    }
    auto release = [&] {
      if (stmt == nullptr) {
        return;
      }
      if (keep) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
      } else {
        sqlite3_finalize(stmt);
      }
    };
    auto error = [&] {
      const int code = sqlite3_extended_errcode(db_);
      DbError e{classify(code), sqlite3_errmsg(db_)};
      release();
      return tl::unexpected(std::move(e));
    };
    if (stmt == nullptr) {
      if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr) !=
          SQLITE_OK) {
        return error();
      }
      if (keep && statements_.size() < kMaxStatements) {
        statements_.emplace(sql, stmt);
      }
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string name = "$" + std::to_string(i + 1);
      const int index = sqlite3_bind_parameter_index(stmt, name.c_str());
      if (index == 0) {
        continue;  // not used by this statement
      }
      int rc = SQLITE_OK;
      if (const auto* text = std::get_if<std::string>(&params[i])) {
        rc = sqlite3_bind_text(stmt, index, text->data(), static_cast<int>(text->size()),
                               SQLITE_TRANSIENT);
      } else if (const auto* number = std::get_if<int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, index, *number);
      } else {
        rc = sqlite3_bind_null(stmt, index);
      }
      if (rc != SQLITE_OK) {
        return error();
      }
    }
    DbResult result;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        break;
      }
      if (rc != SQLITE_ROW) {
        return error();
      }
      DbRow row;
      const int columns = sqlite3_column_count(stmt);
      for (int c = 0; c < columns; ++c) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
          row.emplace_back();
        } else {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          row.emplace_back(std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt, c))));
        }
      }
      result.rows.push_back(std::move(row));
    }
    result.affected = sqlite3_stmt_readonly(stmt) != 0 ? 0 : sqlite3_changes(db_);
    release();
    return result;
  }

  std::string path_;
  BlockingExecutor blocking_;
  std::mutex mutex_;  // one statement at a time; sqlite3_changes/errmsg belong to it
  sqlite3* db_ = nullptr;
  static constexpr size_t kMaxStatements = 64;  // the api has a fixed set of statements
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // under mutex_
};

}  // namespace

std::unique_ptr<Database> openSqlite(const std::string& path, BlockingExecutor blocking) {
  return std::make_unique<SqliteDatabase>(path, std::move(blocking));
}

}  // namespace evosip::api
