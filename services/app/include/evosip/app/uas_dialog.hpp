#pragma once
// The UAS side of one of the app's dialogs (RFC 3261 12.1.1): what the INVITE set up (tags, the
// route set from Record-Route, the remote target from Contact), what a target refresh changes,
// how our BYE is addressed, and our 2xx until its ACK (13.3.1.4).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/runtime/clock.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::app {

enum class DialogState : uint8_t {
  kEarly,      // no 2xx yet (183 maybe)
  kAnswered,   // our 2xx is out, its ACK not in
  kConfirmed,  // the ACK came (or never will: 64*T1 passed)
  kEnded,      // BYE sent or received
};

struct UasDialog {
  std::string callId, localTag, remoteTag;
  std::string fromValue;  // the INVITE's From (their tag): To of our requests
  std::string toValue;    // the INVITE's To + our tag: From of our requests
  std::string remoteTarget;
  std::vector<std::string> routeSet;  // Record-Route, in order
  std::string recordRoute;            // Record-Route lines copied into 18x/2xx
  std::string callerUri, callerUser;
  transport::Source source;  // where the INVITE came from
  uint32_t localCseq = 0;
  uint32_t remoteCseq = 0;
  DialogState state = DialogState::kEarly;

  // The dialog an initial INVITE sets up, with our tag.
  static UasDialog fromInvite(const sip::Message& invite, std::string localTag,
                              const transport::Source& source);
  // A target refresh (re-INVITE): the first Contact, when there is one.
  void refreshTarget(const sip::Message& request);
  // Whether a request's From and To tags are this dialog's.
  bool matches(const sip::Message& request) const;

  struct Request {
    std::string text;
    transport::Endpoint to;
  };
  // Our BYE (a new local CSeq): to the first route (loose routing) or the remote target; a host
  // name (no DNS in the app) falls back to where the INVITE came from.
  Request bye(std::string_view viaHost, uint16_t viaPort, std::string_view branch);
  // Any request of ours in the dialog, addressed as bye() is, with CSeq `cseq` (a new one is
  // taken by the caller: bye() and a re-INVITE count localCseq up, the ACK of a 2xx reuses its
  // INVITE's). `headers`: complete lines; `body` with its Content-Type among them.
  Request request(std::string_view method, uint32_t cseq, std::string_view viaHost,
                  uint16_t viaPort, std::string_view branch, std::string_view headers = {},
                  std::string_view body = {}) const;
};

// Our 2xx to an INVITE (or re-INVITE) until its ACK: sent again at T1, doubling up to T2, given
// up 64*T1 after it was first sent (RFC 3261 13.3.1.4).
struct OkRetransmission {
  using TimePoint = runtime::Clock::time_point;
  static constexpr std::chrono::milliseconds kT1{500};
  static constexpr std::chrono::milliseconds kT2{4000};

  std::string bytes;  // the 2xx, also for a retransmitted INVITE
  uint32_t cseq = 0;
  transport::Destination to;
  TimePoint next{}, giveUp{};
  std::chrono::milliseconds interval = kT1;

  void start(TimePoint now) {
    interval = kT1;
    next = now + kT1;
    giveUp = now + 64 * kT1;
  }
  enum class Due : uint8_t { kNothing, kResend, kGiveUp };
  Due poll(TimePoint now) {
    if (now >= giveUp) {
      return Due::kGiveUp;
    }
    if (now < next) {
      return Due::kNothing;
    }
    interval = std::min(interval * 2, kT2);
    next = now + interval;
    return Due::kResend;
  }
};

// The response `code` to `request` with an SDP body, the extra header lines and our tag;
// "" when the request cannot be answered.
std::string responseWithSdp(const sip::Message& request, int code, std::string_view reason,
                            std::string_view localTag, std::string_view headers,
                            std::string_view sdp);

}  // namespace evosip::app
