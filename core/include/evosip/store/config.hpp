#pragma once
// store.backend (memory | redis) and store.redis.{host, port, password, db}: the shared store of
// the roles that keep state in it (router; media with media.state).

#include <evosip/config/config.hpp>
#include <evosip/store/store.hpp>

namespace evosip::store {

// Throws config::ConfigError naming the key.
Settings readSettings(config::Document& doc);

}  // namespace evosip::store
