#include "uring_send_batch.hpp"

#include <cstring>
#include <vector>

#ifdef EVOSIP_APP_HAVE_URING
#include <liburing.h>
#endif

namespace evosip::app {

#ifdef EVOSIP_APP_HAVE_URING

namespace {
constexpr unsigned kEntries = 1024;  // submission queue; a full queue is submitted at once
constexpr size_t kSlots = 8192;      // packets in flight at most
constexpr size_t kMaxPacket = 256;
}  // namespace

struct UringSendBatch::Ring {
  io_uring ring{};
  bool ok = false;
  struct Slot {
    msghdr msg{};
    iovec iov{};
    sockaddr_storage to{};
    uint8_t data[kMaxPacket];
    bool busy = false;
  };
  std::vector<Slot> slots = std::vector<Slot>(kSlots);
  size_t next = 0;
  size_t queued = 0;    // prepared, not submitted
  size_t inFlight = 0;  // submitted or prepared, completion not reaped

  uint64_t reap() {
    uint64_t errors = 0;
    io_uring_cqe* cqes[256];
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(&ring, cqes, 256)) > 0) {
      for (unsigned i = 0; i < n; ++i) {
        const auto slot = static_cast<size_t>(io_uring_cqe_get_data64(cqes[i]));
        if (slot < slots.size()) {
          slots[slot].busy = false;
          --inFlight;
        }
        errors += cqes[i]->res < 0 ? 1 : 0;
      }
      io_uring_cq_advance(&ring, n);
    }
    return errors;
  }
};

UringSendBatch::UringSendBatch() : ring_(std::make_unique<Ring>()) {
  ring_->ok = io_uring_queue_init(kEntries, &ring_->ring, 0) == 0;
}

UringSendBatch::~UringSendBatch() {
  if (ring_->ok) {
    // Sends still in the kernel read the slots: wait for them before the memory goes.
    io_uring_submit(&ring_->ring);
    while (ring_->inFlight > 0) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_->ring, &cqe) != 0) {
        break;
      }
      ring_->reap();
    }
    io_uring_queue_exit(&ring_->ring);
  }
}

bool UringSendBatch::available() const {
  return ring_->ok;
}

size_t UringSendBatch::pending() const {
  return ring_->inFlight;
}

bool UringSendBatch::queue(int fd, const sockaddr* to, socklen_t toLen,
                           std::span<const uint8_t> packet) {
  Ring& r = *ring_;
  if (!r.ok || packet.size() > kMaxPacket || toLen > sizeof(sockaddr_storage)) {
    return false;
  }
  Ring::Slot& s = r.slots[r.next];
  if (s.busy) {
    r.reap();
    if (s.busy) {
      return false;
    }
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&r.ring);
  if (sqe == nullptr) {
    io_uring_submit(&r.ring);
    r.queued = 0;
    sqe = io_uring_get_sqe(&r.ring);
    if (sqe == nullptr) {
      return false;
    }
  }
  std::memcpy(s.data, packet.data(), packet.size());
  std::memcpy(&s.to, to, toLen);
  s.iov = {s.data, packet.size()};
  s.msg = {};
  s.msg.msg_name = &s.to;
  s.msg.msg_namelen = toLen;
  s.msg.msg_iov = &s.iov;
  s.msg.msg_iovlen = 1;
  s.busy = true;
  io_uring_prep_sendmsg(sqe, fd, &s.msg, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, r.next);
  r.next = (r.next + 1) % r.slots.size();
  ++r.queued;
  ++r.inFlight;
  return true;
}

uint64_t UringSendBatch::flush() {
  Ring& r = *ring_;
  if (!r.ok) {
    return 0;
  }
  if (r.queued > 0) {
    io_uring_submit(&r.ring);
    r.queued = 0;
  }
  return r.reap();
}

#else  // no liburing: every send goes through sendto()

struct UringSendBatch::Ring {};
UringSendBatch::UringSendBatch() : ring_(std::make_unique<Ring>()) {}
UringSendBatch::~UringSendBatch() = default;
bool UringSendBatch::available() const {
  return false;
}
bool UringSendBatch::queue(int, const sockaddr*, socklen_t, std::span<const uint8_t>) {
  return false;
}
uint64_t UringSendBatch::flush() {
  return 0;
}
size_t UringSendBatch::pending() const {
  return 0;
}

#endif

}  // namespace evosip::app
