#include <array>
#include <chrono>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <evosip/base/hex.hpp>
#include <evosip/log/log.hpp>

namespace evosip::log {

namespace {

template <typename Out>
void put(Out& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

constexpr std::string_view levelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one.
size_t utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  size_t length = 0;
  unsigned char low = 0x80;  // bounds of the second byte (RFC 3629 section 4)
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) {
      low = 0xA0;
    } else if (lead == 0xED) {
      high = 0x9F;  // no UTF-16 surrogates
    }
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) {
      low = 0x90;
    } else if (lead == 0xF4) {
      high = 0x8F;  // nothing above U+10FFFF
    }
  } else {
    return 0;
  }
  if (i + length > s.size() || byte(i + 1) < low || byte(i + 1) > high) {
    return 0;
  }
  for (size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      return 0;
    }
  }
  return length;
}

template <typename Out>
void escapeJson(Out& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t length = utf8SequenceLength(s, i);
      if (length == 0) {
        put(out, "\\ufffd");
        ++i;
      } else {
        put(out, s.substr(i, length));
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"':
        put(out, "\\\"");
        break;
      case '\\':
        put(out, "\\\\");
        break;
      case '\n':
        put(out, "\\n");
        break;
      case '\r':
        put(out, "\\r");
        break;
      case '\t':
        put(out, "\\t");
        break;
      case '\b':
        put(out, "\\b");
        break;
      case '\f':
        put(out, "\\f");
        break;
      default:
        if (c < 0x20) {
          const char escaped[] = {'\\', 'u', '0', '0', hexDigit(c >> 4), hexDigit(c)};
          put(out, std::string_view(escaped, sizeof escaped));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

// Text lines keep printable bytes (UTF-8 included) and show control characters as escapes.
void escapeText(spdlog::memory_buf_t& out, std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      put(out, "\\n");
    } else if (c == '\r') {
      put(out, "\\r");
    } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
      const char escaped[] = {'\\', 'x', hexDigit(c >> 4), hexDigit(c)};
      put(out, std::string_view(escaped, sizeof escaped));
    } else {
      out.push_back(ch);
    }
  }
}

// "2026-11-27T14:00:00.123" in UTC. The calendar part is cached per second; a formatter is only
// used under its sink's lock, so the cache needs none.
class Timestamp {
 public:
  void append(spdlog::memory_buf_t& out, spdlog::log_clock::time_point time) {
    using namespace std::chrono;
    const auto since = time.time_since_epoch();
    const auto seconds = duration_cast<std::chrono::seconds>(since);
    if (seconds.count() != cachedSecond_ || cachedLength_ == 0) {
      const std::time_t t = static_cast<std::time_t>(seconds.count());
      std::tm tm{};
      gmtime_r(&t, &tm);
      cachedLength_ = std::strftime(cached_.data(), cached_.size(), "%Y-%m-%dT%H:%M:%S", &tm);
      cachedSecond_ = seconds.count();
    }
    put(out, std::string_view(cached_.data(), cachedLength_));
    auto millis = duration_cast<milliseconds>(since - seconds).count();
    if (millis < 0) {
      millis += 1000;  // times before 1970 are not worth more than a correct shape
    }
    fmt::format_to(std::back_inserter(out), ".{:03}", millis);
  }

 private:
  std::array<char, 32> cached_{};
  size_t cachedLength_ = 0;
  int64_t cachedSecond_ = 0;
};

class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    timestamp_.append(dest, msg.time);
    dest.push_back(' ');
    put(dest, levelName(msg.level));
    dest.push_back(' ');
    put(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    put(dest, ": ");
    escapeText(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }

 private:
  Timestamp timestamp_;
};

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    put(dest, "{\"ts\":\"");
    timestamp_.append(dest, msg.time);
    put(dest, "Z\",\"level\":\"");
    put(dest, levelName(msg.level));
    put(dest, "\",\"logger\":\"");
    escapeJson(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    put(dest, "\",\"msg\":\"");
    escapeJson(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    put(dest, "\"}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  Timestamp timestamp_;
};

struct Level {
  std::string_view name;
  spdlog::level::level_enum level;
};
constexpr std::array<Level, 8> kLevels{{{"trace", spdlog::level::trace},
                                        {"debug", spdlog::level::debug},
                                        {"info", spdlog::level::info},
                                        {"warn", spdlog::level::warn},
                                        {"warning", spdlog::level::warn},
                                        {"error", spdlog::level::err},
                                        {"critical", spdlog::level::critical},
                                        {"off", spdlog::level::off}}};

// The process-wide state: one sink, the loggers made so far, the level new ones get.
struct State {
  std::mutex mutex;
  std::shared_ptr<spdlog::sinks::stderr_sink_mt> sink;
  std::unordered_map<std::string, std::shared_ptr<spdlog::logger>> loggers;
  spdlog::level::level_enum level = spdlog::level::info;

  State() : sink(std::make_shared<spdlog::sinks::stderr_sink_mt>()) {
    sink->set_formatter(std::make_unique<TextFormatter>());
  }
};

State& state() {
  static State instance;
  return instance;
}

}  // namespace

void appendJsonEscaped(std::string& out, std::string_view s) {
  escapeJson(out, s);
}

std::unique_ptr<spdlog::formatter> makeFormatter(const std::string& format) {
  if (format == "text") {
    return std::make_unique<TextFormatter>();
  }
  if (format == "json") {
    return std::make_unique<JsonFormatter>();
  }
  throw std::invalid_argument("log.format: '" + format + "' is not a log format (text, json)");
}

void init(const Settings& settings) {
  const Level* found = nullptr;
  for (const Level& candidate : kLevels) {
    if (candidate.name == settings.level) {
      found = &candidate;
    }
  }
  if (found == nullptr) {
    throw std::invalid_argument("log.level: '" + settings.level +
                                "' is not a log level (trace, debug, info, warn, error, "
                                "critical, off)");
  }
  std::unique_ptr<spdlog::formatter> formatter = makeFormatter(settings.format);

  State& s = state();
  std::lock_guard lock(s.mutex);
  s.level = found->level;
  s.sink->set_formatter(std::move(formatter));
  for (auto& [name, logger] : s.loggers) {
    logger->set_level(s.level);
  }
}

std::shared_ptr<spdlog::logger> get(const std::string& subsystem) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  auto it = s.loggers.find(subsystem);
  if (it != s.loggers.end()) {
    return it->second;
  }
  auto logger = std::make_shared<spdlog::logger>(subsystem, s.sink);
  logger->set_level(s.level);
  s.loggers.emplace(subsystem, logger);
  return logger;
}

}  // namespace evosip::log
