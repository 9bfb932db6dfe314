#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include <evosip/base/strings.hpp>
#include <evosip/router/registrar.hpp>
#include <evosip/sip/params.hpp>

namespace evosip::router {
namespace {

struct ContactEntry {
  std::string uri;  // as written inside <>
  uint32_t expires = 0;
  double q = 1.0;
  std::string instance;
  std::optional<uint32_t> regId;
};

RegisterPlan fail(int code, std::string reason, std::string extra = {}) {
  RegisterPlan p;
  p.code = code;
  p.reason = std::move(reason);
  p.extraHeaders = std::move(extra);
  return p;
}

std::optional<double> parseQ(std::string_view v) {
  double q = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), q);
  if (ec != std::errc() || ptr != v.data() + v.size() || q < 0 || q > 1) {
    return std::nullopt;
  }
  return q;
}

// The Contact values of a REGISTER (RFC 3261 10.3 steps 5-7); a failure plan when one is bad.
std::optional<RegisterPlan> readContacts(const sip::Message& request, uint64_t defaultExpires,
                                         std::vector<ContactEntry>& contacts, bool& star) {
  for (const auto& h : request.headers()) {
    if (h.id != sip::HeaderId::kContact) {
      continue;
    }
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      auto na = sip::parseNameAddr(*v);
      if (!na) {
        return fail(400, "Bad Contact");
      }
      if (na->star) {
        star = true;
        continue;
      }
      if (!na->uri.isSip() && na->uri.scheme != sip::UriScheme::kTel) {
        return fail(400, "Bad Contact URI");
      }
      ContactEntry e;
      e.uri = std::string(na->uriText);
      uint64_t expires = defaultExpires;
      if (auto ep = na->params.get("expires")) {
        auto v = parseDecimal(*ep, UINT32_MAX);
        if (!v) {
          return fail(400, "Bad Contact expires");
        }
        expires = *v;
      }
      e.expires = static_cast<uint32_t>(expires);
      if (auto q = na->params.get("q")) {
        auto parsed = parseQ(*q);
        if (!parsed) {
          return fail(400, "Bad Contact q");
        }
        e.q = *parsed;
      }
      if (auto inst = na->params.get("+sip.instance")) {
        e.instance = std::string(sip::stripQuotes(*inst));
      }
      if (auto rid = na->params.get("reg-id")) {
        if (auto v = parseDecimal(*rid, UINT32_MAX)) {
          e.regId = static_cast<uint32_t>(*v);
        }
      }
      contacts.push_back(std::move(e));
    }
    if (!values.ok()) {
      return fail(400, "Bad Contact");
    }
  }
  return std::nullopt;
}

size_t setBytes(const std::vector<store::Binding>& set, store::TimePoint now) {
  size_t total = 0;
  for (const auto& b : set) {
    if (b.expires > now) {
      total += bindingBytes(b);
    }
  }
  return total;
}

size_t liveCount(const std::vector<store::Binding>& set, store::TimePoint now) {
  return static_cast<size_t>(
      std::count_if(set.begin(), set.end(), [now](const auto& b) { return b.expires > now; }));
}

// Limits (as Kamailio's registrar max_contacts): only a REGISTER that adds a contact or grows
// the set can exceed them, so phones that refresh their bindings keep working.
std::optional<RegisterPlan> checkLimits(const std::vector<store::Binding>& result,
                                        const std::vector<store::Binding>& current,
                                        const RegistrarSettings& settings, store::TimePoint now) {
  const size_t count = liveCount(result, now);
  if (count > settings.maxContacts && count > liveCount(current, now)) {
    RegisterPlan refused = fail(403, "Too Many Registered Contacts");
    refused.limit = RegisterLimit::kContacts;
    return refused;
  }
  const size_t bytes = setBytes(result, now);
  if (bytes > settings.maxBindingBytes && bytes > setBytes(current, now)) {
    RegisterPlan refused = fail(403, "Registered Contacts Too Large");
    refused.limit = RegisterLimit::kBytes;
    return refused;
  }
  return std::nullopt;
}

// Path (RFC 3327): the route set towards the UA, stored with each binding.
store::RouteSet pathOf(const sip::Message& request) {
  store::RouteSet path;
  for (const auto& h : request.headers()) {
    if (h.id != sip::HeaderId::kPath) {
      continue;
    }
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      path.emplace_back(*v);
    }
  }
  return path;
}

// The Expires header, which applies to contacts without their own expires parameter.
std::optional<RegisterPlan> readExpiresHeader(const sip::Message& request,
                                              std::optional<uint32_t>& expires) {
  if (const auto* h = request.find(sip::HeaderId::kExpires)) {
    auto v = parseDecimal(trim(h->value), UINT32_MAX);
    if (!v) {
      return fail(400, "Bad Expires");
    }
    expires = static_cast<uint32_t>(*v);
  }
  return std::nullopt;
}

// Contact: * with Expires: 0 removes every binding (10.3 step 6), unless a binding was set by
// a later request of the same Call-ID.
RegisterPlan planRemoveAll(const std::vector<store::Binding>& current, bool otherContacts,
                           std::optional<uint32_t> headerExpires, const std::string& callId,
                           uint32_t cseq) {
  if (otherContacts || !headerExpires || *headerExpires != 0) {
    return fail(400, "Invalid Contact: *");
  }
  RegisterPlan plan;
  for (const auto& b : current) {
    if (b.callId == callId && b.cseq >= cseq) {
      return fail(500, "Out of Order REGISTER");
    }
    plan.removals.push_back(b.contact);
  }
  return plan;
}

// The binding a REGISTER writes for each contact, but its contact, expiry, q and instance.
store::Binding bindingTemplate(const sip::Message& request, std::string_view aor,
                               const std::string& callId, uint32_t cseq, std::string_view routerId,
                               std::string_view received) {
  store::Binding b;
  b.aor = std::string(aor);
  b.path = pathOf(request);
  b.callId = callId;
  b.cseq = cseq;
  b.received = std::string(received);
  if (const auto* ua = request.find("User-Agent")) {
    b.userAgent = std::string(ua->value.substr(0, 200));
  }
  b.router = std::string(routerId);
  return b;
}

// Applies each contact to the current bindings (10.3 steps 7-8): a new or refreshed binding,
// or a removal (expires 0); then the limits.
RegisterPlan planContacts(const std::vector<ContactEntry>& contacts,
                          const std::vector<store::Binding>& current, const store::Binding& base,
                          const RegistrarSettings& settings, store::TimePoint now) {
  RegisterPlan plan;
  std::vector<store::Binding> result = current;
  for (const auto& c : contacts) {
    auto it = std::find_if(result.begin(), result.end(),
                           [&](const store::Binding& b) { return b.contact == c.uri; });
    if (it != result.end() && it->callId == base.callId && it->cseq >= base.cseq) {
      return fail(500, "Out of Order REGISTER");
    }
    if (c.expires == 0) {
      if (it != result.end()) {
        plan.removals.push_back(c.uri);
        result.erase(it);
      }
      continue;
    }
    store::Binding b = base;
    b.contact = c.uri;
    b.expires = now + std::chrono::seconds(std::min(c.expires, settings.maxExpires));
    b.q = c.q;
    b.instanceId = c.instance;
    b.regId = c.regId;
    plan.upserts.push_back(b);
    if (it != result.end()) {
      *it = std::move(b);
    } else {
      result.push_back(std::move(b));
    }
  }
  if (auto refused = checkLimits(result, current, settings, now)) {
    return *refused;
  }
  plan.resulting = std::move(result);
  return plan;
}

}  // namespace

size_t bindingBytes(const store::Binding& b) {
  size_t n = 64 + b.aor.size() + b.contact.size() + b.callId.size() + b.instanceId.size() +
             b.received.size() + b.userAgent.size() + b.router.size();
  for (const auto& p : b.path) {
    n += p.size() + 16;
  }
  return n;
}

RegisterPlan planRegister(const sip::Message& request, std::string_view aor,
                          const std::vector<store::Binding>& current,
                          const RegistrarSettings& settings, store::TimePoint now,
                          std::string_view routerId, std::string_view received) {
  auto cseq = request.cseq();
  const std::string callId(request.callId());
  if (!cseq || callId.empty()) {
    return fail(400, "Bad CSeq or Call-ID");
  }
  std::optional<uint32_t> headerExpires;
  if (auto bad = readExpiresHeader(request, headerExpires)) {
    return *bad;
  }
  std::vector<ContactEntry> contacts;
  bool star = false;
  if (auto failed =
          readContacts(request, headerExpires.value_or(settings.defaultExpires), contacts, star)) {
    return *failed;
  }
  if (star) {
    return planRemoveAll(current, !contacts.empty(), headerExpires, callId, cseq->number);
  }
  if (contacts.empty()) {
    RegisterPlan plan;
    plan.fetchOnly = true;
    plan.resulting = current;
    return plan;
  }
  for (const auto& c : contacts) {
    if (c.expires != 0 && c.expires < settings.minExpires) {
      return fail(423, "Interval Too Brief",
                  fmt::format("Min-Expires: {}\r\n", settings.minExpires));
    }
  }
  return planContacts(contacts, current,
                      bindingTemplate(request, aor, callId, cseq->number, routerId, received),
                      settings, now);
}

std::string contactLines(const std::vector<store::Binding>& bindings, store::TimePoint now) {
  std::string out;
  for (const auto& b : bindings) {
    if (b.expires <= now) {
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::seconds>(b.expires - now).count();
    out.append(fmt::format("Contact: <{}>;expires={}", b.contact, left));
    if (b.q != 1.0) {
      out.append(fmt::format(";q={:.3g}", b.q));
    }
    out.append("\r\n");
  }
  return out;
}

}  // namespace evosip::router
