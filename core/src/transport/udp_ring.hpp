#pragma once
// The UDP path of a worker that waits in io_uring (runtime::WorkerRing, sip.io): every UDP
// socket of the worker has one multishot recvmsg outstanding that takes its buffers from the
// worker's provided-buffer ring, and every send is an SQE (IORING_OP_SEND with the destination
// address, MSG_DONTWAIT, success CQE skipped) submitted with the worker's next io_uring_enter,
// the one it sleeps in. No readiness re-arm, no recvmmsg/sendmmsg per batch: one system call per
// wake-up, whatever number of sockets and datagrams it serves.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

#include <evosip/runtime/worker_ring.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::transport {

struct UdpSocket;
struct WorkerState;

#ifdef EVOSIP_HAVE_URING

class UdpRing final : public runtime::RingClient {
 public:
  // The UDP path of w on ring (the calling thread's); nullptr (why set) when the ring refused
  // its buffers.
  static std::unique_ptr<UdpRing> open(WorkerState& w, runtime::WorkerRing& ring, std::string* why);
  ~UdpRing() override;

  // The socket's multishot receive (submitted with the next enter).
  void watch(const std::shared_ptr<UdpSocket>& s);
  // Queues a datagram from fd; false when it could not be queued (counted by the caller).
  bool send(const Endpoint& to, std::string_view data, int fd);
  // Stops every receive and leaves the ring (on the worker thread; elsewhere, once the ring is
  // gone, it only forgets it).
  void close();

  void onCompletion(const io_uring_cqe& cqe) override;
  void beforeEnter() override;
  void afterSubmit() override;

 private:
  UdpRing(WorkerState& w, runtime::WorkerRing& ring) : owner_(w), ring_(ring) {}
  void arm(UdpSocket& s);
  void onReceive(const io_uring_cqe& cqe);
  void deliver(const std::shared_ptr<UdpSocket>& s, char* buf, unsigned len);
  uint64_t recvTag(const UdpSocket& s) const;

  WorkerState& owner_;
  runtime::WorkerRing& ring_;
  uint8_t client_ = 0;
  std::unique_ptr<runtime::ProvidedBuffers> buffers_;
  msghdr recvTemplate_{};
  std::vector<std::shared_ptr<UdpSocket>> slots_;  // by slot; [0] unused
  std::vector<uint32_t> freeSlots_;
  // Sends queued since the last submit: their bytes and addresses, reused after it.
  std::unique_ptr<char[]> slab_;
  size_t slabCapacity_ = 0;
  size_t slabUsed_ = 0;
  std::vector<sockaddr_storage> addrs_;
  size_t queued_ = 0;
  uint64_t queuedTotal_ = 0;  // counted as sent before the next enter
  bool closed_ = false;
};

#else

class UdpRing {
 public:
  void watch(const std::shared_ptr<UdpSocket>&) {}
  bool send(const Endpoint&, std::string_view, int) { return false; }
  void close() {}
};

#endif

}  // namespace evosip::transport
