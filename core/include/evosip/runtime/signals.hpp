#pragma once

#include <functional>

namespace evosip::runtime {

// Blocks the calling thread until SIGTERM or SIGINT arrives (the signals are blocked in every
// thread started afterwards, so call blockStopSignals() before starting any thread).
void blockStopSignals();
int waitForStopSignal();

}  // namespace evosip::runtime
