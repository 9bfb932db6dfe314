#pragma once
// Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
// the holder renews the Lease every third of its duration (an update with the resourceVersion
// it read, so that two writers cannot both win); another replica takes it over only when the
// record it observes has not changed for a whole duration, measured on its own clock (no clock
// skew between nodes matters). A leader that cannot renew within two thirds of the duration
// steps down before anyone may take over. A leader that stops (SIGTERM) gives the Lease up (an
// update with no holder), so a standby takes over at its next attempt instead of a duration
// later.

#include <chrono>
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include <evosip/controller/kube_client.hpp>
#include <evosip/controller/kube_objects.hpp>

namespace evosip::controller {

struct LeaseSettings {
  std::string ns;
  std::string name = "evosip-controller";
  std::string identity;  // this replica: unique among the replicas
  std::chrono::milliseconds duration{15000};
};

class LeaseElector {
 public:
  using Clock = std::chrono::steady_clock;
  // onLeader(true/false) runs on the io_context's thread when leadership changes.
  LeaseElector(KubeClient& client, LeaseSettings settings, std::function<void(bool)> onLeader);

  // Runs until the io_context stops or release().
  boost::asio::awaitable<void> run();
  // Stops taking part; a leader steps down and writes the Lease without a holder.
  boost::asio::awaitable<void> release();

  bool leader() const { return leader_; }
  const std::string& holder() const { return observed_.holder; }
  const std::string& identity() const { return settings_.identity; }
  uint64_t transitions() const { return static_cast<uint64_t>(observed_.transitions); }

 private:
  // One attempt to acquire or renew; true when this replica holds the Lease afterwards.
  boost::asio::awaitable<bool> attempt();
  boost::asio::awaitable<bool> write(const std::string& method, const Lease& lease);
  void observe(const Lease& lease);
  void setLeader(bool leader);
  std::string path(bool item) const;

  KubeClient& client_;
  LeaseSettings settings_;
  std::function<void(bool)> onLeader_;
  bool leader_ = false;
  bool released_ = false;
  Lease observed_;
  Clock::time_point observedAt_{};
  Clock::time_point renewedAt_{};
};

}  // namespace evosip::controller
