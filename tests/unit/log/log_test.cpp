#include <chrono>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/log/log.hpp>

namespace evosip::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::string formatWith(const std::string& format, std::string_view logger, std::string_view text,
                       spdlog::level::level_enum level = spdlog::level::info) {
  auto formatter = makeFormatter(format);
  spdlog::details::log_msg msg(spdlog::string_view_t(logger.data(), logger.size()), level,
                               spdlog::string_view_t(text.data(), text.size()));
  // 2026-11-27T14:00:00.123Z
  msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1795788000123LL));
  spdlog::memory_buf_t out;
  formatter->format(msg, out);
  return std::string(out.data(), out.size());
}

std::string escaped(std::string_view s) {
  std::string out;
  appendJsonEscaped(out, s);
  return out;
}

TEST(LogFormatTest, TextLineHasTimeLevelLoggerAndMessage) {
  EXPECT_EQ(formatWith("text", "edge", "forwarded INVITE"),
            "2026-11-27T14:00:00.123 info edge: forwarded INVITE\n");
  EXPECT_EQ(formatWith("text", "edge", "x", spdlog::level::warn),
            "2026-11-27T14:00:00.123 warn edge: x\n");
}

TEST(LogFormatTest, TextEscapesControlCharactersSoALineCannotBeForged) {
  EXPECT_EQ(formatWith("text", "edge", "a\nFAKE 2026 error x\r\x01"),
            "2026-11-27T14:00:00.123 info edge: a\\nFAKE 2026 error x\\r\\x01\n");
}

TEST(LogFormatTest, JsonLineHasTheFourFields) {
  EXPECT_EQ(formatWith("json", "edge", "hello", spdlog::level::err),
            "{\"ts\":\"2026-11-27T14:00:00.123Z\",\"level\":\"error\",\"logger\":\"edge\","
            "\"msg\":\"hello\"}\n");
}

TEST(LogFormatTest, JsonEscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(formatWith("json", "edge", "say \"hi\"\\\n\t\x1f"),
            "{\"ts\":\"2026-11-27T14:00:00.123Z\",\"level\":\"info\",\"logger\":\"edge\","
            "\"msg\":\"say \\\"hi\\\"\\\\\\n\\t\\u001f\"}\n");
}

TEST(JsonEscapeTest, EscapesEveryControlCharacter) {
  EXPECT_EQ(escaped(std::string_view("\0", 1)), "\\u0000");
  EXPECT_EQ(escaped("\b\f\r"), "\\b\\f\\r");
  EXPECT_EQ(escaped("\x7f"), "\x7f");  // DEL is allowed in JSON strings
  for (int c = 0; c < 0x20; ++c) {
    std::string out = escaped(std::string(1, static_cast<char>(c)));
    EXPECT_EQ(out.front(), '\\') << c;
  }
}

TEST(JsonEscapeTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(escaped("Grüße €𝄞"), "Grüße €𝄞");
  EXPECT_EQ(escaped("a\xff"
                    "b"),
            "a\\ufffdb");
  EXPECT_EQ(escaped("\xc3"), "\\ufffd");                                   // truncated sequence
  EXPECT_EQ(escaped("\xc0\xaf"), "\\ufffd\\ufffd");                        // overlong '/'
  EXPECT_EQ(escaped("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");             // UTF-16 surrogate
  EXPECT_EQ(escaped("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // above U+10FFFF
}

TEST(LogInitTest, RejectsUnknownLevelAndFormatNamingTheKey) {
  try {
    init({"verbose", "text"});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("log.level: 'verbose'"));
  }
  try {
    init({"info", "xml"});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("log.format: 'xml'"));
  }
}

TEST(LogInitTest, LoggersShareOneInstancePerSubsystem) {
  auto a = get("edge");
  auto b = get("edge");
  auto c = get("control");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(c->name(), "control");
}

TEST(LogInitTest, GetIsSafeFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<spdlog::logger*> seen(8);
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&seen, i] { seen[i] = get("threaded").get(); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (auto* logger : seen) {
    EXPECT_EQ(logger, seen.front());
  }
}

TEST(LogInitTest, InitAppliesLevelAndFormatToExistingAndNewLoggers) {
  auto before = get("before_init");
  init({"warn", "json"});
  auto after = get("after_init");

  testing::internal::CaptureStderr();
  before->info("dropped");
  before->warn("kept \"quoted\"");
  after->error("also kept");
  std::string output = testing::internal::GetCapturedStderr();
  init({"info", "text"});

  EXPECT_THAT(output, Not(HasSubstr("dropped")));
  EXPECT_THAT(output, MatchesRegex("\\{\"ts\":\"[0-9T:.-]+Z\",\"level\":\"warn\",\"logger\":"
                                   "\"before_init\",\"msg\":\"kept \\\\\"quoted\\\\\"\"\\}\n"
                                   "\\{\"ts\":\"[0-9T:.-]+Z\",\"level\":\"error\",\"logger\":"
                                   "\"after_init\",\"msg\":\"also kept\"\\}\n"));
}

}  // namespace
}  // namespace evosip::log
