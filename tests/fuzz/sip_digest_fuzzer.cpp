// libFuzzer target: digest credentials / challenge parameters (auth.hpp).
#include <cstdint>
#include <string_view>

#include <evosip/sip/auth.hpp>

#include "fuzz_check.hpp"

using namespace evosip::sip;
using evosip::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = parseDigest(text);
  if (!d) {
    return 0;
  }
  for (std::string_view v :
       {d->scheme, d->username, d->realm, d->nonce, d->uri, d->response, d->algorithm, d->cnonce,
        d->opaque, d->qop, d->nc, d->stale, d->domain, d->userhash}) {
    check(v.empty() || (v.data() >= text.data() && v.data() + v.size() <= text.data() + size));
    check(unquote(v).size() <= v.size());
  }
  check(!d->scheme.empty());
  check(d->hasUsername || d->username.empty());
  return 0;
}
