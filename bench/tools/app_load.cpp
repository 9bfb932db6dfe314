// app_load: concurrent Playback calls against `evosip app` (bench/app_playback.sh).
//
// Sets up --calls INVITEs (X-Evosip-Action: Playback, X-Evosip-Sound: --sound) at --cps call
// set-ups per second from one SIP socket, answers every 200 with an ACK, and points every
// call's SDP at ONE receive socket here: the app sends each call from its own port, this tool
// tells the streams apart by SSRC. Once all calls are up and --warmup seconds have passed it
// measures for --duration seconds:
//   - packets received and lost (sequence gaps) per stream;
//   - inter-arrival deviation |arrival - previous arrival - 20 ms| per stream, from kernel
//     receive timestamps (SO_TIMESTAMPNS; on loopback a packet is queued to this socket inside
//     the app's sendto, so the timestamp is the app's send time);
//   - with --cpu-pid, the utime+stime of that process over the window (/proc/PID/stat), and
//     streams per app CPU-second = packets received / 50 / CPU seconds (a starved app that
//     skips frames is not credited with streams it did not send);
// Then it sends a BYE for every call and prints one JSON line.
//
//   - with --metrics HOST:PORT, the app's evosip_app_pacing_jitter_seconds at the window's end.
//
//   app_load --app 127.0.0.1:5080 --calls 2000 --cps 400 --duration 10 --cpu-pid 1234 \
//            --metrics 127.0.0.1:8090
//
// The receiver polls its socket (recvmmsg MSG_DONTWAIT, 1 ms naps) instead of sleeping in it:
// on loopback the app's sendto would otherwise pay for waking this thread on every packet.
//
// `app_load --floor 10 [--rt]` instead measures the machine's wake-up lateness floor: a thread
// that only sleeps 1 ms at a time (run it pinned to the app's CPU).
//
// Every loop is bounded: set-up stops after --setup-timeout seconds, BYEs are sent once and
// their answers awaited at most 3 s.

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <netinet/in.h>
#include <sched.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "app_load: %s\n", msg.c_str());
  std::exit(2);
}

double nowS() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

sockaddr_in parseAddr(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    die("address " + text + " is not IP:PORT");
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(std::atoi(text.c_str() + colon + 1)));
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    die("address " + text + " is not IPv4");
  }
  return a;
}

int udpSocket(const std::string& ip, uint16_t& port, int buffer) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    die("socket");
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    die("bind " + ip + ": " + std::strerror(errno));
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

double cpuSeconds(int pid) {
  if (pid <= 0) {
    return 0;
  }
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream in(s.substr(close + 2));
  std::string field;
  std::vector<std::string> fields;
  while (in >> field) {
    fields.push_back(field);
  }
  if (fields.size() < 13) {
    return 0;
  }
  return double(std::stoull(fields[11]) + std::stoull(fields[12])) / double(sysconf(_SC_CLK_TCK));
}

std::string header(std::string_view msg, std::string_view name) {
  size_t pos = 0;
  while (pos < msg.size()) {
    size_t eol = msg.find("\r\n", pos);
    if (eol == std::string_view::npos || eol == pos) {
      break;
    }
    std::string_view line = msg.substr(pos, eol - pos);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && v.front() == ' ') {
        v.remove_prefix(1);
      }
      return std::string(v);
    }
    pos = eol + 2;
  }
  return {};
}

// Inter-arrival deviations in microseconds, 1 µs buckets up to 100 ms.
struct Histogram {
  std::vector<uint64_t> buckets = std::vector<uint64_t>(100001, 0);
  uint64_t count = 0;
  void add(double us) {
    const auto b = size_t(std::min(100000.0, std::max(0.0, us)));
    ++buckets[b];
    ++count;
  }
  double percentile(double p) const {
    if (count == 0) {
      return 0;
    }
    const uint64_t want = uint64_t(std::ceil(double(count) * p / 100.0));
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen >= want) {
        return double(i);
      }
    }
    return double(buckets.size() - 1);
  }
};

// GET /metrics from the app's control address; the evosip_app_pacing_jitter_seconds lines.
std::string fetchJitter(const std::string& hostPort) {
  if (hostPort.empty()) {
    return "";
  }
  const sockaddr_in a = parseAddr(hostPort);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: " + hostPort + "\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string body;
  char b[8192];
  ssize_t n;
  while ((n = read(fd, b, sizeof b)) > 0) {
    body.append(b, size_t(n));
  }
  close(fd);
  std::string out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("evosip_app_pacing_jitter_seconds{", 0) == 0) {
      const auto q = line.find("quantile=\"");
      const auto w = line.find("worker=\"");
      const auto sp = line.rfind(' ');
      if (q == std::string::npos || w == std::string::npos || sp == std::string::npos) {
        continue;
      }
      const std::string quant = line.substr(q + 10, line.find('"', q + 10) - (q + 10));
      const std::string worker = line.substr(w + 8, line.find('"', w + 8) - (w + 8));
      out += (out.empty() ? "" : ", ") + std::string("\"w") + worker + "_q" + quant +
             "_us\": " + std::to_string(std::atof(line.c_str() + sp + 1) * 1e6);
    }
  }
  return out;
}

struct Stream {
  bool started = false;
  uint16_t seq = 0;
  double last = 0;
  uint64_t packets = 0;
  uint64_t lost = 0;
};

struct Call {
  std::string callId, fromTag, toTag;
  int status = 0;
  bool acked = false;
};

// --floor SECONDS [--rt]: how late a thread that does nothing but sleep 1 ms (absolute
// clock_nanosleep) wakes up on this CPU: the machine's own floor under the app's pacing.
int timerFloor(double seconds, bool rt) {
  if (rt) {
    sched_param p{};
    p.sched_priority = 10;
    if (sched_setscheduler(0, SCHED_FIFO, &p) != 0) {
      std::fprintf(stderr, "app_load: SCHED_FIFO: %s\n", std::strerror(errno));
    }
  }
  timespec next{};
  clock_gettime(CLOCK_MONOTONIC, &next);
  std::vector<long> late;
  const long n = long(seconds * 1000);
  for (long i = 0; i < n; ++i) {
    next.tv_nsec += 1000000;
    if (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    late.push_back((now.tv_sec - next.tv_sec) * 1000000000L + now.tv_nsec - next.tv_nsec);
  }
  std::sort(late.begin(), late.end());
  auto at = [&](double p) { return double(late[size_t(double(late.size() - 1) * p)]) / 1000.0; };
  std::printf(
      "{\"floor_wakeup_late_us\": {\"p50\": %.0f, \"p99\": %.0f, \"p999\": %.0f, "
      "\"max\": %.0f}, \"rt\": %s}\n",
      at(0.5), at(0.99), at(0.999), at(1.0), rt ? "true" : "false");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--floor") {
      bool rt = false;
      for (int j = 1; j < argc; ++j) {
        rt = rt || std::string(argv[j]) == "--rt";
      }
      return timerFloor(std::atof(argv[i + 1]), rt);
    }
  }
  std::string app = "127.0.0.1:5080", localIp = "127.0.0.1", sound = "long";
  std::string metrics;
  int calls = 100, cpuPid = 0;
  double cps = 200, duration = 10, warmup = 2, setupTimeout = 60;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        die("missing value for " + a);
      }
      return argv[++i];
    };
    if (a == "--app") {
      app = next();
    } else if (a == "--local") {
      localIp = next();
    } else if (a == "--sound") {
      sound = next();
    } else if (a == "--calls") {
      calls = std::atoi(next().c_str());
    } else if (a == "--cps") {
      cps = std::atof(next().c_str());
    } else if (a == "--duration") {
      duration = std::atof(next().c_str());
    } else if (a == "--warmup") {
      warmup = std::atof(next().c_str());
    } else if (a == "--setup-timeout") {
      setupTimeout = std::atof(next().c_str());
    } else if (a == "--metrics") {
      metrics = next();
    } else if (a == "--cpu-pid") {
      cpuPid = std::atoi(next().c_str());
    } else {
      die("unknown option " + a);
    }
  }
  const sockaddr_in appAddr = parseAddr(app);
  uint16_t sipPort = 0, rtpPort = 0;
  const int sip = udpSocket(localIp, sipPort, 8 << 20);
  const int rtp = udpSocket(localIp, rtpPort, 32 << 20);
  int one = 1;
  setsockopt(rtp, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);

  // ---- RTP receiver thread ----
  std::atomic<bool> stop{false};
  std::atomic<int> phase{0};  // 0 before the window, 1 measuring, 2 after
  std::unordered_map<uint32_t, Stream> streams;
  Histogram jitter;
  uint64_t windowPackets = 0, windowLost = 0, totalPackets = 0;
  std::thread receiver([&] {
    constexpr int kBatch = 64;
    std::vector<char> data(kBatch * 256);
    std::vector<char> control(kBatch * 64);
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    while (!stop.load()) {
      for (int i = 0; i < kBatch; ++i) {
        iov[i] = {data.data() + i * 256, 256};
        msgs[i].msg_hdr = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = control.data() + i * 64;
        msgs[i].msg_hdr.msg_controllen = 64;
      }
      // Polled, never blocked in the socket: a sleeping reader would make every packet the
      // app sends wake this thread, a cost (IPI, scheduler) charged to the app's sendto on
      // loopback that a real network path does not have. Timestamps come from the kernel.
      const int n = recvmmsg(rtp, msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) {
        timespec pause{0, 1000000};
        nanosleep(&pause, nullptr);
        continue;
      }
      const int ph = phase.load(std::memory_order_relaxed);
      for (int i = 0; i < n; ++i) {
        if (msgs[i].msg_len < 12) {
          continue;
        }
        const auto* p = reinterpret_cast<const uint8_t*>(iov[i].iov_base);
        double at = nowS();
        for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != nullptr;
             c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            at = double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
          }
        }
        const uint16_t seq = uint16_t(p[2] << 8 | p[3]);
        const uint32_t ssrc =
            uint32_t(p[8]) << 24 | uint32_t(p[9]) << 16 | uint32_t(p[10]) << 8 | p[11];
        Stream& s = streams[ssrc];
        ++totalPackets;
        if (s.started && ph == 1) {
          const uint16_t gap = uint16_t(seq - s.seq);
          if (gap >= 1 && gap < 1000) {
            windowLost += gap - 1;
            if (gap == 1) {
              jitter.add(std::fabs((at - s.last) - 0.020) * 1e6);
            }
          }
          ++windowPackets;
        }
        s.started = true;
        s.seq = seq;
        s.last = at;
        ++s.packets;
      }
    }
  });

  // ---- SIP: set up the calls ----
  std::vector<Call> all(calls);
  std::unordered_map<std::string, int> byId;
  const std::string tag = std::to_string(getpid());
  auto send = [&](const std::string& m) {
    sendto(sip, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&appAddr), sizeof appAddr);
  };
  auto appText = app;
  int branch = 0;
  auto request = [&](const char* method, const Call& c, int cseq, const std::string& extra,
                     const std::string& body) {
    std::string m = std::string(method) + " sip:bench@" + appText + " SIP/2.0\r\n";
    m += "Via: SIP/2.0/UDP " + localIp + ":" + std::to_string(sipPort) + ";branch=z9hG4bK-al" +
         tag + "-" + std::to_string(++branch) + ";rport\r\nMax-Forwards: 70\r\n";
    m += "From: <sip:load@" + localIp + ">;tag=" + c.fromTag + "\r\n";
    m += "To: <sip:bench@" + appText + ">" + (c.toTag.empty() ? "" : ";tag=" + c.toTag) + "\r\n";
    m += "Call-ID: " + c.callId + "\r\nCSeq: " + std::to_string(cseq) + " " + method + "\r\n";
    m += "Contact: <sip:load@" + localIp + ":" + std::to_string(sipPort) + ">\r\n" + extra;
    m += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return m;
  };
  const std::string sdp = "v=0\r\no=load 1 1 IN IP4 " + localIp + "\r\ns=-\r\nc=IN IP4 " + localIp +
                          "\r\nt=0 0\r\nm=audio " + std::to_string(rtpPort) +
                          " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
  const std::string extra = "X-Evosip-Action: Playback\r\nX-Evosip-Sound: " + sound +
                            "\r\nContent-Type: application/sdp\r\n";
  timeval stv{0, 2000};
  setsockopt(sip, SOL_SOCKET, SO_RCVTIMEO, &stv, sizeof stv);
  std::vector<char> buf(65536);
  int answered = 0, failed = 0, sent = 0, byesFromApp = 0;
  auto handle = [&](std::string_view msg) {
    if (msg.rfind("SIP/2.0 ", 0) == 0) {
      const int code = std::atoi(std::string(msg.substr(8, 3)).c_str());
      const std::string id = header(msg, "Call-ID");
      const std::string cseq = header(msg, "CSeq");
      auto it = byId.find(id);
      if (it == byId.end() || code < 200 || cseq.find("INVITE") == std::string::npos) {
        return;
      }
      Call& c = all[it->second];
      const std::string to = header(msg, "To");
      const auto t = to.find("tag=");
      if (t != std::string::npos) {
        c.toTag = to.substr(t + 4, to.find_first_of(";> ", t + 4) - (t + 4));
      }
      if (c.status == 0) {
        (code < 300 ? answered : failed) += 1;
      }
      c.status = code;
      if (code < 300) {
        send(request("ACK", c, 1, "", ""));  // also for a retransmitted 2xx
        c.acked = true;
      }
      return;
    }
    if (msg.rfind("BYE ", 0) == 0) {  // the sound ended: 200 OK
      ++byesFromApp;
      std::string r = "SIP/2.0 200 OK\r\n";
      for (const char* h : {"Via", "From", "To", "Call-ID", "CSeq"}) {
        r += std::string(h) + ": " + header(msg, h) + "\r\n";
      }
      r += "Content-Length: 0\r\n\r\n";
      send(r);
    }
  };
  auto pump = [&](double until) {
    while (nowS() < until) {
      const ssize_t n = recv(sip, buf.data(), buf.size(), 0);
      if (n > 0) {
        handle(std::string_view(buf.data(), size_t(n)));
      }
    }
  };
  const double t0 = nowS();
  for (int i = 0; i < calls; ++i) {
    Call& c = all[i];
    c.callId = "al-" + tag + "-" + std::to_string(i);
    c.fromTag = "f" + std::to_string(i);
    byId[c.callId] = i;
    const double due = t0 + double(i) / cps;
    while (nowS() < due) {
      pump(due);
    }
    send(request("INVITE", c, 1, extra, sdp));
    ++sent;
  }
  const double setupEnd = t0 + setupTimeout;
  while (answered + failed < calls && nowS() < setupEnd) {
    pump(nowS() + 0.01);
  }
  const double setupSeconds = nowS() - t0;
  pump(nowS() + warmup);
  // ---- the measured window ----
  const double cpu0 = cpuSeconds(cpuPid);
  const double w0 = nowS();
  phase = 1;
  pump(w0 + duration);
  phase = 2;
  const double w1 = nowS();
  const double cpu1 = cpuSeconds(cpuPid);
  // The app's own figure: lateness behind the schedule over its last full 5 s window, read
  // before the teardown (a burst of BYEs) can touch it.
  const std::string appJitter = fetchJitter(metrics);
  // ---- tear down ----
  for (auto& c : all) {
    if (c.status >= 200 && c.status < 300) {
      send(request("BYE", c, 2, "", ""));
    }
  }
  pump(nowS() + 1.0);
  stop = true;
  receiver.join();

  const double window = w1 - w0;
  const double cpu = cpu1 - cpu0;
  const double expected = double(answered) * window / 0.020;
  std::printf(
      "{\"calls\": %d, \"answered\": %d, \"failed\": %d, \"setup_s\": %.2f, \"window_s\": %.2f, "
      "\"streams_seen\": %zu, \"packets\": %llu, \"expected_packets\": %.0f, \"lost\": %llu, "
      "\"pps\": %.0f, \"app_cpu_s\": %.3f, \"app_cpu_share\": %.4f, "
      "\"streams_per_cpu_s\": %.0f, \"interarrival_dev_us\": {\"p50\": %.0f, \"p90\": %.0f, "
      "\"p99\": %.0f, \"p999\": %.0f, \"max\": %.0f}, \"byes_from_app\": %d, "
      "\"app_pacing_jitter\": {%s}}\n",
      calls, answered, failed, setupSeconds, window, streams.size(),
      (unsigned long long)windowPackets, expected, (unsigned long long)windowLost,
      double(windowPackets) / window, cpu, cpu / window,
      cpu > 0 ? double(windowPackets) / 50.0 / cpu : 0.0, jitter.percentile(50),
      jitter.percentile(90), jitter.percentile(99), jitter.percentile(99.9), jitter.percentile(100),
      byesFromApp, appJitter.c_str());
  (void)sent;
  return answered == calls ? 0 : 1;
}
