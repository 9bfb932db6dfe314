#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <signal.h>
#include <stdexcept>
#include <string>

#include <evosip/runtime/signals.hpp>

namespace evosip::runtime {

namespace {

sigset_t stopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void blockStopSignals() {
  sigset_t set = stopSignals();
  int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (rc != 0) {
    throw std::runtime_error(std::string("pthread_sigmask: ") + std::strerror(rc));
  }
}

int waitForStopSignal() {
  sigset_t set = stopSignals();
  while (true) {
    int sig = 0;
    int rc = sigwait(&set, &sig);
    if (rc == 0) {
      return sig;
    }
    if (rc != EINTR) {
      throw std::runtime_error(std::string("sigwait: ") + std::strerror(rc));
    }
  }
}

std::optional<int> waitForStopSignal(std::chrono::milliseconds timeout) {
  sigset_t set = stopSignals();
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const timespec wait{static_cast<time_t>(s.count()),
                      static_cast<long>(std::chrono::nanoseconds(timeout - s).count())};
  while (true) {
    const int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig > 0) {
      return sig;
    }
    if (errno == EAGAIN) {
      return std::nullopt;
    }
    if (errno != EINTR) {
      throw std::runtime_error(std::string("sigtimedwait: ") + std::strerror(errno));
    }
  }
}

}  // namespace evosip::runtime
