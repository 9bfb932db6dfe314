#include <string>

#include <gtest/gtest.h>

#include <evosip/router/registrar.hpp>

namespace evosip::router {
namespace {

using namespace std::chrono_literals;

const store::TimePoint kNow{std::chrono::milliseconds(1'800'000'000'000)};

std::string registerText(const std::string& contacts, const std::string& extra = "", int cseq = 2,
                         const std::string& callId = "reg-1") {
  return "REGISTER sip:evosip.local SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr1\r\n"
         "Path: <sip:tok@127.0.0.1:5060;lr>\r\n"
         "To: <sip:alice@evosip.local>\r\nFrom: <sip:alice@evosip.local>;tag=1\r\n"
         "Call-ID: " +
         callId + "\r\nCSeq: " + std::to_string(cseq) + " REGISTER\r\n" + contacts + extra +
         "Content-Length: 0\r\n\r\n";
}

RegisterPlan plan(const std::string& text, const std::vector<store::Binding>& current = {}) {
  auto msg = sip::Message::parse(text);
  EXPECT_TRUE(msg.has_value());
  return planRegister(*msg, "alice@evosip.local", current, RegistrarSettings{}, kNow, "r1",
                      "udp:127.0.0.1:5060");
}

TEST(RegistrarTest, NewBindingWithPathAndDefaultExpiry) {
  auto p = plan(registerText("Contact: <sip:alice@10.0.0.1:5060>\r\n"));
  ASSERT_EQ(p.code, 200);
  ASSERT_EQ(p.upserts.size(), 1u);
  const auto& b = p.upserts[0];
  EXPECT_EQ(b.contact, "sip:alice@10.0.0.1:5060");
  EXPECT_EQ(b.expires, kNow + 3600s);
  ASSERT_EQ(b.path.size(), 1u);
  EXPECT_EQ(b.path[0], "<sip:tok@127.0.0.1:5060;lr>");
  EXPECT_EQ(b.callId, "reg-1");
  EXPECT_EQ(b.cseq, 2u);
  EXPECT_EQ(contactLines(p.resulting, kNow), "Contact: <sip:alice@10.0.0.1:5060>;expires=3600\r\n");
}

TEST(RegistrarTest, ExpiryRules) {
  // Contact parameter wins over the header; capped at the max; below the min -> 423.
  auto p =
      plan(registerText("Contact: <sip:a@10.0.0.1>;expires=100000;q=0.5\r\n", "Expires: 120\r\n"));
  ASSERT_EQ(p.code, 200);
  EXPECT_EQ(p.upserts[0].expires, kNow + 7200s);
  EXPECT_DOUBLE_EQ(p.upserts[0].q, 0.5);
  auto brief = plan(registerText("Contact: <sip:a@10.0.0.1>\r\n", "Expires: 10\r\n"));
  EXPECT_EQ(brief.code, 423);
  EXPECT_EQ(brief.extraHeaders, "Min-Expires: 60\r\n");
  auto bad = plan(registerText("Contact: <sip:a@10.0.0.1>;q=2\r\n"));
  EXPECT_EQ(bad.code, 400);
}

TEST(RegistrarTest, RefreshRemoveAndOrdering) {
  store::Binding existing;
  existing.aor = "alice@evosip.local";
  existing.contact = "sip:a@10.0.0.1";
  existing.callId = "reg-1";
  existing.cseq = 5;
  existing.expires = kNow + 100s;
  // Same Call-ID, lower CSeq: out of order.
  EXPECT_EQ(plan(registerText("Contact: <sip:a@10.0.0.1>\r\n", "", 4), {existing}).code, 500);
  // Higher CSeq refreshes.
  auto refresh = plan(registerText("Contact: <sip:a@10.0.0.1>\r\n", "", 6), {existing});
  ASSERT_EQ(refresh.code, 200);
  EXPECT_EQ(refresh.resulting.size(), 1u);
  EXPECT_EQ(refresh.resulting[0].expires, kNow + 3600s);
  // expires=0 removes it.
  auto remove = plan(registerText("Contact: <sip:a@10.0.0.1>;expires=0\r\n", "", 7), {existing});
  ASSERT_EQ(remove.code, 200);
  EXPECT_EQ(remove.removals, std::vector<std::string>{"sip:a@10.0.0.1"});
  EXPECT_TRUE(remove.resulting.empty());
  // Contact: * needs Expires: 0 and no other contact.
  auto star = plan(registerText("Contact: *\r\n", "Expires: 0\r\n", 9), {existing});
  ASSERT_EQ(star.code, 200);
  EXPECT_EQ(star.removals.size(), 1u);
  EXPECT_EQ(plan(registerText("Contact: *\r\n", "Expires: 5\r\n", 9), {existing}).code, 400);
  // No Contact: a query listing the current bindings.
  auto query = plan(registerText(""), {existing});
  EXPECT_TRUE(query.fetchOnly);
  EXPECT_EQ(query.resulting.size(), 1u);
}

TEST(RegistrarTest, ContactsBeyondTheLimitAreRefusedButRefreshesPass) {
  RegistrarSettings s;
  s.maxContacts = 2;
  auto run = [&](const std::string& contacts, const std::vector<store::Binding>& current,
                 int cseq) {
    auto msg = sip::Message::parse(registerText(contacts, "", cseq));
    return planRegister(*msg, "alice@evosip.local", current, s, kNow, "r1", "udp:1.2.3.4:5060");
  };
  auto two = run("Contact: <sip:a@10.0.0.1>, <sip:b@10.0.0.1>\r\n", {}, 2);
  ASSERT_EQ(two.code, 200);
  auto three = run("Contact: <sip:c@10.0.0.1>\r\n", two.resulting, 3);
  EXPECT_EQ(three.code, 403);
  EXPECT_EQ(three.limit, RegisterLimit::kContacts);
  EXPECT_TRUE(three.upserts.empty());
  // Refreshing, replacing one by removing it first, or lowering the limit below what is
  // registered never locks a phone out of refreshing.
  EXPECT_EQ(run("Contact: <sip:a@10.0.0.1>, <sip:b@10.0.0.1>\r\n", two.resulting, 4).code, 200);
  EXPECT_EQ(run("Contact: <sip:a@10.0.0.1>;expires=0, <sip:c@10.0.0.1>\r\n", two.resulting, 5).code,
            200);
  s.maxContacts = 1;
  EXPECT_EQ(run("Contact: <sip:b@10.0.0.1>\r\n", two.resulting, 6).code, 200);
  // Bytes: one huge contact is refused on its own.
  s.maxContacts = 10;
  s.maxBindingBytes = 2048;
  auto huge = run("Contact: <sip:" + std::string(3000, 'x') + "@10.0.0.1>\r\n", {}, 7);
  EXPECT_EQ(huge.code, 403);
  EXPECT_EQ(huge.limit, RegisterLimit::kBytes);
}

}  // namespace
}  // namespace evosip::router
