#include <evosip/api/database.hpp>

namespace evosip::api {

const std::vector<std::vector<std::string>>& schemaMigrations() {
  static const std::vector<std::vector<std::string>> kMigrations = {
      // 1: domains and subscribers; a subscriber keeps only HA1 values, never a password.
      {
          "CREATE TABLE domains ("
          " name TEXT PRIMARY KEY,"
          " created_at TEXT NOT NULL)",
          "CREATE TABLE subscribers ("
          " domain TEXT NOT NULL REFERENCES domains (name),"
          " username TEXT NOT NULL,"
          " ha1_md5 TEXT NOT NULL,"
          " ha1_sha256 TEXT NOT NULL,"
          " created_at TEXT NOT NULL,"
          " updated_at TEXT NOT NULL,"
          " PRIMARY KEY (domain, username))",
      },
  };
  return kMigrations;
}

tl::expected<std::optional<std::string>, std::string> sqlitePathFromUrl(std::string_view url) {
  constexpr std::string_view kScheme = "sqlite://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return std::optional<std::string>();
  }
  std::string path(url.substr(kScheme.size()));
  if (path.empty()) {
    return tl::unexpected(
        std::string("sqlite:// needs a file path, e.g. sqlite:///data/evosip.db"));
  }
  return std::optional<std::string>(std::move(path));
}

bool isPostgresUrl(std::string_view url) {
  return url.substr(0, 13) == "postgresql://" || url.substr(0, 11) == "postgres://";
}

std::string redactDatabaseUrl(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return std::string(url);
  }
  const size_t start = scheme + 3;
  const size_t at = url.find('@', start);
  const size_t slash = url.find('/', start);
  if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at)) {
    return std::string(url);
  }
  const std::string_view userinfo = url.substr(start, at - start);
  const size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos) {
    return std::string(url);
  }
  return std::string(url.substr(0, start)) + std::string(userinfo.substr(0, colon)) + ":***" +
         std::string(url.substr(at));
}

}  // namespace evosip::api
