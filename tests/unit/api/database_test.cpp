#include <filesystem>

#include <gtest/gtest.h>

#include <evosip/api/database.hpp>

namespace evosip::api {
namespace {

TEST(DatabaseUrlTest, SqlitePaths) {
  EXPECT_EQ(**sqlitePathFromUrl("sqlite:///var/lib/evosip/evosip.db"), "/var/lib/evosip/evosip.db");
  EXPECT_EQ(**sqlitePathFromUrl("sqlite://evosip.db"), "evosip.db");
  EXPECT_FALSE(sqlitePathFromUrl("sqlite://"));
  EXPECT_FALSE(*sqlitePathFromUrl("postgresql://u@h/db"));
  EXPECT_TRUE(isPostgresUrl("postgresql://u@h:5432/db"));
  EXPECT_TRUE(isPostgresUrl("postgres://u@h/db"));
  EXPECT_FALSE(isPostgresUrl("mysql://u@h/db"));
}

TEST(DatabaseUrlTest, RedactsThePassword) {
  EXPECT_EQ(redactDatabaseUrl("postgresql://evosip:s3cret@db:5432/evosip"),
            "postgresql://evosip:***@db:5432/evosip");
  EXPECT_EQ(redactDatabaseUrl("postgresql://evosip@db/evosip"), "postgresql://evosip@db/evosip");
  EXPECT_EQ(redactDatabaseUrl("sqlite:///a@b/c.db"), "sqlite:///a@b/c.db");
}

class SqliteDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("evosip-db-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Database> open() {
    return openSqlite((dir_ / "evosip.db").string(), [](std::function<void()> fn) { fn(); });
  }
  tl::expected<DbResult, DbError> exec(Database& db, std::string sql,
                                       std::vector<DbValue> params = {}) {
    tl::expected<DbResult, DbError> out = tl::unexpected(DbError{DbErrorKind::kOther, "no call"});
    db.execute(std::move(sql), std::move(params),
               [&](tl::expected<DbResult, DbError> r) { out = std::move(r); });
    return out;
  }

  std::filesystem::path dir_;
};

TEST_F(SqliteDatabaseTest, MigrationCreatesTheSchemaOnceAndRecordsItsVersion) {
  {
    auto db = open();
    db->migrate();
    ASSERT_TRUE(exec(*db, "INSERT INTO domains (name, created_at) VALUES ($1, $2)",
                     {std::string("a.example"), std::string("t")}));
  }
  auto db = open();
  db->migrate();  // a second start keeps the data
  auto version = exec(*db, "SELECT max(version), count(*) FROM schema_version");
  ASSERT_TRUE(version);
  EXPECT_EQ(*version->rows[0][0], std::to_string(schemaMigrations().size()));
  EXPECT_EQ(*version->rows[0][1], std::to_string(schemaMigrations().size()));
  auto domains = exec(*db, "SELECT name FROM domains");
  ASSERT_TRUE(domains);
  ASSERT_EQ(domains->rows.size(), 1u);
}

TEST_F(SqliteDatabaseTest, RefusesASchemaNewerThanItKnows) {
  auto db = open();
  db->migrate();
  ASSERT_TRUE(exec(*db, "INSERT INTO schema_version (version) VALUES (999)"));
  EXPECT_THROW(db->migrate(), std::runtime_error);
}

TEST_F(SqliteDatabaseTest, ParametersErrorsAndAffectedRows) {
  auto db = open();
  db->migrate();
  ASSERT_TRUE(exec(*db, "INSERT INTO domains (name, created_at) VALUES ($1, $2)",
                   {std::string("a.example"), std::string("t")}));
  auto duplicate = exec(*db, "INSERT INTO domains (name, created_at) VALUES ($1, $2)",
                        {std::string("a.example"), std::string("t")});
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().kind, DbErrorKind::kUniqueViolation);
  auto orphan = exec(*db, "INSERT INTO subscribers VALUES ($1, $2, $3, $3, $3, $3)",
                     {std::string("nowhere.example"), std::string("bob"), std::string("x")});
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, DbErrorKind::kForeignKeyViolation);
  // A parameter is bound as a value, never spliced into the SQL.
  auto injected =
      exec(*db, "SELECT count(*) FROM domains WHERE name = $1", {std::string("x' OR '1'='1")});
  ASSERT_TRUE(injected);
  EXPECT_EQ(*injected->rows[0][0], "0");
  auto limited = exec(*db, "SELECT name FROM domains LIMIT $1 OFFSET $2", {int64_t{1}, int64_t{0}});
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->rows.size(), 1u);
  auto deleted = exec(*db, "DELETE FROM domains WHERE name = $1", {std::string("a.example")});
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->affected, 1);
  auto again = exec(*db, "DELETE FROM domains WHERE name = $1", {std::string("a.example")});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->affected, 0);
}

TEST(SqliteOpenTest, NamesTheFileItCannotOpen) {
  try {
    openSqlite("/nonexistent-dir/evosip.db", [](std::function<void()> fn) { fn(); });
    FAIL() << "opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/evosip.db"), std::string::npos);
  }
}

}  // namespace
}  // namespace evosip::api
