// The offer and answer commands of one worker's relay, as named steps read top to bottom
// (rtpengine's call_offer_ng / call_answer_ng):
//   readOfferAnswer   the ng options and the SDP, validated before anything is allocated
//   findOrCreateCall  the call of the Call-ID; an offer creates it (drain, max_sessions)
//   pickLegs          the leg that sent the SDP and the leg that receives the rewritten one
//   setUpMedia        per m= line: port pairs for both legs (allocateSlots), the sender's
//                     signalled destination, the forwarding between the legs, the ports to write
//   sdp::rewrite      the SDP with the relay's address and ports
//   offerAnswerReply  the ng reply
// A step that fails ends the command with its error, and deletes the call if this command
// created it.
#include <fmt/format.h>

#include <evosip/bencode/ng_frame.hpp>
#include <evosip/media/relay.hpp>
#include <evosip/sdp/sdp.hpp>

#include "call.hpp"

namespace evosip::media {

using bencode::Value;

// One offer or answer in progress. `sdp` holds views into opts.sdp: a Negotiation is filled in
// place and never moved.
struct Negotiation {
  bool isAnswer = false;
  NgOptions opts;
  sdp::SessionDescription sdp;
  Call* call = nullptr;
  bool created = false;     // this command created the call
  Leg* sender = nullptr;    // whose SDP this is
  Leg* receiver = nullptr;  // who receives the rewritten SDP
  sdp::RewriteOptions rewrite;
};

namespace {

// The sender's endpoints for one m= line, as signalling gives them (rtpengine: media address >
// SIP source address > SDP); unknown when it names none (c=0.0.0.0, a rejected line).
struct SignalledEndpoints {
  Endpoint rtp, rtcp;
  bool fromSip = false;  // from signalling, not the SDP: may restrict who latches
};

SignalledEndpoints signalledEndpoints(const Negotiation& n, const sdp::MediaDescription& m) {
  const NgOptions& opts = n.opts;
  SignalledEndpoints out;
  out.fromSip = !opts.mediaAddress.empty() || opts.sipSourceAddress;
  const sdp::Connection* c = sdp::effectiveConnection(n.sdp, m);
  // c=0.0.0.0 names no destination either way (hold, or an ICE placeholder: the first packet
  // latches the real one).
  const bool held = c != nullptr && c->isHoldAddress();
  std::string addr;
  if (!opts.mediaAddress.empty()) {
    addr = opts.mediaAddress;
  } else if (opts.sipSourceAddress || c == nullptr) {
    addr = opts.receivedFrom;
  } else {
    addr = std::string(c->address);
  }
  if (held || m.isRejected() || addr.empty()) {
    return out;
  }
  if (auto e = Endpoint::parse(addr, m.port)) {
    out.rtp = *e;
  }
  std::string rtcpAddr = addr;
  if (m.rtcpAddress && opts.mediaAddress.empty() && !opts.sipSourceAddress) {
    rtcpAddr = std::string(m.rtcpAddress->address);
  }
  if (auto e = Endpoint::parse(rtcpAddr, sdp::effectiveRtcpPort(m))) {
    out.rtcp = *e;
  }
  return out;
}

// Where packets for the sender go on this stream, as the signalling now says.
void signalDestination(Stream& stream, const Endpoint& ep, const LatchPolicy& policy,
                       bool fromSip) {
  if (!(stream.advertised == ep)) {
    // A new address from signalling: forget what was learned (re-INVITE to a new phone).
    stream.advertised = ep;
    stream.latch.destination = ep;
    stream.latch.signalled = ep;
    stream.latch.latched = false;
  } else if (policy.asymmetric) {
    stream.latch.destination = ep;
    stream.latch.latched = false;
  }
  stream.latch.signalledFromSip = fromSip;
}

void describeSlots(MediaSlot& s, MediaSlot& r, const sdp::MediaDescription& m) {
  s.type = std::string(m.media);
  s.protocol = std::string(m.proto);
  s.rtcpMux = m.rtcpMux;
  s.rejected = m.isRejected();
  if (r.type.empty()) {
    r.type = s.type;
    r.protocol = s.protocol;
  }
}

// The receiver sends to its own slot's ports: those go into the SDP it receives.
sdp::MediaRewrite mediaRewrite(const MediaSlot& r, const sdp::MediaDescription& m,
                               std::string_view advertise) {
  sdp::MediaRewrite mr;
  mr.address = advertise;
  if (r.rtp && !m.isRejected()) {
    mr.rtpPort = r.rtp->localPort;
    mr.rtcpPort = m.rtcpMux ? 0 : r.rtcp->localPort;
  }
  return mr;
}

Value offerAnswerReply(const Negotiation& n, std::string sdp) {
  Value reply = bencode::ngOk();
  reply.set("sdp", std::move(sdp));
  if (!n.opts.ignoredFlags.empty()) {
    std::string w = "Ignored unknown flags:";
    for (const auto& f : n.opts.ignoredFlags) {
      w += " " + f;
    }
    reply.set("warning", w);
  }
  return reply;
}

}  // namespace

bencode::Value Relay::offer(const bencode::Value& body) {
  return offerOrAnswer(body, false);
}

bencode::Value Relay::answer(const bencode::Value& body) {
  return offerOrAnswer(body, true);
}

bencode::Value Relay::offerOrAnswer(const bencode::Value& body, bool isAnswer) {
  Negotiation n;
  n.isAnswer = isAnswer;
  if (auto ok = readOfferAnswer(body, n); !ok) {
    return bencode::ngError(ok.error().message);
  }
  const int64_t wall = wallS();
  if (auto ok = findOrCreateCall(n, wall); !ok) {
    return bencode::ngError(ok.error().message);
  }
  auto reply = negotiate(n, wall);
  if (!reply) {
    if (n.created) {
      deleteCall(n.opts.callId);
    }
    return bencode::ngError(reply.error().message);
  }
  publish(*n.call);
  return std::move(*reply);
}

Result<void> Relay::readOfferAnswer(const bencode::Value& body, Negotiation& n) const {
  auto opts = readNgOptions(body);
  if (!opts) {
    return tl::unexpected(opts.error());
  }
  n.opts = std::move(*opts);
  const NgOptions& o = n.opts;
  if (o.callId.empty()) {
    return makeError(Errc::kInvalid, "No call-id in message");
  }
  if (o.fromTag.empty()) {
    return makeError(Errc::kInvalid, "No from-tag in message");
  }
  if (n.isAnswer && o.toTag.empty()) {
    return makeError(Errc::kInvalid, "No to-tag in message");
  }
  if (o.sdp.empty()) {
    return makeError(Errc::kInvalid, "No SDP body in message");
  }
  auto sd = sdp::parse(o.sdp);
  if (!sd) {
    return makeError(Errc::kParse, "Failed to parse SDP: " + sd.error().message);
  }
  n.sdp = std::move(*sd);
  if (n.sdp.media.size() > settings_.maxStreams) {
    return makeError(Errc::kInvalid, fmt::format("Too many media streams: {} m= lines, at most {}",
                                                 n.sdp.media.size(), settings_.maxStreams));
  }
  if (o.addressFamily &&
      (*o.addressFamily == "IP6") != Endpoint::parse(settings_.advertise, 0)->isV6()) {
    return makeError(Errc::kInvalid,
                     fmt::format("Unsupported: address family {} (media.address {} is the only "
                                 "interface)",
                                 *o.addressFamily, settings_.advertise));
  }
  return {};
}

Result<void> Relay::findOrCreateCall(Negotiation& n, int64_t wall) {
  if (auto it = calls_.find(n.opts.callId); it != calls_.end()) {
    n.call = it->second.get();
    return {};
  }
  if (n.isAnswer) {
    return makeError(Errc::kNotFound, "Unknown call-id");
  }
  if (shared_.draining.load(std::memory_order_relaxed) ||
      shared_.standby.load(std::memory_order_relaxed)) {
    counters_.rejectedSessions.fetch_add(1, std::memory_order_relaxed);
    return makeError(Errc::kUnavailable, "draining");
  }
  const int64_t before = shared_.sessions.fetch_add(1);
  if (settings_.maxSessions != 0 && before >= static_cast<int64_t>(settings_.maxSessions)) {
    shared_.sessions.fetch_sub(1);
    counters_.rejectedSessions.fetch_add(1, std::memory_order_relaxed);
    return makeError(Errc::kUnavailable, "Parallel session limit reached");
  }
  auto call = std::make_unique<Call>();
  call->callId = n.opts.callId;
  call->createdWall = wall;
  n.call = calls_.emplace(n.opts.callId, std::move(call)).first->second.get();
  n.created = true;
  counters_.sessions.fetch_add(1, std::memory_order_relaxed);
  counters_.managedSessions.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Result<bencode::Value> Relay::negotiate(Negotiation& n, int64_t wall) {
  auto legs = pickLegs(*n.call, n.opts, n.isAnswer, wall);
  if (!legs) {
    return tl::unexpected(legs.error());
  }
  std::tie(n.sender, n.receiver) = *legs;
  n.sender->peer = n.receiver;
  n.receiver->peer = n.sender;
  if (!n.opts.label.empty()) {
    n.sender->label = n.opts.label;
  }
  if (!n.opts.viaBranch.empty()) {
    n.sender->viaBranch = n.opts.viaBranch;
  }
  n.sender->policy = LatchPolicy{n.opts.asymmetric, n.opts.strictSource, n.opts.mediaHandover};
  if (auto ok = setUpMedia(n); !ok) {
    return tl::unexpected(ok.error());
  }
  auto sdp = sdp::rewrite(n.sdp, n.rewrite);
  if (!sdp) {
    return makeError(sdp.error().code, "Failed to rewrite SDP: " + sdp.error().message);
  }
  n.call->lastSignalWall = wall;
  n.call->lastSignalNs = nowNs();
  return offerAnswerReply(n, std::move(*sdp));
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

Result<void> Relay::setUpMedia(Negotiation& n) {
  // A call restored from another relay keeps that relay's address.
  const std::string& advertise =
      n.call->advertise.empty() ? settings_.advertise : n.call->advertise;
  n.rewrite.replaceOrigin = n.opts.replaceOrigin;
  n.rewrite.originAddress = advertise;
  n.rewrite.removeIce = n.opts.removeIce;
  n.rewrite.addRtcp = !n.opts.noRtcpAttribute;
  bool allHeld = !n.sdp.media.empty();
  for (size_t i = 0; i < n.sdp.media.size(); ++i) {
    const sdp::MediaDescription& m = n.sdp.media[i];
    if (auto ok = allocateSlots(n, i); !ok) {
      return ok;
    }
    MediaSlot& s = n.sender->media[i];
    MediaSlot& r = n.receiver->media[i];
    describeSlots(s, r, m);
    // Only without ICE and without a direction attribute is c=0.0.0.0 the old way of holding a
    // call (sdp::isOnHold), which the rewrite turns into sendonly.
    allHeld = allHeld && sdp::isOnHold(n.sdp, m) && !m.direction && !n.sdp.direction;
    if (s.rtp) {
      const SignalledEndpoints ep = signalledEndpoints(n, m);
      signalDestination(*s.rtp, ep.rtp, n.sender->policy, ep.fromSip);
      signalDestination(*s.rtcp, ep.rtcp, n.sender->policy, ep.fromSip);
    }
    connectSlots(s, r);
    n.rewrite.media.push_back(mediaRewrite(r, m, advertise));
  }
  if (allHeld && !n.opts.originalSendrecv) {
    // Old-style hold (c=0.0.0.0 and no direction attribute): the relay's address replaces the
    // zero address, so say sendonly explicitly, as rtpengine does.
    n.rewrite.direction = sdp::Direction::kSendOnly;
  }
  return {};
}

Result<void> Relay::allocateSlots(Negotiation& n, size_t index) {
  if (n.sdp.media[index].isRejected()) {
    // A rejected line (port 0) keeps its place in both legs, without ports.
    for (Leg* leg : {n.sender, n.receiver}) {
      while (leg->media.size() <= index) {
        leg->media.emplace_back();
      }
    }
    return {};
  }
  for (Leg* leg : {n.sender, n.receiver}) {
    if (auto ok = ensureSlot(*n.call, *leg, index); !ok) {
      return ok;
    }
  }
  return {};
}

}  // namespace evosip::media
