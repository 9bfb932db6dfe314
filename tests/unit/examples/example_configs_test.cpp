// Every role's example configuration (services/<role>/<role>.example.yaml) is read by that
// role's configuration reader: it parses, every value is valid and no key is unknown.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/api/api_service.hpp>
#include <evosip/app/app_service.hpp>
#include <evosip/controller/controller_service.hpp>
#include <evosip/edge/edge_service.hpp>
#include <evosip/media/media_service.hpp>
#include <evosip/router/router_service.hpp>

namespace evosip {
namespace {

namespace fs = std::filesystem;

const fs::path kServices = fs::path(EVOSIP_TEST_DATA_DIR) / ".." / ".." / "services";

class ExampleConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // ctest runs each case in its own process, several at once: the folder is unique to
    // this process, or one case's TearDown removes another's secrets.
    secrets_ = fs::temp_directory_path() /
               ("evosip-example-secrets-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(secrets_);
  }
  void TearDown() override { fs::remove_all(secrets_); }

  // The example of role, with its "file:/run/secrets/NAME" secrets pointing at files of a
  // temporary folder (each holds a secret long enough for every key).
  config::Document load(const std::string& role) {
    std::ifstream in(kServices / role / (role + ".example.yaml"));
    EXPECT_TRUE(in) << role << ".example.yaml is missing";
    std::stringstream text;
    text << in.rdbuf();
    std::string yaml = text.str();
    const std::string from = "file:/run/secrets/";
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at)) {
      const size_t end = yaml.find_first_of(" \n\"'", at + from.size());
      const std::string name = yaml.substr(at + from.size(), end - at - from.size());
      std::ofstream(secrets_ / name) << "an-example-secret-of-32-characters";
      const std::string replacement = "file:" + (secrets_ / name).string();
      yaml.replace(at, end - at, replacement);
      at += replacement.size();
    }
    auto doc = config::Document::fromString(yaml);
    doc.setEnvironment([](const std::string&) { return std::nullopt; });
    return doc;
  }

  template <typename Read>
  void expectReads(const std::string& role, Read read) {
    auto doc = load(role);
    try {
      read(doc);  // each reader ends with checkUnknownKeys()
    } catch (const std::exception& e) {
      ADD_FAILURE() << role << ".example.yaml: " << e.what();
    }
  }

  fs::path secrets_;
};

TEST_F(ExampleConfigTest, Edge) {
  expectReads("edge", edge::readEdgeConfig);
}

TEST_F(ExampleConfigTest, Router) {
  expectReads("router", router::readRouterConfig);
}

TEST_F(ExampleConfigTest, Media) {
  expectReads("media", media::readMediaConfig);
}

TEST_F(ExampleConfigTest, App) {
  expectReads("app", app::readAppConfig);
}

TEST_F(ExampleConfigTest, Api) {
  expectReads("api", api::readApiConfig);
}

TEST_F(ExampleConfigTest, Controller) {
  expectReads("controller", controller::readControllerConfig);
}

TEST_F(ExampleConfigTest, EveryRoleHasAnExample) {
  size_t examples = 0;
  for (const auto& dir : fs::directory_iterator(kServices)) {
    if (fs::exists(dir.path() / (dir.path().filename().string() + ".example.yaml"))) {
      ++examples;
    }
  }
  EXPECT_EQ(examples, 6u) << "a new role's example needs a test above";
}

}  // namespace
}  // namespace evosip
