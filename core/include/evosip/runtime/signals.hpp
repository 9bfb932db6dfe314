#pragma once

#include <chrono>
#include <optional>

namespace evosip::runtime {

// Blocks the calling thread until SIGTERM or SIGINT arrives (the signals are blocked in every
// thread started afterwards, so call blockStopSignals() before starting any thread).
void blockStopSignals();
int waitForStopSignal();
// The same, for at most timeout: the signal, or nullopt when none arrived.
std::optional<int> waitForStopSignal(std::chrono::milliseconds timeout);

}  // namespace evosip::runtime
