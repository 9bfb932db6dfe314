#pragma once
// The values of the memory backend (memory_values.cpp): key -> value and expiry, ordered so that
// a listing by prefix is one range.

#include <map>
#include <mutex>
#include <string>

#include <evosip/store/memory_store.hpp>

namespace evosip::store {

struct MemoryDatabase::Values {
  struct Entry {
    std::string value;
    TimePoint expires;
  };
  std::mutex mutex;
  std::map<std::string, Entry, std::less<>> map;
};

}  // namespace evosip::store
