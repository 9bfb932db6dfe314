#include <algorithm>
#include <bit>

#include <evosip/rtp/pacer.hpp>

namespace evosip::rtp {

int JitterHistogram::bucketOf(uint64_t us) {
  if (us < 8) {
    return static_cast<int>(us);
  }
  const int b = std::bit_width(us);  // >= 4
  const int idx = (b - 3) * 8 + static_cast<int>((us >> (b - 4)) & 7);
  return std::min(idx, kBuckets - 1);
}

uint64_t JitterHistogram::bucketUpper(int bucket) {
  if (bucket < 8) {
    return static_cast<uint64_t>(bucket);
  }
  const int b = bucket / 8 + 3;
  const uint64_t sub = static_cast<uint64_t>(bucket % 8);
  const uint64_t lower = (8 + sub) << (b - 4);
  return lower + (uint64_t{1} << (b - 4)) - 1;
}

void JitterHistogram::record(std::chrono::nanoseconds value) {
  const uint64_t us =
      value.count() <= 0 ? 0 : static_cast<uint64_t>(value.count()) / 1000;  // floor to µs
  ++buckets_[bucketOf(us)];
  ++count_;
  max_ = std::max(max_, us);
  sum_ += us;
}

std::chrono::microseconds JitterHistogram::mean() const {
  return std::chrono::microseconds(count_ == 0 ? 0 : sum_ / count_);
}

std::chrono::microseconds JitterHistogram::percentile(double p) const {
  if (count_ == 0) {
    return std::chrono::microseconds(0);
  }
  p = std::clamp(p, 0.0, 100.0);
  // The rank of the wanted value, 1-based: ceil(p% of count), at least 1.
  uint64_t rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(count_) + 0.999999);
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      return std::chrono::microseconds(std::min(bucketUpper(i), max_));
    }
  }
  return std::chrono::microseconds(max_);
}

Pacer::Pacer(const PacerSettings& settings, TimePoint start) : settings_(settings), start_(start) {
  if (settings_.ptime <= std::chrono::nanoseconds::zero()) {
    settings_.ptime = std::chrono::milliseconds(20);
  }
  settings_.maxBurst = std::max<uint32_t>(settings_.maxBurst, 1);
}

Pacer::Due Pacer::poll(TimePoint now) {
  Due due;
  if (now < nextDue()) {
    return due;
  }
  // Slots 0..last are due by now.
  const uint64_t last = static_cast<uint64_t>((now - start_) / settings_.ptime);
  const uint64_t pending = last + 1 - next_;
  const uint64_t send = std::min<uint64_t>(pending, settings_.maxBurst);
  due.send = static_cast<uint32_t>(send);
  due.skipped = static_cast<uint32_t>(std::min<uint64_t>(pending - send, UINT32_MAX));
  for (uint64_t slot = last + 1 - send; slot <= last; ++slot) {
    jitter_.record(now - (start_ + slot * settings_.ptime));
  }
  next_ = last + 1;
  sent_ += send;
  skipped_ += pending - send;
  return due;
}

void Pacer::restart(TimePoint start) {
  start_ = start;
  next_ = 0;
}

}  // namespace evosip::rtp
