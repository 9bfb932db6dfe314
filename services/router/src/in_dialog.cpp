// Step 3 of the request path, in-dialog requests: a To-tagged request goes on only along a
// dialog the platform knows (its record in the store, or an early dialog of this worker) and
// only towards the other party; a BYE removes the record and the relay's session, a re-offer
// goes through the dialog's relay. The ACK of a 2xx is checked the same way.
#include <evosip/router/router.hpp>

#include "media_rules.hpp"

namespace evosip::router {

using transaction::TransactionId;
using namespace detail;

void Router::validateInDialog(TransactionId id, const sip::Message& req,
                              const transaction::PreprocessedRoute& route) {
  // A PRACK or UPDATE of an early dialog of this worker: no store read.
  if (const auto* early = earlyDialogs(req.callId())) {
    const auto check = checkInDialog(req, nextHopOf(route), *early);
    if (check.verdict == InDialogVerdict::kForward) {
      forward(id, {transaction::Target{}}, forwardOptions());
      return;
    }
  }
  // One store read per in-dialog request; a BYE and a re-offer use the same read.
  store_->getDialogs(std::string(req.callId()), [this, id, alive = std::weak_ptr<char>(alive_)](
                                                    Result<std::vector<store::DialogRecord>> r) {
    if (alive.expired()) {
      return;
    }
    if (!r) {
      storeFailed(id);
      return;
    }
    onDialogsLoaded(id, *r);
  });
}

void Router::onDialogsLoaded(TransactionId id, const std::vector<store::DialogRecord>& dialogs) {
  withRequest(id, [&](const sip::Message& req) {
    const auto check = checkInDialog(req, nextHopOf(proxy_.preprocessedRoute(req)), dialogs);
    switch (check.verdict) {
      case InDialogVerdict::kForward:
        forwardInDialog(id, req, *check.dialog);
        return;
      case InDialogVerdict::kForeignHop:
        counters_.reject(Rejection::kForeignHop);
        refuse(id, 403, "Not Along The Dialog");
        return;
      case InDialogVerdict::kMalformed:
        refuse(id, 400, "Bad Dialog Identifiers");
        return;
      case InDialogVerdict::kNoDialog:
        counters_.reject(Rejection::kNoDialog);
        refuse(id, 481, "Call/Transaction Does Not Exist");
        return;
    }
  });
}

void Router::forwardInDialog(TransactionId id, const sip::Message& req,
                             const store::DialogRecord& dialog) {
  // The route set carries the way (the edge Record-Routes); any router serves the dialog.
  if (req.method() == sip::Method::kBye) {
    removeDialog(dialog);
    mediaCalls_.erase(std::string(req.callId()));
  }
  if (req.method() == sip::Method::kInvite) {
    noteTargetRefresh(id, req, dialog);
  }
  auto relay = relayEndpoint(dialog.mediaRelay);
  if (req.method() != sip::Method::kInvite || !hasSdp(req) || dialog.mediaRelay.empty() || !relay) {
    forward(id, {transaction::Target{}}, forwardOptions());
    return;
  }
  // A re-INVITE with an offer: through the relay of the dialog.
  const CallerAddress caller = callerAddress(req);
  sendOffer(id, PendingForward{{transaction::Target{}}, forwardOptions()},
            offerOf(req, false, caller.behindNat ? caller.source : std::string_view{}),
            RelayChoice{dialog.mediaRelay, *relay, SIZE_MAX, 1});
}

void Router::noteTargetRefresh(TransactionId id, const sip::Message& req,
                               const store::DialogRecord& dialog) {
  const auto* c = req.find(sip::HeaderId::kContact);
  if (c == nullptr) {
    return;
  }
  auto na = sip::parseNameAddr(c->value);
  if (!na || na->star) {
    return;
  }
  const bool fromCaller = tagOf(req.from()) == dialog.id.fromTag;
  const std::string& contact = fromCaller ? dialog.callerContact : dialog.calleeContact;
  if (contact == na->uriText) {
    return;
  }
  store::DialogRecord moved = dialog;
  (fromCaller ? moved.callerContact : moved.calleeContact) = std::string(na->uriText);
  refreshes_[id.value] = std::move(moved);
}

void Router::applyTargetRefresh(TransactionId server) {
  auto it = refreshes_.find(server.value);
  if (it == refreshes_.end()) {
    return;
  }
  store_->putDialog(std::move(it->second),
                    [this, alive = std::weak_ptr<char>(alive_)](Result<void> done) {
                      if (!alive.expired() && !done) {
                        RouterCounters::bump(counters_.storeErrors);
                      }
                    });
  refreshes_.erase(it);
}

void Router::removeDialog(const store::DialogRecord& d) {
  if (!d.mediaRelay.empty()) {
    deleteMedia(d.mediaRelay, d.id.callId, d.id.fromTag);
  }
  store_->removeDialog(d.id, [this, alive = std::weak_ptr<char>(alive_)](Result<void> done) {
    if (!alive.expired()) {
      RouterCounters::bump(done ? counters_.dialogsRemoved : counters_.storeErrors);
    }
  });
}

// The ACK of a 2xx (no transaction): validated like any in-dialog request, never answered.

bool Router::onAck(const sip::Message& ack, const transport::Source&) {
  auto to = ack.to();
  if (!to || !to->tag().has_value()) {
    counters_.reject(Rejection::kAckDropped);  // matches no INVITE we answered: nothing to do
    return false;
  }
  std::string text(ack.buffer().substr(ack.startOffset(), ack.size() - ack.startOffset()));
  const std::string callId(ack.callId());
  store_->getDialogs(callId, [this, text = std::move(text), alive = std::weak_ptr<char>(alive_)](
                                 Result<std::vector<store::DialogRecord>> r) {
    if (alive.expired()) {
      return;
    }
    if (!r) {
      RouterCounters::bump(counters_.storeErrors);
      return;
    }
    onAckDialogs(text, *r);
  });
  return false;
}

void Router::onAckDialogs(const std::string& text,
                          const std::vector<store::DialogRecord>& dialogs) {
  auto ack = sip::Message::parse(text);
  if (!ack) {
    return;
  }
  const auto route = proxy_.preprocessedRoute(*ack);
  const auto check = checkInDialog(*ack, nextHopOf(route), dialogs);
  if (check.verdict == InDialogVerdict::kForward && ackWaitsForName(text, route)) {
    return;  // forwarded once its next hop's name is answered (next_hop_dns.cpp)
  }
  if (check.verdict != InDialogVerdict::kForward || !proxy_.forwardAck(*ack, forwardOptions())) {
    counters_.reject(Rejection::kAckDropped);
  }
}

}  // namespace evosip::router
