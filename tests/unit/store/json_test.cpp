#include <gtest/gtest.h>

#include <evosip/store/json.hpp>

namespace evosip::store {
namespace {

TEST(StoreJson, Placeholder) {
  EXPECT_TRUE(true);
}

}  // namespace
}  // namespace evosip::store
