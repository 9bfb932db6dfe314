#include <string>

#include <gtest/gtest.h>

#include <evosip/store/json.hpp>

namespace evosip::store {
namespace {

using namespace std::chrono_literals;

TEST(StoreJson, BindingRoundTripKeepsEveryField) {
  Binding b;
  b.aor = "alice@example.com";
  b.contact = "sip:alice@192.0.2.10:5060;transport=tcp;ob";
  b.path = {"<sip:edge-1;lr>", "<sip:\"quoted\"@edge-2;lr>"};
  b.expires = TimePoint(1'700'000'123'456ms);
  b.q = 0.7;
  b.callId = "a84b4c76e66710@pc33.example.com";
  b.cseq = 314159;
  b.instanceId = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
  b.regId = 1;
  b.received = "tcp:198.51.100.7:40312";
  b.userAgent = "Softphone \xc3\xa9\t1.0";
  b.router = "router-7";
  auto back = bindingFromJson(toJson(b));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, b);
}

TEST(StoreJson, BindingRoundTripWithOnlyTheRequiredFields) {
  Binding b;
  b.aor = "a@b";
  b.contact = "sip:a@c";
  b.expires = TimePoint(5ms);
  auto back = bindingFromJson(toJson(b));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
  EXPECT_FALSE(back->regId.has_value());
}

TEST(StoreJson, DialogRoundTripKeepsEveryField) {
  DialogRecord d;
  d.id = {"call@host", "from-tag", "to-tag"};
  d.callerRouteSet = {"<sip:p1;lr>"};
  d.calleeRouteSet = {"<sip:p2;lr>", "<sip:p3;lr>"};
  d.callerContact = "sip:alice@10.0.0.1";
  d.calleeContact = "sip:bob@10.0.0.2";
  d.callerCseq = 5;
  d.calleeCseq = 4294967295u;
  d.owner = "router-a";
  d.created = TimePoint(1'700'000'000'000ms);
  d.expires = TimePoint(1'700'000'043'200ms);
  d.mediaRelay = "media-2:abc";
  auto back = dialogFromJson(toJson(d));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, d);
}

TEST(StoreJson, MalformedInputIsAParseErrorNamingTheField) {
  struct Case {
    const char* json;
    const char* field;  // expected in the message, or "" for a syntax error
  };
  const Case cases[] = {
      {"", ""},
      {"[]", ""},
      {"{\"aor\":\"a\"", ""},
      {"{\"contact\":\"c\",\"expires\":1}", "aor"},
      {"{\"aor\":1,\"contact\":\"c\",\"expires\":1}", "aor"},
      {"{\"aor\":\"a\",\"contact\":\"c\"}", "expires"},
      {"{\"aor\":\"a\",\"contact\":\"c\",\"expires\":\"soon\"}", "expires"},
      {"{\"aor\":\"a\",\"contact\":\"c\",\"expires\":1,\"cseq\":-1}", "cseq"},
      {"{\"aor\":\"a\",\"contact\":\"c\",\"expires\":1,\"cseq\":4294967296}", "cseq"},
      {"{\"aor\":\"a\",\"contact\":\"c\",\"expires\":1,\"path\":[1]}", "path"},
      {"{\"aor\":\"a\",\"contact\":\"c\",\"expires\":1,\"q\":\"x\"}", "q"},
      {"{\"aor\":\"a\",\"contact\":\"c\",\"expires\":1,\"regId\":null}", "regId"},
  };
  for (const auto& c : cases) {
    auto r = bindingFromJson(c.json);
    ASSERT_FALSE(r) << c.json;
    EXPECT_EQ(r.error().code, Errc::kParse) << c.json;
    EXPECT_NE(r.error().message.find(c.field), std::string::npos)
        << c.json << " -> " << r.error().message;
  }
  auto d = dialogFromJson("{\"callId\":\"c\",\"fromTag\":\"f\",\"expires\":1}");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("toTag"), std::string::npos);
}

// Every prefix of a valid record is rejected or decoded, never a crash.
TEST(StoreJson, TruncatedRecordsNeverCrash) {
  DialogRecord d;
  d.id = {"c", "f", "t"};
  d.expires = TimePoint(1000ms);
  d.calleeRouteSet = {"<sip:x;lr>"};
  const std::string full = toJson(d);
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(dialogFromJson(full.substr(0, n))) << n;
  }
  EXPECT_TRUE(dialogFromJson(full));
}

}  // namespace
}  // namespace evosip::store
