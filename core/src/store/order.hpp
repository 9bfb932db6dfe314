#pragma once
// Orders shared by both backends, so their answers are identical.

#include <algorithm>
#include <vector>

#include <evosip/store/types.hpp>

namespace evosip::store {

// Highest q first (RFC 3261 16.6 tries them in that order), then by contact.
inline void sortBindings(std::vector<Binding>& bindings) {
  std::sort(bindings.begin(), bindings.end(), [](const Binding& a, const Binding& b) {
    if (a.q != b.q) {
      return a.q > b.q;
    }
    return a.contact < b.contact;
  });
}

inline void sortDialogs(std::vector<DialogRecord>& dialogs) {
  std::sort(dialogs.begin(), dialogs.end(), [](const DialogRecord& a, const DialogRecord& b) {
    if (a.id.callId != b.id.callId) {
      return a.id.callId < b.id.callId;
    }
    if (a.id.fromTag != b.id.fromTag) {
      return a.id.fromTag < b.id.fromTag;
    }
    return a.id.toTag < b.id.toTag;
  });
}

}  // namespace evosip::store
