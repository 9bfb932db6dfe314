#include <cstring>

#include <evosip/base/hash.hpp>

namespace evosip {

uint64_t hash64(std::string_view data, uint64_t seed) noexcept {
  // Word-at-a-time multiply/rotate hash; all lengths, any alignment.
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  uint64_t h = seed ^ (data.size() * kMul);
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ mix64(w)) * kMul;
    h = (h << 27) | (h >> 37);
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  if (n > 0) {  // an empty view may have no data pointer at all
    std::memcpy(&tail, p, n);
  }
  h ^= mix64(tail ^ (static_cast<uint64_t>(n) << 56));
  return mix64(h);
}

}  // namespace evosip
