#pragma once
// The Kubernetes API objects the controller reads, decoded from the API server's JSON: lists and
// watch events of discovery.k8s.io/v1 EndpointSlices, meta/v1 Status objects and
// coordination.k8s.io/v1 Leases. The API server is outside input: decoding never throws, bounds
// every size and returns Errc::kParse / kTooLarge naming the field.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::controller {

// Bounds on what one document may hold (the API server's own limits are lower or equal).
inline constexpr size_t kMaxListBytes = 32 * 1024 * 1024;
inline constexpr size_t kMaxEventBytes = 4 * 1024 * 1024;
inline constexpr size_t kMaxEndpointsPerSlice = 1000;
inline constexpr size_t kMaxAddressesPerEndpoint = 100;
inline constexpr size_t kMaxPortsPerSlice = 100;
inline constexpr size_t kMaxSlicesPerList = 10000;
inline constexpr size_t kMaxNameBytes = 253;

// One endpoint of a slice: an instance's addresses (numeric IPs, normalised) and its conditions.
// Absent conditions take the API's defaults: ready and serving true, terminating false.
struct SliceEndpoint {
  std::vector<std::string> addresses;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
};

struct EndpointSlice {
  std::string name;                       // metadata.name
  std::string service;                    // label kubernetes.io/service-name
  std::map<std::string, uint16_t> ports;  // named ports only
  std::vector<SliceEndpoint> endpoints;
};

struct SliceList {
  std::string resourceVersion;
  std::string continueToken;  // metadata.continue: "" on the last page
  std::vector<EndpointSlice> items;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  WatchEventType type = WatchEventType::kError;
  std::string resourceVersion;  // the object's (ADDED/MODIFIED/DELETED/BOOKMARK)
  EndpointSlice slice;          // ADDED/MODIFIED/DELETED
  int errorCode = 0;            // ERROR: the Status object's code (410: the version is gone)
  std::string errorMessage;
};

// A meta/v1 Status (the body of an error answer and of an ERROR event).
struct Status {
  int code = 0;
  std::string reason;
  std::string message;
};

struct Lease {
  std::string resourceVersion;
  std::string holder;     // spec.holderIdentity
  int durationS = 0;      // spec.leaseDurationSeconds
  std::string renewTime;  // spec.renewTime as the server stores it
  int transitions = 0;    // spec.leaseTransitions
};

Result<SliceList> parseSliceList(std::string_view json);
Result<WatchEvent> parseWatchEvent(std::string_view json);
Result<Status> parseStatus(std::string_view json);
Result<Lease> parseLease(std::string_view json);

// The body of a create (resourceVersion "") or update of the Lease `name` in `ns`.
std::string leaseJson(const std::string& name, const std::string& ns, const Lease& lease,
                      const std::string& nowMicroTime);
// "2026-12-07T18:00:00.000000Z" for the system clock's now.
std::string microTimeNow();

}  // namespace evosip::controller
