// One worker's relay: its calls (created by offer, relay_offer_answer.cpp), their deletion by
// command, by idle timeout and at shutdown, and the query/delete report of a call. The packet
// paths are relay_io_uring.cpp and relay_epoll.cpp; the stream sockets relay_streams.cpp.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/bencode/ng_frame.hpp>
#include <evosip/log/log.hpp>
#include <evosip/media/relay.hpp>

#include "call.hpp"
#include "io_uring_ring.hpp"

namespace evosip::media {

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
    case DropReason::kFenced:
      return "fenced";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

Relay::Relay(boost::asio::io_context& io, const RelaySettings& settings, PortRange ports,
             RelayShared& shared, const runtime::Clock& clock)
    : io_(io),
      settings_(settings),
      shared_(shared),
      ports_(ports),
      clock_(clock),
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

int64_t Relay::steadyNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t Relay::nowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.now().time_since_epoch())
      .count();
}

int64_t Relay::wallS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

// With tags given, one of them must belong to the call. Only one has to: a delete after a failed
// INVITE carries the to-tag of a final response the relay never saw.
bool tagsMatch(const Call& call, const Value& body) {
  bool tagGiven = false, tagMatched = false;
  for (std::string_view key : {"from-tag", "to-tag"}) {
    const auto* t = findKey(body, key);
    if (t && t->isString() && !t->asString().empty()) {
      tagGiven = true;
      tagMatched = tagMatched || call.findLeg(t->asString()) != nullptr;
    }
  }
  return !tagGiven || tagMatched;
}

}  // namespace

bencode::Value Relay::remove(const bencode::Value& body) {
  const auto* idv = findKey(body, "call-id");
  const std::string callId = idv && idv->isString() ? std::string(idv->asString()) : "";
  if (callId.empty()) {
    return bencode::ngError("No call-id in message");
  }
  bool fatal = false;
  for (auto f : body.stringList("flags")) {
    fatal = fatal || normalizeFlag(f) == "fatal";
  }
  auto it = calls_.find(callId);
  if (it == calls_.end()) {
    noteDeletedUnknown(callId);
  }
  if (it == calls_.end() || !tagsMatch(*it->second, body)) {
    if (fatal) {
      return bencode::ngError("Call-ID not found or tags didn't match");
    }
    Value reply = bencode::ngOk();
    reply.set("warning", "Call-ID not found or tags didn't match");
    return reply;
  }
  Value reply = callStats(*it->second);
  counters_.deletedSessions.fetch_add(1, std::memory_order_relaxed);
  unpublish(*it->second);
  deleteCall(callId);
  return reply;
}

void Relay::noteDeletedUnknown(const std::string& callId) {
  const int64_t now = nowNs();
  expireDeletedUnknown(now);
  while (deletedUnknown_.size() >= kDeletedKept && !deletedOrder_.empty()) {
    auto oldest = deletedUnknown_.find(deletedOrder_.front().second);
    if (oldest != deletedUnknown_.end() && oldest->second == deletedOrder_.front().first) {
      deletedUnknown_.erase(oldest);
    }
    deletedOrder_.pop_front();
  }
  deletedUnknown_[callId] = now;
  deletedOrder_.emplace_back(now, callId);
}

void Relay::expireDeletedUnknown(int64_t now) {
  while (!deletedOrder_.empty() && now - deletedOrder_.front().first >= kDeletedKeepNs) {
    auto it = deletedUnknown_.find(deletedOrder_.front().second);
    if (it != deletedUnknown_.end() && it->second == deletedOrder_.front().first) {
      deletedUnknown_.erase(it);
    }
    deletedOrder_.pop_front();
  }
}

bencode::Value Relay::query(const bencode::Value& body) {
  const auto* idv = findKey(body, "call-id");
  if (!idv || !idv->isString() || idv->asString().empty()) {
    return bencode::ngError("No call-id in message");
  }
  auto it = calls_.find(std::string(idv->asString()));
  if (it == calls_.end()) {
    return bencode::ngError("Unknown call-id");
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

// --- The report of a call (query, delete), as rtpengine writes it. ---

namespace {

Value endpointDict(const Endpoint& e) {
  Value d = Value::makeDict();
  d.set("family", e.family()).set("address", e.address()).set("port", e.port());
  return d;
}

// Packets, bytes and errors of every RTP ([0]) and RTCP ([1]) stream of a call.
struct CallTotals {
  uint64_t counts[2][3] = {{0, 0, 0}, {0, 0, 0}};
  void add(const Stream& s) {
    auto& t = counts[s.rtcp ? 1 : 0];
    t[0] += s.packets;
    t[1] += s.bytes;
    t[2] += s.errors;
  }
  Value report() const {
    Value totals = Value::makeDict();
    for (int k = 0; k < 2; ++k) {
      Value t = Value::makeDict();
      t.set("packets", counts[k][0]).set("bytes", counts[k][1]).set("errors", counts[k][2]);
      totals.set(k == 0 ? "RTP" : "RTCP", std::move(t));
    }
    return totals;
  }
};

// The clocks a report converts the streams' packet times with.
struct ReportTime {
  int64_t wallS;
  int64_t nowNs;
};

Value streamStats(const Stream& s, ReportTime t) {
  Value sd = Value::makeDict();
  sd.set("local port", s.localPort);
  if (s.latch.destination.known()) {
    sd.set("endpoint", endpointDict(s.latch.destination));
  }
  if (s.advertised.known()) {
    sd.set("advertised endpoint", endpointDict(s.advertised));
  }
  if (s.lastPacketNs != 0) {
    sd.set("last packet", t.wallS - (t.nowNs - s.lastPacketNs) / 1000000000);
  }
  Value f = Value::makeList();
  f.add(s.rtcp ? "RTCP" : "RTP");
  if (s.latch.destination.known()) {
    f.add("filled");
  }
  if (s.latch.latched) {
    f.add("confirmed");
  }
  sd.set("flags", std::move(f));
  Value st = Value::makeDict();
  st.set("packets", s.packets).set("bytes", s.bytes).set("errors", s.errors);
  sd.set("stats", std::move(st));
  return sd;
}

Value slotStats(const MediaSlot& slot, size_t index, ReportTime t, CallTotals& totals) {
  Value m = Value::makeDict();
  m.set("index", static_cast<int64_t>(index + 1))
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
    if (s) {
      streams.add(streamStats(*s, t));
      totals.add(*s);
    }
  }
  m.set("streams", std::move(streams));
  return m;
}

Value legStats(const Leg& leg, ReportTime t, CallTotals& totals) {
  Value l = Value::makeDict();
  l.set("tag", leg.tag).set("created", leg.createdWall);
  if (!leg.label.empty()) {
    l.set("label", leg.label);
  }
  if (leg.peer) {
    l.set("in dialogue with", leg.peer->tag);
  }
  Value medias = Value::makeList();
  for (size_t i = 0; i < leg.media.size(); ++i) {
    medias.add(slotStats(leg.media[i], i, t, totals));
  }
  l.set("medias", std::move(medias));
  return l;
}

}  // namespace

bencode::Value Relay::callStats(const Call& call) const {
  const ReportTime t{wallS(), nowNs()};
  CallTotals totals;
  Value tags = Value::makeDict();
  for (const auto& leg : call.legs) {
    tags.set(leg->tag, legStats(*leg, t, totals));
  }
  Value reply = bencode::ngOk();
  reply.set("created", call.createdWall)
      .set("last signal", call.lastSignalWall)
      .set("tags", std::move(tags))
      .set("totals", totals.report());
  return reply;
}

// --- Deletion: by command, by idle timeout, at shutdown. ---

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
      if (slot.rtp && slot.pooled) {
        ports_.release(slot.rtp->localPort);
      }
    }
  }
  calls_.erase(it);
  counters_.streams.fetch_sub(streams, std::memory_order_relaxed);
  counters_.sessions.fetch_sub(1, std::memory_order_relaxed);
  shared_.sessions.fetch_sub(1);
}

namespace {

// The relay's clock at the call's last offer, answer or packet.
int64_t lastActivityNs(const Call& call) {
  int64_t last = call.lastSignalNs;
  for (const auto& leg : call.legs) {
    for (const auto& slot : leg->media) {
      for (const auto* s : {slot.rtp.get(), slot.rtcp.get()}) {
        if (s) {
          last = std::max(last, s->lastPacketNs);
        }
      }
    }
  }
  return last;
}

}  // namespace

void Relay::onTick() {
  if (sessionSink_) {
    publishLatchChanges();
  }
  expireDeletedUnknown(nowNs());
  if (settings_.timeoutS == 0) {
    return;
  }
  const int64_t now = nowNs();
  const int64_t limit = static_cast<int64_t>(settings_.timeoutS) * 1000000000;
  std::vector<std::string> idle;
  for (const auto& [id, call] : calls_) {
    if (now - lastActivityNs(*call) > limit) {
      idle.push_back(id);
    }
  }
  for (const auto& id : idle) {
    log::get("media")->info("call {}: no media for {} s, deleted", id, settings_.timeoutS);
    counters_.timeoutSessions.fetch_add(1, std::memory_order_relaxed);
    unpublish(*calls_.at(id));
    deleteCall(id);
  }
}

size_t Relay::dropCalls(const std::string& owner) {
  std::vector<std::string> ids;
  for (const auto& [id, call] : calls_) {
    if (call->owner == owner) {
      ids.push_back(id);
    }
  }
  for (const auto& id : ids) {
    deleteCall(id);
  }
  return ids.size();
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
