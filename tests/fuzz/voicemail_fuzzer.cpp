// libFuzzer target: the voicemail inputs that come from outside the app's process: mailbox names
// (X-Evosip-Mailbox, the voicemail.list RPC) and the metadata files read back by listings.
// A name that is accepted can never leave the voicemail directory.
#include <cstdint>
#include <string_view>

#include <evosip/app/voicemail.hpp>

#include "fuzz_check.hpp"

using evosip::fuzz::check;
using namespace evosip::app;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (isValidMailbox(text)) {
    check(!text.empty() && text.size() <= 64 && text.front() != '.');
    check(text.find('/') == std::string_view::npos && text.find('\\') == std::string_view::npos);
    check(text.find("..") == std::string_view::npos);
    for (char c : text) {
      check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f);
    }
  }
  if (auto m = voicemailFromJson(text)) {
    check(!m->id.empty());
    (void)toJson(*m);
  }
  return 0;
}
