#include <algorithm>
#include <cerrno>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/bencode/ng_frame.hpp>
#include <evosip/log/log.hpp>
#include <evosip/media/relay.hpp>
#include <evosip/sdp/sdp.hpp>

#include "packet_ring.hpp"
#include "stream.hpp"

namespace evosip::media {

namespace asio = boost::asio;
using bencode::Value;

const char* dropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kStrictSource:
      return "strict_source";
    case DropReason::kNoDestination:
      return "no_destination";
    case DropReason::kSendError:
      return "send_error";
    case DropReason::kOversize:
      return "oversize";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

struct Call {
  std::string callId;
  std::vector<std::unique_ptr<Leg>> legs;
  size_t pairs = 0;  // port pairs held by every leg
  int64_t createdWall = 0;
  int64_t lastSignalWall = 0;
  int64_t lastSignalNs = 0;

  Leg* findLeg(std::string_view tag) const {
    for (const auto& l : legs) {
      if (l->tag == tag) {
        return l.get();
      }
    }
    return nullptr;
  }
  Leg* newLeg(std::string tag, int64_t wall) {
    legs.push_back(std::make_unique<Leg>());
    legs.back()->tag = std::move(tag);
    legs.back()->createdWall = wall;
    return legs.back().get();
  }
};

namespace {

int64_t wallNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Value error(std::string_view reason) {
  return bencode::ngError(reason);
}

Value endpointDict(const Endpoint& e) {
  Value d = Value::makeDict();
  d.set("family", e.family()).set("address", e.address()).set("port", e.port());
  return d;
}

}  // namespace

Relay::Relay(asio::io_context& io, const RelaySettings& settings, PortRange ports,
             RelayShared& shared)
    : io_(io),
      settings_(settings),
      shared_(shared),
      ports_(ports),
      batch_(std::make_unique<Batch>()),
      epollDescriptor_(io),
      ringEvent_(io) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) {
    throw std::runtime_error(fmt::format("epoll_create1: {}", std::strerror(errno)));
  }
  epollDescriptor_.assign(::dup(epoll_));
  armEpoll();
  const std::string& bind = settings_.bind.empty() ? settings_.advertise : settings_.bind;
  auto ep = Endpoint::parse(bind, 0);
  if (!ep) {
    throw std::invalid_argument("media.bind: " + ep.error().message);
  }
  bindAddress_ = *ep;
  if (settings_.waitInRing && settings_.ioUring) {
    wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  for (size_t i = 0; i < kBatch; ++i) {
    batch_->rxIov[i] = {batch_->data[i].data(), kBufferSize};
    batch_->rx[i].msg_hdr.msg_iov = &batch_->rxIov[i];
    batch_->rx[i].msg_hdr.msg_iovlen = 1;
    batch_->rx[i].msg_hdr.msg_name = &batch_->src[i];
    batch_->tx[i].msg_hdr.msg_iov = &batch_->txIov[i];
    batch_->tx[i].msg_hdr.msg_iovlen = 1;
  }
}

Relay::~Relay() {
  closeAll();
  boost::system::error_code ec;
  epollDescriptor_.close(ec);
  ringEvent_.close(ec);
  ring_.reset();
  ::close(epoll_);
  if (wakeFd_ >= 0) {
    ::close(wakeFd_);
  }
}

void Relay::wake() {
  if (wakeFd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wakeFd_, &one, sizeof one);
  }
}

const char* Relay::packetPath() const {
  return ring_ ? "io_uring" : "epoll";
}

void Relay::startRing() {
  ringTried_ = true;
  if (!settings_.ioUring) {
    return;
  }
  std::string why;
  // Every port of this worker's range is one socket at most (an RTP and an RTCP port per pair).
  const auto maxStreams = static_cast<unsigned>(2 * ports_.capacity());
  if (wakeFd_ >= 0) {
    // The worker waits inside the ring (ringLoop): no eventfd for the reactor.
    ring_ = PacketRing::open(-1, maxStreams, &why);
    if (ring_) {
      ring_->armWake(wakeFd_);
      ring_->submitOnly();
      ringLoopRunning_ = true;
      boost::asio::post(io_, [this] { ringLoop(); });
      return;
    }
  } else if (const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); efd >= 0) {
    ring_ = PacketRing::open(efd, maxStreams, &why);
    if (ring_) {
      ringEvent_.assign(efd);
      armRing();
      return;
    }
    ::close(efd);
  } else {
    why = fmt::format("eventfd: {}", std::strerror(errno));
  }
  log::get("media")->info("io_uring not available ({}): relaying with epoll", why);
}

void Relay::armRing() {
  ringEvent_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                          if (!ec) {
                            pollRing();
                          }
                        });
}

int64_t Relay::steadyNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t Relay::nowNs() const {
  if (now_) {
    return now_();
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<std::shared_ptr<Stream>> Relay::openStream(uint16_t port, bool rtcp) {
  auto s = std::make_shared<Stream>(port, rtcp);
  const int family = bindAddress_.isV6() ? AF_INET6 : AF_INET;
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return makeError(Errc::kIo, fmt::format("socket: {}", std::strerror(errno)));
  }
  if (family == AF_INET6) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  Endpoint local = bindAddress_;
  if (family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&local.sa)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&local.sa)->sin_port = htons(port);
  }
  if (::bind(fd, local.addr(), local.len) != 0) {
    const int err = errno;
    ::close(fd);
    return makeError(Errc::kIo, fmt::format("bind {}: {}", local.str(), std::strerror(err)));
  }
  s->fd = fd;
  if (!ringTried_) {
    startRing();  // here, on the worker thread: the ring's only submitter
  }
  if (ring_) {
    ring_->watch(*s);
    return s;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = s.get();
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    ::close(fd);
    return makeError(Errc::kIo, fmt::format("epoll_ctl: {}", std::strerror(err)));
  }
  return s;
}

Result<void> Relay::ensureSlot(Call& call, Leg& leg, size_t index) {
  while (leg.media.size() <= index) {
    leg.media.emplace_back();
  }
  MediaSlot& slot = leg.media[index];
  if (slot.rtp) {
    return {};
  }
  if (call.pairs >= 2 * static_cast<size_t>(settings_.maxStreams)) {
    // New tags on one Call-ID would otherwise add legs, and ports, without end.
    return makeError(Errc::kUnavailable, "Too many media streams in this call");
  }
  // Pairs another process holds stay taken until the end of the search, so that the random
  // allocator does not hand them out again.
  std::vector<uint16_t> taken;
  Result<void> result = makeError(Errc::kUnavailable, "Ran out of ports");
  while (auto port = ports_.allocate()) {
    auto rtp = openStream(*port, false);
    auto rtcp = rtp ? openStream(static_cast<uint16_t>(*port + 1), true)
                    : Result<std::shared_ptr<Stream>>(tl::unexpected(rtp.error()));
    if (!rtp || !rtcp) {
      taken.push_back(*port);
      if (rtp) {
        closeStream(**rtp);
      }
      continue;
    }
    slot.rtp = *rtp;
    slot.rtcp = *rtcp;
    slot.rtp->leg = &leg;
    slot.rtcp->leg = &leg;
    ++call.pairs;
    counters_.streams.fetch_add(2, std::memory_order_relaxed);
    result = {};
    break;
  }
  for (uint16_t port : taken) {
    ports_.release(port);
  }
  return result;
}

void Relay::closeStream(Stream& s) {
  if (!s.closed) {
    s.closed = true;
    s.out = nullptr;
    if (ring_) {
      ring_->unwatch(s);
    }
    ::close(s.fd);  // also leaves the epoll set
  }
}

void Relay::armEpoll() {
  epollDescriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                              [this](const boost::system::error_code& ec) {
                                if (!ec) {
                                  pollStreams();
                                }
                              });
}

void Relay::pollStreams() {
  // Level-triggered: a socket with datagrams left (onReadable reads a bounded number per call)
  // comes back in the next round. The reactor only sees an edge of the epoll descriptor, so wait
  // on it only once the set had nothing ready; after many busy rounds, yield to the rest of the
  // worker (ng commands, timers) with a post instead.
  std::array<epoll_event, 128> events;
  for (int round = 0; round < 16; ++round) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 0);
    if (n <= 0) {
      armEpoll();
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto* s = static_cast<Stream*>(events[i].data.ptr);
      // Streams are closed only by signalling and timers, which never run inside this loop.
      onReadable(*s);
    }
  }
  asio::post(io_, [this] { pollStreams(); });
}

void Relay::onReadable(Stream& s) {
  Batch& b = *batch_;
  const LatchPolicy& policy = s.leg->policy;
  for (int round = 0; round < 4; ++round) {
    for (size_t i = 0; i < kBatch; ++i) {
      b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    }
    const int n = ::recvmmsg(s.fd, b.rx.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      return;
    }
    s.lastPacketNs = nowNs();
    Stream* out = s.out;
    const bool canSend = out != nullptr && !out->closed && out->latch.destination.known() &&
                         !out->latch.destination.isUnspecified();
    size_t k = 0;
    uint64_t noDestination = 0;
    for (int i = 0; i < n; ++i) {
      const msghdr& h = b.rx[i].msg_hdr;
      const unsigned len = b.rx[i].msg_len;
      if (h.msg_flags & MSG_TRUNC) {
        ++s.errors;
        counters_.drops[size_t(DropReason::kOversize)].fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const auto verdict =
          latchOnPacket(s.latch, policy, static_cast<const sockaddr*>(h.msg_name), h.msg_namelen);
      if (verdict == LatchVerdict::kDropStrict) {
        counters_.drops[size_t(DropReason::kStrictSource)].fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      ++s.packets;
      s.bytes += len;
      if (!canSend) {
        ++noDestination;
        continue;
      }
      b.txIov[k] = {b.data[i].data(), len};
      b.tx[k].msg_hdr.msg_name = &out->latch.destination.sa;
      b.tx[k].msg_hdr.msg_namelen = out->latch.destination.len;
      ++k;
    }
    if (noDestination > 0) {
      counters_.drops[size_t(DropReason::kNoDestination)].fetch_add(noDestination,
                                                                    std::memory_order_relaxed);
    }
    size_t sent = 0;
    while (sent < k) {
      const int r =
          ::sendmmsg(out->fd, b.tx.data() + sent, static_cast<unsigned>(k - sent), MSG_DONTWAIT);
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r <= 0) {
        // Skip the packet the kernel refused and go on with the rest.
        ++out->errors;
        counters_.drops[size_t(DropReason::kSendError)].fetch_add(1, std::memory_order_relaxed);
        ++sent;
        continue;
      }
      uint64_t bytes = 0;
      for (size_t j = sent; j < sent + static_cast<size_t>(r); ++j) {
        bytes += b.txIov[j].iov_len;
      }
      counters_.packetsRelayed.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
      counters_.bytesRelayed.fetch_add(bytes, std::memory_order_relaxed);
      sent += static_cast<size_t>(r);
    }
    if (static_cast<size_t>(n) < kBatch) {
      return;
    }
  }
}

bencode::Value Relay::offer(const bencode::Value& body) {
  return offerOrAnswer(body, false);
}

bencode::Value Relay::answer(const bencode::Value& body) {
  return offerOrAnswer(body, true);
}

Result<std::pair<Leg*, Leg*>> Relay::pickLegs(Call& call, const NgOptions& opts, bool isAnswer,
                                              int64_t wall) {
  // A leg is one SIP tag. A leg with media holds at least one port pair and a call at most
  // 2 x max_streams, so more legs than that could never all have media: new tags beyond it are
  // refused (a flood of tags on one Call-ID would otherwise grow the call without end).
  const size_t maxLegs = 2 * static_cast<size_t>(settings_.maxStreams);
  auto addLeg = [&](const std::string& tag) -> Leg* {
    return call.legs.size() < maxLegs ? call.newLeg(tag, wall) : nullptr;
  };
  Leg* sender = nullptr;
  Leg* receiver = nullptr;
  if (!isAnswer) {
    sender = call.findLeg(opts.fromTag);
    if (!sender) {
      sender = addLeg(opts.fromTag);
    }
    receiver = sender ? sender->peer : nullptr;
    if (sender && !receiver && !opts.toTag.empty()) {
      receiver = call.findLeg(opts.toTag);
    }
    if (sender && !receiver) {
      receiver = addLeg(opts.toTag);
    }
  } else {
    receiver = call.findLeg(opts.fromTag);
    if (!receiver) {
      return makeError(Errc::kInvalid, "Unknown from-tag");
    }
    sender = call.findLeg(opts.toTag);
    if (!sender) {
      sender = receiver->peer;
      if (sender) {
        // The first answer names the tag the offer could not know; a later answer from another
        // fork takes the leg over (last answer wins).
        sender->tag = opts.toTag;
      } else {
        sender = addLeg(opts.toTag);
      }
    }
  }
  if (!sender || !receiver) {
    return makeError(Errc::kUnavailable, "Too many call legs");
  }
  if (sender == receiver) {
    return makeError(Errc::kInvalid, "from-tag and to-tag name the same party");
  }
  return std::pair{sender, receiver};
}

bencode::Value Relay::offerOrAnswer(const bencode::Value& body, bool isAnswer) {
  auto opts = readNgOptions(body);
  if (!opts) {
    return error(opts.error().message);
  }
  if (opts->callId.empty()) {
    return error("No call-id in message");
  }
  if (opts->fromTag.empty()) {
    return error("No from-tag in message");
  }
  if (isAnswer && opts->toTag.empty()) {
    return error("No to-tag in message");
  }
  if (opts->sdp.empty()) {
    return error("No SDP body in message");
  }
  auto sd = sdp::parse(opts->sdp);
  if (!sd) {
    return error("Failed to parse SDP: " + sd.error().message);
  }
  if (sd->media.size() > settings_.maxStreams) {
    return error(fmt::format("Too many media streams: {} m= lines, at most {}", sd->media.size(),
                             settings_.maxStreams));
  }
  if (opts->addressFamily &&
      (*opts->addressFamily == "IP6") != Endpoint::parse(settings_.advertise, 0)->isV6()) {
    return error(
        fmt::format("Unsupported: address family {} (media.address {} is the only "
                    "interface)",
                    *opts->addressFamily, settings_.advertise));
  }

  const int64_t wall = wallNow();
  auto it = calls_.find(opts->callId);
  bool created = false;
  if (it == calls_.end()) {
    if (isAnswer) {
      return error("Unknown call-id");
    }
    if (shared_.draining.load(std::memory_order_relaxed)) {
      counters_.rejectedSessions.fetch_add(1, std::memory_order_relaxed);
      return error("draining");
    }
    const int64_t before = shared_.sessions.fetch_add(1);
    if (settings_.maxSessions != 0 && before >= static_cast<int64_t>(settings_.maxSessions)) {
      shared_.sessions.fetch_sub(1);
      counters_.rejectedSessions.fetch_add(1, std::memory_order_relaxed);
      return error("Parallel session limit reached");
    }
    auto call = std::make_unique<Call>();
    call->callId = opts->callId;
    call->createdWall = wall;
    it = calls_.emplace(opts->callId, std::move(call)).first;
    created = true;
    counters_.sessions.fetch_add(1, std::memory_order_relaxed);
    counters_.managedSessions.fetch_add(1, std::memory_order_relaxed);
  }
  Call& call = *it->second;

  // Who sent this SDP (sender) and who receives the rewritten one (receiver).
  auto legs = pickLegs(call, *opts, isAnswer, wall);
  if (!legs) {
    if (created) {
      deleteCall(opts->callId);
    }
    return error(legs.error().message);
  }
  auto [sender, receiver] = *legs;
  sender->peer = receiver;
  receiver->peer = sender;
  if (!opts->label.empty()) {
    sender->label = opts->label;
  }
  if (!opts->viaBranch.empty()) {
    sender->viaBranch = opts->viaBranch;
  }
  sender->policy = LatchPolicy{opts->asymmetric, opts->strictSource, opts->mediaHandover};

  sdp::RewriteOptions rw;
  rw.replaceOrigin = opts->replaceOrigin;
  rw.originAddress = settings_.advertise;
  rw.removeIce = opts->removeIce;
  rw.addRtcp = !opts->noRtcpAttribute;

  bool allHeld = !sd->media.empty();
  for (size_t i = 0; i < sd->media.size(); ++i) {
    const sdp::MediaDescription& m = sd->media[i];
    if (!m.isRejected()) {
      for (Leg* leg : {sender, receiver}) {
        if (auto ok = ensureSlot(call, *leg, i); !ok) {
          if (created) {
            deleteCall(opts->callId);
          }
          return error(ok.error().message);
        }
      }
    } else {
      for (Leg* leg : {sender, receiver}) {
        while (leg->media.size() <= i) {
          leg->media.emplace_back();
        }
      }
    }
    MediaSlot& s = sender->media[i];
    MediaSlot& r = receiver->media[i];
    s.type = std::string(m.media);
    s.protocol = std::string(m.proto);
    s.rtcpMux = m.rtcpMux;
    s.rejected = m.isRejected();
    if (r.type.empty()) {
      r.type = s.type;
      r.protocol = s.protocol;
    }

    // The sender's address for this m= line (rtpengine: media address > SIP source > SDP).
    const sdp::Connection* c = sdp::effectiveConnection(*sd, m);
    // c=0.0.0.0 names no destination either way (hold, or an ICE placeholder: the first packet
    // latches the real one). Only without ICE and without a direction attribute is it the old
    // way of holding a call (sdp::isOnHold), which the rewrite turns into sendonly.
    const bool held = c != nullptr && c->isHoldAddress();
    allHeld = allHeld && sdp::isOnHold(*sd, m) && !m.direction && !sd->direction;
    std::string addr;
    // Only an address that did not come from the SDP may restrict who latches (strict source).
    const bool fromSip = !opts->mediaAddress.empty() || opts->sipSourceAddress;
    if (!opts->mediaAddress.empty()) {
      addr = opts->mediaAddress;
    } else if (opts->sipSourceAddress || c == nullptr) {
      addr = opts->receivedFrom;
    } else {
      addr = std::string(c->address);
    }
    if (s.rtp) {
      Endpoint rtpEp, rtcpEp;
      if (!held && !m.isRejected() && !addr.empty()) {
        if (auto e = Endpoint::parse(addr, m.port)) {
          rtpEp = *e;
        }
        std::string rtcpAddr = addr;
        if (m.rtcpAddress && opts->mediaAddress.empty() && !opts->sipSourceAddress) {
          rtcpAddr = std::string(m.rtcpAddress->address);
        }
        if (auto e = Endpoint::parse(rtcpAddr, sdp::effectiveRtcpPort(m))) {
          rtcpEp = *e;
        }
      }
      for (auto [stream, ep] : {std::pair{s.rtp.get(), rtpEp}, std::pair{s.rtcp.get(), rtcpEp}}) {
        if (!(stream->advertised == ep)) {
          // A new address from signalling: forget what was learned (re-INVITE to a new phone).
          stream->advertised = ep;
          stream->latch.destination = ep;
          stream->latch.signalled = ep;
          stream->latch.latched = false;
        } else if (sender->policy.asymmetric) {
          stream->latch.destination = ep;
          stream->latch.latched = false;
        }
        stream->latch.signalledFromSip = fromSip;
      }
    }
    if (s.rtp && r.rtp) {
      s.rtp->out = r.rtp.get();
      s.rtcp->out = r.rtcpMux ? r.rtp.get() : r.rtcp.get();
      r.rtp->out = s.rtp.get();
      r.rtcp->out = s.rtcpMux ? s.rtp.get() : s.rtcp.get();
    }

    sdp::MediaRewrite mr;
    mr.address = settings_.advertise;
    if (r.rtp && !m.isRejected()) {
      mr.rtpPort = r.rtp->localPort;
      mr.rtcpPort = m.rtcpMux ? 0 : r.rtcp->localPort;
    }
    rw.media.push_back(mr);
  }
  if (allHeld && !opts->originalSendrecv) {
    // Old-style hold (c=0.0.0.0 and no direction attribute): the relay's address replaces the
    // zero address, so say sendonly explicitly, as rtpengine does.
    rw.direction = sdp::Direction::kSendOnly;
  }

  auto out = sdp::rewrite(*sd, rw);
  if (!out) {
    if (created) {
      deleteCall(opts->callId);
    }
    return error("Failed to rewrite SDP: " + out.error().message);
  }
  call.lastSignalWall = wall;
  call.lastSignalNs = nowNs();

  Value reply = bencode::ngOk();
  reply.set("sdp", *out);
  if (!opts->ignoredFlags.empty()) {
    std::string w = "Ignored unknown flags:";
    for (const auto& f : opts->ignoredFlags) {
      w += " " + f;
    }
    reply.set("warning", w);
  }
  return reply;
}

bencode::Value Relay::callStats(const Call& call) const {
  const int64_t nowSteady = nowNs();
  const int64_t nowWall = wallNow();
  Value tags = Value::makeDict();
  uint64_t tot[2][3] = {{0, 0, 0}, {0, 0, 0}};
  for (const auto& leg : call.legs) {
    Value l = Value::makeDict();
    l.set("tag", leg->tag).set("created", leg->createdWall);
    if (!leg->label.empty()) {
      l.set("label", leg->label);
    }
    if (leg->peer) {
      l.set("in dialogue with", leg->peer->tag);
    }
    Value medias = Value::makeList();
    for (size_t i = 0; i < leg->media.size(); ++i) {
      const MediaSlot& slot = leg->media[i];
      Value m = Value::makeDict();
      m.set("index", static_cast<int64_t>(i + 1))
          .set("type", slot.type)
          .set("protocol", slot.protocol);
      Value mflags = Value::makeList();
      mflags.add("initialized");
      if (slot.rtcpMux) {
        mflags.add("rtcp-mux");
      }
      m.set("flags", std::move(mflags));
      Value streams = Value::makeList();
      for (const Stream* s : {slot.rtp.get(), slot.rtcp.get()}) {
        if (!s) {
          continue;
        }
        Value sd = Value::makeDict();
        sd.set("local port", s->localPort);
        if (s->latch.destination.known()) {
          sd.set("endpoint", endpointDict(s->latch.destination));
        }
        if (s->advertised.known()) {
          sd.set("advertised endpoint", endpointDict(s->advertised));
        }
        if (s->lastPacketNs != 0) {
          sd.set("last packet", nowWall - (nowSteady - s->lastPacketNs) / 1000000000);
        }
        Value f = Value::makeList();
        f.add(s->rtcp ? "RTCP" : "RTP");
        if (s->latch.destination.known()) {
          f.add("filled");
        }
        if (s->latch.latched) {
          f.add("confirmed");
        }
        sd.set("flags", std::move(f));
        Value st = Value::makeDict();
        st.set("packets", s->packets).set("bytes", s->bytes).set("errors", s->errors);
        sd.set("stats", std::move(st));
        streams.add(std::move(sd));
        auto& t = tot[s->rtcp ? 1 : 0];
        t[0] += s->packets;
        t[1] += s->bytes;
        t[2] += s->errors;
      }
      m.set("streams", std::move(streams));
      medias.add(std::move(m));
    }
    l.set("medias", std::move(medias));
    tags.set(leg->tag, std::move(l));
  }
  Value totals = Value::makeDict();
  for (int k = 0; k < 2; ++k) {
    Value t = Value::makeDict();
    t.set("packets", tot[k][0]).set("bytes", tot[k][1]).set("errors", tot[k][2]);
    totals.set(k == 0 ? "RTP" : "RTCP", std::move(t));
  }
  Value reply = bencode::ngOk();
  reply.set("created", call.createdWall)
      .set("last signal", call.lastSignalWall)
      .set("tags", std::move(tags))
      .set("totals", std::move(totals));
  return reply;
}

bencode::Value Relay::remove(const bencode::Value& body) {
  const auto* idv = findKey(body, "call-id");
  const std::string callId = idv && idv->isString() ? std::string(idv->asString()) : "";
  if (callId.empty()) {
    return error("No call-id in message");
  }
  bool fatal = false;
  for (auto f : body.stringList("flags")) {
    fatal = fatal || normalizeFlag(f) == "fatal";
  }
  auto it = calls_.find(callId);
  bool found = it != calls_.end();
  if (found) {
    // With tags given, one of them must belong to the call. Only one has to: a delete after a
    // failed INVITE carries the to-tag of a final response the relay never saw.
    bool tagGiven = false, tagMatched = false;
    for (std::string_view key : {"from-tag", "to-tag"}) {
      const auto* t = findKey(body, key);
      if (t && t->isString() && !t->asString().empty()) {
        tagGiven = true;
        tagMatched = tagMatched || it->second->findLeg(t->asString()) != nullptr;
      }
    }
    found = !tagGiven || tagMatched;
  }
  if (!found) {
    if (fatal) {
      return error("Call-ID not found or tags didn't match");
    }
    Value reply = bencode::ngOk();
    reply.set("warning", "Call-ID not found or tags didn't match");
    return reply;
  }
  Value reply = callStats(*it->second);
  counters_.deletedSessions.fetch_add(1, std::memory_order_relaxed);
  deleteCall(callId);
  return reply;
}

bencode::Value Relay::query(const bencode::Value& body) {
  const auto* idv = findKey(body, "call-id");
  if (!idv || !idv->isString() || idv->asString().empty()) {
    return error("No call-id in message");
  }
  auto it = calls_.find(std::string(idv->asString()));
  if (it == calls_.end()) {
    return error("Unknown call-id");
  }
  return callStats(*it->second);
}

std::vector<std::string> Relay::callIds(size_t limit) const {
  std::vector<std::string> out;
  for (const auto& [id, call] : calls_) {
    if (out.size() >= limit) {
      break;
    }
    out.push_back(id);
  }
  return out;
}

void Relay::deleteCall(const std::string& callId) {
  auto it = calls_.find(callId);
  if (it == calls_.end()) {
    return;
  }
  int64_t streams = 0;
  for (auto& leg : it->second->legs) {
    for (auto& slot : leg->media) {
      for (auto* s : {slot.rtp.get(), slot.rtcp.get()}) {
        if (s) {
          closeStream(*s);
          ++streams;
        }
      }
      if (slot.rtp) {
        ports_.release(slot.rtp->localPort);
      }
    }
  }
  calls_.erase(it);
  counters_.streams.fetch_sub(streams, std::memory_order_relaxed);
  counters_.sessions.fetch_sub(1, std::memory_order_relaxed);
  shared_.sessions.fetch_sub(1);
}

void Relay::onTick() {
  if (settings_.timeoutS == 0) {
    return;
  }
  const int64_t now = nowNs();
  const int64_t limit = static_cast<int64_t>(settings_.timeoutS) * 1000000000;
  std::vector<std::string> idle;
  for (const auto& [id, call] : calls_) {
    int64_t last = call->lastSignalNs;
    for (const auto& leg : call->legs) {
      for (const auto& slot : leg->media) {
        for (const auto* s : {slot.rtp.get(), slot.rtcp.get()}) {
          if (s) {
            last = std::max(last, s->lastPacketNs);
          }
        }
      }
    }
    if (now - last > limit) {
      idle.push_back(id);
    }
  }
  for (const auto& id : idle) {
    log::get("media")->info("call {}: no media for {} s, deleted", id, settings_.timeoutS);
    counters_.timeoutSessions.fetch_add(1, std::memory_order_relaxed);
    deleteCall(id);
  }
}

void Relay::closeAll() {
  std::vector<std::string> ids;
  for (const auto& [id, call] : calls_) {
    ids.push_back(id);
  }
  for (const auto& id : ids) {
    deleteCall(id);
  }
}

}  // namespace evosip::media
