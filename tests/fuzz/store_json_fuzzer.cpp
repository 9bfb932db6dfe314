// libFuzzer target: the JSON form of stored bindings and dialogs (what the redis backend reads
// back, and what an operator may have edited with redis-cli). Decoding never throws; whatever
// decodes must encode and decode again to the same record.
#include <cstdint>
#include <string_view>

#include <evosip/store/json.hpp>

#include "fuzz_check.hpp"

using namespace evosip::store;
using evosip::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto b = bindingFromJson(text)) {
    auto again = bindingFromJson(toJson(*b));
    check(again.has_value());
    check(toJson(*again) == toJson(*b));
  } else {
    check(!b.error().message.empty());
  }
  if (auto d = dialogFromJson(text)) {
    auto again = dialogFromJson(toJson(*d));
    check(again.has_value());
    check(toJson(*again) == toJson(*d));
  } else {
    check(!d.error().message.empty());
  }
  return 0;
}
