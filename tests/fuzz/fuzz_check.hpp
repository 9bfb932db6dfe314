#pragma once
// The fuzz targets' assertion: a property that must hold for every input. libFuzzer reports the
// abort as a crash with the input that caused it; the corpus replay fails the test.
#include <cstdlib>

namespace evosip::fuzz {

inline void check(bool cond) {
  if (!cond) {
    std::abort();
  }
}

}  // namespace evosip::fuzz
