#pragma once
// The app's UA core in process, on a manual clock: SIP messages in through onMessage, responses
// and requests out through the send function; the caller's RTP on a real loopback socket. Time
// moves only in advance(): one millisecond at a time, the worker's handlers run, then onTick()
// (which also sends the paced packets that are due: no pacing thread). Ports come from the OS.
#include <filesystem>
#include <fstream>
#include <functional>
#include <loopback_udp.hpp>
#include <manual_clock.hpp>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/app/app_core.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/audio/g711.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>
#include <evosip/rtp/packet.hpp>
#include <evosip/rtp/telephone_event.hpp>

namespace evosip::app::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using TimePoint = runtime::Clock::time_point;

// A range of `pairs` RTP port pairs starting near a port the OS chose (the core skips ports
// another process holds).
inline rtp::PortRange osPortRange(size_t pairs) {
  const uint16_t first = static_cast<uint16_t>(
      std::min<int>(evosip::test::LoopbackUdp::freePort() & ~1, 65534 - 2 * pairs));
  return {first, static_cast<uint16_t>(first + 2 * pairs - 1)};
}

// The caller's RTP endpoint: what it received, and when (on the manual clock).
class RtpPeer {
 public:
  struct Received {
    TimePoint at;
    std::vector<uint8_t> bytes;
    rtp::RtpHeader header() const { return rtp::parseRtp(bytes)->header; }
    std::span<const uint8_t> payload() const { return rtp::parseRtp(bytes)->payload; }
  };

  RtpPeer() = default;
  RtpPeer(const RtpPeer&) = delete;
  RtpPeer& operator=(const RtpPeer&) = delete;

  uint16_t port() const { return socket_.port(); }

  // One RTP packet to the app's port.
  void send(uint16_t appPort, const rtp::RtpHeader& h, std::span<const uint8_t> payload) {
    uint8_t buf[1500];
    auto n = rtp::writeRtp(h, payload, buf);
    sendRaw(appPort, std::span<const uint8_t>(buf, *n));
  }
  void sendRaw(uint16_t appPort, std::span<const uint8_t> datagram) {
    socket_.sendTo(appPort, datagram);
  }
  // 20 ms of PCMU: a 1 kHz tone (loud) or silence.
  void sendAudio(uint16_t appPort, bool loud) {
    std::vector<int16_t> pcm(160, 0);
    if (loud) {
      audio::SineGenerator(1000, 8000, 8000).fill(pcm);
    }
    std::vector<uint8_t> payload(160);
    audio::encodeUlaw(pcm, payload);
    send(appPort, {seq_ == 1, 0, seq_, ts_, 0x1234}, payload);
    ++seq_;
    ts_ += 160;
  }
  // An RFC 4733 digit (payload type 101), each digit with a timestamp of its own.
  void sendDigit(uint16_t appPort, char digit) {
    auto packets = rtp::encodeDtmf(digit);
    ts_ += 8000;
    for (const auto& p : *packets) {
      send(appPort, {p.marker, 101, seq_++, ts_, 0x1234}, p.payload);
    }
  }

  // Reads what arrived, stamping it with `now`.
  void poll(TimePoint now) {
    for (std::string d = socket_.receive(); !d.empty(); d = socket_.receive()) {
      received_.push_back({now, std::vector<uint8_t>(d.begin(), d.end())});
    }
  }
  const std::vector<Received>& received() const { return received_; }
  void clear() { received_.clear(); }

 private:
  evosip::test::LoopbackUdp socket_;
  uint16_t seq_ = 1;
  uint32_t ts_ = 16000;
  std::vector<Received> received_;
};

struct Sent {
  TimePoint at;
  transport::Destination to;
  std::string bytes;
};

class AppCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("evosip-appcore-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "default" / "en");
    writeSound("tone", 0.2);
    writeSound("long", 5);
    shared_.settings.soundsDir = dir_.string();
    shared_.settings.voicemailDir = (dir_ / "vm").string();
    shared_.settings.viaHost = "127.0.0.1";
    shared_.settings.viaPort = 5999;
    shared_.settings.pacingThread = false;
    // sendto: a packet is in the peer's socket when the send returns (an io_uring send may
    // complete on a kernel thread, a millisecond of the manual clock later).
    shared_.settings.ioUring = false;
    shared_.runBlocking = [this](std::function<void()> f) {
      if (holdBlocking_) {
        blocked_.push_back(std::move(f));
      } else {
        f();
      }
    };
    prompts_ = std::make_unique<PromptCache>(dir_.string(), shared_.runBlocking);
    shared_.prompts = prompts_.get();
    ports_ = osPortRange(50);
  }
  void TearDown() override {
    core_.reset();
    fs::remove_all(dir_);
  }

  // A 1 kHz tone of `seconds` as sounds/default/en/<name>.wav.
  void writeSound(const std::string& name, double seconds) {
    std::vector<int16_t> pcm(static_cast<size_t>(8000 * seconds));
    audio::SineGenerator(1000, 8000, 8000).fill(pcm);
    audio::StringWavSink sink;
    audio::WavWriter w(sink);
    (void)w.append(pcm);
    (void)w.close();
    std::ofstream(dir_ / "default" / "en" / (name + ".wav"), std::ios::binary) << sink.bytes();
  }

  // The core, made at first use (tests change shared_.settings and ports_ before).
  AppCore& core() {
    if (!core_) {
      core_ = std::make_unique<AppCore>(
          shared_, io_, 0, ports_,
          [this](const transport::Destination& to, std::string_view b) {
            sent_.push_back({clock_.now(), to, std::string(b)});
            return true;
          },
          clock_);
    }
    return *core_;
  }

  // One millisecond at a time: the clock, the worker's ready handlers, the core's tick, and
  // what the RTP peers received.
  void advance(std::chrono::milliseconds d) {
    for (auto i = 0ms; i < d; i += 1ms) {
      step();
    }
  }
  void step() {
    clock_.advance(1ms);
    runHandlers();
    core().onTick();
    runHandlers();
    for (RtpPeer* p : {&caller_, &other_}) {
      p->poll(clock_.now());
    }
  }
  void runHandlers() {
    io_.restart();
    io_.poll();
  }
  // Advances until pred() holds (true) or `limit` has passed (false).
  bool advanceUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    for (auto i = 0ms; i < limit; i += 1ms) {
      if (pred()) {
        return true;
      }
      step();
    }
    return pred();
  }
  bool advanceUntilSent(const std::string& start, std::chrono::milliseconds limit = 2000ms) {
    return advanceUntil([&] { return !find(start).empty(); }, limit);
  }

  std::string sdp(uint16_t rtpPort, const std::string& fmts = "0 8 101",
                  const std::string& extra = "") const {
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
           std::to_string(rtpPort) + " RTP/AVP " + fmts +
           "\r\na=rtpmap:101 telephone-event/8000\r\n" + extra;
  }
  std::string invite(const std::string& headers, const std::string& callId = "c1",
                     const std::string& fmts = "0 8 101") const {
    const std::string body = sdp(caller_.port(), fmts);
    return "INVITE sip:100@127.0.0.1:5999 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-" +
           callId +
           "\r\n"
           "Record-Route: <sip:127.0.0.1:5070;lr>\r\n"
           "From: <sip:alice@evosip.local>;tag=ft\r\nTo: <sip:100@evosip.local>\r\n"
           "Call-ID: " +
           callId + "\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5555>\r\n" + headers +
           "Content-Type: application/sdp\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }
  // A request in the dialog of `callId` (`tag`: ours, from the 2xx or 183).
  static std::string inDialog(const std::string& method, int cseq, const std::string& tag,
                              const std::string& callId = "c1", const std::string& body = "") {
    return method +
           " sip:app@127.0.0.1:5999 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-" +
           method + std::to_string(cseq) + callId +
           "\r\nFrom: <sip:alice@evosip.local>;tag=ft\r\nTo: <sip:100@evosip.local>;tag=" + tag +
           "\r\nCall-ID: " + callId + "\r\nCSeq: " + std::to_string(cseq) + " " + method +
           "\r\nContact: <sip:alice@127.0.0.1:5556>\r\n" +
           (body.empty() ? "" : "Content-Type: application/sdp\r\n") +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  void deliver(const std::string& text) {
    auto msg = sip::Message::parse(text);
    ASSERT_TRUE(msg.has_value()) << text;
    transport::Source src;
    src.remote = *transport::parseEndpoint("127.0.0.1:5070");
    core().onMessage(*msg, src);
    runHandlers();
  }

  // The first / every sent message that starts with `start`.
  std::string find(const std::string& start) const {
    for (const auto& s : sent_) {
      if (s.bytes.rfind(start, 0) == 0) {
        return s.bytes;
      }
    }
    return {};
  }
  const Sent* findSent(const std::string& start) const {
    for (const auto& s : sent_) {
      if (s.bytes.rfind(start, 0) == 0) {
        return &s;
      }
    }
    return nullptr;
  }
  int count(const std::string& start) const {
    int n = 0;
    for (const auto& s : sent_) {
      n += s.bytes.rfind(start, 0) == 0 ? 1 : 0;
    }
    return n;
  }
  static std::string toTag(const std::string& response) {
    auto p = response.find("\r\nTo: ");
    auto t = response.find("tag=", p);
    return response.substr(t + 4, response.find("\r\n", t) - t - 4);
  }
  // The port of the app's m=audio line in a response.
  static uint16_t sdpPort(const std::string& response) {
    const auto m = response.find("m=audio ");
    return m == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(response.substr(m + 8)));
  }
  // Answers and acknowledges `headers`' call: returns the 200 OK.
  std::string answered(const std::string& headers, const std::string& callId = "c1") {
    deliver(invite(headers, callId));
    EXPECT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
    const std::string ok = find("SIP/2.0 200 OK");
    deliver(inDialog("ACK", 1, toTag(ok), callId));
    return ok;
  }
  // The caller talks (20 ms frames of a tone, or silence) until the app's BYE: false when none
  // came within `frames`.
  bool talkUntilBye(uint16_t appPort, bool loud, int frames) {
    for (int i = 0; i < frames; ++i) {
      caller_.sendAudio(appPort, loud);
      advance(20ms);
      if (!find("BYE ").empty()) {
        return true;
      }
    }
    return false;
  }
  // The only message of a mailbox.
  VoicemailMessage onlyMessage(const std::string& mailbox) {
    auto box = listMailbox(shared_.settings.voicemailDir, mailbox);
    EXPECT_TRUE(box.has_value() && box->size() == 1u);
    return box && box->size() == 1u ? box->front() : VoicemailMessage{};
  }
  // Whether a UDP port of 127.0.0.1 can be bound (nothing holds it).
  static bool bindable(uint16_t port) { return evosip::test::LoopbackUdp::bindable(port); }

  fs::path dir_;
  evosip::test::ManualClock clock_;
  RtpPeer caller_;
  RtpPeer other_;  // another source on the same host
  AppShared shared_;
  bool holdBlocking_ = false;  // blocking work waits in blocked_ instead of running inline
  std::vector<std::function<void()>> blocked_;
  std::unique_ptr<PromptCache> prompts_;
  rtp::PortRange ports_;
  boost::asio::io_context io_;
  std::unique_ptr<AppCore> core_;
  std::vector<Sent> sent_;
};

}  // namespace evosip::app::test
