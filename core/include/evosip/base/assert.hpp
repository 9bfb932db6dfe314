#pragma once
// Broken invariants (STYLE.md, error tier 3). EVOSIP_ASSERT is checked in debug builds only;
// EVOSIP_RELEASE_ASSERT always.

#include <cstdio>
#include <cstdlib>

#define EVOSIP_RELEASE_ASSERT(cond, msg)                                                       \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "assertion failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   msg);                                                                       \
      std::abort();                                                                            \
    }                                                                                          \
  } while (false)

#ifdef NDEBUG
#define EVOSIP_ASSERT(cond, msg) \
  do {                           \
  } while (false)
#else
#define EVOSIP_ASSERT(cond, msg) EVOSIP_RELEASE_ASSERT(cond, msg)
#endif
