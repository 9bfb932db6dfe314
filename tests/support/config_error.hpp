#pragma once
// What a role's configuration reader says about a YAML text: the message of the
// config::ConfigError it throws (which names the key), or `accepted` when it throws none.
#include <string>

#include <evosip/config/config.hpp>

namespace evosip::test {

template <typename Read>
std::string configErrorOf(Read read, const std::string& yaml, const std::string& accepted = "") {
  try {
    read(yaml);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return accepted;
}

}  // namespace evosip::test
