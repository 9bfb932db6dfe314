#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/api/api_handler.hpp>
#include <evosip/api/validation.hpp>
#include <evosip/auth/digest.hpp>

namespace evosip::api {
namespace {

namespace json = boost::json;
using control::HttpRequest;
using control::HttpResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kToken = "public-token-0123456789";
constexpr const char* kInternal = "internal-token-0123456789";

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The handler over a real SQLite file; statements run inline, so every request is answered
// before handle() returns.
class ApiHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("evosip-api-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = openSqlite((dir_ / "evosip.db").string(), [](std::function<void()> fn) { fn(); });
    db_->migrate();
    store_ = std::make_unique<ProvisioningStore>(*db_, metrics_);
    handler_ = std::make_unique<ApiHandler>(
        ApiHandlerSettings{kToken, kInternal}, *store_, metrics_,
        [this](const std::string& d, const std::string& u) { changes_.push_back(u + "@" + d); });
  }
  void TearDown() override {
    handler_.reset();
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = kToken) {
    HttpRequest req;
    req.method = method;
    req.target = target;
    req.path = target.substr(0, target.find('?'));
    req.body = body;
    if (!token.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token);
    }
    std::optional<HttpResponse> out;
    handler_->handle(req, [&](HttpResponse r) { out = std::move(r); });
    EXPECT_TRUE(out) << method << " " << target << " was not answered";
    return out.value_or(HttpResponse{});
  }
  static json::value body(const HttpResponse& r) { return json::parse(r.body); }
  static std::string field(const HttpResponse& r) {
    const json::value b = body(r);  // the pointer below must not outlive it
    const auto* f = b.as_object().if_contains("field");
    return f != nullptr ? std::string(f->as_string()) : "";
  }
  void createDomain(const std::string& name) {
    ASSERT_EQ(call("POST", "/v1/domains", R"({"name":")" + name + R"("})").status, 201u);
  }
  HttpResponse createSubscriber(const std::string& domain, const std::string& user,
                                const std::string& password) {
    json::object o{{"domain", domain}, {"username", user}, {"password", password}};
    return call("POST", "/v1/subscribers", json::serialize(o));
  }

  std::filesystem::path dir_;
  metrics::Registry metrics_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<ProvisioningStore> store_;
  std::unique_ptr<ApiHandler> handler_;
  std::vector<std::string> changes_;
};

TEST_F(ApiHandlerTest, DomainLifecycle) {
  auto created = call("POST", "/v1/domains", R"({"name":"Example.COM"})");
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_EQ(body(created).at("name"), "example.com");
  EXPECT_EQ(created.header("location"), "/v1/domains/example.com");
  EXPECT_EQ(created.header("content-type"), "application/json");

  auto duplicate = call("POST", "/v1/domains", R"({"name":"example.com"})");
  EXPECT_EQ(duplicate.status, 409u);
  EXPECT_EQ(field(duplicate), "name");

  EXPECT_EQ(call("GET", "/v1/domains/EXAMPLE.com").status, 200u);
  auto list = call("GET", "/v1/domains");
  ASSERT_EQ(list.status, 200u);
  EXPECT_EQ(body(list).at("total"), 1);
  EXPECT_EQ(body(list).at("items").as_array()[0].at("name"), "example.com");

  ASSERT_EQ(createSubscriber("example.com", "alice", "secret1").status, 201u);
  auto busy = call("DELETE", "/v1/domains/example.com");
  EXPECT_EQ(busy.status, 409u) << busy.body;
  EXPECT_EQ(call("DELETE", "/v1/subscribers/example.com/alice").status, 204u);
  EXPECT_EQ(call("DELETE", "/v1/domains/example.com").status, 204u);
  EXPECT_EQ(call("DELETE", "/v1/domains/example.com").status, 404u);
  EXPECT_EQ(call("GET", "/v1/domains/example.com").status, 404u);
}

TEST_F(ApiHandlerTest, ValidationErrorsAre400NamingTheField) {
  createDomain("example.com");
  struct Case {
    std::string body;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"domain":"example.com","username":"a b","password":"secret1"})", "username"},
           {R"({"domain":"example.com","username":"bob","password":"short"})", "password"},
           {R"({"domain":"exa mple.com","username":"bob","password":"secret1"})", "domain"},
           {R"({"domain":"example.com","password":"secret1"})", "username"},
           {R"({"domain":"example.com","username":7,"password":"secret1"})", "username"},
           {R"({"domain":"example.com","username":"bob","password":"secret1","admin":true})",
            "admin"},
       }) {
    auto r = call("POST", "/v1/subscribers", c.body);
    EXPECT_EQ(r.status, 400u) << c.body;
    EXPECT_EQ(field(r), c.field) << c.body << " -> " << r.body;
    EXPECT_THAT(std::string(body(r).at("error").as_string()), HasSubstr(c.field));
  }
  auto badName = call("POST", "/v1/domains", R"({"name":"-bad-"})");
  EXPECT_EQ(badName.status, 400u);
  EXPECT_EQ(field(badName), "name");
  EXPECT_EQ(field(call("GET", "/v1/subscribers?per_page=5000")), "per_page");
  EXPECT_EQ(field(call("GET", "/v1/subscribers?page=0")), "page");
  EXPECT_TRUE(changes_.empty());
}

TEST_F(ApiHandlerTest, BadJsonIs400) {
  for (const char* bad : {"", "{", "[1,2]", "\"text\"", "{\"name\":\"a\",}"}) {
    auto r = call("POST", "/v1/domains", bad);
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_TRUE(body(r).as_object().contains("error")) << r.body;
  }
}

TEST_F(ApiHandlerTest, RoutingAnswers404And405) {
  EXPECT_EQ(call("GET", "/v2/domains").status, 404u);
  EXPECT_EQ(call("GET", "/v1/domains/a/b").status, 404u);
  EXPECT_EQ(call("GET", "/v1/subscribers/example.com").status, 404u);
  EXPECT_EQ(call("GET", "/v1/subscribers/example.com/").status, 404u);
  EXPECT_EQ(call("GET", "/").status, 404u);
  auto wrong = call("PUT", "/v1/domains");
  EXPECT_EQ(wrong.status, 405u);
  EXPECT_EQ(wrong.header("allow"), "GET, POST");
  EXPECT_EQ(call("POST", "/v1/subscribers/example.com/alice").header("allow"),
            "GET, PATCH, DELETE");
  EXPECT_EQ(call("PATCH", "/v1/domains/example.com").status, 405u);
  EXPECT_EQ(call("POST", "/openapi.json").status, 405u);
  EXPECT_EQ(call("GET", "/v1/subscribers/example.com/nobody").status, 404u);
  EXPECT_EQ(call("PATCH", "/v1/subscribers/example.com/nobody", R"({"password":"secret1"})").status,
            404u);
  EXPECT_EQ(call("DELETE", "/v1/subscribers/example.com/nobody").status, 404u);
}

TEST_F(ApiHandlerTest, UnknownDomainIs404AndDuplicateSubscriberIs409) {
  auto noDomain = createSubscriber("nowhere.example", "alice", "secret1");
  EXPECT_EQ(noDomain.status, 404u);
  EXPECT_EQ(field(noDomain), "domain");
  EXPECT_EQ(call("GET", "/v1/subscribers?domain=nowhere.example").status, 404u);
  createDomain("example.com");
  ASSERT_EQ(createSubscriber("example.com", "alice", "secret1").status, 201u);
  auto duplicate = createSubscriber("example.com", "alice", "other-secret");
  EXPECT_EQ(duplicate.status, 409u);
  EXPECT_EQ(field(duplicate), "username");
}

TEST_F(ApiHandlerTest, WithoutAnInternalTokenTheCredentialsAreNeverServed) {
  createDomain("example.com");
  ASSERT_EQ(createSubscriber("example.com", "alice", "secret1").status, 201u);
  // Neither an open api nor the public token opens the credentials endpoint.
  for (const std::string& token : {std::string(""), std::string(kToken)}) {
    handler_ = std::make_unique<ApiHandler>(ApiHandlerSettings{token, ""}, *store_, metrics_,
                                            [](const std::string&, const std::string&) {});
    for (const std::string& sent : {std::string(""), std::string(kToken), std::string("x")}) {
      auto res = call("GET", "/internal/v1/credentials/example.com/alice", "", sent);
      EXPECT_EQ(res.status, 403u) << "api token '" << token << "', sent '" << sent << "'";
      EXPECT_THAT(res.body, Not(HasSubstr("ha1")));
    }
  }
}

TEST_F(ApiHandlerTest, TokensGuardThePublicAndInternalApis) {
  createDomain("example.com");
  ASSERT_EQ(createSubscriber("example.com", "alice", "secret1").status, 201u);
  auto none = call("GET", "/v1/domains", "", "");
  EXPECT_EQ(none.status, 401u);
  EXPECT_EQ(none.header("www-authenticate"), "Bearer realm=\"evosip\"");
  EXPECT_EQ(call("GET", "/v1/domains", "", "wrong").status, 401u);
  EXPECT_EQ(call("POST", "/v1/domains", R"({"name":"b.example"})", "").status, 401u);
  // The internal endpoint takes only the internal token.
  EXPECT_EQ(call("GET", "/internal/v1/credentials/example.com/alice", "", kToken).status, 401u);
  EXPECT_EQ(call("GET", "/internal/v1/credentials/example.com/alice", "", "").status, 401u);
  EXPECT_EQ(call("GET", "/internal/v1/credentials/example.com/alice", "", kInternal).status, 200u);
  EXPECT_EQ(call("GET", "/v1/domains", "", kInternal).status, 401u);
  // The document describing the API is public.
  EXPECT_EQ(call("GET", "/openapi.json", "", "").status, 200u);
}

TEST_F(ApiHandlerTest, StoresOnlyHa1ValuesAndNeverReturnsThePassword) {
  const std::string password = "Unl1kely-Passw0rd-Marker";
  createDomain("example.com");
  auto created = createSubscriber("example.com", "alice", password);
  ASSERT_EQ(created.status, 201u);
  EXPECT_EQ(created.body.find(password), std::string::npos);
  EXPECT_EQ(created.body.find("ha1"), std::string::npos);
  auto got = call("GET", "/v1/subscribers/example.com/alice");
  EXPECT_EQ(got.body.find(password), std::string::npos);
  EXPECT_EQ(got.body.find("ha1"), std::string::npos);

  auto credentials = call("GET", "/internal/v1/credentials/example.com/alice", "", kInternal);
  ASSERT_EQ(credentials.status, 200u);
  const std::string md5 =
      auth::computeHa1(auth::DigestAlgorithm::kMd5, "alice", "example.com", password);
  const std::string sha256 =
      auth::computeHa1(auth::DigestAlgorithm::kSha256, "alice", "example.com", password);
  EXPECT_EQ(body(credentials),
            json::parse(R"({"ha1_md5":")" + md5 + R"(","ha1_sha256":")" + sha256 + R"("})"));
  EXPECT_EQ(credentials.header("cache-control"), "no-store");

  // The database holds the HA1 values and nowhere the password (file and WAL journal).
  db_.reset();
  handler_.reset();
  store_.reset();
  std::string bytes;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    bytes += readFile(entry.path());
  }
  EXPECT_NE(bytes.find(md5), std::string::npos);
  EXPECT_NE(bytes.find(sha256), std::string::npos);
  EXPECT_EQ(bytes.find(password), std::string::npos);
  EXPECT_EQ(bytes.find("Unl1kely"), std::string::npos);
}

TEST_F(ApiHandlerTest, PasswordChangeReplacesTheHa1AndReportsTheChange) {
  createDomain("example.com");
  ASSERT_EQ(createSubscriber("example.com", "alice", "first-secret").status, 201u);
  changes_.clear();
  auto before = body(call("GET", "/internal/v1/credentials/example.com/alice", "", kInternal));
  auto patched =
      call("PATCH", "/v1/subscribers/example.com/alice", R"({"password":"second-secret"})");
  ASSERT_EQ(patched.status, 200u) << patched.body;
  EXPECT_EQ(body(patched).at("username"), "alice");
  auto after = body(call("GET", "/internal/v1/credentials/example.com/alice", "", kInternal));
  EXPECT_NE(before.at("ha1_md5"), after.at("ha1_md5"));
  EXPECT_EQ(after.at("ha1_md5").as_string(),
            auth::computeHa1(auth::DigestAlgorithm::kMd5, "alice", "example.com", "second-secret"));
  EXPECT_EQ(changes_, std::vector<std::string>{"alice@example.com"});

  EXPECT_EQ(field(call("PATCH", "/v1/subscribers/example.com/alice", R"({"username":"eve"})")),
            "username");
  EXPECT_EQ(field(call("PATCH", "/v1/subscribers/example.com/alice", "{}")), "password");
  EXPECT_EQ(changes_.size(), 1u);

  ASSERT_EQ(call("DELETE", "/v1/subscribers/example.com/alice").status, 204u);
  EXPECT_EQ(changes_.back(), "alice@example.com");
  EXPECT_EQ(call("GET", "/internal/v1/credentials/example.com/alice", "", kInternal).status, 404u);
}

TEST_F(ApiHandlerTest, PagesOverSubscribersInOrder) {
  createDomain("a.example");
  createDomain("b.example");
  for (int i = 0; i < 120; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "user%03d", i);
    ASSERT_EQ(createSubscriber(i % 3 == 0 ? "b.example" : "a.example", name, "secret1").status,
              201u);
  }
  std::vector<std::string> seen;
  for (int page = 1; page <= 5; ++page) {
    auto r = call("GET", "/v1/subscribers?page=" + std::to_string(page) + "&per_page=25");
    ASSERT_EQ(r.status, 200u);
    auto doc = body(r);
    EXPECT_EQ(doc.at("total"), 120);
    EXPECT_EQ(doc.at("page"), page);
    EXPECT_EQ(doc.at("per_page"), 25);
    const auto& items = doc.at("items").as_array();
    EXPECT_EQ(items.size(), page < 5 ? 25u : 20u);
    for (const auto& item : items) {
      seen.push_back(std::string(item.at("domain").as_string()) + "/" +
                     std::string(item.at("username").as_string()));
    }
  }
  ASSERT_EQ(seen.size(), 120u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 120u);
  EXPECT_EQ(body(call("GET", "/v1/subscribers?page=6&per_page=25")).at("items").as_array().size(),
            0u);

  auto b = body(call("GET", "/v1/subscribers?domain=B.example&per_page=1000"));
  EXPECT_EQ(b.at("total"), 40);
  EXPECT_EQ(b.at("items").as_array().size(), 40u);
  EXPECT_EQ(body(call("GET", "/v1/subscribers")).at("items").as_array().size(),
            static_cast<size_t>(kDefaultPerPage));
}

TEST_F(ApiHandlerTest, PercentEncodedPathsAreDecoded) {
  createDomain("example.com");
  ASSERT_EQ(createSubscriber("example.com", "a;b", "secret1").status, 201u);
  EXPECT_EQ(call("GET", "/v1/subscribers/example.com/a%3Bb").status, 200u);
}

TEST_F(ApiHandlerTest, CountsRequestsByRouteMethodAndStatus) {
  call("GET", "/v1/domains");
  call("GET", "/v1/domains", "", "");
  call("GET", "/nowhere");
  const std::string text = metrics_.render();
  EXPECT_THAT(
      text,
      HasSubstr(R"(evosip_api_requests_total{method="GET",route="/v1/domains",status="200"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(evosip_api_requests_total{method="GET",route="/v1/domains",status="401"} 1)"));
  EXPECT_THAT(text,
              HasSubstr(R"(evosip_api_requests_total{method="GET",route="other",status="404"} 1)"));
  EXPECT_THAT(text, HasSubstr("evosip_api_db_latency_seconds_count{operation=\"list_domains\"} 1"));
}

TEST_F(ApiHandlerTest, ServesTheOpenApiDocumentFromDocs) {
  auto r = call("GET", "/openapi.json", "", "");
  ASSERT_EQ(r.status, 200u);
  const std::string file = readFile(std::filesystem::path(EVOSIP_TEST_DATA_DIR) / ".." / ".." /
                                    "docs" / "api" / "openapi.json");
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(r.body, file);
  auto doc = body(r);
  EXPECT_EQ(doc.at("openapi"), "3.0.3");
  // Every route the handler serves is described.
  for (const char* path :
       {"/openapi.json", "/v1/domains", "/v1/domains/{name}", "/v1/subscribers",
        "/v1/subscribers/{domain}/{username}", "/internal/v1/credentials/{domain}/{username}"}) {
    EXPECT_TRUE(doc.at("paths").as_object().contains(path)) << path;
  }
}

}  // namespace
}  // namespace evosip::api
