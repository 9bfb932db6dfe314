// libFuzzer target: the bencode decoder on arbitrary bytes. Whatever decodes must re-encode
// canonically and decode again to the same value. (The ng framing: ng_frame_fuzzer.)
#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/bencode/bencode.hpp>

#include "fuzz_check.hpp"

using namespace evosip::bencode;
using evosip::fuzz::check;

namespace {

void exercise(const Value& v) {
  // Accessors on every value type must be safe.
  (void)v.asInteger();
  (void)v.asString();
  (void)v.find("command");
  (void)v.string("sdp");
  (void)v.integer("delete delay");
  (void)v.stringList("flags");
  (void)v.containsString("flags", "symmetric");
  const std::string once = encode(v);
  auto back = decode(once);
  check(back.has_value());
  check(encode(*back) == once);  // canonical form is a fixed point
}

bool isCanonical(const Value& v) {
  if (v.isList()) {
    for (const auto& e : v.asList()) {
      if (!isCanonical(e)) {
        return false;
      }
    }
  }
  const auto& d = v.asDict();
  for (size_t i = 0; i < d.size(); ++i) {
    if ((i > 0 && !(d[i - 1].key < d[i].key)) || !isCanonical(d[i].value)) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto v = decode(text)) {
    exercise(*v);
    if (isCanonical(*v)) {
      check(encode(*v) == text);  // sorted unique keys: the encoding is the input itself
    }
  }
  size_t used = 0;
  if (auto v = decodePrefix(text, used)) {
    check(used > 0 && used <= text.size());
  }
  return 0;
}
