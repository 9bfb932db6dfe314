#pragma once
// store.backend (memory | redis) and store.redis.{host, port, password, db}: the shared store of
// the roles that keep state in it (router; media with media.state).

#include <evosip/config/config.hpp>
#include <evosip/store/store.hpp>

namespace evosip::role {

// Throws config::ConfigError naming the key.
store::Settings readStoreSettings(config::Document& doc);

}  // namespace evosip::role
