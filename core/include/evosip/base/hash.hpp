#pragma once
// Fast non-cryptographic hashing and rendezvous (highest random weight) selection.
// Every edge computes the same choice from the same inputs: no shared table is needed, and when
// a target leaves only the keys it owned move (each key's order of the others is unchanged).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evosip {

// 64-bit hash of bytes (stable across processes and versions: used on the wire-visible choice of
// router, so every instance must agree).
uint64_t hash64(std::string_view data, uint64_t seed = 0) noexcept;

// Final mixer with good avalanche (from the public splitmix64 finalizer constants).
constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Weight of target (identified by the hash of its name) for a key.
constexpr uint64_t rendezvousWeight(uint64_t keyHash, uint64_t targetHash) noexcept {
  return mix64(keyHash ^ targetHash);
}

}  // namespace evosip
