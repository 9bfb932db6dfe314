#pragma once
// Wiring of the media role: reads the configuration, builds the worker pool with one Relay per
// worker (each with its own port sub-range), the ng control socket, the control server (RPC,
// metrics, health) and runs them until stopped.

#include <cstdint>
#include <memory>
#include <string>

#include <evosip/config/config.hpp>
#include <evosip/media/relay.hpp>
#include <evosip/media/session_state.hpp>
#include <evosip/role/host.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/transport/address_acl.hpp>

namespace evosip::media {

struct MediaConfig {
  role::CommonSettings common;
  std::string ngListen = "127.0.0.1:2223";
  RelaySettings relay;
  uint16_t portMin = 30000;
  uint16_t portMax = 40000;
  int realtimePriority = 0;  // media.realtime_priority: SCHED_FIFO of the workers, 0 = normal
  // media.ng_allow: the only sources whose ng commands are answered.
  transport::AddressAcl ngAllow = transport::AddressAcl::loopback();
  StateSettings state;  // media.instance_id, media.state.*, media.takeover.*, store.*
};

// media.max_sessions when the key is absent or "auto": as many calls as the port range holds
// when every call uses the most ports it may (two legs of media.max_streams pairs each), so that
// a full relay refuses new calls ("Parallel session limit reached") before its ports run out.
// At least 1.
uint64_t defaultMaxSessions(uint16_t portMin, uint16_t portMax, uint32_t maxStreams);

// Reads every key of the media role; throws config::ConfigError naming the key. Calls
// checkUnknownKeys() at the end.
MediaConfig readMediaConfig(config::Document& doc);

class MediaService {
 public:
  explicit MediaService(MediaConfig config);
  ~MediaService();
  MediaService(const MediaService&) = delete;
  MediaService& operator=(const MediaService&) = delete;

  // Binds the ng and control addresses (throws std::runtime_error naming the address) and
  // starts the workers.
  void start();
  void stop();

  uint16_t ngPort() const;
  uint16_t controlPort() const;
  role::Host& host();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `evosip media --config FILE`: runs until SIGTERM/SIGINT. Returns the process exit code.
int runMedia(const std::string& configPath);

}  // namespace evosip::media
