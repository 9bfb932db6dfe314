#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/config/config.hpp>

namespace evosip::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kEdgeYaml = R"(sip:
  listen: ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
  advertise: ""
control: { listen: "127.0.0.1:8060", token: "" }
workers: 2
log: { level: info, format: text }
edge:
  routers: ["sip:127.0.0.1:5070"]
  router_timeout_ms: 500
  rate_limit: { requests_per_second: 0 }
)";

// A document whose environment is the given map, not the process's.
Document withEnv(const std::string& yaml, std::map<std::string, std::string> env) {
  Document doc = Document::fromString(yaml);
  doc.setEnvironment([env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) {
      return std::nullopt;
    }
    return it->second;
  });
  return doc;
}

// The message of the ConfigError that f throws; fails the test when it throws nothing.
template <typename F>
std::string errorOf(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "";
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/evosip_config_testXXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigTest, ReadsEveryKindOfValueFromYaml) {
  Document doc = withEnv(kEdgeYaml, {});
  EXPECT_THAT(doc.getList("sip.listen", {}),
              ElementsAre("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"));
  EXPECT_EQ(doc.getString("sip.advertise", "default"), "");
  EXPECT_EQ(doc.getString("control.listen", ""), "127.0.0.1:8060");
  EXPECT_EQ(doc.getInt("workers", 1, 1, 256), 2);
  EXPECT_EQ(doc.getString("log.level", "x"), "info");
  EXPECT_THAT(doc.getList("edge.routers", {}), ElementsAre("sip:127.0.0.1:5070"));
  EXPECT_EQ(doc.getInt("edge.router_timeout_ms", 1, 1, 60000), 500);
  EXPECT_EQ(doc.getInt("edge.rate_limit.requests_per_second", 7, 0, 1000000), 0);
}

TEST(ConfigTest, MissingKeysGiveTheDefault) {
  Document doc = withEnv("edge: {}\nnothing:\n", {});
  EXPECT_EQ(doc.getString("sip.advertise", "fallback"), "fallback");
  EXPECT_EQ(doc.getInt("edge.router_timeout_ms", 500, 1, 60000), 500);
  EXPECT_TRUE(doc.getBool("edge.enabled", true));
  EXPECT_DOUBLE_EQ(doc.getDouble("edge.ratio", 0.5, 0, 1), 0.5);
  EXPECT_THAT(doc.getList("edge.routers", {"a", "b"}), ElementsAre("a", "b"));
  // A key present but empty (YAML null) means "use the default" too.
  EXPECT_EQ(doc.getString("nothing", "fallback"), "fallback");
}

TEST(ConfigTest, EmptyFileNameGivesAnEmptyDocument) {
  Document doc = Document::loadFile("");
  doc.setEnvironment([](const std::string&) { return std::nullopt; });
  EXPECT_EQ(doc.getInt("workers", 3, 1, 8), 3);
  EXPECT_NO_THROW(doc.checkUnknownKeys());
}

TEST(ConfigTest, EnvironmentOverridesYaml) {
  Document doc = withEnv(kEdgeYaml, {{"EVOSIP_EDGE_ROUTER_TIMEOUT_MS", "750"},
                                     {"EVOSIP_SIP_ADVERTISE", "203.0.113.7"},
                                     {"EVOSIP_LOG_FORMAT", "json"}});
  EXPECT_EQ(doc.getInt("edge.router_timeout_ms", 1, 1, 60000), 750);
  EXPECT_EQ(doc.getString("sip.advertise", ""), "203.0.113.7");
  EXPECT_EQ(doc.getString("log.format", "text"), "json");
}

TEST(ConfigTest, EnvironmentProvidesKeysAbsentFromYaml) {
  Document doc = withEnv("", {{"EVOSIP_EDGE_RATE_LIMIT_REQUESTS_PER_SECOND", "100"},
                              {"EVOSIP_CONTROL_TOKEN", "s3cret"}});
  EXPECT_EQ(doc.getInt("edge.rate_limit.requests_per_second", 0, 0, 1000000), 100);
  EXPECT_EQ(doc.getString("control.token", ""), "s3cret");
  EXPECT_TRUE(doc.has("control.token"));
  EXPECT_FALSE(doc.has("control.listen"));
}

TEST(ConfigTest, EnvNameUpperCasesAndReplacesDots) {
  EXPECT_EQ(Document::envName("edge.rate_limit.requests_per_second"),
            "EVOSIP_EDGE_RATE_LIMIT_REQUESTS_PER_SECOND");
  EXPECT_EQ(Document::envName("sip.listen"), "EVOSIP_SIP_LISTEN");
}

TEST(ConfigTest, DefaultEnvironmentIsTheProcessEnvironment) {
  ::setenv("EVOSIP_CONFIGTEST_PROCESS_ENV", "42", 1);
  Document doc = Document::fromString("");
  EXPECT_EQ(doc.getInt("configtest.process_env", 0, 0, 100), 42);
  ::unsetenv("EVOSIP_CONFIGTEST_PROCESS_ENV");
}

TEST(ConfigTest, ListsFromEnvironmentAreCommaSeparatedAndTrimmed) {
  Document doc = withEnv(kEdgeYaml, {{"EVOSIP_EDGE_ROUTERS", " sip:10.0.0.5:5060 ,sip:10.0.0.6, "},
                                     {"EVOSIP_SIP_LISTEN", ""}});
  EXPECT_THAT(doc.getList("edge.routers", {}), ElementsAre("sip:10.0.0.5:5060", "sip:10.0.0.6"));
  EXPECT_THAT(doc.getList("sip.listen", {"x"}), IsEmpty());
}

TEST(ConfigTest, YamlScalarIsAOneElementList) {
  Document doc = withEnv("edge:\n  routers: sip:10.0.0.5:5060\n  none: \"\"\n  empty: []\n", {});
  EXPECT_THAT(doc.getList("edge.routers", {}), ElementsAre("sip:10.0.0.5:5060"));
  EXPECT_THAT(doc.getList("edge.none", {"x"}), IsEmpty());
  EXPECT_THAT(doc.getList("edge.empty", {"x"}), IsEmpty());
}

TEST(ConfigTest, ListOfMapsIsRejectedNamingTheItem) {
  Document doc = withEnv("edge:\n  routers:\n    - sip:a\n    - {host: b}\n", {});
  EXPECT_EQ(errorOf([&] { doc.getList("edge.routers", {}); }),
            "edge.routers: item 2 is not a single value (from <inline configuration> line 4)");
}

TEST(ConfigTest, BooleansAcceptTheUsualWords) {
  const std::pair<const char*, bool> cases[] = {{"true", true}, {"false", false}, {"yes", true},
                                                {"no", false},  {"1", true},      {"0", false},
                                                {"True", true}, {"NO", false}};
  for (const auto& [text, expected] : cases) {
    Document doc = withEnv(std::string("flag: ") + text, {});
    EXPECT_EQ(doc.getBool("flag", !expected), expected) << text;
  }
  Document env = withEnv("flag: false", {{"EVOSIP_FLAG", "yes"}});
  EXPECT_TRUE(env.getBool("flag", false));
}

TEST(ConfigTest, DoublesParseAndAreRangeChecked) {
  Document doc = withEnv("ratio: 0.25\nbig: 1e3\n", {});
  EXPECT_DOUBLE_EQ(doc.getDouble("ratio", 0, 0, 1), 0.25);
  EXPECT_DOUBLE_EQ(doc.getDouble("big", 0, 0, 1e6), 1000.0);
  EXPECT_THAT(errorOf([&] { doc.getDouble("big", 0, 0, 1); }),
              HasSubstr("big: '1e3' is out of range"));
  Document bad = withEnv("ratio: half\n", {});
  EXPECT_EQ(errorOf([&] { bad.getDouble("ratio", 0, 0, 1); }),
            "ratio: 'half' is not a number (from <inline configuration> line 1)");
  Document nan = withEnv("", {{"EVOSIP_RATIO", "nan"}});
  EXPECT_THAT(errorOf([&] { nan.getDouble("ratio", 0, 0, 1); }), HasSubstr("is not a number"));
}

TEST(ConfigTest, BadIntegerFromEnvironmentNamesKeyValueAndVariable) {
  Document doc = withEnv(kEdgeYaml, {{"EVOSIP_EDGE_ROUTER_TIMEOUT_MS", "abc"}});
  EXPECT_EQ(errorOf([&] { doc.getInt("edge.router_timeout_ms", 500, 1, 60000); }),
            "edge.router_timeout_ms: 'abc' is not an integer (from EVOSIP_EDGE_ROUTER_TIMEOUT_MS)");
}

TEST(ConfigTest, BadIntegerFromFileNamesFileAndLine) {
  TempFile file("workers: 2\nedge:\n  router_timeout_ms: 12ms\n");
  Document doc = Document::loadFile(file.path());
  doc.setEnvironment([](const std::string&) { return std::nullopt; });
  EXPECT_EQ(errorOf([&] { doc.getInt("edge.router_timeout_ms", 500, 1, 60000); }),
            "edge.router_timeout_ms: '12ms' is not an integer (from " + file.path() + " line 3)");
}

TEST(ConfigTest, IntegersOutOfRangeAreRejected) {
  Document doc = withEnv("workers: 0\nhuge: 99999999999999999999999\nneg: -5\nplus: +7\n", {});
  EXPECT_EQ(errorOf([&] { doc.getInt("workers", 1, 1, 256); }),
            "workers: '0' is out of range (allowed 1..256) (from <inline configuration> line 1)");
  EXPECT_THAT(errorOf([&] { doc.getInt("huge", 1, 1, 256); }), HasSubstr("is out of range"));
  EXPECT_EQ(doc.getInt("neg", 0, -10, 10), -5);
  EXPECT_EQ(doc.getInt("plus", 0, -10, 10), 7);
  Document env = withEnv("", {{"EVOSIP_WORKERS", "1000"}});
  EXPECT_EQ(errorOf([&] { env.getInt("workers", 1, 1, 256); }),
            "workers: '1000' is out of range (allowed 1..256) (from EVOSIP_WORKERS)");
}

TEST(ConfigTest, BadBooleanIsRejected) {
  Document doc = withEnv("", {{"EVOSIP_EDGE_ENABLED", "maybe"}});
  EXPECT_THAT(errorOf([&] { doc.getBool("edge.enabled", false); }),
              HasSubstr("edge.enabled: 'maybe' is not a boolean"));
}

TEST(ConfigTest, ScalarExpectedButListOrMapFound) {
  Document doc = withEnv(kEdgeYaml, {});
  EXPECT_EQ(errorOf([&] { doc.getString("edge.routers", ""); }),
            "edge.routers: expected a single value, found a list (from <inline configuration> "
            "line 8)");
  EXPECT_THAT(errorOf([&] { doc.getInt("edge.rate_limit", 0, 0, 1); }),
              HasSubstr("edge.rate_limit: expected a single value, found a map"));
  EXPECT_THAT(errorOf([&] { doc.getList("control", {}); }),
              HasSubstr("control: expected a list, found a map"));
}

TEST(ConfigTest, UnknownKeyIsReportedWithItsLine) {
  Document doc = withEnv("edge:\n  router_timeout_ms: 500\n  rooters: [\"sip:a\"]\n", {});
  doc.getInt("edge.router_timeout_ms", 500, 1, 60000);
  doc.getList("edge.routers", {});
  EXPECT_EQ(errorOf([&] { doc.checkUnknownKeys(); }),
            "unknown configuration key 'edge.rooters' (<inline configuration> line 3)");
}

TEST(ConfigTest, UnknownMapKeyIsReported) {
  Document doc = withEnv("edge:\n  router_timeout_ms: 500\nedgy:\n  x: 1\n", {});
  doc.getInt("edge.router_timeout_ms", 500, 1, 60000);
  EXPECT_THAT(errorOf([&] { doc.checkUnknownKeys(); }),
              HasSubstr("unknown configuration key 'edgy'"));
}

TEST(ConfigTest, EveryKeyReadMeansNoUnknownKey) {
  Document doc = withEnv(kEdgeYaml, {});
  doc.getList("sip.listen", {});
  doc.getString("sip.advertise", "");
  doc.getString("control.listen", "");
  doc.getString("control.token", "");
  doc.getInt("workers", 1, 1, 256);
  doc.getString("log.level", "");
  doc.getString("log.format", "");
  doc.getList("edge.routers", {});
  doc.getInt("edge.router_timeout_ms", 1, 1, 60000);
  EXPECT_THAT(errorOf([&] { doc.checkUnknownKeys(); }),
              HasSubstr("unknown configuration key 'edge.rate_limit'"));
  doc.getInt("edge.rate_limit.requests_per_second", 0, 0, 1000000);
  EXPECT_NO_THROW(doc.checkUnknownKeys());
}

TEST(ConfigTest, HasAloneDoesNotAcceptTheChildrenOfAMap) {
  Document doc = withEnv("edge:\n  typo: 1\n", {});
  EXPECT_TRUE(doc.has("edge"));
  EXPECT_THAT(errorOf([&] { doc.checkUnknownKeys(); }),
              HasSubstr("unknown configuration key 'edge.typo'"));
}

TEST(ConfigTest, ChildKeysListsAMapAndMarksItsKeysKnown) {
  Document doc = withEnv(
      "dialplan:\n  \"1000\": sip:alice\n  \"2000\":\n    target: sip:bob\n"
      "    tpyo: 1\n",
      {});
  EXPECT_THAT(doc.childKeys("dialplan"), ElementsAre("1000", "2000"));
  EXPECT_THAT(doc.childKeys("missing"), IsEmpty());
  doc.getString("dialplan.2000.target", "");
  // Children of an enumerated map are known; their own unread children are not.
  EXPECT_THAT(errorOf([&] { doc.checkUnknownKeys(); }),
              HasSubstr("unknown configuration key 'dialplan.2000.tpyo'"));
  EXPECT_THAT(errorOf([&] { doc.childKeys("dialplan.1000"); }),
              HasSubstr("dialplan.1000: expected a map"));
}

TEST(ConfigTest, MissingFileIsNamed) {
  EXPECT_EQ(errorOf([] { Document::loadFile("/nonexistent/evosip.yaml"); }),
            "cannot read configuration file '/nonexistent/evosip.yaml': No such file or directory");
}

TEST(ConfigTest, UnparsableFileIsNamedWithItsLine) {
  TempFile file("edge:\n  routers: [\"sip:a\"\n  router_timeout_ms: 5\n");
  std::string message = errorOf([&] { Document::loadFile(file.path()); });
  EXPECT_THAT(message, HasSubstr("configuration file '" + file.path() + "' line "));
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(ConfigTest, TopLevelMustBeAMap) {
  EXPECT_THAT(errorOf([] { Document::fromString("- a\n- b\n"); }),
              HasSubstr("the top level must be a map"));
}

TEST(ConfigTest, DuplicateKeyIsRejected) {
  EXPECT_EQ(errorOf([] { Document::fromString("edge:\n  a: 1\n  a: 2\n"); }),
            "duplicate configuration key 'edge.a' (<inline configuration> line 3)");
}

// Found by config_fuzzer: an alias inside its own anchor made an endless tree, and walking it
// crashed the role at start-up. Aliases that expand exponentially would hang it.
TEST(ConfigTest, EndlessOrHugeAliasTreesAreRejected) {
  EXPECT_EQ(errorOf([] {
              Document::fromString("edge: &x\n  routers: [*x]\n");
            }).rfind("configuration nested more than 64 levels under 'edge.routers", 0),
            0u);
  std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) {
      laughs += (k ? ", *a" : "*a") + std::to_string(i - 1);
    }
    laughs += "]\n";
  }
  EXPECT_EQ(errorOf([&] {
              Document::fromString(laughs);
            }).rfind("configuration has more than 100000 values", 0),
            0u);
  // Ordinary aliases still work.
  auto doc = Document::fromString("base: &b [sip:10.0.0.1]\nedge:\n  routers: *b\n");
  doc.setEnvironment([](const std::string&) { return std::optional<std::string>(); });
  EXPECT_EQ(doc.getList("edge.routers", {}), std::vector<std::string>{"sip:10.0.0.1"});
}

TEST(ConfigTest, ReadSecretReadsFileReferencesAndPassesValues) {
  EXPECT_EQ(readSecret("plain-token"), "plain-token");
  EXPECT_EQ(readSecret(""), "");
  TempFile file("  s3cret-token\n\n");
  EXPECT_EQ(readSecret("file:" + file.path()), "s3cret-token");
  EXPECT_EQ(errorOf([] { readSecret("file:/nonexistent/token"); }),
            "cannot read secret file '/nonexistent/token': No such file or directory");
}

}  // namespace
}  // namespace evosip::config
