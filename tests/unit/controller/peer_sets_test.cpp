#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <evosip/controller/peer_sets.hpp>
#include <evosip/controller/pusher.hpp>

namespace evosip::controller {
namespace {

Instance at(const std::string& ip, bool ready = true, bool serving = true, bool term = false) {
  return Instance{ip, 8060, 5060, 2223, ready, serving, term};
}

const Assignment* find(const std::vector<Assignment>& all, const std::string& control) {
  for (const auto& a : all) {
    if (a.control == control) {
      return &a;
    }
  }
  return nullptr;
}

TEST(PeerSets, EdgesGetRoutersWithTerminatingOnesDraining) {
  Platform p;
  p[size_t(Layer::kEdge)] = std::vector{at("10.0.0.1")};
  p[size_t(Layer::kRouter)] =
      std::vector{at("10.0.1.2"), at("10.0.1.1", false, true, true), at("10.0.1.3", false, false)};
  auto all = assignments(p);
  const Assignment* edge = find(all, "10.0.0.1:8060");
  ASSERT_NE(edge, nullptr);
  ASSERT_EQ(edge->sets.size(), 1u);
  EXPECT_EQ(edge->sets[0].name, "routers");
  EXPECT_EQ(edge->sets[0].targets,
            (std::vector<std::string>{"sip:10.0.1.1:5060", "sip:10.0.1.2:5060"}));
  EXPECT_EQ(edge->sets[0].draining, (std::vector<std::string>{"sip:10.0.1.1:5060"}));
}

TEST(PeerSets, RoutersGetAppsAndMediaTheApiGetsControlAddresses) {
  Platform p;
  p[size_t(Layer::kRouter)] = std::vector{at("fd00::1")};
  p[size_t(Layer::kApp)] = std::vector{at("10.0.2.1")};
  p[size_t(Layer::kMedia)] = std::vector{at("10.0.3.1")};
  p[size_t(Layer::kApi)] = std::vector{at("10.0.4.1")};
  auto all = assignments(p);
  const Assignment* router = find(all, "[fd00::1]:8060");
  ASSERT_NE(router, nullptr);
  ASSERT_EQ(router->sets.size(), 2u);
  EXPECT_EQ(router->sets[0].targets, std::vector<std::string>{"sip:10.0.2.1:5060"});
  EXPECT_EQ(router->sets[1].targets, std::vector<std::string>{"udp:10.0.3.1:2223"});
  const Assignment* api = find(all, "10.0.4.1:8060");
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->sets[0].targets, std::vector<std::string>{"[fd00::1]:8060"});
}

TEST(PeerSets, UnknownEmptyOrAllDrainingLayersAreNotPushed) {
  Platform p;
  p[size_t(Layer::kEdge)] = std::vector{at("10.0.0.1")};
  EXPECT_TRUE(assignments(p).empty());  // routers not listed yet
  p[size_t(Layer::kRouter)] = std::vector<Instance>{};
  EXPECT_TRUE(assignments(p).empty());  // no router: keep what the edge has
  p[size_t(Layer::kRouter)] = std::vector{at("10.0.1.1", false, true, true)};
  EXPECT_TRUE(assignments(p).empty());  // none takes new calls
}

TEST(PeerSets, InstancesFromSlicesUseNamedPorts) {
  std::map<std::string, EndpointSlice> slices;
  slices["a"] = EndpointSlice{"a", "svc", {{"sip", 5070}, {"control", 8070}}, {{{"10.0.0.9"}}}};
  auto out = instancesOf(slices, PortNames{});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sip, 5070);
  EXPECT_EQ(out[0].control, 8070);
  EXPECT_EQ(out[0].ng, 0);
}

TEST(PeerSets, ListMatchesComparesNamesAndDrainingState) {
  PeerSet want{"routers", {"sip:a:1", "sip:b:1"}, {"sip:b:1"}};
  auto list = [](const char* bState) {
    return boost::json::parse(std::string(R"({"routers":[{"uri":"sip:b:1","state":")") + bState +
                              R"("},{"uri":"sip:a:1","state":"draining"}]})");
  };
  EXPECT_TRUE(listMatches(list("draining"), want));
  EXPECT_FALSE(listMatches(list("up"), want));
  EXPECT_FALSE(listMatches(boost::json::parse(R"({"routers":[]})"), want));
}

}  // namespace
}  // namespace evosip::controller
