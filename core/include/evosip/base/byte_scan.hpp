#pragma once
// Finding the next byte of interest in a buffer, 16 bytes per step where SSE2 is there. The
// message parsers spend most of their time skipping ordinary characters to the next
// delimiter; these do that part. Never read outside the view.
#include <cstddef>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace evosip {

// Index of the first byte at or after `from` that equals one of Cs, or s.size().
template <char... Cs>
inline size_t findAnyOf(std::string_view s, size_t from) {
  const char* p = s.data();
  const size_t n = s.size();
  size_t i = from;
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    __m128i hit = _mm_setzero_si128();
    ((hit = _mm_or_si128(hit, _mm_cmpeq_epi8(x, _mm_set1_epi8(Cs)))), ...);
    if (const int bits = _mm_movemask_epi8(hit)) {
      return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(bits)));
    }
  }
#endif
  for (; i < n; ++i) {
    if (((p[i] == Cs) || ...)) {
      return i;
    }
  }
  return n;
}

// A control byte as RFC 3261 forbids it inside a header line: below 0x20 except HTAB, or DEL.
constexpr bool isControlByte(unsigned char c) {
  return (c < 0x20 && c != '\t') || c == 0x7f;
}

// Index of the first control byte in [from, end) of s, or end (end <= s.size()).
inline size_t findControlByte(std::string_view s, size_t from, size_t end) {
  const char* p = s.data();
  size_t i = from;
#if defined(__SSE2__)
  const __m128i below = _mm_set1_epi8(0x1f);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  for (; i + 16 <= end; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(x, below), x);  // x <= 0x1f, unsigned
    const __m128i hit =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), low), _mm_cmpeq_epi8(x, del));
    if (const int bits = _mm_movemask_epi8(hit)) {
      return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(bits)));
    }
  }
#endif
  for (; i < end; ++i) {
    if (isControlByte(static_cast<unsigned char>(p[i]))) {
      return i;
    }
  }
  return end;
}

}  // namespace evosip
