// rtp_load: an RTP packet generator and receiver for relay benchmarks
// (bench/media_vs_rtpengine.sh).
//
// It sets up N calls on an RTP relay over the ng protocol (rtpengine's control protocol: a
// cookie, a space, a bencoded dictionary, over UDP), then sends 172-byte RTP packets (12-byte
// header + 160 bytes of G.711 payload) at a fixed total rate spread evenly over the N streams,
// from one caller socket (sendmmsg, one destination per packet), to the relay's caller-side
// ports. The relay forwards each stream to its own callee socket here (epoll + recvmmsg).
// Each payload carries the send time (CLOCK_MONOTONIC ns), the stream index and a sequence
// number, so the receiver counts packets, loss and the one-way added latency
// (receive time - send time). At the end every call is deleted and one JSON line is printed.
//
//   rtp_load --ng 127.0.0.1:2223 --streams 1000 --rate 50000 --duration 10 --warmup 1
//   rtp_load --direct --streams 1000 --rate 50000 --duration 10    # no relay: the tool's floor
//
// Only packets sent after the warm-up and before the end of the measured window count
// (their send timestamps say so); a packet not received within --drain seconds after the
// last send is lost. With --cpu-pid PID (repeatable) the utime+stime of those processes over
// the measured window is read from /proc and reported with packets per CPU-second.
//
// Every loop is bounded: ng requests retry 3 times then fail; sending stops at
// warm-up + duration; receiving stops --drain seconds later.

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr std::size_t kRtpHeader = 12;
constexpr std::size_t kPayload = 160;
constexpr std::size_t kPacket = kRtpHeader + kPayload;  // 172
constexpr std::uint32_t kMagic = 0x52544c44;            // "RTLD"
constexpr int kBatch = 64;                              // recvmmsg batch
constexpr std::size_t kMaxSamples = 32u << 20;          // latency samples kept (128 MB)
constexpr int kSendBatch = 16;  // sendmmsg batch: all its packets carry one send time, and on
                                // loopback each send delivers synchronously (~1-2 us apiece)

std::uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1000000000ull + std::uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "rtp_load: %s\n", msg.c_str());
  std::exit(2);
}

// ------------------------------------------------------------------------------------------
// bencode (just what ng needs: strings, integers, lists, dictionaries)
// ------------------------------------------------------------------------------------------

struct BValue {
  enum Kind { Str, Int, List, Dict } kind = Str;
  std::string str;
  long long num = 0;
  std::vector<BValue> list;
  std::map<std::string, BValue> dict;

  const BValue* get(const std::string& key) const {
    auto it = dict.find(key);
    return kind == Dict && it != dict.end() ? &it->second : nullptr;
  }
  std::string getStr(const std::string& key) const {
    const BValue* v = get(key);
    return v && v->kind == Str ? v->str : std::string();
  }
};

BValue bstr(std::string s) {
  BValue v;
  v.str = std::move(s);
  return v;
}

BValue blist(std::initializer_list<std::string> items) {
  BValue v;
  v.kind = BValue::List;
  for (const auto& s : items)
    v.list.push_back(bstr(s));
  return v;
}

void encode(const BValue& v, std::string& out) {
  switch (v.kind) {
    case BValue::Str:
      out += std::to_string(v.str.size());
      out += ':';
      out += v.str;
      break;
    case BValue::Int:
      out += 'i';
      out += std::to_string(v.num);
      out += 'e';
      break;
    case BValue::List:
      out += 'l';
      for (const auto& e : v.list)
        encode(e, out);
      out += 'e';
      break;
    case BValue::Dict:  // std::map keeps the keys sorted, as bencode wants
      out += 'd';
      for (const auto& [k, e] : v.dict) {
        encode(bstr(k), out);
        encode(e, out);
      }
      out += 'e';
      break;
  }
}

// Returns nullopt on malformed input; depth-limited.
std::optional<BValue> decode(std::string_view& in, int depth = 0) {
  if (in.empty() || depth > 32)
    return std::nullopt;
  BValue v;
  char c = in.front();
  if (c == 'i') {
    auto end = in.find('e');
    if (end == std::string_view::npos)
      return std::nullopt;
    v.kind = BValue::Int;
    v.num = std::strtoll(std::string(in.substr(1, end - 1)).c_str(), nullptr, 10);
    in.remove_prefix(end + 1);
    return v;
  }
  if (c == 'l' || c == 'd') {
    v.kind = c == 'l' ? BValue::List : BValue::Dict;
    in.remove_prefix(1);
    while (!in.empty() && in.front() != 'e') {
      if (v.kind == BValue::List) {
        auto e = decode(in, depth + 1);
        if (!e)
          return std::nullopt;
        v.list.push_back(std::move(*e));
      } else {
        auto k = decode(in, depth + 1);
        if (!k || k->kind != BValue::Str)
          return std::nullopt;
        auto e = decode(in, depth + 1);
        if (!e)
          return std::nullopt;
        v.dict[k->str] = std::move(*e);
      }
    }
    if (in.empty())
      return std::nullopt;
    in.remove_prefix(1);
    return v;
  }
  if (c >= '0' && c <= '9') {
    auto colon = in.find(':');
    if (colon == std::string_view::npos || colon > 10)
      return std::nullopt;
    std::size_t len = std::strtoull(std::string(in.substr(0, colon)).c_str(), nullptr, 10);
    if (in.size() < colon + 1 + len)
      return std::nullopt;
    v.str = std::string(in.substr(colon + 1, len));
    in.remove_prefix(colon + 1 + len);
    return v;
  }
  return std::nullopt;
}

// ------------------------------------------------------------------------------------------
// sockets and addresses
// ------------------------------------------------------------------------------------------

sockaddr_in parseHostPort(const std::string& hp) {
  auto colon = hp.rfind(':');
  if (colon == std::string::npos)
    die("expected HOST:PORT, got " + hp);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::atoi(hp.c_str() + colon + 1)));
  if (inet_pton(AF_INET, hp.substr(0, colon).c_str(), &sa.sin_addr) != 1)
    die("not an IPv4 address: " + hp);
  return sa;
}

int udpSocket(const std::string& bindIp, int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die(std::string("socket: ") + std::strerror(errno));
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, bindIp.c_str(), &sa.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    die(std::string("bind: ") + std::strerror(errno));
  return fd;
}

std::uint16_t localPort(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin_port);
}

// ------------------------------------------------------------------------------------------
// ng client
// ------------------------------------------------------------------------------------------

class NgClient {
 public:
  NgClient(const std::string& bindIp, sockaddr_in server) : server_(server) {
    fd_ = udpSocket(bindIp);
    timeval tv{0, 500000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NgClient() { close(fd_); }

  // One request, up to 4 tries of 0.5 s; the same cookie on every try (the relay answers a
  // retransmission from its cache).
  std::optional<BValue> request(const BValue& dict) {
    std::string cookie = std::to_string(getpid()) + "_" + std::to_string(++seq_);
    std::string msg = cookie + " ";
    encode(dict, msg);
    char buf[65536];
    for (int attempt = 0; attempt < 4; ++attempt) {
      if (sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&server_),
                 sizeof server_) < 0)
        return std::nullopt;
      for (int reads = 0; reads < 16; ++reads) {  // skip stale replies to earlier cookies
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n < 0)
          break;  // timeout: retransmit
        std::string_view in(buf, static_cast<std::size_t>(n));
        auto sp = in.find(' ');
        if (sp == std::string_view::npos || in.substr(0, sp) != cookie)
          continue;
        in.remove_prefix(sp + 1);
        silent_ = 0;
        auto v = decode(in);
        if (!v || v->kind != BValue::Dict)
          return std::nullopt;
        return v;
      }
    }
    ++silent_;
    return std::nullopt;
  }

  // Three requests in a row without any reply: the relay is gone; callers stop asking (a
  // dead relay must not cost 2 s per call of set-up or tear-down).
  bool gone() const { return silent_ >= 3; }

 private:
  int fd_ = -1;
  sockaddr_in server_{};
  unsigned seq_ = 0;
  int silent_ = 0;
};

std::string makeSdp(const std::string& ip, std::uint16_t port, unsigned sessId) {
  std::string s;
  s += "v=0\r\n";
  s += "o=rtp_load " + std::to_string(sessId) + " 1 IN IP4 " + ip + "\r\n";
  s += "s=rtp_load\r\n";
  s += "c=IN IP4 " + ip + "\r\n";
  s += "t=0 0\r\n";
  s += "m=audio " + std::to_string(port) + " RTP/AVP 0\r\n";
  s += "a=rtpmap:0 PCMU/8000\r\n";
  s += "a=ptime:20\r\n";
  s += "a=sendrecv\r\n";
  return s;
}

// The first audio m-line's port and its connection address (media level over session level).
std::optional<sockaddr_in> sdpMediaAddress(const std::string& sdp) {
  std::string addr;
  int port = -1;
  std::size_t pos = 0;
  bool inAudio = false;
  while (pos < sdp.size()) {
    auto end = sdp.find('\n', pos);
    if (end == std::string::npos)
      end = sdp.size();
    std::string line = sdp.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    pos = end + 1;
    if (line.rfind("m=", 0) == 0) {
      if (port >= 0)
        break;  // only the first audio stream
      inAudio = line.rfind("m=audio ", 0) == 0;
      if (inAudio)
        port = std::atoi(line.c_str() + 8);
    } else if (line.rfind("c=IN IP4 ", 0) == 0 && (port < 0 || inAudio)) {
      addr = line.substr(9);
      auto slash = addr.find('/');
      if (slash != std::string::npos)
        addr.resize(slash);
    }
  }
  if (port <= 0 || addr.empty())
    return std::nullopt;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1)
    return std::nullopt;
  return sa;
}

// ------------------------------------------------------------------------------------------
// CPU time of other processes (the relay under test)
// ------------------------------------------------------------------------------------------

double cpuSeconds(const std::vector<int>& pids) {
  static const long tick = sysconf(_SC_CLK_TCK);
  double total = 0;
  for (int pid : pids) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE* f = std::fopen(path, "r");
    if (!f)
      continue;
    char buf[2048];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    if (!p)
      continue;
    // fields after ") ": state(3) ppid(4) ... utime(14) stime(15)
    unsigned long long utime = 0, stime = 0;
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                    &stime) == 2)
      total += double(utime + stime) / double(tick);
  }
  return total;
}

double selfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ------------------------------------------------------------------------------------------
// options
// ------------------------------------------------------------------------------------------

struct Options {
  std::string ng;
  bool direct = false;
  std::string via;      // with --direct: send every packet to this reflector instead
  std::string reflect;  // run as the reflector, bound to this HOST:PORT
  int streams = 100;
  double rate = 5000;
  double duration = 5;
  double warmup = 1;
  double drain = 0.5;
  double tickUs = 100;
  std::string bind = "127.0.0.1";
  std::vector<int> cpuPids;
  std::string label;
  bool keepCalls = false;
  int calleeSockets = 0;  // 0: one callee socket per stream
  double rxTickUs = 500;  // receiver polls every rxTickUs (0: wakes up per packet)
  std::string dump;       // file for "send-offset-us latency-us" per counted packet
};

void usage() {
  std::puts(
      "usage: rtp_load (--ng HOST:PORT | --direct [--via HOST:PORT]) [--streams N] [--rate PPS]\n"
      "                [--duration S]\n"
      "                [--warmup S] [--drain S] [--bind IP] [--tick-us US] [--cpu-pid PID]...\n"
      "                [--callee-sockets K] [--rx-tick-us US] [--label TEXT] [--dump FILE]\n"
      "Sets up N calls on an ng relay (offer/answer), sends 172-byte RTP at PPS packets/s in\n"
      "total over the N streams for warm-up + duration seconds, counts what arrives, deletes\n"
      "the calls and prints one JSON line (sent, received, lost, latency p50/p99/max in us,\n"
      "relay CPU seconds in the measured window when --cpu-pid is given).\n"
      "--callee-sockets K: the answers point the N streams at K receive sockets (stream i at\n"
      "socket i %% K) instead of one socket each: cheaper receiving (bigger recvmmsg batches);\n"
      "the relay still sends every stream from its own port.\n"
      "Latency: the kernel's receive timestamp (SO_TIMESTAMPNS) minus the send time in the\n"
      "payload, so the receiver may poll every --rx-tick-us (default 500) without adding to it.\n"
      "--dump FILE: one line per counted packet, \"send-time-us-into-the-window latency-us\".\n"
      "rtp_load --reflect HOST:PORT --duration S: the smallest relay (one socket, recvmmsg,\n"
      "sendmmsg to the callee port in each payload); --direct --via HOST:PORT sends through it.");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--ng")
      o.ng = next();
    else if (a == "--direct")
      o.direct = true;
    else if (a == "--via")
      o.via = next();
    else if (a == "--reflect")
      o.reflect = next();
    else if (a == "--streams")
      o.streams = std::atoi(next().c_str());
    else if (a == "--rate")
      o.rate = std::atof(next().c_str());
    else if (a == "--duration")
      o.duration = std::atof(next().c_str());
    else if (a == "--warmup")
      o.warmup = std::atof(next().c_str());
    else if (a == "--drain")
      o.drain = std::atof(next().c_str());
    else if (a == "--tick-us")
      o.tickUs = std::atof(next().c_str());
    else if (a == "--bind")
      o.bind = next();
    else if (a == "--cpu-pid")
      o.cpuPids.push_back(std::atoi(next().c_str()));
    else if (a == "--label")
      o.label = next();
    else if (a == "--keep-calls")
      o.keepCalls = true;
    else if (a == "--callee-sockets")
      o.calleeSockets = std::atoi(next().c_str());
    else if (a == "--dump")
      o.dump = next();
    else if (a == "--rx-tick-us")
      o.rxTickUs = std::atof(next().c_str());
    else if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else
      die("unknown option " + a + " (--help)");
  }
  if (o.reflect.empty() && o.direct == !o.ng.empty())
    die("give exactly one of --ng HOST:PORT, --direct or --reflect HOST:PORT");
  if (!o.reflect.empty() && (o.direct || !o.ng.empty()))
    die("--reflect runs alone (no --ng, no --direct)");
  if (!o.via.empty() && !o.direct)
    die("--via goes with --direct");
  if (o.streams < 1 || o.streams > 30000)
    die("--streams must be 1..30000");
  if (o.rate <= 0 || o.rate > 5e6)
    die("--rate must be > 0 and <= 5000000");
  if (o.duration <= 0 || o.duration > 3600)
    die("--duration must be in (0, 3600]");
  if (o.warmup < 0 || o.warmup > 600)
    die("--warmup must be in [0, 600]");
  if (o.drain < 0.05 || o.drain > 60)
    die("--drain must be in [0.05, 60]");
  if (o.calleeSockets < 0 || o.calleeSockets > o.streams)
    die("--callee-sockets must be 0..streams");
  if (o.rxTickUs < 0 || o.rxTickUs > 20000)
    die("--rx-tick-us must be in [0, 20000]");
  if (o.tickUs < 10 || o.tickUs > 100000)
    die("--tick-us must be in [10, 100000]");
  return o;
}

// ------------------------------------------------------------------------------------------
// streams, sender, receiver
// ------------------------------------------------------------------------------------------

struct Stream {
  std::size_t callee = 0;  // index into the callee sockets
  std::uint16_t calleePort = 0;
  sockaddr_in target{};  // where the caller sends: the relay's caller-side port (or the callee)
  std::string callId, fromTag, toTag;
  std::uint16_t rtpSeq = 0;
  std::uint32_t rtpTs = 0;
  std::uint32_t ssrc = 0;
  std::uint32_t seq = 0;  // our sequence in the payload
};

struct RecvStats {
  std::uint64_t received = 0;          // counted packets (sent inside the window)
  std::uint64_t receivedAll = 0;       // every valid packet, warm-up included
  std::uint64_t foreign = 0;           // datagrams that are not ours (wrong size/magic)
  std::uint64_t misrouted = 0;         // our packet on another stream's socket
  std::uint64_t reordered = 0;         // sequence lower than the highest seen on that stream
  std::vector<std::uint32_t> lat10ns;  // per counted packet, in 10 ns units (up to 42.9 s)
  std::vector<std::uint32_t> txUs;     // with --dump: its send time, us after the window start
};

void putU32(std::uint8_t* p, std::uint32_t v) {
  std::memcpy(p, &v, 4);
}
void putU64(std::uint8_t* p, std::uint64_t v) {
  std::memcpy(p, &v, 8);
}
std::uint32_t getU32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
std::uint64_t getU64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Payload layout (after the 12-byte RTP header): magic u32, stream u32, seq u32, send ns u64,
// callee port u16 (host order; the reflector's destination), then zeros up to 160 bytes.
void buildPacket(std::uint8_t* pkt, Stream& s, std::uint32_t index, std::uint64_t sendNs) {
  pkt[0] = 0x80;
  pkt[1] = 0;  // PT 0 (PCMU), no marker
  std::uint16_t seq = htons(s.rtpSeq++);
  std::memcpy(pkt + 2, &seq, 2);
  std::uint32_t ts = htonl(s.rtpTs);
  s.rtpTs += 160;
  std::memcpy(pkt + 4, &ts, 4);
  std::uint32_t ssrc = htonl(s.ssrc);
  std::memcpy(pkt + 8, &ssrc, 4);
  std::uint8_t* pl = pkt + kRtpHeader;
  putU32(pl, kMagic);
  putU32(pl + 4, index);
  putU32(pl + 8, s.seq++);
  putU64(pl + 12, sendNs);
  std::uint16_t callee = s.calleePort;  // for --via: where the reflector sends it
  std::memcpy(pl + 20, &callee, 2);
}

// CLOCK_REALTIME - CLOCK_MONOTONIC now: converts the kernel's receive timestamps (realtime)
// to the monotonic clock the sender stamps with.
std::int64_t realtimeOffsetNs() {
  timespec m1{}, r{}, m2{};
  clock_gettime(CLOCK_MONOTONIC, &m1);
  clock_gettime(CLOCK_REALTIME, &r);
  clock_gettime(CLOCK_MONOTONIC, &m2);
  auto ns = [](const timespec& t) { return std::int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; };
  return ns(r) - (ns(m1) + ns(m2)) / 2;
}

void receiver(const std::vector<int>& calleeFds, std::size_t nStreams, std::uint64_t windowStart,
              std::uint64_t windowEnd, const std::atomic<std::uint64_t>& stopAt, RecvStats& st,
              std::size_t expect, double rxTickUs, bool keepTx) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    die("epoll_create1 failed");
  for (std::size_t i = 0; i < calleeFds.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, calleeFds[i], &ev) != 0)
      die("epoll_ctl failed");
  }
  st.lat10ns.reserve(std::min<std::size_t>(expect + expect / 8, kMaxSamples));
  if (keepTx)
    st.txUs.reserve(std::min<std::size_t>(expect + expect / 8, kMaxSamples));
  std::vector<std::uint32_t> highest(nStreams, 0);
  std::vector<bool> seen(nStreams, false);
  std::vector<std::uint8_t> bufs(kBatch * 2048);
  constexpr std::size_t kCtl = CMSG_SPACE(sizeof(timespec)) + 64;
  std::vector<std::uint8_t> ctls(kBatch * kCtl);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  std::vector<epoll_event> events(std::min<std::size_t>(calleeFds.size(), 4096));
  const timespec tick{0, static_cast<long>(rxTickUs * 1000)};
  for (;;) {
    std::uint64_t now = nowNs();
    std::uint64_t stop = stopAt.load(std::memory_order_acquire);
    if (stop != 0 && now >= stop)
      break;
    if (rxTickUs > 0)
      nanosleep(&tick, nullptr);
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), rxTickUs > 0 ? 0 : 5);
    const std::int64_t offset = realtimeOffsetNs();
    for (int e = 0; e < n; ++e) {
      std::size_t idx = events[static_cast<std::size_t>(e)].data.u64;
      int fd = calleeFds[idx];
      for (int rounds = 0; rounds < 64; ++rounds) {
        for (int k = 0; k < kBatch; ++k) {
          iov[k] = {bufs.data() + k * 2048, 2048};
          msgs[k] = {};
          msgs[k].msg_hdr.msg_iov = &iov[k];
          msgs[k].msg_hdr.msg_iovlen = 1;
          msgs[k].msg_hdr.msg_control = ctls.data() + k * kCtl;
          msgs[k].msg_hdr.msg_controllen = kCtl;
        }
        int got = recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0)
          break;
        std::uint64_t rxFallback = nowNs();
        for (int k = 0; k < got; ++k) {
          const std::uint8_t* p = bufs.data() + k * 2048;
          if (msgs[k].msg_len != kPacket || (p[0] & 0xC0) != 0x80 ||
              getU32(p + kRtpHeader) != kMagic) {
            ++st.foreign;
            continue;
          }
          std::uint64_t rx = rxFallback;
          for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c;
               c = CMSG_NXTHDR(&msgs[k].msg_hdr, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
              timespec ts{};
              std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
              rx = static_cast<std::uint64_t>(std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec -
                                              offset);
            }
          }
          std::uint32_t stream = getU32(p + kRtpHeader + 4);
          std::uint32_t seq = getU32(p + kRtpHeader + 8);
          std::uint64_t tx = getU64(p + kRtpHeader + 12);
          if (stream % calleeFds.size() != idx)
            ++st.misrouted;
          ++st.receivedAll;
          if (stream < highest.size()) {
            if (seen[stream] && seq < highest[stream])
              ++st.reordered;
            else {
              highest[stream] = seq;
              seen[stream] = true;
            }
          }
          if (tx >= windowStart && tx < windowEnd) {
            ++st.received;
            std::uint64_t lat = rx > tx ? rx - tx : 0;
            if (st.lat10ns.size() < kMaxSamples) {
              st.lat10ns.push_back(
                  static_cast<std::uint32_t>(std::min<std::uint64_t>(lat / 10, UINT32_MAX)));
              if (keepTx)
                st.txUs.push_back(static_cast<std::uint32_t>((tx - windowStart) / 1000));
            }
          }
        }
        if (got < kBatch)
          break;
      }
    }
  }
  close(ep);
}

double pct(std::vector<std::uint32_t>& v, double p) {
  if (v.empty())
    return -1;
  std::size_t k =
      std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * double(v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k] / 100.0;
}

std::string jsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else
      o += c;
  }
  return o;
}

// The smallest relay there is, for the bench's floor: one socket, a blocking recvmmsg, and a
// sendmmsg of what it got to the callee port written in each payload. What rtp_load --direct
// --via measures through it is the machine's cost of crossing to the relay's CPU and back
// (wake-up, scheduling, two trips through the UDP stack), without any relay logic.
int reflect(const Options& o) {
  sockaddr_in self = parseHostPort(o.reflect);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int buf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof self) != 0)
    die("reflector: cannot bind " + o.reflect);
  timeval tv{0, 100000};  // the loop checks its end at least every 100 ms
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<std::uint8_t> bufs(kBatch * 2048);
  std::vector<sockaddr_in> dest(kBatch);
  mmsghdr in[kBatch], out[kBatch];
  iovec iov[kBatch], oiov[kBatch];
  std::uint64_t received = 0, forwarded = 0;
  const std::uint64_t end = nowNs() + static_cast<std::uint64_t>(o.duration * 1e9);
  while (nowNs() < end) {
    for (int k = 0; k < kBatch; ++k) {
      iov[k] = {bufs.data() + k * 2048, 2048};
      in[k] = {};
      in[k].msg_hdr.msg_iov = &iov[k];
      in[k].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(fd, in, kBatch, MSG_WAITFORONE, nullptr);
    if (got <= 0)
      continue;
    received += static_cast<std::uint64_t>(got);
    int n = 0;
    for (int k = 0; k < got; ++k) {
      const std::uint8_t* p = bufs.data() + k * 2048;
      if (in[k].msg_len != kPacket || getU32(p + kRtpHeader) != kMagic)
        continue;
      std::uint16_t port;
      std::memcpy(&port, p + kRtpHeader + 20, 2);
      dest[n] = self;
      dest[n].sin_port = htons(port);
      oiov[n] = {const_cast<std::uint8_t*>(p), kPacket};
      out[n] = {};
      out[n].msg_hdr.msg_name = &dest[n];
      out[n].msg_hdr.msg_namelen = sizeof dest[n];
      out[n].msg_hdr.msg_iov = &oiov[n];
      out[n].msg_hdr.msg_iovlen = 1;
      ++n;
    }
    for (int off = 0, tries = 0; off < n && tries < 8; ++tries) {
      int r = sendmmsg(fd, out + off, static_cast<unsigned>(n - off), 0);
      if (r > 0) {
        off += r;
        forwarded += static_cast<std::uint64_t>(r);
      }
    }
  }
  std::printf("{\"tool\":\"rtp_load\",\"mode\":\"reflect\",\"received\":%llu,\"forwarded\":%llu}\n",
              static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(forwarded));
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // precise sleeps for the pacing ticks
  if (!o.reflect.empty())
    return reflect(o);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  const int n = o.streams;
  std::vector<Stream> streams(static_cast<std::size_t>(n));
  int senderFd = udpSocket(o.bind);
  int sndbuf = 4 << 20;
  setsockopt(senderFd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  std::uint16_t senderPort = localPort(senderFd);
  std::uint32_t runId =
      static_cast<std::uint32_t>(getpid()) * 2654435761u ^ static_cast<std::uint32_t>(nowNs());
  const int nCallee = o.calleeSockets > 0 ? o.calleeSockets : n;
  std::vector<int> calleeFds;
  std::vector<std::uint16_t> calleePorts;
  for (int k = 0; k < nCallee; ++k) {
    calleeFds.push_back(udpSocket(o.bind, nCallee < n ? 8 << 20 : 1 << 20));
    int on = 1;
    setsockopt(calleeFds.back(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    calleePorts.push_back(localPort(calleeFds.back()));
  }
  for (int i = 0; i < n; ++i) {
    Stream& s = streams[static_cast<std::size_t>(i)];
    s.callee = static_cast<std::size_t>(i % nCallee);
    s.calleePort = calleePorts[s.callee];
    s.ssrc = runId + static_cast<std::uint32_t>(i) * 7919u;
    s.rtpSeq = static_cast<std::uint16_t>(s.ssrc);
    s.rtpTs = s.ssrc * 3u;
  }

  // --- call set-up --------------------------------------------------------------------
  std::unique_ptr<NgClient> ng;
  int ngErrors = 0;
  std::string firstError;
  double setupS = 0;
  std::uint64_t t0 = nowNs();
  auto ngFail = [&](const std::string& what) {
    ++ngErrors;
    if (firstError.empty())
      firstError = what;
  };
  if (o.direct) {
    for (auto& s : streams) {
      s.target = parseHostPort(o.via.empty() ? o.bind + ":" + std::to_string(s.calleePort) : o.via);
    }
  } else {
    ng = std::make_unique<NgClient>(o.bind, parseHostPort(o.ng));
    BValue ping;
    ping.kind = BValue::Dict;
    ping.dict["command"] = bstr("ping");
    auto pong = ng->request(ping);
    if (!pong || pong->getStr("result") != "pong")
      die("no pong from the ng relay at " + o.ng);
    for (int i = 0; i < n; ++i) {
      if (ng->gone()) {
        ngFail("the relay stopped answering ng requests");
        continue;
      }
      Stream& s = streams[static_cast<std::size_t>(i)];
      s.callId = "rtpload-" + std::to_string(runId) + "-" + std::to_string(i);
      s.fromTag = "caller" + std::to_string(i);
      s.toTag = "callee" + std::to_string(i);
      BValue offer;
      offer.kind = BValue::Dict;
      offer.dict["command"] = bstr("offer");
      offer.dict["call-id"] = bstr(s.callId);
      offer.dict["from-tag"] = bstr(s.fromTag);
      offer.dict["sdp"] = bstr(makeSdp(o.bind, senderPort, static_cast<unsigned>(i) + 1));
      offer.dict["replace"] = blist({"origin", "session-connection"});
      auto r = ng->request(offer);
      if (!r || r->getStr("result") != "ok") {
        ngFail("offer " + s.callId + ": " +
               (r ? r->getStr("result") + " " + r->getStr("error-reason") : "no reply"));
        continue;
      }
      BValue answer;
      answer.kind = BValue::Dict;
      answer.dict["command"] = bstr("answer");
      answer.dict["call-id"] = bstr(s.callId);
      answer.dict["from-tag"] = bstr(s.fromTag);
      answer.dict["to-tag"] = bstr(s.toTag);
      answer.dict["sdp"] = bstr(makeSdp(o.bind, s.calleePort, static_cast<unsigned>(i) + 100001));
      answer.dict["replace"] = blist({"origin", "session-connection"});
      auto a = ng->request(answer);
      if (!a || a->getStr("result") != "ok") {
        ngFail("answer " + s.callId + ": " +
               (a ? a->getStr("result") + " " + a->getStr("error-reason") : "no reply"));
        continue;
      }
      // The answer's SDP (sent to the caller) names the relay port the caller sends to.
      auto target = sdpMediaAddress(a->getStr("sdp"));
      if (!target) {
        ngFail("answer " + s.callId + ": no usable c=/m= in the returned SDP");
        continue;
      }
      s.target = *target;
    }
  }
  setupS = double(nowNs() - t0) / 1e9;
  std::vector<std::uint32_t> active;
  for (int i = 0; i < n; ++i)
    if (streams[static_cast<std::size_t>(i)].target.sin_port != 0)
      active.push_back(static_cast<std::uint32_t>(i));
  if (active.empty())
    die("no stream set up (first error: " + firstError + ")");

  // --- traffic ------------------------------------------------------------------------
  const std::uint64_t start = nowNs() + 20'000'000;  // let the receiver start first
  const std::uint64_t windowStart = start + static_cast<std::uint64_t>(o.warmup * 1e9);
  const std::uint64_t windowEnd = windowStart + static_cast<std::uint64_t>(o.duration * 1e9);
  std::atomic<std::uint64_t> stopAt{0};
  RecvStats rs;
  std::size_t expect = static_cast<std::size_t>(o.rate * o.duration) + 16;
  std::thread rx([&] {
    receiver(calleeFds, streams.size(), windowStart, windowEnd, stopAt, rs, expect, o.rxTickUs,
             !o.dump.empty());
  });

  const std::uint64_t tickNs = static_cast<std::uint64_t>(o.tickUs * 1000);
  const double perNs = o.rate / 1e9;
  std::vector<std::uint8_t> pkts(kBatch * kPacket);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  std::uint64_t sentTotal = 0, sentWindow = 0, sendErrors = 0, lagTicks = 0;
  std::uint64_t nextPacket = 0;  // global packet counter: packet k goes to active[k % size]
  double cpu0 = 0, cpu1 = 0, self0 = 0, self1 = 0;
  bool inWindow = false;
  std::uint64_t wake = start;
  for (;;) {
    timespec ts{static_cast<time_t>(wake / 1000000000ull), static_cast<long>(wake % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    std::uint64_t now = nowNs();
    if (!inWindow && now >= windowStart) {
      inWindow = true;
      cpu0 = cpuSeconds(o.cpuPids);
      self0 = selfCpuSeconds();
    }
    std::uint64_t horizon = std::min(now, windowEnd);
    std::uint64_t due = static_cast<std::uint64_t>(double(horizon - start) * perNs);
    if (due > nextPacket + 64 * kSendBatch)
      ++lagTicks;  // the generator fell behind
    while (nextPacket < due) {
      int cnt = static_cast<int>(std::min<std::uint64_t>(due - nextPacket, kSendBatch));
      std::uint64_t sendNs = nowNs();
      for (int k = 0; k < cnt; ++k) {
        std::uint32_t idx = active[(nextPacket + static_cast<std::uint64_t>(k)) % active.size()];
        Stream& s = streams[idx];
        std::uint8_t* p = pkts.data() + k * kPacket;
        buildPacket(p, s, idx, sendNs);
        iov[k] = {p, kPacket};
        msgs[k] = {};
        msgs[k].msg_hdr.msg_name = &s.target;
        msgs[k].msg_hdr.msg_namelen = sizeof s.target;
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
      }
      int off = 0;
      for (int tries = 0; off < cnt && tries < 8; ++tries) {
        int r = sendmmsg(senderFd, msgs + off, static_cast<unsigned>(cnt - off), 0);
        if (r < 0) {
          if (errno == EINTR)
            continue;
          // a packet the kernel refused (e.g. ECONNREFUSED from an earlier ICMP): skip it
          ++sendErrors;
          ++off;
          continue;
        }
        off += r;
      }
      sendErrors += static_cast<std::uint64_t>(cnt - off);
      // the sent packets count as sent even when skipped: they are then lost
      sentTotal += static_cast<std::uint64_t>(cnt);
      if (sendNs >= windowStart && sendNs < windowEnd)
        sentWindow += static_cast<std::uint64_t>(cnt);
      nextPacket += static_cast<std::uint64_t>(cnt);
    }
    if (now >= windowEnd)
      break;
    wake += tickNs;
    if (wake + 50 * tickNs < now)
      wake = now;  // far behind: do not spin through old ticks
  }
  const std::uint64_t sendEnd = nowNs();
  stopAt.store(sendEnd + static_cast<std::uint64_t>(o.drain * 1e9), std::memory_order_release);
  rx.join();
  cpu1 = cpuSeconds(o.cpuPids);
  self1 = selfCpuSeconds();
  const double windowS = double(sendEnd - windowStart) / 1e9;

  // --- tear-down ----------------------------------------------------------------------
  int deleted = 0, deleteErrors = 0;
  if (ng && !o.keepCalls) {
    for (std::uint32_t idx : active) {
      if (ng->gone()) {
        ++deleteErrors;
        continue;
      }
      Stream& s = streams[idx];
      BValue del;
      del.kind = BValue::Dict;
      del.dict["command"] = bstr("delete");
      del.dict["call-id"] = bstr(s.callId);
      del.dict["from-tag"] = bstr(s.fromTag);
      auto r = ng->request(del);
      if (r && r->getStr("result") == "ok")
        ++deleted;
      else
        ++deleteErrors;
    }
  }
  for (int fd : calleeFds)
    close(fd);
  close(senderFd);

  // --- report -------------------------------------------------------------------------
  if (!o.dump.empty()) {  // before pct() reorders the samples
    FILE* f = std::fopen(o.dump.c_str(), "w");
    if (f == nullptr)
      die("cannot write " + o.dump);
    for (std::size_t i = 0; i < rs.txUs.size(); ++i)
      std::fprintf(f, "%u %.2f\n", rs.txUs[i], rs.lat10ns[i] / 100.0);
    std::fclose(f);
  }
  std::uint64_t lost = sentWindow > rs.received ? sentWindow - rs.received : 0;
  std::uint64_t dup = rs.received > sentWindow ? rs.received - sentWindow : 0;
  double p50 = pct(rs.lat10ns, 50), p99 = pct(rs.lat10ns, 99), p999 = pct(rs.lat10ns, 99.9);
  double maxUs =
      rs.lat10ns.empty() ? -1 : *std::max_element(rs.lat10ns.begin(), rs.lat10ns.end()) / 100.0;
  double relayCpu = cpu1 - cpu0;
  std::printf(
      "{\"tool\":\"rtp_load\",\"label\":\"%s\",\"mode\":\"%s\",\"streams\":%zu,\"streams_failed\":%"
      "d,"
      "\"rate\":%.0f,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"setup_s\":%.3f,"
      "\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"loss_pct\":%.4f,\"duplicates\":%llu,"
      "\"reordered\":%llu,\"misrouted\":%llu,\"foreign\":%llu,\"send_errors\":%llu,"
      "\"generator_lag_ticks\":%llu,\"achieved_pps\":%.0f,\"forwarded_pps\":%.0f,"
      "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
      "\"relay_cpu_s\":%.3f,\"pkts_per_relay_cpu_s\":%.0f,\"tool_cpu_s\":%.3f,"
      "\"deleted\":%d,\"delete_errors\":%d,\"ng_errors\":%d,\"first_error\":\"%s\"}\n",
      jsonEscape(o.label).c_str(), o.direct ? "direct" : "relay", active.size(),
      n - static_cast<int>(active.size()), o.rate, windowS, o.warmup, setupS,
      static_cast<unsigned long long>(sentWindow), static_cast<unsigned long long>(rs.received),
      static_cast<unsigned long long>(lost),
      sentWindow ? 100.0 * double(lost) / double(sentWindow) : 0.0,
      static_cast<unsigned long long>(dup), static_cast<unsigned long long>(rs.reordered),
      static_cast<unsigned long long>(rs.misrouted), static_cast<unsigned long long>(rs.foreign),
      static_cast<unsigned long long>(sendErrors), static_cast<unsigned long long>(lagTicks),
      windowS > 0 ? double(sentWindow) / windowS : 0.0,
      windowS > 0 ? double(rs.received) / windowS : 0.0, p50, p99, p999, maxUs,
      o.cpuPids.empty() ? -1.0 : relayCpu,
      (!o.cpuPids.empty() && relayCpu > 0) ? double(rs.received) / relayCpu : -1.0, self1 - self0,
      deleted, deleteErrors, ngErrors, jsonEscape(firstError).c_str());
  std::fflush(stdout);
  (void)sentTotal;
  return ngErrors == 0 && deleteErrors == 0 ? 0 : 1;
}
