// Credentials from the api role: GET /internal/v1/credentials/{domain}/{user} over the worker's
// keep-alive pool, behind the process-wide table every worker fills (auth::SharedCredentials).
// The worker's own auth::CredentialCache calls fetchCredentials on a miss.
#include <boost/json.hpp>

#include <evosip/base/hex.hpp>
#include <evosip/router/router.hpp>

namespace evosip::router {
namespace {

// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
std::string pathSegment(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hexDigit(c >> 4, HexCase::kUpper));
      out.push_back(hexDigit(c, HexCase::kUpper));
    }
  }
  return out;
}

}  // namespace

void Router::fetchCredentials(const std::string& domain, const std::string& user,
                              std::function<void(auth::CredentialLookup)> done) {
  // Another worker may have fetched this user already.
  auto& table = shared_.credentialTable();
  if (auto hit = table.find(domain, user)) {
    done(std::move(*hit));
    return;
  }
  const uint64_t generation = table.generation();
  const auto& s = shared_.settings();
  apiPool_.request("GET",
                   "/internal/v1/credentials/" + pathSegment(domain) + "/" + pathSegment(user),
                   s.apiToken, "", s.apiTimeout,
                   [this, done = std::move(done), alive = std::weak_ptr<char>(alive_), domain, user,
                    generation](tl::expected<control::HttpResponse, std::string> r) {
                     if (alive.expired()) {
                       return;
                     }
                     auth::CredentialLookup lookup = credentialsOf(r);
                     auto& credentials = shared_.credentialTable();
                     if (lookup.status == auth::CredentialStatus::kUnavailable) {
                       // The api cannot answer: a known user keeps what it last answered.
                       if (auto stale = credentials.findStale(domain, user)) {
                         if (stale->stale) {
                           RouterCounters::bump(counters_.credentialsStale);
                         }
                         done(std::move(*stale));
                         return;
                       }
                     }
                     credentials.put(domain, user, lookup, generation);
                     done(std::move(lookup));
                   });
}

auth::CredentialLookup Router::credentialsOf(
    const tl::expected<control::HttpResponse, std::string>& r) {
  auth::CredentialLookup lookup;
  if (r && r->status == 404) {
    lookup.status = auth::CredentialStatus::kUnknownUser;
    RouterCounters::bump(counters_.apiUnknown);
    return lookup;
  }
  if (!r || r->status != 200) {
    RouterCounters::bump(counters_.apiFailed);
    return lookup;
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(r->body, ec);
  const auto* o = ec ? nullptr : v.if_object();
  const auto* md5 = o ? o->if_contains("ha1_md5") : nullptr;
  const auto* sha = o ? o->if_contains("ha1_sha256") : nullptr;
  if (!md5 || !sha || !md5->is_string() || !sha->is_string()) {
    RouterCounters::bump(counters_.apiFailed);
    return lookup;
  }
  lookup.status = auth::CredentialStatus::kFound;
  lookup.credentials =
      auth::Credentials(std::string(md5->as_string()), std::string(sha->as_string()));
  RouterCounters::bump(counters_.apiFound);
  return lookup;
}

}  // namespace evosip::router
