#pragma once
// The registrar's rules (RFC 3261 10.3, RFC 3327 Path, RFC 5626 instance/reg-id kept) as a pure
// function: given a REGISTER and the address-of-record's current bindings, what to store, what
// to remove, and what to answer. The router runs the store operations it returns.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/sip/message.hpp>
#include <evosip/store/types.hpp>

namespace evosip::router {

struct RegistrarSettings {
  uint32_t defaultExpires = 3600;
  uint32_t minExpires = 60;  // a non-zero expiry below it -> 423 Interval Too Brief
  uint32_t maxExpires = 7200;
  // Contacts per address-of-record: a REGISTER that would hold more is refused (403) and
  // changes nothing; one that only refreshes or removes contacts is always accepted. Bounds
  // the fan-out of one INVITE to the AoR.
  size_t maxContacts = 10;
  // Bytes of the AoR's bindings (contacts, Path, user agent, ...): a REGISTER that would grow
  // the set beyond it is refused (403).
  size_t maxBindingBytes = 16384;
};

// What a binding costs in the store (its strings plus a fixed part), as the byte cap counts it.
size_t bindingBytes(const store::Binding& b);

// Which limit of RegistrarSettings refused a REGISTER.
enum class RegisterLimit : uint8_t { kNone, kContacts, kBytes };

struct RegisterPlan {
  int code = 200;  // != 200: answer this and change nothing
  RegisterLimit limit = RegisterLimit::kNone;
  std::string reason;
  std::string extraHeaders;  // e.g. "Min-Expires: 60\r\n"
  std::vector<store::Binding> upserts;
  std::vector<std::string> removals;      // contacts to remove
  std::vector<store::Binding> resulting;  // the bindings after the change (the 200 lists them)
  bool fetchOnly = false;                 // no Contact: a query (RFC 3261 10.2.3)
};

// aor: "user@domain" (already mapped to the served domain). received: how the REGISTER reached
// us ("udp:1.2.3.4:5060"). routerId: this instance, written into each binding.
RegisterPlan planRegister(const sip::Message& request, std::string_view aor,
                          const std::vector<store::Binding>& current,
                          const RegistrarSettings& settings, store::TimePoint now,
                          std::string_view routerId, std::string_view received);

// "Contact: <uri>;expires=N\r\n" for every binding still valid at now.
std::string contactLines(const std::vector<store::Binding>& bindings, store::TimePoint now);

}  // namespace evosip::router
