#pragma once
// What the shared store holds: location bindings (RFC 3261 section 10, RFC 3327, RFC 5626) and
// dialog records. Plain values; the store copies them in and out.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace evosip::store {

// Wall-clock time in milliseconds: expiries are absolute and shared by every process that uses
// the store, so they cannot be steady-clock values.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// The wall clock the store reads; injected by tests. An empty function means the system clock.
using NowFn = std::function<TimePoint()>;
TimePoint systemNow();

using RouteSet = std::vector<std::string>;  // URIs as written, first hop first

// One contact of an address-of-record. Its identity within the AoR is `contact` (as written):
// URI equivalence and RFC 5626 instance/reg-id matching are the registrar's business, which
// removes the binding it replaces by that binding's contact.
struct Binding {
  std::string aor;      // "user@domain"
  std::string contact;  // the Contact URI as the UA wrote it
  RouteSet path;        // RFC 3327 Path, as received
  TimePoint expires{};  // absolute; the store forgets the binding then
  double q = 1.0;       // RFC 3261 q-value, 0..1
  std::string callId;   // Call-ID and CSeq of the REGISTER that set it (RFC 3261 10.3 step 6)
  uint32_t cseq = 0;
  std::string instanceId;         // RFC 5626 +sip.instance, empty when absent
  std::optional<uint32_t> regId;  // RFC 5626 reg-id
  std::string received;           // source address or flow token of the REGISTER
  std::string userAgent;
  std::string router;  // instance id of the router that wrote it

  bool operator==(const Binding&) const = default;
};

// A dialog is keyed by the Call-ID and the tags of the dialog-creating request's From (caller)
// and To (callee) headers.
struct DialogId {
  std::string callId;
  std::string fromTag;
  std::string toTag;

  bool operator==(const DialogId&) const = default;
};

struct DialogRecord {
  DialogId id;
  RouteSet callerRouteSet;    // the route set towards the caller (Record-Route as the UAS saw it)
  RouteSet calleeRouteSet;    // the route set towards the callee (reversed Record-Route of 2xx)
  std::string callerContact;  // remote target of the caller
  std::string calleeContact;  // remote target of the callee
  uint32_t callerCseq = 0;    // last CSeq seen from each side
  uint32_t calleeCseq = 0;
  std::string owner;  // instance id of the router that created it
  TimePoint created{};
  TimePoint expires{};     // absolute; the store forgets the dialog then
  std::string mediaRelay;  // media relay reference (relay instance and its call key)

  bool operator==(const DialogRecord&) const = default;
};

// One page of a listing. `next` is the opaque cursor of the following page, empty when the
// listing is complete. A page holds about the number of items asked for: the redis backend may
// return a few more, and a page may be empty before the end, so page until `next` is empty.
// Entries written or removed while paging may or may not appear; the others appear once.
// One stored value and its key (Store::listValues).
struct KeyValue {
  std::string key;
  std::string value;
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next;
};

}  // namespace evosip::store
