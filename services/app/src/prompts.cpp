#include <filesystem>

#include <fmt/format.h>

#include <evosip/app/prompts.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>

namespace evosip::app {

namespace {

constexpr std::array<uint8_t, kFrameSamples> makeSilence(uint8_t code) {
  std::array<uint8_t, kFrameSamples> a{};
  for (auto& b : a) {
    b = code;
  }
  return a;
}

constexpr auto kUlawSilence = makeSilence(0xFF);
constexpr auto kAlawSilence = makeSilence(0xD5);

}  // namespace

bool isSafeName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> soundCandidates(const std::string& soundsDir, const SoundRef& ref) {
  std::vector<std::string> out;
  const std::string locale = ref.locale.empty() ? "en" : ref.locale;
  if (!isSafeName(ref.sound) || !isSafeName(locale) ||
      (!ref.custom.empty() && !isSafeName(ref.custom))) {
    return out;
  }
  if (!ref.custom.empty() && ref.custom != "default") {
    out.push_back(fmt::format("{}/{}/{}/{}.wav", soundsDir, ref.custom, locale, ref.sound));
  }
  out.push_back(fmt::format("{}/default/{}/{}.wav", soundsDir, locale, ref.sound));
  return out;
}

Prompt::Prompt(std::string source, std::span<const int16_t> samples)
    : source_(std::move(source)), samples_(samples.size()) {
  frames_ = (samples.size() + kFrameSamples - 1) / kFrameSamples;
  for (int l = 0; l < 2; ++l) {
    const auto law = l == 0 ? audio::G711Law::kUlaw : audio::G711Law::kAlaw;
    auto& out = encoded_[l];
    out.assign(frames_ * kFrameSamples, l == 0 ? 0xFF : 0xD5);
    audio::encodeG711(law, samples, std::span<uint8_t>(out.data(), samples.size()));
  }
}

std::span<const uint8_t> silenceFrame(audio::G711Law law) {
  return law == audio::G711Law::kUlaw ? std::span<const uint8_t>(kUlawSilence)
                                      : std::span<const uint8_t>(kAlawSilence);
}

PromptPtr makeBeep(double frequencyHz, double seconds) {
  std::vector<int16_t> pcm(static_cast<size_t>(seconds * audio::kPromptRate));
  audio::SineGenerator(frequencyHz, 8000, audio::kPromptRate).fill(pcm);
  return std::make_shared<const Prompt>("<beep>", pcm);
}

PromptCache::PromptCache(std::string soundsDir, RunBlocking runBlocking)
    : soundsDir_(std::move(soundsDir)), runBlocking_(std::move(runBlocking)) {}

std::string PromptCache::keyOf(const SoundRef& ref) {
  return ref.custom + '\n' + (ref.locale.empty() ? "en" : ref.locale) + '\n' + ref.sound;
}

Result<PromptPtr> PromptCache::load(const SoundRef& ref) const {
  const auto candidates = soundCandidates(soundsDir_, ref);
  if (candidates.empty()) {
    return makeError(Errc::kNotFound, fmt::format("sound '{}' locale '{}' custom '{}': unsafe name",
                                                  ref.sound, ref.locale, ref.custom));
  }
  for (const auto& path : candidates) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      continue;
    }
    auto pcm = audio::loadPromptFile(path);
    if (!pcm) {
      return makeError(pcm.error().code, pcm.error().message);
    }
    return std::make_shared<const Prompt>(path, *pcm);
  }
  std::string tried;
  for (const auto& p : candidates) {
    tried += (tried.empty() ? "" : ", ") + p;
  }
  return makeError(Errc::kNotFound, "no sound file: tried " + tried);
}

void PromptCache::get(const SoundRef& ref, Done done) {
  const std::string key = keyOf(ref);
  {
    std::unique_lock lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      PromptPtr p = it->second;
      lock.unlock();
      done(p);
      return;
    }
    auto [it, first] = pending_.try_emplace(key);
    it->second.push_back(std::move(done));
    if (!first) {
      return;  // a load of this sound is under way: its result answers us too
    }
  }
  runBlocking_([this, ref, key] {
    auto result = load(ref);
    std::vector<Done> waiting;
    {
      std::lock_guard lock(mutex_);
      if (result) {
        cache_[key] = *result;
        ++loads_;
      } else {
        ++misses_;
      }
      waiting = std::move(pending_[key]);
      pending_.erase(key);
    }
    for (auto& w : waiting) {
      w(result);
    }
  });
}

void PromptCache::flush() {
  std::lock_guard lock(mutex_);
  cache_.clear();
}

size_t PromptCache::size() const {
  std::lock_guard lock(mutex_);
  return cache_.size();
}

uint64_t PromptCache::loads() const {
  std::lock_guard lock(mutex_);
  return loads_;
}

uint64_t PromptCache::misses() const {
  std::lock_guard lock(mutex_);
  return misses_;
}

}  // namespace evosip::app
