// libFuzzer target: role configuration (YAML text, then the typed reads the roles make). Every
// problem must come out as a ConfigError: another exception or a crash is a bug.
#include <cstdint>
#include <optional>
#include <string>

#include <evosip/config/config.hpp>

using evosip::config::ConfigError;
using evosip::config::Document;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    Document doc = Document::fromString(text);
    doc.setEnvironment([](const std::string&) { return std::optional<std::string>(); });
    auto attempt = [](auto&& read) {
      try {
        read();
      } catch (const ConfigError&) {
      }
    };
    attempt([&] { (void)doc.getString("sip.listen", ""); });
    attempt([&] { (void)doc.getInt("workers", 1, 1, 64); });
    attempt([&] { (void)doc.getBool("log.json", false); });
    attempt([&] { (void)doc.getDouble("edge.rate_limit.requests_per_second", 0, 0, 1e6); });
    attempt([&] { (void)doc.getList("edge.routers", {}); });
    attempt([&] { (void)doc.getList("media", {}); });
    attempt([&] {
      for (const auto& key : doc.childKeys("router.dialplan")) {
        (void)doc.getString("router.dialplan." + key + ".target", "");
      }
    });
    attempt([&] { (void)doc.has("control.listen"); });
    attempt([&] { doc.checkUnknownKeys(); });
  } catch (const ConfigError&) {
  }
  return 0;
}
