#include "message_text.hpp"

namespace evosip::transaction::text {

void appendHex(std::string& out, uint64_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) {
    out.push_back(kHex[(v >> (i * 4)) & 0xf]);
  }
}

std::string_view toTag(const sip::Message& msg) {
  auto to = msg.to();
  if (!to) {
    return {};
  }
  return to->tag().value_or(std::string_view{});
}

std::string_view fromTag(const sip::Message& msg) {
  auto from = msg.from();
  if (!from) {
    return {};
  }
  return from->tag().value_or(std::string_view{});
}

}  // namespace evosip::transaction::text
