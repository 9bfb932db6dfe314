// What a router's workers share: settings, the nonce codec and verifier, the dialplan, the
// names of the domain, the app and media sets (replaced whole by dispatcher.set) and the drain.
#include <evosip/base/strings.hpp>
#include <evosip/router/router.hpp>

namespace evosip::router {

RouterShared::RouterShared(RouterSettings settings, auth::NonceCodec::Settings nonces,
                           Dialplan dialplan, std::shared_ptr<role::TargetSet> apps,
                           const runtime::Clock& clock)
    : settings_(std::move(settings)),
      nonces_(std::move(nonces)),
      verifier_(nonces_, {.requireQop = settings_.requireQop,
                          .algorithms = settings_.challengeAlgorithms,
                          .opaque = {}}),
      dialplan_(std::move(dialplan)),
      credentialTable_(settings_.credentials, clock),
      apps_(std::move(apps)),
      media_(*role::TargetSet::build({})) {
  // "host" matches any port; "host:port" ([v6]:port) only that port (5060 when the URI has
  // none): another UA on the platform's IP is not the platform. Parsed once, here.
  for (const auto& a : settings_.aliases) {
    std::string_view host = a;
    uint16_t port = 0;
    const auto colon = host.rfind(':');
    const bool bracketed = !host.empty() && host.front() == '[';
    if (colon != std::string_view::npos &&
        (bracketed ? host[colon - 1] == ']' : host.find(':') == colon)) {
      auto p = parseDecimal(host.substr(colon + 1), 65535);
      port = p ? static_cast<uint16_t>(*p) : 0;
      host = host.substr(0, colon);
    }
    if (bracketed && host.size() > 2) {
      host = host.substr(1, host.size() - 2);
    }
    aliases_.emplace_back(std::string(host), port);
  }
}

bool RouterShared::isLocal(const sip::Uri& uri) const {
  if (iequals(uri.host, settings_.domain)) {
    return true;
  }
  for (const auto& [host, port] : aliases_) {
    if (iequals(uri.host, host) && (port == 0 || uri.portOrDefault() == port)) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<role::TargetSet> RouterShared::apps() const {
  std::lock_guard lock(appsMutex_);
  return apps_;
}

void RouterShared::setApps(std::shared_ptr<role::TargetSet> apps) {
  std::lock_guard lock(appsMutex_);
  apps->inheritFrom(*apps_);
  apps_ = std::move(apps);
}

std::shared_ptr<role::TargetSet> RouterShared::media() const {
  std::lock_guard lock(appsMutex_);
  return media_;
}

void RouterShared::setMedia(std::shared_ptr<role::TargetSet> media) {
  std::lock_guard lock(appsMutex_);
  media->inheritFrom(*media_);
  media_ = std::move(media);
}
}  // namespace evosip::router
