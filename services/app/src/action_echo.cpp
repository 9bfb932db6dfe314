// Echo: answers and sends every RTP packet of the negotiated codec back at once, in the app's own
// stream (SSRC, sequence, timestamps); no transcoding.
#include <evosip/app/call_action.hpp>

namespace evosip::app {

namespace {

constexpr size_t kMaxPayload = 1024;

class Echo final : public CallAction {
 public:
  void load(Call&, CallControl&) override {}
  bool earlyMedia(const Call&) const override { return false; }
  void start(Call&, CallControl&) override {}
  void onAudio(Call& call, CallControl& control, const rtp::RtpPacket& packet) override {
    if (call.media.negotiated.canSend() && !packet.payload.empty() &&
        packet.payload.size() <= kMaxPayload) {
      control.sendNow(call, packet.payload);
    }
  }
  bool needsInput() const override { return true; }
};

}  // namespace

std::unique_ptr<CallAction> makeEcho() {
  return std::make_unique<Echo>();
}

}  // namespace evosip::app
