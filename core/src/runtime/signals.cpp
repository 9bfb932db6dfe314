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

}  // namespace evosip::runtime
