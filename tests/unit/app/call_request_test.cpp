#include <gtest/gtest.h>

#include <evosip/app/call_request.hpp>

namespace evosip::app {
namespace {

std::string invite(const std::string& extra) {
  return "INVITE sip:100@10.0.0.1:5080 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKabc\r\n"
         "From: <sip:alice@evosip.local>;tag=1\r\nTo: <sip:100@evosip.local>\r\n"
         "Call-ID: c1\r\nCSeq: 1 INVITE\r\n" +
         extra + "Content-Length: 0\r\n\r\n";
}

CallRequest read(const std::string& text) {
  auto msg = sip::Message::parse(text);
  EXPECT_TRUE(msg.has_value());
  return readCallRequest(*msg);
}

TEST(CallRequest, ActionAndParametersFromHeaders) {
  const std::string text = invite(
      "X-Evosip-Action: Playback\r\nX-Evosip-Sound: welcome\r\n"
      "x-evosip-soundlocale: fr\r\nX-Evosip-Option: early, noanswer\r\nX-Other: 1\r\n");
  auto r = read(text);
  EXPECT_EQ(r.action, Action::kPlayback);
  EXPECT_EQ(r.paramOr("Sound", "x"), "welcome");
  EXPECT_EQ(r.paramOr("SoundLocale", "en"), "fr");  // suffix compared case-insensitively
  EXPECT_EQ(r.paramOr("SoundCustom", "default"), "default");
  EXPECT_TRUE(r.hasOption("NoAnswer"));
  EXPECT_FALSE(r.hasOption("answer"));
  EXPECT_EQ(r.params.size(), 3u);  // X-Other is not a parameter
}

TEST(CallRequest, ActionNamesAreCaseInsensitiveUnknownAndMissingAreTold) {
  EXPECT_EQ(read(invite("X-Evosip-Action: voicemail\r\n")).action, Action::kVoicemail);
  EXPECT_EQ(read(invite("X-Evosip-Action: ECHO\r\n")).action, Action::kEcho);
  EXPECT_EQ(read(invite("X-Evosip-Action: Menu\r\n")).action, Action::kMenu);
  EXPECT_EQ(read(invite("X-Evosip-Action: Hangup\r\n")).action, Action::kHangup);
  auto unknown = read(invite("X-Evosip-Action: Conference\r\n"));
  EXPECT_EQ(unknown.action, Action::kUnknown);
  EXPECT_EQ(unknown.actionText, "Conference");
  EXPECT_EQ(read(invite("")).action, Action::kMissing);
  EXPECT_TRUE(isPlatformHeader("x-EVOSIP-anything"));
  EXPECT_FALSE(isPlatformHeader("X-Evosi"));
}

TEST(CallRequest, FinalStatusIsValidatedAndTheReasonMadeSafe) {
  auto r = read(invite("X-Evosip-Status: 486\r\nX-Evosip-Reason: Busy Here Now\r\n"));
  auto st = readFinalStatus(r, 480);
  EXPECT_EQ(st.code, 486);
  EXPECT_EQ(st.reason, "Busy Here Now");
  // 2xx/3xx/garbage fall back to the default code and its phrase.
  for (const char* bad : {"200", "302", "abc", "700", ""}) {
    auto x = read(invite(std::string("X-Evosip-Status: ") + bad + "\r\n"));
    auto s = readFinalStatus(x, 480);
    EXPECT_EQ(s.code, 480) << bad;
    EXPECT_EQ(s.reason, "Temporarily Unavailable") << bad;
  }
  EXPECT_EQ(safeReason("a\x01"
                       "b"),
            "a?b");
  EXPECT_EQ(safeReason(std::string(300, 'x')).size(), 100u);
}

TEST(MenuTargets, ParsesDigitsToUris) {
  auto t = parseTargets(" 1=sip:100@evosip.local, 2 = <sip:101@evosip.local> ,*9=tel:+4912345,");
  ASSERT_TRUE(t.has_value()) << t.error().message;
  ASSERT_EQ(t->entries.size(), 3u);
  EXPECT_EQ(t->entries[0], (std::pair<std::string, std::string>{"1", "sip:100@evosip.local"}));
  EXPECT_EQ(t->entries[1].second, "sip:101@evosip.local");
  EXPECT_EQ(t->entries[2].first, "*9");
}

TEST(MenuTargets, RejectsWhatIsNotDigitsAndUris) {
  EXPECT_FALSE(parseTargets("1").has_value());
  EXPECT_FALSE(parseTargets("x=sip:a@b").has_value());
  EXPECT_FALSE(parseTargets("1=http://example.com").has_value());
  EXPECT_FALSE(parseTargets("1=sip:a@b,1=sip:c@d").has_value());
  EXPECT_TRUE(parseTargets("").has_value());
}

TEST(MenuTargets, DigitsMapToTheirTarget) {
  auto t = *parseTargets("1=sip:100@evosip.local,2=sip:101@evosip.local,20=sip:120@x,#=sip:op@x");
  auto one = matchDigits(t, "1");
  EXPECT_EQ(one.match, DigitMatch::kTarget);
  EXPECT_EQ(one.target, "sip:100@evosip.local");
  // "2" is a target and the start of "20": wait for the inter-digit timeout.
  auto two = matchDigits(t, "2");
  EXPECT_EQ(two.match, DigitMatch::kPrefix);
  EXPECT_EQ(two.target, "sip:101@evosip.local");
  EXPECT_EQ(matchDigits(t, "20").target, "sip:120@x");
  EXPECT_EQ(matchDigits(t, "20").match, DigitMatch::kTarget);
  EXPECT_EQ(matchDigits(t, "#").match, DigitMatch::kTarget);
  EXPECT_EQ(matchDigits(t, "3").match, DigitMatch::kInvalid);
  EXPECT_EQ(matchDigits(t, "21").match, DigitMatch::kInvalid);
  auto needMore = *parseTargets("12=sip:a@b");
  EXPECT_EQ(matchDigits(needMore, "1").match, DigitMatch::kNeedMore);
}

}  // namespace
}  // namespace evosip::app
