#include <evosip/runtime/clock.hpp>

namespace evosip::runtime {

SteadyClock& SteadyClock::instance() {
  static SteadyClock clock;
  return clock;
}

}  // namespace evosip::runtime
