#pragma once
// Paced RTP sends of one worker gathered into one io_uring submission per pacing tick (one
// IORING_OP_SENDMSG per packet, one io_uring_enter for all of them) instead of one sendto()
// each: on the VM measured that halves the kernel's per-packet cost (the syscall entry is most
// of it). Each packet is copied into a slot of the batch's own buffers, which stay untouched
// until its completion is reaped, so a send the kernel defers never reads freed memory.
// Without liburing, or when the kernel refuses io_uring, available() is false and the caller
// sends with sendto().

#include <cstdint>
#include <memory>
#include <span>
#include <sys/socket.h>

namespace evosip::app {

class UringSendBatch {
 public:
  UringSendBatch();
  ~UringSendBatch();
  UringSendBatch(const UringSendBatch&) = delete;
  UringSendBatch& operator=(const UringSendBatch&) = delete;

  bool available() const;
  // Queues one datagram from fd to `to`. False when no slot is free (the caller sends it
  // itself) or the batch is not available.
  bool queue(int fd, const sockaddr* to, socklen_t toLen, std::span<const uint8_t> packet);
  // Submits what was queued and reaps the completions there are. Returns the number of sends
  // that failed among those reaped.
  uint64_t flush();
  size_t pending() const;

 private:
  struct Ring;
  std::unique_ptr<Ring> ring_;
};

}  // namespace evosip::app
