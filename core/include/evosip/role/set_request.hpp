#pragma once
// The params of dispatcher.set on the roles that hold peer sets:
//   {"set": NAME, "targets": ["...", ...], "draining": ["...", ...]}
// "draining" is optional: targets (also listed in "targets") that drain for as long as the set
// lasts, as a terminating peer does: chosen only when every other target drains too.

#include <string>
#include <vector>

#include <boost/json/value.hpp>
#include <tl/expected.hpp>

namespace evosip::role {

struct SetRequest {
  std::string set;
  std::vector<std::string> targets;
  std::vector<std::string> draining;
};

// What is wrong is returned as one line for control::invalidParams.
tl::expected<SetRequest, std::string> parseSetRequest(const boost::json::value& params);

}  // namespace evosip::role
