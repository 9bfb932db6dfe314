#pragma once
// Prompts: where a sound's file is (<sounds_dir>/<custom>/<locale>/<sound>.wav, then
// <sounds_dir>/default/<locale>/<sound>.wav), and a process-wide cache of loaded prompts,
// each converted once to both G.711 laws and padded to whole 20 ms frames, so that playing
// one is a pointer and an index per packet.
//
// Loading reads files: PromptCache runs it through the blocking-work function it was given
// (WorkerPool::postBlocking), never on an event loop. The cache is shared by every worker
// and guarded by a mutex that is only taken at call setup, never on the packet path.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <evosip/audio/g711.hpp>
#include <evosip/base/result.hpp>

namespace evosip::app {

inline constexpr size_t kFrameSamples = 160;  // 20 ms at 8 kHz: one G.711 payload

struct SoundRef {
  std::string sound;
  std::string locale = "en";
  std::string custom;  // "" = only the default set
};

// Names that may become one path component: [A-Za-z0-9._-]+, not starting with '.'.
bool isSafeName(std::string_view name);

// The files tried for a sound, in order. Empty when a name is unsafe (then: 404).
std::vector<std::string> soundCandidates(const std::string& soundsDir, const SoundRef& ref);

// A prompt ready to play: frames of 160 G.711 bytes per law (the last one padded with
// silence), immutable once built.
class Prompt {
 public:
  Prompt(std::string source, std::span<const int16_t> samples);

  const std::string& source() const { return source_; }
  size_t frames() const { return frames_; }
  size_t samples() const { return samples_; }
  // Frame i (i < frames()) in the given law: kFrameSamples bytes.
  std::span<const uint8_t> frame(audio::G711Law law, size_t i) const {
    const auto& v = encoded_[law == audio::G711Law::kUlaw ? 0 : 1];
    return {v.data() + i * kFrameSamples, kFrameSamples};
  }

 private:
  std::string source_;
  size_t samples_ = 0;
  size_t frames_ = 0;
  std::array<std::vector<uint8_t>, 2> encoded_;
};

using PromptPtr = std::shared_ptr<const Prompt>;

// A 20 ms frame of silence in a law (0xFF µ-law, 0xD5 A-law).
std::span<const uint8_t> silenceFrame(audio::G711Law law);

// A sine beep (the voicemail beep when no beep.wav is installed).
PromptPtr makeBeep(double frequencyHz = 1000, double seconds = 0.3);

class PromptCache {
 public:
  // Runs a function on the blocking pool.
  using RunBlocking = std::function<void(std::function<void()>)>;
  // Called on a blocking thread, or inline on a cache hit: callers post back to their worker.
  using Done = std::function<void(Result<PromptPtr>)>;

  PromptCache(std::string soundsDir, RunBlocking runBlocking);

  // Finds the first existing candidate file and loads it (kNotFound naming the files tried,
  // kInvalid/kParse for a file that is not a usable WAV).
  void get(const SoundRef& ref, Done done);
  // Loads synchronously on the calling thread (tests, tools).
  Result<PromptPtr> load(const SoundRef& ref) const;

  // Drops every cached prompt (new files are picked up by later calls).
  void flush();
  size_t size() const;
  uint64_t loads() const;   // files read
  uint64_t misses() const;  // sounds not found

  const std::string& soundsDir() const { return soundsDir_; }

 private:
  static std::string keyOf(const SoundRef& ref);

  std::string soundsDir_;
  RunBlocking runBlocking_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, PromptPtr> cache_;
  std::unordered_map<std::string, std::vector<Done>> pending_;
  uint64_t loads_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace evosip::app
