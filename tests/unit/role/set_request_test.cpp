#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <evosip/role/set_request.hpp>
#include <evosip/role/target_set.hpp>

namespace evosip::role {
namespace {

TEST(SetRequest, DrainingTargetsTakeNoNewWork) {
  auto req = parseSetRequest(boost::json::parse(
      R"({"set":"routers","targets":["sip:10.0.0.1:5060","sip:10.0.0.2:5060"],
          "draining":["sip:10.0.0.2:5060"]})"));
  ASSERT_TRUE(req) << req.error();
  auto set = TargetSet::build(req->targets);
  ASSERT_TRUE(set);
  ASSERT_TRUE((*set)->markDrainingBySet(req->draining));
  EXPECT_FALSE((*set)->at(0).drainingAt(0));
  EXPECT_TRUE((*set)->at(1).drainingAt(0));
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ((*set)->pick("call-" + std::to_string(i), 0), 0u);
  }
}

TEST(SetRequest, DrainingMustBeAmongTheTargets) {
  auto set = TargetSet::build({"sip:10.0.0.1:5060"});
  ASSERT_TRUE(set);
  EXPECT_FALSE((*set)->markDrainingBySet({"sip:10.0.0.9:5060"}));
  EXPECT_FALSE(parseSetRequest(boost::json::parse(R"({"set":"x","targets":"y"})")));
  EXPECT_FALSE(parseSetRequest(boost::json::parse(R"({"set":"x","targets":[],"draining":[1]})")));
}

}  // namespace
}  // namespace evosip::role
