// The store's copy of one worker's calls (media.state): the stored form of a call (snapshot),
// handed to the session sink after each offer, answer and latch change, and a call served again
// from its stored form on the relay that took over a dead relay's address or on the relay itself
// after a restart (restore), and the call sockets given up while the relay is fenced.
#include <fmt/format.h>

#include <evosip/media/relay.hpp>

#include "call.hpp"

namespace evosip::media {

namespace {

StreamRecord streamRecord(const Stream& s) {
  StreamRecord r;
  r.port = s.localPort;
  r.destination = s.latch.destination;
  r.signalled = s.latch.signalled;
  r.advertised = s.advertised;
  r.signalledFromSip = s.latch.signalledFromSip;
  r.latched = s.latch.latched;
  return r;
}

LegRecord legRecord(const Call& call, const Leg& leg) {
  LegRecord l;
  l.tag = leg.tag;
  l.label = leg.label;
  l.viaBranch = leg.viaBranch;
  l.policy = leg.policy;
  l.createdWall = leg.createdWall;
  for (size_t i = 0; i < call.legs.size(); ++i) {
    if (call.legs[i].get() == leg.peer) {
      l.peer = static_cast<int32_t>(i);
    }
  }
  for (const auto& slot : leg.media) {
    SlotRecord m;
    m.type = slot.type;
    m.protocol = slot.protocol;
    m.rtcpMux = slot.rtcpMux;
    m.rejected = slot.rejected;
    m.open = slot.rtp != nullptr;
    if (m.open) {
      m.rtp = streamRecord(*slot.rtp);
      m.rtcp = streamRecord(*slot.rtcp);
    }
    l.media.push_back(std::move(m));
  }
  return l;
}

void restoreStream(Stream& s, Leg& leg, const StreamRecord& r) {
  s.leg = &leg;
  s.advertised = r.advertised;
  s.latch.destination = r.destination;
  s.latch.signalled = r.signalled;
  s.latch.signalledFromSip = r.signalledFromSip;
  s.latch.latched = r.latched;
}

}  // namespace

SessionRecord Relay::snapshot(const std::string& callId) const {
  SessionRecord r;
  auto it = calls_.find(callId);
  if (it == calls_.end()) {
    return r;
  }
  const Call& call = *it->second;
  r.callId = call.callId;
  r.address = call.advertise.empty() ? settings_.advertise : call.advertise;
  r.bind = (call.bind.known() ? call.bind : bindAddress_).address();
  r.createdWall = call.createdWall;
  r.lastSignalWall = call.lastSignalWall;
  for (const auto& leg : call.legs) {
    r.legs.push_back(legRecord(call, *leg));
  }
  return r;
}

void Relay::publish(Call& call) {
  if (!sessionSink_) {
    return;
  }
  for (auto& leg : call.legs) {
    leg->latchChanged = false;
  }
  sessionSink_(call.callId, call.owner, encodeSessionRecord(snapshot(call.callId)));
}

void Relay::unpublish(const Call& call) {
  if (sessionSink_) {
    sessionSink_(call.callId, call.owner, std::string());
  }
}

void Relay::publishLatchChanges() {
  for (auto& [id, call] : calls_) {
    for (const auto& leg : call->legs) {
      if (leg->latchChanged) {
        publish(*call);
        break;
      }
    }
  }
}

Result<void> Relay::restore(const SessionRecord& r, const std::string& owner) {
  if (calls_.count(r.callId) != 0) {
    return makeError(Errc::kInvalid, "call " + r.callId + " is already here");
  }
  if (auto deleted = deletedUnknown_.find(r.callId); deleted != deletedUnknown_.end()) {
    deletedUnknown_.erase(deleted);
    if (sessionSink_) {
      sessionSink_(r.callId, owner, std::string());
    }
    return makeError(Errc::kNotFound, "call " + r.callId + " was deleted before it was restored");
  }
  auto bind = Endpoint::parse(r.bind, 0);
  if (!bind || bind->isV6() != bindAddress_.isV6()) {
    return makeError(Errc::kInvalid, "call " + r.callId + ": bind address " + r.bind +
                                         " is not of media.address's family");
  }
  auto call = std::make_unique<Call>();
  call->callId = r.callId;
  call->owner = owner;
  call->advertise = r.address;
  call->bind = *bind;
  call->createdWall = r.createdWall;
  call->lastSignalWall = r.lastSignalWall;
  call->lastSignalNs = nowNs();  // the idle timeout counts from the takeover
  Call& c = *calls_.emplace(r.callId, std::move(call)).first->second;
  shared_.sessions.fetch_add(1);
  counters_.sessions.fetch_add(1, std::memory_order_relaxed);
  counters_.managedSessions.fetch_add(1, std::memory_order_relaxed);
  for (const auto& l : r.legs) {
    c.newLeg(l.tag, l.createdWall);
  }
  for (size_t i = 0; i < r.legs.size(); ++i) {
    if (auto ok = restoreLeg(c, r, i); !ok) {
      deleteCall(r.callId);
      return ok;
    }
  }
  for (size_t i = 0; i < r.legs.size(); ++i) {
    Leg& leg = *c.legs[i];
    if (leg.peer == nullptr) {
      continue;
    }
    for (size_t m = 0; m < std::min(leg.media.size(), leg.peer->media.size()); ++m) {
      connectSlots(leg.media[m], leg.peer->media[m]);
    }
  }
  publish(c);
  return {};
}

Result<void> Relay::restoreLeg(Call& call, const SessionRecord& r, size_t index) {
  const LegRecord& l = r.legs[index];
  Leg& leg = *call.legs[index];
  leg.label = l.label;
  leg.viaBranch = l.viaBranch;
  leg.policy = l.policy;
  leg.peer = l.peer >= 0 ? call.legs[static_cast<size_t>(l.peer)].get() : nullptr;
  for (const SlotRecord& m : l.media) {
    MediaSlot& slot = leg.media.emplace_back();
    slot.type = m.type;
    slot.protocol = m.protocol;
    slot.rtcpMux = m.rtcpMux;
    slot.rejected = m.rejected;
    slot.pooled = false;
    if (!m.open) {
      continue;
    }
    // A call of this relay's own address (a restart) holds a pair of this worker's range: taken
    // in the allocator, so that no new call is offered it (and fails to bind it), and given back
    // when the call ends. A taken-over relay's ports are not this relay's to give.
    const bool reserved = call.owner.empty() && ports_.reserve(m.rtp.port);
    auto rtp = openStream(call.bind, m.rtp.port, false, true);
    if (!rtp) {
      if (reserved) {
        ports_.release(m.rtp.port);
      }
      return tl::unexpected(rtp.error());
    }
    slot.rtp = *rtp;
    slot.pooled = reserved;
    auto rtcp = openStream(call.bind, m.rtcp.port, true, true);
    if (!rtcp) {
      closeStream(*slot.rtp);
      slot.rtp.reset();
      if (reserved) {
        ports_.release(m.rtp.port);
      }
      return tl::unexpected(rtcp.error());
    }
    slot.rtcp = *rtcp;
    restoreStream(*slot.rtp, leg, m.rtp);
    restoreStream(*slot.rtcp, leg, m.rtcp);
    ++call.pairs;
    counters_.streams.fetch_add(2, std::memory_order_relaxed);
  }
  return {};
}

void Relay::releaseSockets() {
  for (auto& [id, call] : calls_) {
    for (auto& leg : call->legs) {
      for (auto& slot : leg->media) {
        if (slot.rtp) {
          releaseSocket(*slot.rtp);
          releaseSocket(*slot.rtcp);
        }
      }
    }
  }
}

Result<void> Relay::rebindCall(Call& call) {
  const bool elsewhere = call.bind.known();
  const Endpoint& where = elsewhere ? call.bind : bindAddress_;
  for (auto& leg : call.legs) {
    for (auto& slot : leg->media) {
      for (Stream* s : {slot.rtp.get(), slot.rtcp.get()}) {
        if (s == nullptr || s->closed || s->fd >= 0) {
          continue;
        }
        if (auto ok = bindStream(*s, where, elsewhere); !ok) {
          return ok;
        }
      }
    }
  }
  return {};
}

size_t Relay::rebindSockets() {
  std::vector<std::string> failed;
  for (auto& [id, call] : calls_) {
    if (auto ok = rebindCall(*call); !ok) {
      unpublish(*call);
      failed.push_back(id);
    }
  }
  for (const auto& id : failed) {
    deleteCall(id);
  }
  return failed.size();
}

}  // namespace evosip::media
