// Message::parse must not allocate for a message of up to 24 headers (the inline capacity of
// its header index). Counts calls of the global operator new while parsing.
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>

namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
}  // namespace

void* operator new(size_t size) {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace evosip::sip {
namespace {

size_t allocationsDuring(const std::string& text, bool* parsed) {
  allocations = 0;
  counting = true;
  auto m = Message::parse(text);
  const size_t n = allocations.load();
  counting = false;
  *parsed = m.has_value() && m->headers().size() > 0;
  return n;
}

std::string request(int headers) {
  std::string s = "OPTIONS sip:a@example.com SIP/2.0\r\n";
  for (int i = 0; i < headers; ++i) {
    s += "X-H" + std::to_string(i) + ": value " + std::to_string(i) + "\r\n";
  }
  return s + "\r\n";
}

TEST(MessageParseAllocation, NoneUpToTwentyFourHeaders) {
  bool parsed = false;
  EXPECT_EQ(allocationsDuring(request(24), &parsed), 0u);
  EXPECT_TRUE(parsed);
  // Past the inline capacity the index grows on the heap: the counter does see allocations.
  EXPECT_GT(allocationsDuring(request(40), &parsed), 0u);
  EXPECT_TRUE(parsed);
}

}  // namespace
}  // namespace evosip::sip
