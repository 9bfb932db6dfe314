"""Interop 1 of the `media` role: the real Debian Kamailio with its rtpengine module drives an RTP
relay over the ng protocol (kamailio/media_proxy.cfg: rtpengine_offer on INVITE with SDP,
rtpengine_answer on replies with SDP, rtpengine_delete on BYE/CANCEL/failure).

The same tests run against two relays:
  TestKamailioRtpengine    the real rtpengine daemon (Debian 10.5, userspace, --table=-1)
  TestKamailioEvosipMedia  `evosip media` from EVOSIP_BIN (skipped, saying why, only when
                           EVOSIP_BIN is unset; a binary without `media` fails)

A call: sipp UAC -> Kamailio -> sipp UAS (scenarios/media_uac.xml, media_uas.xml). The SDP of
each side points at an RTP endpoint of this test (a Python UDP socket); each sipp writes the
media address it received in the proxy-rewritten SDP (the relay's) to a file. The two endpoints
then send RTP to those relay ports and record what arrives: the packets of the other end must
arrive, from the relay's address, on both ends. After the BYE the relay must have no session
and stop forwarding. A busy callee (486) and a cancelled call (CANCEL/487) must leave no
session behind either (the relay's ng `list` and `query`).

Env: EVOSIP_BIN (evosip binary), RTPENGINE_BIN (default rtpengine in PATH),
EVOSIP_ITEST_KEEP=1 keeps the work dirs.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import threading
import time
import unittest
from typing import Dict, List, Optional, Tuple

import harness as h

RTPENGINE_BIN = os.environ.get("RTPENGINE_BIN", shutil.which("rtpengine") or "/usr/bin/rtpengine")
MEDIA_CFG = os.path.join(h.KAMAILIO_DIR, "media_proxy.cfg")
PACKETS = 50          # per direction, 20 ms apart
PAYLOAD = 160         # G.711, 20 ms


# --------------------------------------------------------------------------------------------
# ng client (bencode) for checks on the relay: ping, list, query
# --------------------------------------------------------------------------------------------

def bencode(v) -> bytes:
    if isinstance(v, bytes):
        return str(len(v)).encode() + b":" + v
    if isinstance(v, str):
        return bencode(v.encode())
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(type(v))


def bdecode(data: bytes):
    def dec(i: int):
        c = data[i:i + 1]
        if c == b"i":
            e = data.index(b"e", i)
            return int(data[i + 1:e]), e + 1
        if c in (b"l", b"d"):
            i += 1
            out = [] if c == b"l" else {}
            while data[i:i + 1] != b"e":
                if c == b"l":
                    v, i = dec(i)
                    out.append(v)
                else:
                    k, i = dec(i)
                    v, i = dec(i)
                    out[k.decode("utf-8", "replace")] = v
            return out, i + 1
        colon = data.index(b":", i)
        n = int(data[i:colon])
        return data[colon + 1:colon + 1 + n], colon + 1 + n
    v, end = dec(0)
    if end != len(data):
        raise ValueError("trailing bytes after bencode value")
    return v


def ng_request(port: int, command: dict, timeout: float = 1.0) -> Optional[dict]:
    """One ng request to 127.0.0.1:port (2 tries); the decoded reply dict or None."""
    cookie = os.urandom(6).hex().encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        for _ in range(2):
            s.sendto(cookie + b" " + bencode(command), (h.HOST, port))
            try:
                while True:
                    data, _src = s.recvfrom(65536)
                    if data.startswith(cookie + b" "):
                        return bdecode(data[len(cookie) + 1:])
            except socket.timeout:
                continue
        return None
    finally:
        s.close()


def text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


# --------------------------------------------------------------------------------------------
# RTP endpoints
# --------------------------------------------------------------------------------------------

class RtpEndpoint:
    """A UDP socket on 127.0.0.1 standing in for a phone's media port: sends numbered RTP
    packets (PCMU, 20 ms) and records every datagram it receives with its source address."""

    def __init__(self, name: str, port: int):
        self.name = name
        self.port = port
        self.ssrc = random.getrandbits(32)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.HOST, port))
        self.sock.settimeout(0.05)
        self.received: List[Tuple[Tuple[str, int], bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._thread = threading.Thread(target=self._run, name=f"rtp-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((src, data))

    def packet(self, n: int) -> bytes:
        hdr = struct.pack("!BBHII", 0x80, 0, (self._seq + n) & 0xFFFF,
                          (self._ts + 160 * n) & 0xFFFFFFFF, self.ssrc)
        marker = f"{self.name}:{n:05d}:".encode()
        return hdr + marker + b"\xff" * (PAYLOAD - len(marker))

    def send_stream(self, dest: Tuple[str, int], count: int, start: int = 0,
                    interval: float = 0.02) -> None:
        t0 = time.monotonic()
        for n in range(start, start + count):
            self.sock.sendto(self.packet(n), dest)
            delay = t0 + (n - start + 1) * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def from_peer(self, peer: "RtpEndpoint") -> List[Tuple[Tuple[str, int], int]]:
        """(source, packet number) of the RTP packets of `peer` received here."""
        out = []
        prefix = f"{peer.name}:".encode()
        with self._lock:
            items = list(self.received)
        for src, data in items:
            if len(data) != 12 + PAYLOAD or data[0] & 0xC0 != 0x80:
                continue
            ssrc = struct.unpack("!I", data[8:12])[0]
            body = data[12:]
            if ssrc == peer.ssrc and body.startswith(prefix):
                out.append((src, int(body[len(prefix):len(prefix) + 5])))
        return out

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def read_media_file(path: str) -> Optional[Tuple[str, int]]:
    try:
        with open(path) as f:
            line = f.read()
        parts = line.split()
        # one short write() by sipp's exec'd echo; only a whole line counts
        return (parts[0], int(parts[1])) if line.endswith("\n") and len(parts) == 2 else None
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Relays
# --------------------------------------------------------------------------------------------

def port_block(size: int = 400) -> Tuple[int, int]:
    """A random even-aligned block of relay ports below the ephemeral range with no UDP port
    bound in it right now (other jobs on the machine run relays and RTP endpoints too; evosip
    splits its range between workers, so a half taken by someone else fails offers)."""
    for _ in range(100):
        base = random.randrange(10000, 32000 - size, 2)
        bound = h._proc_net_ports("udp", False)
        if not any(base <= p < base + size for p in bound):
            return base, base + size - 1
    raise AssertionError("no free block of relay ports in 10000-32000")


def wait_ng_pong(port: int, timeout: float, proc: h.Process) -> None:
    def pong() -> bool:
        r = ng_request(port, {"command": "ping"}, timeout=0.2)
        return r is not None and text(r.get("result", b"")) == "pong"
    h.wait_until(pong, timeout, f"ng pong on {h.HOST}:{port}", interval=0.1, proc=proc)


class Relay:
    kind = ""

    def __init__(self, proc: h.Process, ng_port: int, ports: Tuple[int, int]):
        self.proc = proc
        self.ng_port = ng_port
        self.ports = ports

    @property
    def sock(self) -> str:
        return f"udp:{h.HOST}:{self.ng_port}"

    def call_ids(self) -> List[str]:
        """The relay's calls (ng `list`)."""
        r = ng_request(self.ng_port, {"command": "list", "limit": 100})
        if r is None:
            raise AssertionError(f"{self.kind}: no reply to ng list")
        if text(r.get("result", b"")) != "ok":
            raise AssertionError(f"{self.kind}: ng list -> {r}")
        return [text(c) for c in r.get("calls", [])]

    def query(self, call_id: str) -> Optional[dict]:
        return ng_request(self.ng_port, {"command": "query", "call-id": call_id})


def start_rtpengine(work: str, cleanup: h.Cleanup) -> Relay:
    if not os.access(RTPENGINE_BIN, os.X_OK):
        raise unittest.SkipTest(f"rtpengine not installed at {RTPENGINE_BIN} "
                                "(apt-get install rtpengine-daemon, or set RTPENGINE_BIN)")
    ng = h.free_port()
    lo, hi = port_block()
    argv = [RTPENGINE_BIN, "--config-file=none", "--foreground", "--log-stderr",
            "--table=-1", f"--interface={h.HOST}", f"--listen-ng={h.HOST}:{ng}",
            f"--port-min={lo}", f"--port-max={hi}", "--num-threads=2", "--delete-delay=0",
            "--log-level=6", f"--pidfile={os.path.join(work, 'rtpengine.pid')}"]
    proc = cleanup.add(h.Process("rtpengine", argv, work))
    wait_ng_pong(ng, 10, proc)
    relay = Relay(proc, ng, (lo, hi))
    relay.kind = "rtpengine"
    return relay


def evosip_media_binary() -> str:
    """EVOSIP_BIN; skips only when it is unset (like every evosip test). `evosip media` exists
    since d099f54: a binary without it is a failure, not a skip."""
    binary = os.environ.get("EVOSIP_BIN", "")
    if not binary:
        raise unittest.SkipTest("EVOSIP_BIN is not set: the evosip media side needs the real "
                                "binary (build it, then EVOSIP_BIN=/path/to/evosip)")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise AssertionError(f"EVOSIP_BIN={binary!r} is not an executable file")
    roles = h.evosip_roles(binary)
    if "media" not in roles:
        raise AssertionError(f"{binary} has no `media` subcommand (roles: {sorted(roles)})")
    return binary


def start_evosip_media(work: str, cleanup: h.Cleanup) -> Relay:
    binary = evosip_media_binary()
    ng, ctl = h.free_port(), h.free_port()
    lo, hi = port_block()
    cfg = {
        "media": {"ng_listen": f"{h.HOST}:{ng}", "address": h.HOST, "port_min": lo,
                  "port_max": hi, "timeout_s": 60, "max_sessions": 0},
        "control": {"listen": f"{h.HOST}:{ctl}", "token": ""},
        "workers": 2,
        "log": {"level": "debug", "format": "text"},
    }
    path = h.write_yaml(os.path.join(work, "media.yaml"), cfg)
    proc = cleanup.add(h.Process("evosip-media", [binary, "media", "--config", path], work))
    wait_ng_pong(ng, 15, proc)
    relay = Relay(proc, ng, (lo, hi))
    relay.kind = "evosip"
    return relay


def start_kamailio(work: str, cleanup: h.Cleanup, relay: Relay, uas_port: int) -> h.ProxyHandle:
    sip = h.free_port()
    argv = [h.KAMAILIO, "-f", MEDIA_CFG, "-A", f'RTPENGINE_SOCK="{relay.sock}"',
            "-A", f'UAS_URI="sip:{h.HOST}:{uas_port}"', "-l", f"udp:{h.HOST}:{sip}",
            "-n", "2", "-m", "64", "-M", "8", "-DD", "-E", "-Y", work, "-w", work]
    proc = cleanup.add(h.Process("kamailio", argv, work))
    h.wait_port(sip, "udp", timeout=10, proc=proc)
    handle = h.ProxyHandle("kamailio", sip, proc, config_path=MEDIA_CFG, transports=("udp",))

    def answers() -> bool:
        with h.SipClient("UDP", handle.addr, timeout=0.3) as c:
            r = c.transact(c.request("OPTIONS", f"sip:{handle.hostport}"), timeout=0.3)
            return r is not None and r.status == 200
    h.wait_until(answers, 10, "kamailio answering OPTIONS", proc=proc)
    return handle


# --------------------------------------------------------------------------------------------
# The tests (run once per relay)
# --------------------------------------------------------------------------------------------

class KamailioMediaMixin:
    """Subclasses set start_relay."""

    start_relay = None  # type: ignore[assignment]

    def setUp(self) -> None:
        self.cleanup = h.Cleanup()
        self.addCleanup(self.cleanup.stop_all)
        self.tmp = h.make_tmpdir(f"evosip-{self.id().split('.')[-1]}-")
        self.cleanup.dirs.append(self.tmp)
        self.relay = type(self).start_relay(self.tmp, self.cleanup)

    def tearDown(self) -> None:
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        errs = getattr(result, "errors", []) + getattr(result, "failures", [])
        if any(t is self for t, _ in errs) and self.tmp in self.cleanup.dirs:
            self.cleanup.dirs.remove(self.tmp)
            print(f"\n[artefacts kept in {self.tmp}]")

    def endpoint(self, name: str) -> RtpEndpoint:
        ep = RtpEndpoint(name, h.free_port())
        self.cleanup.callbacks.append(ep.close)
        return ep

    def diag(self, *procs: h.Process) -> str:
        return "\n".join(p.tail(3000) for p in procs if p is not None)

    def assert_relay_address(self, addr: Tuple[str, int], original_port: int, who: str,
                             kam: h.ProxyHandle) -> None:
        lo, hi = self.relay.ports
        self.assertEqual(addr[0], h.HOST, f"{who}: SDP connection address is not the relay's")
        self.assertNotEqual(addr[1], original_port,
                            f"{who}: SDP audio port was not rewritten by the relay")
        self.assertTrue(lo <= addr[1] <= hi,
                        f"{who}: SDP audio port {addr[1]} outside the relay range {lo}-{hi}\n"
                        + self.diag(kam.proc, self.relay.proc))

    def test_call_rtp_both_ways_through_relay(self) -> None:
        caller, callee = self.endpoint("caller"), self.endpoint("callee")
        uas_file = os.path.join(self.tmp, "uas_media.txt")
        uac_file = os.path.join(self.tmp, "uac_media.txt")
        uas = h.Sipp(self.tmp, "uas", scenario=h.scenario("media_uas.xml"),
                     keys={"rtp_port": callee.port, "media_file": uas_file}, timeout_s=60,
                     timeout_error=False, trace_msg=True).start(self.cleanup)
        kam = start_kamailio(self.tmp, self.cleanup, self.relay, uas.port)
        uac = h.Sipp(self.tmp, "uac", scenario=h.scenario("media_uac.xml"),
                     remote=kam.hostport, calls=1, rate=1, duration_ms=6000, timeout_s=30,
                     recv_timeout_ms=8000, keys={"rtp_port": caller.port, "media_file": uac_file},
                     trace_msg=True)
        uac.start(self.cleanup, wait=False)

        # Both sides learn the relay's address from the SDP the proxy rewrote.
        h.wait_until(lambda: read_media_file(uas_file) and read_media_file(uac_file), 5,
                     "both sipp ends writing the media address of the SDP they received",
                     proc=uac.proc)
        to_callee_side = read_media_file(uac_file)  # where the caller sends (the 200's SDP)
        to_caller_side = read_media_file(uas_file)  # where the callee sends (the INVITE's SDP)
        self.assert_relay_address(to_callee_side, callee.port, "200 OK answer seen by the caller", kam)
        self.assert_relay_address(to_caller_side, caller.port, "INVITE offer seen by the callee", kam)
        self.assertNotEqual(to_callee_side, to_caller_side,
                            "the relay gave both call legs the same port")
        calls = self.relay.call_ids()
        self.assertEqual(len(calls), 1, f"{self.relay.kind} should hold exactly the one call: {calls}")
        call_id = calls[0]

        # RTP both ways at once, 50 packets each, 20 ms apart.
        t = threading.Thread(target=callee.send_stream, args=(to_caller_side, PACKETS))
        t.start()
        caller.send_stream(to_callee_side, PACKETS)
        t.join(timeout=10)
        h.wait_until(lambda: len(callee.from_peer(caller)) >= PACKETS - 1
                     and len(caller.from_peer(callee)) >= PACKETS - 1, 2,
                     "the RTP of each end arriving at the other (through the relay)")
        at_callee, at_caller = callee.from_peer(caller), caller.from_peer(callee)
        # Loopback loses nothing; a relay may drop the very first packet while it latches.
        self.assertGreaterEqual(len(at_callee), PACKETS - 1, f"caller->callee: {len(at_callee)}")
        self.assertGreaterEqual(len(at_caller), PACKETS - 1, f"callee->caller: {len(at_caller)}")
        self.assertLessEqual(len(at_callee), PACKETS, "duplicated packets at the callee")
        self.assertLessEqual(len(at_caller), PACKETS, "duplicated packets at the caller")
        # Symmetric RTP: each end receives from the relay port it sends to (the SDP's).
        self.assertEqual({src for src, _n in at_callee}, {to_caller_side},
                         "the callee must receive from the relay port its SDP names")
        self.assertEqual({src for src, _n in at_caller}, {to_callee_side},
                         "the caller must receive from the relay port its SDP names")
        self.assertEqual([n for _s, n in at_callee], sorted(n for _s, n in at_callee),
                         "caller->callee reordered")
        q = self.relay.query(call_id)
        self.assertIsNotNone(q, "no reply to ng query")
        self.assertEqual(text(q.get("result", b"")), "ok", f"ng query during the call: {q}")

        # The call ends (BYE through Kamailio -> rtpengine_delete).
        res = uac.wait(30)
        self.assertTrue(h.sipp_ok(res, 1)[0], f"uac: {res.summary()}\n" + self.diag(kam.proc, self.relay.proc))
        h.wait_until(lambda: call_id not in self.relay.call_ids(), 3,
                     f"{self.relay.kind} deleting the call after the BYE",
                     proc=self.relay.proc)
        q = self.relay.query(call_id)
        self.assertTrue(q is None or text(q.get("result", b"")) != "ok",
                        f"the call is still known after the BYE: {q}")
        # ... and the relay no longer forwards on the call's ports.
        caller.clear()
        callee.clear()
        caller.send_stream(to_callee_side, 10, start=1000)
        callee.send_stream(to_caller_side, 10, start=1000)
        time.sleep(0.3)
        self.assertEqual(callee.from_peer(caller), [], "RTP forwarded after the call was deleted")
        self.assertEqual(caller.from_peer(callee), [], "RTP forwarded after the call was deleted")
        uas_res = uas.result()
        self.assertEqual(h._int(uas_res.stats, "SuccessfulCall(C)"), 1, f"uas: {uas_res.summary()}")
        self.assertTrue(self.relay.proc.alive(), f"{self.relay.kind} died")

    def test_busy_callee_leaves_no_session(self) -> None:
        caller = self.endpoint("caller")
        uas = h.Sipp(self.tmp, "uas", scenario=h.scenario("media_uas_busy.xml"), timeout_s=60,
                     timeout_error=False, trace_msg=True).start(self.cleanup)
        kam = start_kamailio(self.tmp, self.cleanup, self.relay, uas.port)
        uac = h.Sipp(self.tmp, "uac", scenario=h.scenario("media_uac_busy.xml"),
                     remote=kam.hostport, calls=1, rate=1, timeout_s=20, recv_timeout_ms=8000,
                     keys={"rtp_port": caller.port}, trace_msg=True)
        uac.start(self.cleanup, wait=False)
        # The offer creates the session while the callee rings (300 ms before its 486).
        seen: List[str] = []

        def ringing_session() -> bool:
            seen[:] = self.relay.call_ids()
            return len(seen) == 1
        h.wait_until(ringing_session, 5, f"{self.relay.kind} holding the offered call",
                     interval=0.02, proc=uac.proc)
        res = uac.wait(30)
        self.assertTrue(h.sipp_ok(res, 1)[0], f"uac: {res.summary()}\n" + self.diag(kam.proc))
        h.wait_until(lambda: self.relay.call_ids() == [], 3,
                     f"{self.relay.kind} deleting the call after the 486 (failure route)",
                     proc=self.relay.proc)
        q = self.relay.query(seen[0])
        self.assertTrue(q is None or text(q.get("result", b"")) != "ok",
                        f"the call is still known after the 486: {q}")
        self.assertTrue(self.relay.proc.alive(), f"{self.relay.kind} died")

    def test_cancelled_call_leaves_no_session(self) -> None:
        caller = self.endpoint("caller")
        uas = h.Sipp(self.tmp, "uas", scenario=h.scenario("media_uas_cancel.xml"), timeout_s=60,
                     timeout_error=False, trace_msg=True).start(self.cleanup)
        kam = start_kamailio(self.tmp, self.cleanup, self.relay, uas.port)
        uac = h.Sipp(self.tmp, "uac", scenario=h.scenario("media_uac_cancel.xml"),
                     remote=kam.hostport, calls=1, rate=1, duration_ms=1000, timeout_s=20,
                     recv_timeout_ms=8000, keys={"rtp_port": caller.port}, trace_msg=True)
        uac.start(self.cleanup, wait=False)
        # The offer creates the session; the caller cancels while the callee rings (1 s).
        seen: List[str] = []

        def ringing_session() -> bool:
            seen[:] = self.relay.call_ids()
            return len(seen) == 1
        h.wait_until(ringing_session, 5, f"{self.relay.kind} holding the offered call",
                     interval=0.02, proc=uac.proc)
        res = uac.wait(30)
        self.assertTrue(h.sipp_ok(res, 1)[0], f"uac: {res.summary()}\n" + self.diag(kam.proc))
        h.wait_until(lambda: self.relay.call_ids() == [], 3,
                     f"{self.relay.kind} deleting the call after the CANCEL",
                     proc=self.relay.proc)
        uas_res = uas.result()
        self.assertEqual(h._int(uas_res.stats, "SuccessfulCall(C)"), 1, f"uas: {uas_res.summary()}")
        self.assertTrue(self.relay.proc.alive(), f"{self.relay.kind} died")



class TestKamailioRtpengine(KamailioMediaMixin, unittest.TestCase):
    """Kamailio + the real rtpengine daemon: the reference behaviour."""
    start_relay = staticmethod(start_rtpengine)


class TestKamailioEvosipMedia(KamailioMediaMixin, unittest.TestCase):
    """Kamailio + `evosip media`: must behave like rtpengine on the wire."""
    start_relay = staticmethod(start_evosip_media)


if __name__ == "__main__":
    unittest.main()
