#include <algorithm>
#include <string_view>

#include <evosip/base/hash.hpp>
#include <evosip/edge/auth_ban.hpp>

namespace evosip::edge {

AuthBanTable::AuthBanTable(const AuthBanSettings& settings, uint64_t hashKey)
    : failures_(settings.failures),
      windowNs_(std::chrono::duration_cast<std::chrono::nanoseconds>(settings.window).count()),
      banNs_(std::chrono::duration_cast<std::chrono::nanoseconds>(settings.banFor).count()),
      hashKey_(hashKey),
      slots_(settings.failures > 0
                 ? std::max<size_t>(kWays, (settings.slots + kWays - 1) / kWays * kWays)
                 : 0) {}

uint64_t AuthBanTable::tagOf(const boost::asio::ip::address& source) const {
  uint64_t h;
  if (source.is_v4()) {
    const auto b = source.to_v4().to_bytes();
    h = hash64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), hashKey_);
  } else {
    const auto b = source.to_v6().to_bytes();
    h = hash64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), hashKey_);
  }
  return h | 1;  // 0 marks a free slot
}

const AuthBanTable::Slot* AuthBanTable::find(uint64_t tag) const {
  const size_t set = (tag >> 1) % (slots_.size() / kWays);
  for (size_t i = set * kWays; i < (set + 1) * kWays; ++i) {
    if (slots_[i].tag == tag) {
      return &slots_[i];
    }
  }
  return nullptr;
}

AuthBanTable::Slot* AuthBanTable::find(uint64_t tag) {
  return const_cast<Slot*>(static_cast<const AuthBanTable*>(this)->find(tag));
}

AuthBanTable::Slot* AuthBanTable::claim(uint64_t tag, int64_t nowNs) {
  const size_t set = (tag >> 1) % (slots_.size() / kWays);
  Slot* victim = nullptr;
  for (size_t i = set * kWays; i < (set + 1) * kWays; ++i) {
    Slot& s = slots_[i];
    const bool idle =
        s.tag == 0 || (s.bannedUntilNs <= nowNs && s.windowStartNs + windowNs_ <= nowNs);
    if (idle) {
      victim = &s;
      break;
    }
    // Otherwise the slot with the fewest failures that is not banned gives way.
    if (s.bannedUntilNs <= nowNs && (victim == nullptr || s.failures < victim->failures)) {
      victim = &s;
    }
  }
  if (victim != nullptr) {
    *victim = Slot{tag, nowNs, 0, 0};
  }
  return victim;
}

bool AuthBanTable::banned(const boost::asio::ip::address& source, int64_t nowNs) const {
  if (!enabled()) {
    return false;
  }
  const Slot* s = find(tagOf(source));
  return s != nullptr && s->bannedUntilNs > nowNs;
}

bool AuthBanTable::recordFailure(const boost::asio::ip::address& source, int64_t nowNs) {
  if (!enabled()) {
    return false;
  }
  const uint64_t tag = tagOf(source);
  Slot* s = find(tag);
  if (s == nullptr) {
    s = claim(tag, nowNs);
    if (s == nullptr) {
      return false;  // every slot of the set holds a ban
    }
  }
  if (s->bannedUntilNs > nowNs) {
    return false;  // already banned (a request answered before the ban)
  }
  if (s->windowStartNs + windowNs_ <= nowNs) {
    s->windowStartNs = nowNs;
    s->failures = 0;
  }
  if (++s->failures < failures_) {
    return false;
  }
  s->failures = 0;
  s->windowStartNs = nowNs;
  s->bannedUntilNs = nowNs + banNs_;
  return true;
}

size_t AuthBanTable::activeBans(int64_t nowNs) const {
  size_t n = 0;
  for (const auto& s : slots_) {
    n += s.tag != 0 && s.bannedUntilNs > nowNs ? 1 : 0;
  }
  return n;
}

}  // namespace evosip::edge
