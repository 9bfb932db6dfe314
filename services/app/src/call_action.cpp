#include <evosip/app/call_action.hpp>

namespace evosip::app {

std::unique_ptr<CallAction> makeCallAction(const CallRequest& request, ActionRefusal& refusal) {
  switch (request.action) {
    case Action::kPlayback:
      return makePlayback(request, refusal);
    case Action::kVoicemail:
      return makeVoicemail(request, refusal);
    case Action::kEcho:
      return makeEcho();
    case Action::kMenu:
      return makeMenu(request, refusal);
    default:
      refusal = {501, "Unknown Action " + request.actionText};
      return nullptr;
  }
}

}  // namespace evosip::app
