// The UDP path of a worker that waits in io_uring; see udp_ring.hpp.
#include "udp_ring.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>

#include "native_socket.hpp"
#include "worker_state.hpp"

namespace evosip::transport {

#ifdef EVOSIP_HAVE_URING

namespace {

constexpr size_t kMaxRecvBuffers = 32768;  // what a provided-buffer ring can hold
constexpr size_t kSendSlots = 512;         // sends queued between two submits before one is forced
constexpr uint64_t kRecv = 1;
constexpr uint64_t kSend = 2;
constexpr uint64_t kCancel = 3;

}  // namespace

std::unique_ptr<UdpRing> UdpRing::open(WorkerState& w, runtime::WorkerRing& ring,
                                       std::string* why) {
  std::unique_ptr<UdpRing> r(new UdpRing(w, ring));
  r->recvTemplate_.msg_namelen = sizeof(sockaddr_in6);
  const auto size = static_cast<unsigned>(sizeof(io_uring_recvmsg_out) +
                                          r->recvTemplate_.msg_namelen + w.settings.maxMessageSize);
  const auto count = static_cast<unsigned>(
      std::bit_ceil(std::clamp<size_t>(w.settings.udpRingBuffers, 1, kMaxRecvBuffers)));
  r->buffers_ = std::make_unique<runtime::ProvidedBuffers>(ring.raw(), ring.newBufferGroup(), count,
                                                           (size + 63) / 64 * 64);
  if (!r->buffers_->ok(why)) {
    return nullptr;
  }
  r->client_ = ring.addClient(r.get());
  if (r->client_ == 0) {
    *why = "no io_uring client id left";
    return nullptr;
  }
  r->slabCapacity_ = std::max<size_t>(w.settings.udpBatch, 16) * w.settings.maxMessageSize;
  r->slab_ = std::make_unique_for_overwrite<char[]>(r->slabCapacity_);
  r->addrs_.resize(kSendSlots);
  r->slots_.emplace_back();  // slot 0 is never a socket
  return r;
}

UdpRing::~UdpRing() {
  close();
}

uint64_t UdpRing::recvTag(const UdpSocket& s) const {
  return runtime::WorkerRing::tag(client_,
                                  (kRecv << 48) | (uint64_t(s.ringGen) << 32) | s.ringSlot);
}

void UdpRing::watch(const std::shared_ptr<UdpSocket>& s) {
  if (closed_ || s->closed) {
    return;
  }
  if (freeSlots_.empty()) {
    freeSlots_.push_back(static_cast<uint32_t>(slots_.size()));
    slots_.emplace_back();
  }
  s->ringSlot = freeSlots_.back();
  freeSlots_.pop_back();
  slots_[s->ringSlot] = s;
  ring_.detachFromReactor(s->socket.native_handle());
  arm(*s);
}

void UdpRing::arm(UdpSocket& s) {
  io_uring_sqe* e = ring_.sqe();
  if (e == nullptr) {
    return;  // cannot happen right after a submit; the socket stays silent rather than crash
  }
  io_uring_prep_recvmsg_multishot(e, s.socket.native_handle(), &recvTemplate_, 0);
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = buffers_->group();
  io_uring_sqe_set_data64(e, recvTag(s));
}

bool UdpRing::send(const Endpoint& to, std::string_view data, int fd) {
  if (closed_ || data.size() > slabCapacity_) {
    return false;
  }
  if (slabUsed_ + data.size() > slabCapacity_ || queued_ == addrs_.size()) {
    ring_.submit();  // afterSubmit() empties the slab
  }
  io_uring_sqe* e = ring_.sqe();
  if (e == nullptr) {
    return false;
  }
  char* dst = slab_.get() + slabUsed_;
  std::memcpy(dst, data.data(), data.size());
  slabUsed_ += data.size();
  sockaddr_storage& addr = addrs_[queued_++];
  const socklen_t len = toSockaddr(to, addr);
  io_uring_prep_send(e, fd, dst, data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  io_uring_prep_send_set_addr(e, reinterpret_cast<const sockaddr*>(&addr),
                              static_cast<uint16_t>(len));
  e->flags |= IOSQE_CQE_SKIP_SUCCESS;  // only a failed send completes
  io_uring_sqe_set_data64(e, runtime::WorkerRing::tag(client_, kSend << 48));
  ++queuedTotal_;
  return true;
}

void UdpRing::beforeEnter() {
  // Counted once per pass (a failed send is taken back when its completion arrives).
  if (queuedTotal_ != 0) {
    owner_.stats.udpSent.fetch_add(queuedTotal_, std::memory_order_relaxed);
    queuedTotal_ = 0;
  }
}

void UdpRing::afterSubmit() {
  // MSG_DONTWAIT: every send queued so far completed or failed inside the submit; the kernel
  // reads neither its bytes nor its address any more.
  slabUsed_ = 0;
  queued_ = 0;
}

void UdpRing::onCompletion(const io_uring_cqe& cqe) {
  const uint64_t payload = runtime::WorkerRing::payloadOf(cqe.user_data);
  switch (payload >> 48) {
    case kSend:  // a failed send (successful ones do not complete)
      if (cqe.res < 0) {
        owner_.stats.udpSent.fetch_sub(1, std::memory_order_relaxed);
        owner_.stats.udpSendErrors.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    case kRecv:
      onReceive(cqe);
      return;
    default:
      return;
  }
}

void UdpRing::onReceive(const io_uring_cqe& cqe) {
  const uint64_t payload = runtime::WorkerRing::payloadOf(cqe.user_data);
  const auto slot = static_cast<uint32_t>(payload);
  const auto gen = static_cast<uint16_t>(payload >> 32);
  std::shared_ptr<UdpSocket> s;
  if (slot < slots_.size() && slots_[slot] && slots_[slot]->ringGen == gen) {
    s = slots_[slot];
  }
  const bool buffered = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const unsigned bid = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
  if (s && buffered && cqe.res >= 0 && !s->closed) {
    deliver(s, buffers_->buffer(bid), static_cast<unsigned>(cqe.res));
  }
  if (buffered && !closed_) {
    buffers_->recycle(bid);  // the handler is done with it: nothing keeps a view past its call
  }
  const bool gone = cqe.res == -ECANCELED || cqe.res == -EBADF || cqe.res == -ENOTSOCK;
  if (s && !s->closed && !closed_ && !gone && !(cqe.flags & IORING_CQE_F_MORE)) {
    arm(*s);  // the multishot receive ended (no buffer left, an error): again
  }
}

void UdpRing::deliver(const std::shared_ptr<UdpSocket>& s, char* buf, unsigned len) {
  auto* msg = io_uring_recvmsg_validate(buf, static_cast<int>(len), &recvTemplate_);
  if (msg == nullptr) {
    return;
  }
  if (msg->flags & MSG_TRUNC) {
    owner_.stats.udpDroppedOversize.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  sockaddr_storage from{};
  std::memcpy(&from, io_uring_recvmsg_name(msg),
              std::min<size_t>(msg->namelen, recvTemplate_.msg_namelen));
  const uint32_t size = io_uring_recvmsg_payload_length(msg, static_cast<int>(len), &recvTemplate_);
  if (size > owner_.settings.maxMessageSize) {  // the buffer has some room to spare beyond it
    owner_.stats.udpDroppedOversize.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  owner_.stats.udpReceived.fetch_add(1, std::memory_order_relaxed);
  Packet packet{std::string_view(
                    static_cast<const char*>(io_uring_recvmsg_payload(msg, &recvTemplate_)), size),
                Source{Protocol::kUdp, fromSockaddr(from), s->local, {}}};
  owner_.deliver(packet);
}

void UdpRing::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  const bool onRing = runtime::WorkerRing::current() == &ring_;
  if (onRing) {
    // Cancel the receives so that each socket is released when its descriptor is closed (and
    // its port can be bound again at once).
    for (auto& s : slots_) {
      if (s) {
        if (io_uring_sqe* e = ring_.sqe()) {
          io_uring_prep_cancel_fd(e, s->socket.native_handle(), IORING_ASYNC_CANCEL_ALL);
          io_uring_sqe_set_data64(e, runtime::WorkerRing::tag(client_, kCancel << 48));
        }
        ++s->ringGen;
      }
    }
    ring_.submit();
    ring_.removeClient(client_);
    buffers_->release();
  } else {
    buffers_->forget();  // the ring is gone (stopped pool): so is its registration
  }
  slots_.clear();
  freeSlots_.clear();
}

#endif

}  // namespace evosip::transport
