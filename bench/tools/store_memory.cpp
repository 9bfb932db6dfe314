// store_memory: heap bytes per binding and per dialog in the router's memory store
// (store::MemoryDatabase), with realistic field sizes (a softphone registered through an edge:
// Path with a flow token, +sip.instance, User-Agent; a dialog record-routed by an edge on both
// sides, with a media relay reference). Issue 3's target: < 1 KiB per binding and < 4 KiB per
// dialog with 100,000 of each. Run by bench/store_memory.sh.
//
//   store_memory [--bindings N] [--dialogs N]
//
// Heap in use is read with mallinfo2() (glibc) before and after the inserts, so it counts every
// allocation the store makes (strings, vectors, hash nodes, indexes), not just sizeof().

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <string>

#include <evosip/base/hex.hpp>
#include <evosip/store/memory_store.hpp>

namespace {

using evosip::store::Binding;
using evosip::store::DialogRecord;
using evosip::store::MemoryDatabase;

size_t heapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

std::string hex(uint64_t v, int digits) {
  std::string s;
  evosip::appendHex(s, v, digits);
  return s;
}

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Binding binding(size_t i, evosip::store::TimePoint expires) {
  Binding b;
  char user[32];
  std::snprintf(user, sizeof user, "user%06zu", i);
  b.aor = std::string(user) + "@evosip.local";
  b.contact = "sip:" + std::string(user) + "@192.0.2." + std::to_string(i % 250 + 1) + ":" +
              std::to_string(5060 + i % 1000) + ";transport=udp";
  b.path = {"<sip:" + hex(mix(i), 16) + hex(mix(i + 1), 16) + "@10.0.0.5:5060;lr>"};
  b.expires = expires;
  b.callId = hex(mix(i * 3), 16) + hex(mix(i * 3 + 1), 16) + "@192.0.2.10";
  b.cseq = 20;
  b.instanceId = "<urn:uuid:" + hex(mix(i * 5), 8) + "-" + hex(mix(i * 5 + 1), 4) + "-4" +
                 hex(mix(i * 5 + 2), 3) + "-a" + hex(mix(i * 5 + 3), 3) + "-" +
                 hex(mix(i * 5 + 4), 12) + ">";
  b.regId = 1;
  b.received =
      "udp:192.0.2." + std::to_string(i % 250 + 1) + ":" + std::to_string(40000 + i % 20000);
  b.userAgent = "Linphone-Desktop/5.2.6 (belle-sip/5.2.94)";
  b.router = "evosip-router-7d9f8c5b6-x2kqz:5070";
  return b;
}

DialogRecord dialog(size_t i, evosip::store::TimePoint now) {
  DialogRecord d;
  d.id.callId = hex(mix(i * 7), 16) + hex(mix(i * 7 + 1), 16) + "@192.0.2.10";
  d.id.fromTag = hex(mix(i * 7 + 2), 10);
  d.id.toTag = hex(mix(i * 7 + 3), 12);
  const std::string edge =
      "<sip:" + hex(mix(i * 7 + 4), 16) + hex(mix(i * 7 + 5), 16) + "@10.0.0.5:5060;lr>";
  d.callerRouteSet = {edge};
  d.calleeRouteSet = {"<sip:" + hex(mix(i * 7 + 6), 32) + "@10.0.0.6:5060;lr>"};
  d.callerContact = "sip:alice@192.0.2." + std::to_string(i % 250 + 1) + ":5062;transport=udp";
  d.calleeContact = "sip:bob@198.51.100." + std::to_string(i % 250 + 1) + ":5064;transport=udp";
  d.callerCseq = 2;
  d.calleeCseq = 0;
  d.owner = "evosip-router-7d9f8c5b6-x2kqz:5070";
  d.created = now;
  d.expires = now + std::chrono::hours(12);
  d.mediaRelay = "udp:10.0.0.9:2223";
  return d;
}

size_t argValue(int argc, char** argv, const char* name, size_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) {
      return static_cast<size_t>(std::strtoull(argv[i + 1], nullptr, 10));
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t nBindings = argValue(argc, argv, "--bindings", 100000);
  const size_t nDialogs = argValue(argc, argv, "--dialogs", 100000);
  const auto now = evosip::store::systemNow();
  MemoryDatabase db;

  const size_t before = heapInUse();
  for (size_t i = 0; i < nBindings; ++i) {
    if (!db.putBinding(binding(i, now + std::chrono::hours(1)))) {
      std::fprintf(stderr, "putBinding %zu failed\n", i);
      return 1;
    }
  }
  const size_t afterBindings = heapInUse();
  for (size_t i = 0; i < nDialogs; ++i) {
    if (!db.putDialog(dialog(i, now))) {
      std::fprintf(stderr, "putDialog %zu failed\n", i);
      return 1;
    }
  }
  const size_t afterDialogs = heapInUse();
  const auto counts = db.counts();
  if (counts.bindings != nBindings || counts.dialogs != nDialogs) {
    std::fprintf(stderr, "the store holds %zu bindings, %zu dialogs\n", counts.bindings,
                 counts.dialogs);
    return 1;
  }
  const double perBinding =
      nBindings ? static_cast<double>(afterBindings - before) / static_cast<double>(nBindings) : 0;
  const double perDialog =
      nDialogs ? static_cast<double>(afterDialogs - afterBindings) / static_cast<double>(nDialogs)
               : 0;
  const Binding sample = binding(1, now);
  std::printf(
      "bindings %zu: heap %.1f MB, %.0f B per binding (target < 1024 B: %s); "
      "fields as written %zu B\n",
      nBindings, static_cast<double>(afterBindings - before) / 1e6, perBinding,
      perBinding < 1024 ? "MET" : "NOT MET",
      sample.aor.size() + sample.contact.size() + sample.path[0].size() + sample.callId.size() +
          sample.instanceId.size() + sample.received.size() + sample.userAgent.size() +
          sample.router.size());
  std::printf("dialogs %zu: heap %.1f MB, %.0f B per dialog (target < 4096 B: %s)\n", nDialogs,
              static_cast<double>(afterDialogs - afterBindings) / 1e6, perDialog,
              perDialog < 4096 ? "MET" : "NOT MET");
  return perBinding < 1024 && perDialog < 4096 ? 0 : 2;
}
