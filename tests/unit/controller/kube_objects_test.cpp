#include <gtest/gtest.h>

#include <evosip/controller/kube_objects.hpp>

namespace evosip::controller {
namespace {

constexpr const char* kSlice = R"({"type":"MODIFIED","object":{
  "metadata":{"name":"evosip-router-abc","resourceVersion":"42",
              "labels":{"kubernetes.io/service-name":"evosip-router"}},
  "ports":[{"name":"sip","port":5060},{"name":"control","port":8060},{"port":9}],
  "endpoints":[
    {"addresses":["10.0.0.5"],"conditions":{"ready":true,"serving":true,"terminating":false}},
    {"addresses":["fd00::0:6"],"conditions":{"ready":false,"serving":true,"terminating":true}},
    {"addresses":["10.0.0.7"]}]}})";

TEST(KubeObjects, WatchEventReadsConditionsAndNamedPorts) {
  auto e = parseWatchEvent(kSlice);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->type, WatchEventType::kModified);
  EXPECT_EQ(e->resourceVersion, "42");
  EXPECT_EQ(e->slice.service, "evosip-router");
  EXPECT_EQ(e->slice.ports.size(), 2u);  // the unnamed port is left out
  EXPECT_EQ(e->slice.ports.at("control"), 8060);
  ASSERT_EQ(e->slice.endpoints.size(), 3u);
  EXPECT_EQ(e->slice.endpoints[1].addresses[0], "fd00::6");
  EXPECT_FALSE(e->slice.endpoints[1].ready);
  EXPECT_TRUE(e->slice.endpoints[1].serving);
  EXPECT_TRUE(e->slice.endpoints[1].terminating);
  // absent conditions: ready and serving, not terminating
  EXPECT_TRUE(e->slice.endpoints[2].ready && e->slice.endpoints[2].serving);
  EXPECT_FALSE(e->slice.endpoints[2].terminating);
}

TEST(KubeObjects, ErrorEventCarriesTheStatusCode) {
  auto e = parseWatchEvent(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, WatchEventType::kError);
  EXPECT_EQ(e->errorCode, 410);
}

TEST(KubeObjects, HostileInputIsAnError) {
  EXPECT_FALSE(parseWatchEvent(R"({"type":"ADDED","object":{"metadata":{"name":"x"},
    "endpoints":[{"addresses":["evil.example"]}]}})"));
  EXPECT_FALSE(parseWatchEvent(R"({"type":"ADDED","object":{"metadata":{"name":"x"},
    "ports":[{"name":"sip","port":70000}]}})"));
  EXPECT_FALSE(parseWatchEvent(R"({"type":"EXPLODED","object":{}})"));
  EXPECT_FALSE(parseWatchEvent(std::string(2000, '[')));
  EXPECT_FALSE(parseSliceList(R"({"items":{}})"));
  EXPECT_EQ(parseSliceList(std::string(kMaxListBytes + 1, ' ')).error().code, Errc::kTooLarge);
}

TEST(KubeObjects, LeaseRoundTrip) {
  Lease l{"7", "a", 15, "", 2};
  auto back = parseLease(leaseJson("evosip-controller", "ns", l, "2026-12-07T18:00:00.000000Z"));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->holder, "a");
  EXPECT_EQ(back->durationS, 15);
  EXPECT_EQ(back->resourceVersion, "7");
  EXPECT_EQ(back->renewTime, "2026-12-07T18:00:00.000000Z");
  EXPECT_EQ(back->transitions, 2);
}

}  // namespace
}  // namespace evosip::controller
