#include <evosip/base/strings.hpp>
#include <evosip/sip/header.hpp>

namespace evosip::sip {

namespace {

struct Entry {
  std::string_view name;
  HeaderId id;
};

// Full names, indexed by HeaderId.
constexpr std::string_view kNames[] = {
    "",
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Route",
    "Record-Route",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Expires",
    "Min-Expires",
    "Path",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Authentication-Info",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Allow",
    "Accept",
    "Event",
    "Subject",
    "Refer-To",
    "Referred-By",
    "Session-Expires",
    "User-Agent",
    "Server",
    "Retry-After",
    "Timestamp",
    "RSeq",
    "RAck",
};
static_assert(std::size(kNames) == static_cast<size_t>(HeaderId::kCount));

HeaderId compact(char c) {
  switch (asciiLower(c)) {
    case 'v':
      return HeaderId::kVia;
    case 'f':
      return HeaderId::kFrom;
    case 't':
      return HeaderId::kTo;
    case 'i':
      return HeaderId::kCallId;
    case 'm':
      return HeaderId::kContact;
    case 'l':
      return HeaderId::kContentLength;
    case 'c':
      return HeaderId::kContentType;
    case 'e':
      return HeaderId::kContentEncoding;
    case 'k':
      return HeaderId::kSupported;
    case 'o':
      return HeaderId::kEvent;
    case 's':
      return HeaderId::kSubject;
    case 'r':
      return HeaderId::kReferTo;
    case 'b':
      return HeaderId::kReferredBy;
    case 'x':
      return HeaderId::kSessionExpires;
    default:
      return HeaderId::kOther;
  }
}

// Compares `name` with the candidates that share its length and first letter.
template <size_t N>
HeaderId pick(std::string_view name, const Entry (&cands)[N]) {
  for (const Entry& e : cands) {
    if (iequals(name, e.name)) {
      return e.id;
    }
  }
  return HeaderId::kOther;
}

}  // namespace

HeaderId headerIdFromName(std::string_view name) noexcept {
  using H = HeaderId;
  if (name.empty()) {
    return H::kOther;
  }
  const char first = asciiLower(name[0]);
  switch (name.size()) {
    case 1:
      return compact(name[0]);
    case 2:
      return first == 't' ? pick(name, {{"To", H::kTo}}) : H::kOther;
    case 3:
      return first == 'v' ? pick(name, {{"Via", H::kVia}}) : H::kOther;
    case 4:
      switch (first) {
        case 'f':
          return pick(name, {{"From", H::kFrom}});
        case 'c':
          return pick(name, {{"CSeq", H::kCSeq}});
        case 'p':
          return pick(name, {{"Path", H::kPath}});
        case 'r':
          return pick(name, {{"RSeq", H::kRSeq}, {"RAck", H::kRAck}});
        default:
          return H::kOther;
      }
    case 5:
      switch (first) {
        case 'r':
          return pick(name, {{"Route", H::kRoute}});
        case 'a':
          return pick(name, {{"Allow", H::kAllow}});
        case 'e':
          return pick(name, {{"Event", H::kEvent}});
        default:
          return H::kOther;
      }
    case 6:
      switch (first) {
        case 'a':
          return pick(name, {{"Accept", H::kAccept}});
        case 's':
          return pick(name, {{"Server", H::kServer}});
        default:
          return H::kOther;
      }
    case 7:
      switch (first) {
        case 'c':
          return pick(name, {{"Call-ID", H::kCallId}, {"Contact", H::kContact}});
        case 'e':
          return pick(name, {{"Expires", H::kExpires}});
        case 'r':
          return pick(name, {{"Require", H::kRequire}});
        case 's':
          return pick(name, {{"Subject", H::kSubject}});
        default:
          return H::kOther;
      }
    case 8:
      return first == 'r' ? pick(name, {{"Refer-To", H::kReferTo}}) : H::kOther;
    case 9:
      switch (first) {
        case 's':
          return pick(name, {{"Supported", H::kSupported}});
        case 't':
          return pick(name, {{"Timestamp", H::kTimestamp}});
        default:
          return H::kOther;
      }
    case 10:
      return first == 'u' ? pick(name, {{"User-Agent", H::kUserAgent}}) : H::kOther;
    case 11:
      switch (first) {
        case 'm':
          return pick(name, {{"Min-Expires", H::kMinExpires}});
        case 'u':
          return pick(name, {{"Unsupported", H::kUnsupported}});
        case 'r':
          return pick(name, {{"Referred-By", H::kReferredBy}, {"Retry-After", H::kRetryAfter}});
        default:
          return H::kOther;
      }
    case 12:
      switch (first) {
        case 'm':
          return pick(name, {{"Max-Forwards", H::kMaxForwards}});
        case 'r':
          return pick(name, {{"Record-Route", H::kRecordRoute}});
        case 'c':
          return pick(name, {{"Content-Type", H::kContentType}});
        default:
          return H::kOther;
      }
    case 13:
      switch (first) {
        case 'a':
          return pick(name, {{"Authorization", H::kAuthorization}});
        case 'p':
          return pick(name, {{"Proxy-Require", H::kProxyRequire}});
        default:
          return H::kOther;
      }
    case 14:
      return first == 'c' ? pick(name, {{"Content-Length", H::kContentLength}}) : H::kOther;
    case 15:
      return first == 's' ? pick(name, {{"Session-Expires", H::kSessionExpires}}) : H::kOther;
    case 16:
      switch (first) {
        case 'c':
          return pick(name, {{"Content-Encoding", H::kContentEncoding}});
        case 'w':
          return pick(name, {{"WWW-Authenticate", H::kWwwAuthenticate}});
        default:
          return H::kOther;
      }
    case 18:
      return first == 'p' ? pick(name, {{"Proxy-Authenticate", H::kProxyAuthenticate}}) : H::kOther;
    case 19:
      switch (first) {
        case 'p':
          return pick(name, {{"Proxy-Authorization", H::kProxyAuthorization}});
        case 'a':
          return pick(name, {{"Authentication-Info", H::kAuthenticationInfo}});
        default:
          return H::kOther;
      }
    default:
      return H::kOther;
  }
}

std::string_view headerName(HeaderId id) noexcept {
  const auto i = static_cast<size_t>(id);
  return i < std::size(kNames) ? kNames[i] : std::string_view{};
}

}  // namespace evosip::sip
