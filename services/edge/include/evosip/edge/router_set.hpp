#pragma once
// The edge's routers are a role::TargetSet: rendezvous choice per Call-ID, up/down state.

#include <evosip/role/target_set.hpp>

namespace evosip::edge {

using RouterSet = role::TargetSet;
using RouterTarget = role::Target;

}  // namespace evosip::edge
