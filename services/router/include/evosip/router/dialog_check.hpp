#pragma once
// In-dialog validation (the router's in-dialog step): a request with a To tag is forwarded only
// for a dialog the platform knows (its record in the store, or an early dialog of a pending
// INVITE), and only towards an element of that dialog: a hop of its route set or the remote
// target of the other party (a request of the caller goes to the callee's contact, one of the
// callee to the caller's; never to the sender's own contact). Anything else is a made-up dialog,
// the open-relay and toll-fraud path. Pure functions over outside input: fuzzed by
// tests/fuzz/dialog_check_fuzzer.cpp.

#include <string_view>
#include <vector>

#include <evosip/sip/message.hpp>
#include <evosip/store/types.hpp>

namespace evosip::router {

enum class InDialogVerdict {
  kForward,     // a known dialog, towards one of its elements
  kNoDialog,    // no dialog with these tags: 481
  kForeignHop,  // a known dialog, but the next hop is none of its elements: 403
  kMalformed,   // no To tag, no From tag or no Call-ID: 400
};

struct InDialogCheck {
  InDialogVerdict verdict = InDialogVerdict::kNoDialog;
  const store::DialogRecord* dialog = nullptr;  // the matched record (kForward, kForeignHop)
  bool fromCaller = false;                      // the request goes caller -> callee
};

// The record of `dialogs` whose tags are the request's (From/To in either direction).
// `nextHop`: the URI the request goes to next (the first Route value that is not ours, else the
// Request-URI), as written ("<sip:...;lr>" or a bare URI).
InDialogCheck checkInDialog(const sip::Message& request, std::string_view nextHop,
                            const std::vector<store::DialogRecord>& dialogs);

// The next hop names an element of the dialog a request in this direction may go to: same host
// (case-insensitive) and port (5060 when absent) as a route-set entry, or as the callee's
// contact when `fromCaller` (the request's From tag is the record's caller tag), else the
// caller's contact.
bool hopOfDialog(const store::DialogRecord& dialog, std::string_view nextHop, bool fromCaller);

}  // namespace evosip::router
