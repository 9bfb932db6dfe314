#pragma once
// Logging: one spdlog logger per subsystem ("edge", "control", ...), all writing to one stderr
// sink. log.format "text" gives "2026-11-27T14:00:00.123 info edge: message" (UTC); "json" gives
// one object per line:
// {"ts":"2026-11-27T14:00:00.123Z","level":"info","logger":"edge","msg":"..."}. Control characters
// are escaped in both formats, so a message read off the wire cannot forge a line; in JSON, invalid
// UTF-8 becomes U+FFFD so every line stays valid JSON.

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

namespace evosip::log {

struct Settings {
  std::string level = "info";   // trace | debug | info | warn | error | critical | off
  std::string format = "text";  // text | json
};

// Applies settings to every logger, existing and future. Throws std::invalid_argument naming
// log.level or log.format for an unknown value. Loggers used before init() log text at info.
void init(const Settings& settings);

// The logger of a subsystem, created on first use. Thread-safe.
std::shared_ptr<spdlog::logger> get(const std::string& subsystem);

// The formatter init() installs for format ("text" or "json"); throws std::invalid_argument
// otherwise. For tests and for roles that add their own sink.
std::unique_ptr<spdlog::formatter> makeFormatter(const std::string& format);

// Appends s to out as the inside of a JSON string literal (no quotes added).
void appendJsonEscaped(std::string& out, std::string_view s);

}  // namespace evosip::log
