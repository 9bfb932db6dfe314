// libFuzzer target: what an outsider controls before authentication - a digest answer through
// DigestVerifier::precheck (structure, qop, algorithm, nonce), and a user name used as a
// voicemail mailbox (isSafeMailbox, Dialplan::mailboxOf).
#include <chrono>
#include <cstdint>
#include <string_view>

#include <evosip/auth/verifier.hpp>
#include <evosip/router/dialplan.hpp>
#include <evosip/sip/auth.hpp>

#include "fuzz_check.hpp"

using namespace evosip;
using evosip::fuzz::check;

namespace {

void answer(std::string_view text) {
  static const auth::NonceCodec codec({.secret = "fuzz-nonce-secret-0123456789abcdef"});
  static const auth::DigestVerifier strict(codec);
  static const auth::DigestVerifier lenient(
      codec, {.requireQop = false, .algorithms = {auth::DigestAlgorithm::kSha256}});
  auto d = sip::parseDigest(text);
  if (!d) {
    return;
  }
  const auth::WallTime now{std::chrono::seconds(1'700'000'000)};
  for (const auto* v : {&strict, &lenient}) {
    auto r = v->precheck("REGISTER", "sip:evosip.local", *d, "evosip.local", now);
    // Nobody gets past the precheck (and so to a credential lookup) without a nonce we signed.
    check(!r.has_value());
    check(r.error().result != auth::VerifyResult::kOk);
    check(!r.error().reason.empty());
  }
}

void mailbox(std::string_view user) {
  router::ServiceNumber vm;
  vm.action = "Voicemail";
  vm.params.emplace_back("Mailbox", "from-user");
  const auto box = router::Dialplan::mailboxOf(vm, user, {});
  check(box.has_value() && *box == user);
  if (!router::isSafeMailbox(user)) {
    return;
  }
  check(!user.empty() && user.size() <= 64 && user.front() != '.');
  check(user.find('/') == std::string_view::npos && user.find("..") == std::string_view::npos);
  for (char c : user) {
    check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f &&
          c != '\\');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  answer(text);
  mailbox(text);
  return 0;
}
