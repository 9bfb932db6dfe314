// The app's UA core in-process: SIP messages in through onMessage, responses and requests out
// through the send function, the worker's io_context run by the test for a bounded time.
#include <arpa/inet.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/app/app_core.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>
#include <evosip/rtp/packet.hpp>
#include <evosip/rtp/telephone_event.hpp>

namespace evosip::app {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Sent {
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
    std::vector<int16_t> pcm(1600);  // 0.2 s
    audio::SineGenerator(1000, 8000, 8000).fill(pcm);
    audio::StringWavSink sink;
    audio::WavWriter w(sink);
    (void)w.append(pcm);
    (void)w.close();
    std::ofstream(dir_ / "default" / "en" / "tone.wav", std::ios::binary) << sink.bytes();

    rtp_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(rtp_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(rtp_, reinterpret_cast<sockaddr*>(&a), &len);
    rtpPort_ = ntohs(a.sin_port);

    shared_.settings.soundsDir = dir_.string();
    shared_.settings.voicemailDir = (dir_ / "vm").string();
    shared_.settings.viaHost = "127.0.0.1";
    shared_.settings.viaPort = 5999;
    shared_.runBlocking = [](std::function<void()> f) { f(); };
    prompts_ = std::make_unique<PromptCache>(dir_.string(), shared_.runBlocking);
    shared_.prompts = prompts_.get();
    const uint16_t base = static_cast<uint16_t>(34000 + (::getpid() % 500) * 2);
    core_ = std::make_unique<AppCore>(shared_, io_, 0, RtpPortRange{base, uint16_t(base + 98)},
                                      [this](const transport::Destination& to, std::string_view b) {
                                        sent_.push_back({to, std::string(b)});
                                        return true;
                                      });
  }
  void TearDown() override {
    core_.reset();
    ::close(rtp_);
    fs::remove_all(dir_);
  }

  std::string invite(const std::string& headers, const std::string& callId = "c1",
                     const std::string& fmts = "0 8 101") {
    const std::string body =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
        std::to_string(rtpPort_) + " RTP/AVP " + fmts + "\r\na=rtpmap:101 telephone-event/8000\r\n";
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

  void deliver(const std::string& text) {
    auto msg = sip::Message::parse(text);
    ASSERT_TRUE(msg.has_value()) << text;
    transport::Source src;
    src.remote = *transport::parseEndpoint("127.0.0.1:5070");
    core_->onMessage(*msg, src);
  }

  // Runs the worker until pred() or the time is up.
  bool runUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit = 2000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) {
        return true;
      }
      io_.restart();
      io_.run_for(5ms);
      core_->onTick();
    }
    return pred();
  }

  // The first sent message that starts with `start`, or "".
  std::string find(const std::string& start) const {
    for (const auto& s : sent_) {
      if (s.bytes.rfind(start, 0) == 0) {
        return s.bytes;
      }
    }
    return {};
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
  std::string inDialog(const std::string& method, int cseq, const std::string& tag) {
    return method +
           " sip:app@127.0.0.1:5999 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-" +
           method + std::to_string(cseq) +
           "\r\nFrom: <sip:alice@evosip.local>;tag=ft\r\nTo: <sip:100@evosip.local>;tag=" + tag +
           "\r\nCall-ID: c1\r\nCSeq: " + std::to_string(cseq) + " " + method +
           "\r\nContent-Length: 0\r\n\r\n";
  }
  // The RTP packets received so far on the caller's socket.
  std::vector<std::vector<uint8_t>> drainRtp() {
    std::vector<std::vector<uint8_t>> out;
    uint8_t buf[2048];
    for (;;) {
      const ssize_t n = ::recv(rtp_, buf, sizeof buf, 0);
      if (n < 0) {
        return out;
      }
      out.emplace_back(buf, buf + n);
    }
  }

  fs::path dir_;
  int rtp_ = -1;
  uint16_t rtpPort_ = 0;
  AppShared shared_;
  std::unique_ptr<PromptCache> prompts_;
  boost::asio::io_context io_;
  std::unique_ptr<AppCore> core_;
  std::vector<Sent> sent_;
};

TEST_F(AppCoreTest, HangupAnswersTheGivenStatus) {
  deliver(invite("X-Evosip-Action: Hangup\r\nX-Evosip-Status: 486\r\n"));
  EXPECT_NE(find("SIP/2.0 486 Busy Here\r\n"), "");
}

TEST_F(AppCoreTest, UnknownActionIs501NamingItAndNoCodecIs488) {
  deliver(invite("X-Evosip-Action: Fax\r\n"));
  EXPECT_NE(find("SIP/2.0 501 Unknown Action Fax\r\n"), "");
  deliver(invite("X-Evosip-Action: Echo\r\n", "c2", "18"));
  EXPECT_NE(find("SIP/2.0 488 "), "");
}

TEST_F(AppCoreTest, PlaybackAnswersPlaysRetransmitsTheOkUntilAckThenByes) {
  deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 200 OK").empty(); }));
  const std::string ok = find("SIP/2.0 200 OK");
  EXPECT_EQ(ok.find("X-Evosip"), std::string::npos);
  EXPECT_NE(ok.find("Record-Route: <sip:127.0.0.1:5070;lr>\r\n"), std::string::npos);
  EXPECT_NE(ok.find("m=audio "), std::string::npos);
  EXPECT_NE(ok.find("RTP/AVP 0 101\r\n"), std::string::npos);
  // No ACK: the 2xx again after T1.
  ASSERT_TRUE(runUntil([&] { return count("SIP/2.0 200 OK") >= 2; }, 1500ms));
  deliver(inDialog("ACK", 1, toTag(ok)));
  // The prompt (0.2 s = 10 frames), then a BYE through the route set.
  ASSERT_TRUE(runUntil([&] { return !find("BYE ").empty(); }, 2000ms));
  const std::string bye = find("BYE ");
  EXPECT_EQ(bye.rfind("BYE sip:alice@127.0.0.1:5555 SIP/2.0\r\n", 0), 0u) << bye;
  EXPECT_NE(bye.find("Route: <sip:127.0.0.1:5070;lr>\r\n"), std::string::npos);
  EXPECT_NE(bye.find("From: <sip:100@evosip.local>;tag=" + toTag(ok)), std::string::npos);
  auto packets = drainRtp();
  ASSERT_EQ(packets.size(), 10u);
  auto first = rtp::parseRtp(packets[0]);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->header.marker);
  EXPECT_EQ(first->header.payloadType, 0);
  for (size_t i = 1; i < packets.size(); ++i) {
    auto p = rtp::parseRtp(packets[i]);
    EXPECT_EQ(p->header.sequence, uint16_t(first->header.sequence + i));
    EXPECT_EQ(p->header.timestamp, first->header.timestamp + 160 * i);
    EXPECT_EQ(p->header.ssrc, first->header.ssrc);
    EXPECT_FALSE(p->header.marker);
  }
  EXPECT_EQ(core_->calls(), 0u);
}

TEST_F(AppCoreTest, PacedSendsWithAndWithoutIoUringCarryTheSameStream) {
  for (bool ring : {true, false}) {
    SCOPED_TRACE(ring ? "io_uring" : "sendto");
    shared_.settings.ioUring = ring;
    core_.reset();
    sent_.clear();
    drainRtp();
    const uint16_t base = static_cast<uint16_t>(35000 + (::getpid() % 500) * 2);
    core_ = std::make_unique<AppCore>(shared_, io_, 0, RtpPortRange{base, uint16_t(base + 98)},
                                      [this](const transport::Destination& to, std::string_view b) {
                                        sent_.push_back({to, std::string(b)});
                                        return true;
                                      });
    if (!ring) {
      EXPECT_FALSE(core_->batchedSends());
    }
    deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n"));
    ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 200 OK").empty(); }));
    deliver(inDialog("ACK", 1, toTag(find("SIP/2.0 200 OK"))));
    ASSERT_TRUE(runUntil([&] { return !find("BYE ").empty(); }));
    auto packets = drainRtp();
    ASSERT_EQ(packets.size(), 10u);
    auto first = rtp::parseRtp(packets[0]);
    auto last = rtp::parseRtp(packets[9]);
    EXPECT_EQ(last->header.sequence, uint16_t(first->header.sequence + 9));
    EXPECT_EQ(last->header.timestamp, first->header.timestamp + 9 * 160);
    EXPECT_EQ(core_->counters().pacedPackets.load(), 10u);
    EXPECT_EQ(core_->pacingStats().sent.load(), 10u);  // by the pacing thread
    // The call's RTP socket is closed with the call: its port can be bound again.
    const std::string ok = find("SIP/2.0 200 OK");
    const auto m = ok.find("m=audio ");
    ASSERT_NE(m, std::string::npos);
    const int port = std::stoi(ok.substr(m + 8));
    ASSERT_TRUE(runUntil([&] { return core_->calls() == 0; }));
    const int again = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(::bind(again, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << port;
    ::close(again);
  }
}

TEST_F(AppCoreTest, MissingSoundIs404) {
  deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: nope\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 404").empty(); }));
  EXPECT_EQ(core_->calls(), 0u);
}

TEST_F(AppCoreTest, CancelDuringEarlyMediaIs487) {
  deliver(
      invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\nX-Evosip-Option: noanswer\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 183").empty(); }));
  deliver(
      "CANCEL sip:100@127.0.0.1:5999 SIP/2.0\r\nVia: SIP/2.0/UDP "
      "127.0.0.1:5070;branch=z9hG4bK-c1\r\n"
      "From: <sip:alice@evosip.local>;tag=ft\r\nTo: <sip:100@evosip.local>\r\nCall-ID: c1\r\n"
      "CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(find("SIP/2.0 487 Request Terminated"), "");
  EXPECT_EQ(core_->calls(), 0u);
}

TEST_F(AppCoreTest, MenuRedirectsOnRfc4733Digit) {
  deliver(
      invite("X-Evosip-Action: Menu\r\nX-Evosip-Sound: tone\r\n"
             "X-Evosip-Targets: 1=sip:100@evosip.local,2=sip:101@evosip.local\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 183").empty(); }));
  const std::string progress = find("SIP/2.0 183");
  const auto m = progress.find("m=audio ");
  const uint16_t appPort = static_cast<uint16_t>(std::stoi(progress.substr(m + 8)));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(appPort);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto packets = rtp::encodeDtmf('2');
  ASSERT_TRUE(packets.has_value());
  uint16_t seq = 100;
  for (const auto& p : *packets) {
    uint8_t buf[64];
    auto n = rtp::writeRtp({p.marker, 101, seq++, 8000, 0x55}, p.payload, buf);
    ::sendto(rtp_, buf, *n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  // "2" is a whole key and the start of no other: redirected at once.
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 302").empty(); }));
  EXPECT_NE(find("SIP/2.0 302").find("Contact: <sip:101@evosip.local>\r\n"), std::string::npos);
  EXPECT_EQ(core_->counters().redirects.load(), 1u);
}

TEST_F(AppCoreTest, DigitsFromAnotherSourceThanTheLatchedPeerAreIgnored) {
  deliver(
      invite("X-Evosip-Action: Menu\r\nX-Evosip-Sound: tone\r\n"
             "X-Evosip-Targets: 1=sip:100@evosip.local,2=sip:101@evosip.local\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 183").empty(); }));
  const std::string progress = find("SIP/2.0 183");
  const auto m = progress.find("m=audio ");
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(progress.substr(m + 8))));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint8_t buf[64];
  uint16_t seq = 100;
  // The peer's first packet latches the call to it.
  auto n = rtp::writeRtp({false, 0, seq++, 8000, 0x55}, std::vector<uint8_t>(20, 0xff), buf);
  ::sendto(rtp_, buf, *n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  runUntil([] { return false; }, 100ms);
  // A digit from another port of the same host: not the peer's.
  const int other = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  auto packets = rtp::encodeDtmf('2');
  ASSERT_TRUE(packets.has_value());
  auto sendDigit = [&](int fd) {
    for (const auto& p : *packets) {
      auto len = rtp::writeRtp({p.marker, 101, seq++, 8000, 0x55}, p.payload, buf);
      ::sendto(fd, buf, *len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
  };
  sendDigit(other);
  EXPECT_FALSE(runUntil([&] { return !find("SIP/2.0 302").empty(); }, 500ms));
  ::close(other);
  EXPECT_EQ(core_->counters().redirects.load(), 0u);
  // The same digit from the peer redirects.
  sendDigit(rtp_);
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 302").empty(); }));
  EXPECT_NE(find("SIP/2.0 302").find("Contact: <sip:101@evosip.local>\r\n"), std::string::npos);
}

TEST_F(AppCoreTest, AnsweredCallWhosePeerNeverSendsIsHungUp) {
  std::vector<int16_t> pcm(8000 * 5);  // 5 s
  audio::SineGenerator(1000, 8000, 8000).fill(pcm);
  audio::StringWavSink sink;
  audio::WavWriter w(sink);
  (void)w.append(pcm);
  (void)w.close();
  std::ofstream(dir_ / "default" / "en" / "long.wav", std::ios::binary) << sink.bytes();
  shared_.settings.rtpPeerTimeout = 1s;
  // Early media is not counted: a phone sends nothing before it is answered.
  deliver(
      invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n"
             "X-Evosip-Option: noanswer\r\n",
             "early"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 183").empty(); }));
  EXPECT_FALSE(runUntil([&] { return count("SIP/2.0 480") > 0; }, 1500ms));
  // Answered, and nothing comes back: BYE after a second, not after the 5 s prompt.
  deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 200 OK").empty(); }));
  deliver(inDialog("ACK", 1, toTag(find("SIP/2.0 200 OK"))));
  const auto answered = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil([&] { return !find("BYE ").empty(); }, 4000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - answered, 2500ms);  // the prompt is 5 s
  EXPECT_EQ(core_->counters().rtpTimeouts.load(), 1u);
}

TEST_F(AppCoreTest, APeerThatSendsKeepsItsCallAndGetsTheMedia) {
  shared_.settings.rtpPeerTimeout = 1s;
  std::vector<int16_t> pcm(8000 * 2);
  audio::SineGenerator(1000, 8000, 8000).fill(pcm);
  audio::StringWavSink sink;
  audio::WavWriter w(sink);
  (void)w.append(pcm);
  (void)w.close();
  std::ofstream(dir_ / "default" / "en" / "two.wav", std::ios::binary) << sink.bytes();
  deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: two\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 200 OK").empty(); }));
  const std::string ok = find("SIP/2.0 200 OK");
  deliver(inDialog("ACK", 1, toTag(ok)));
  const auto answered = std::chrono::steady_clock::now();
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(ok.substr(ok.find("m=audio ") + 8))));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint8_t buf[64];
  auto n = rtp::writeRtp({false, 0, 1, 160, 0x77}, std::vector<uint8_t>(20, 0xff), buf);
  ::sendto(rtp_, buf, *n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  // One RTP packet from the peer is a sign of life: the prompt plays to its end.
  ASSERT_TRUE(runUntil([&] { return !find("BYE ").empty(); }, 3500ms));
  EXPECT_EQ(core_->counters().rtpTimeouts.load(), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - answered, 1800ms);  // the whole 2 s prompt
  EXPECT_GT(drainRtp().size(), 60u);
}

TEST_F(AppCoreTest, FullMailboxIsRefusedBeforeAnyMedia) {
  shared_.settings.voicemailQuota.maxMessages = 1;
  VoicemailMessage m;
  m.mailbox = "bob";
  m.id = "20250101T120000Z-00000001";
  m.file = m.id + ".wav";
  ASSERT_TRUE(storeVoicemail(shared_.settings.voicemailDir, m, std::vector<int16_t>(800)));
  deliver(invite("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n"));
  ASSERT_TRUE(runUntil([&] { return !find("SIP/2.0 486 Mailbox Full").empty(); }));
  EXPECT_EQ(find("SIP/2.0 200"), "");
  EXPECT_EQ(core_->calls(), 0u);
  EXPECT_EQ(core_->counters().mailboxFull.load(), 1u);
  EXPECT_TRUE(drainRtp().empty());
  // Another mailbox has room.
  deliver(invite("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: carol\r\n", "c2"));
  EXPECT_TRUE(runUntil([&] { return !find("SIP/2.0 200 OK").empty(); }));
}

}  // namespace
}  // namespace evosip::app
