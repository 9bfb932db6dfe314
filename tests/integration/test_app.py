"""The app role over the wire: `evosip app` alone with a temporary
sounds directory (WAVs made here: tones whose frequency the test knows) and a voicemail
directory. A raw SIP UAC (this test's UDP socket) sends INVITEs with X-Evosip-* headers as the
router would, with an SDP offer that points at a Python RTP socket, and asserts what a caller
would hear and see: responses, RTP headers and timing, the decoded audio (Goertzel), BYEs from
the app, stored voicemail, redirects.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import socket
import struct
import subprocess
import time
import unittest
import wave
from typing import List, Optional, Tuple

import harness as h

RATE = 8000


# ---- audio helpers (G.711, tones, Goertzel) --------------------------------------------

def ulaw_decode(b: int) -> int:
    b = ~b & 0xFF
    sign, exp, mant = b & 0x80, (b >> 4) & 7, b & 0x0F
    mag = ((mant << 3) + 0x84) << exp
    return (0x84 - mag) if sign else (mag - 0x84)


def alaw_decode(b: int) -> int:
    b ^= 0x55
    sign, exp, mant = b & 0x80, (b >> 4) & 7, b & 0x0F
    mag = (mant << 4) + 8 if exp == 0 else ((mant << 4) + 0x108) << (exp - 1)
    return mag if sign else -mag


ULAW = [ulaw_decode(i) for i in range(256)]
ALAW = [alaw_decode(i) for i in range(256)]


def ulaw_encode(s: int) -> int:
    # the nearest code by table search over the monotonic halves (slow but exact enough)
    best, err = 0, 1 << 30
    for code in range(256):
        e = abs(ULAW[code] - s)
        if e < err:
            best, err = code, e
    return best


_ULAW_ENC = {}


def ulaw_bytes(samples: List[int]) -> bytes:
    out = bytearray()
    for s in samples:
        q = max(-32768, min(32767, s)) >> 4
        c = _ULAW_ENC.get(q)
        if c is None:
            c = _ULAW_ENC[q] = ulaw_encode(q << 4)
        out.append(c)
    return bytes(out)


def tone(freq: float, n: int, amp: int = 8000, rate: int = RATE) -> List[int]:
    return [int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)]


def goertzel(samples: List[int], freq: float) -> float:
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    return s1 * s1 + s2 * s2 - k * s1 * s2


def tone_ratio(samples: List[int], freq: float) -> float:
    """Share of the block's energy at freq (about 1 for a pure tone)."""
    energy = sum(x * x for x in samples)
    if energy == 0:
        return 0.0
    return 2 * goertzel(samples, freq) / (len(samples) * energy)


def write_wav(path: str, samples: List[int], rate: int = RATE) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))


def read_wav(path: str) -> Tuple[int, List[int]]:
    with wave.open(path, "rb") as w:
        n = w.getnframes()
        data = w.readframes(n)
        return w.getframerate(), list(struct.unpack(f"<{n}h", data))


# ---- RTP -------------------------------------------------------------------------------

def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker=False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def parse_rtp(data: bytes):
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    return {"marker": bool(b1 & 0x80), "pt": b1 & 0x7F, "seq": seq, "ts": ts, "ssrc": ssrc,
            "payload": data[12:]}


def dtmf_packets(digit: str, seq: int, ts: int, ssrc: int, pt: int = 101) -> List[bytes]:
    event = "0123456789*#".index(digit)
    out = []
    for i, dur in enumerate((400, 800, 1200)):
        out.append(rtp_packet(pt, seq + i, ts, ssrc, struct.pack("!BBH", event, 10, dur),
                              marker=(i == 0)))
    for j in range(3):
        out.append(rtp_packet(pt, seq + 3 + j, ts, ssrc, struct.pack("!BBH", event, 0x80 | 10, 1600)))
    return out


class RtpPeer:
    """The caller's RTP socket."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.remote: Optional[Tuple[str, int]] = None
        self.seq, self.ts, self.ssrc = 1000, 50000, 0x1234ABCD

    def close(self):
        self.sock.close()

    def collect(self, seconds: float, stop_after_silence: float = 0.0):
        """Packets (arrival time, parsed) for `seconds`, or until no packet for
        stop_after_silence seconds once some arrived."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                # What arrived in time but was not read yet (this process may have been
                # descheduled on a busy machine) still counts.
                self.sock.settimeout(0.0)
                try:
                    while True:
                        data, src = self.sock.recvfrom(4096)
                        out.append((time.monotonic(), parse_rtp(data), src))
                except (BlockingIOError, socket.timeout):
                    pass
                break
            wait = min(left, stop_after_silence) if (out and stop_after_silence) else left
            self.sock.settimeout(wait)
            try:
                data, src = self.sock.recvfrom(4096)
            except socket.timeout:
                if out and stop_after_silence:
                    break
                continue
            out.append((time.monotonic(), parse_rtp(data), src))
        return out

    def drain(self):
        self.sock.settimeout(0.0)
        try:
            while True:
                self.sock.recvfrom(4096)
        except (BlockingIOError, socket.timeout):
            pass

    def send_audio(self, samples: List[int], pt: int = 0, paced: bool = True):
        assert self.remote, "no remote RTP address"
        frames = [samples[i:i + 160] for i in range(0, len(samples) - 159, 160)]
        t0 = time.monotonic()
        for i, f in enumerate(frames):
            self.sock.sendto(rtp_packet(pt, self.seq, self.ts, self.ssrc, ulaw_bytes(f),
                                        marker=(i == 0)), self.remote)
            self.seq += 1
            self.ts += 160
            if paced:
                delay = t0 + (i + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def send_dtmf(self, digit: str):
        for i, p in enumerate(dtmf_packets(digit, self.seq, self.ts, self.ssrc)):
            self.sock.sendto(p, self.remote)
            time.sleep(0.02)
        self.seq += 6
        self.ts += 1600


def offer(port: int, fmts: str = "0 8 101", extra: str = "", addr: str = h.HOST) -> bytes:
    body = (f"v=0\r\no=alice 1 1 IN IP4 {h.HOST}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {fmts}\r\n")
    if "101" in fmts.split():
        body += "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    return (body + extra).encode()


def sdp_media(body: bytes) -> Tuple[str, int, List[str], str]:
    text = body.decode()
    c = re.search(r"(?m)^c=IN IP4 (\S+)", text)
    m = re.search(r"(?m)^m=audio (\d+) RTP/AVP ([\d ]+)", text)
    d = re.search(r"(?m)^a=(sendrecv|sendonly|recvonly|inactive)", text)
    assert c and m, text
    return c.group(1), int(m.group(1)), m.group(2).split(), d.group(1) if d else "sendrecv"


class Call:
    """The UAC side of one call to the app (as the router would send it)."""

    def __init__(self, test: "AppTest", headers: List[str], fmts: str = "0 8 101",
                 body: Optional[bytes] = None, user: str = "100"):
        self.t = test
        self.sip = h.SipClient("UDP", test.app_addr, timeout=3)
        test.addCleanup(self.sip.close)
        self.rtp = RtpPeer()
        test.addCleanup(self.rtp.close)
        self.call_id = h.new_call_id()
        self.from_tag = os.urandom(4).hex()
        self.to_tag = ""
        self.cseq = 1
        self.ruri = f"sip:{user}@{h.HOST}:{test.app_addr[1]}"
        self.headers = headers
        self.body = offer(self.rtp.port, fmts) if body is None else body
        self.responses: List[h.SipMessage] = []
        self.invite_bytes = b""

    def _req(self, method: str, cseq: int, body: bytes = b"", extra=(), to_tag=None,
             branch=None, ruri=None) -> bytes:
        hdrs = list(extra)
        if body:
            hdrs.append("Content-Type: application/sdp")
        return self.sip.request(method, ruri or self.ruri, call_id=self.call_id, cseq=cseq,
                                from_uri=f"sip:alice@{h.ROUTER_DOMAIN}", from_tag=self.from_tag,
                                to_uri=f"sip:100@{h.ROUTER_DOMAIN}",
                                to_tag=self.to_tag if to_tag is None else to_tag,
                                extra_headers=hdrs, body=body, branch=branch)

    def invite(self) -> None:
        # Record-Routed by "the edge": here our own address, so in-dialog requests reach us.
        self.record_route = f"<sip:{h.HOST}:{self.sip.local_port};lr>"
        self.invite_bytes = self._req("INVITE", self.cseq, self.body,
                                      extra=[f"Record-Route: {self.record_route}"] +
                                      self.headers)
        self.sip.send(self.invite_bytes)

    def recv(self, timeout: float = 3.0) -> Optional[h.SipMessage]:
        m = self.sip.recv(timeout)
        if m is not None:
            if m.is_response:
                self.responses.append(m)
            for name in m.header_names():
                self.t.assertFalse(name.lower().startswith("x-evosip"),
                                   f"{name} left the app:\n{m}")
        return m

    def response(self, timeout: float = 3.0, final: bool = True) -> h.SipMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                break
            if m.is_response and m.get("CSeq", ).endswith("INVITE") and (
                    m.status >= 200 or (not final and m.status > 100)):
                if m.get("To") and "tag=" in m.get("To"):
                    self.to_tag = m.get("To").split("tag=", 1)[1].split(";")[0]
                if m.body:
                    c, port, _fmts, _d = sdp_media(m.body)
                    self.rtp.remote = (c, port)
                return m
        raise AssertionError(f"no {'final' if final else 'provisional'} response; got "
                             f"{[r.first_line for r in self.responses]}")

    def ack(self, cseq: Optional[int] = None) -> None:
        self.sip.send(self._req("ACK", cseq or self.cseq, ruri=self.contact()))

    def contact(self) -> str:
        for r in reversed(self.responses):
            c = r.get("Contact")
            if c:
                return re.search(r"<([^>]+)>", c).group(1)
        return self.ruri

    def answer_call(self) -> h.SipMessage:
        self.invite()
        r = self.response()
        self.t.assertEqual(r.status, 200, str(r))
        self.ack()
        return r

    def bye(self) -> h.SipMessage:
        self.cseq += 1
        self.sip.send(self._req("BYE", self.cseq, ruri=self.contact()))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m and m.is_response and m.get("CSeq").endswith("BYE"):
                return m
        raise AssertionError("no response to our BYE")

    def expect_bye(self, timeout: float) -> h.SipMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m is not None and not m.is_response and m.method == "BYE":
                self.sip.sock.sendto(h.build_response(m, 200, "OK"), m.source)
                return m
        raise AssertionError(f"no BYE from the app within {timeout} s")

    def reinvite(self, body: bytes) -> h.SipMessage:
        self.cseq += 1
        self.sip.send(self._req("INVITE", self.cseq, body, ruri=self.contact()))
        r = self.response()
        self.ack(self.cseq)
        return r


def decode(pkts, law: str) -> List[int]:
    table = ULAW if law == "PCMU" else ALAW
    out = []
    for _t, p, _s in pkts:
        out.extend(table[b] for b in p["payload"])
    return out


class AppTest(h.ProxyTestCase):
    TONE_S = 1.0

    def setUp(self):
        super().setUp()
        self.bin = h.require_role("app")
        self.sounds = os.path.join(self.tmp, "sounds")
        self.vm = os.path.join(self.tmp, "voicemail")
        d = os.path.join(self.sounds, "default", "en")
        write_wav(os.path.join(d, "tone1k.wav"), tone(1000, int(RATE * self.TONE_S)))
        write_wav(os.path.join(d, "long.wav"), tone(1000, RATE * 20))
        write_wav(os.path.join(d, "greeting.wav"), tone(600, RATE // 5))
        write_wav(os.path.join(d, "beep.wav"), tone(1400, RATE // 10))
        write_wav(os.path.join(d, "menu.wav"), tone(500, RATE // 2))
        write_wav(os.path.join(d, "invalid.wav"), tone(300, RATE * 6 // 10))
        # a custom set with its own tone1k (at 2 kHz, so the test can tell) and no menu
        write_wav(os.path.join(self.sounds, "acme", "en", "tone1k.wav"), tone(2000, RATE // 2))
        # 16 kHz source: decimated at load
        write_wav(os.path.join(d, "wide.wav"), tone(1000, 16000 // 2, rate=16000), rate=16000)
        self.start_app()

    def start_app(self, **app_over):
        self.sip_port = h.free_port()
        self.control_port = h.free_port()
        # Below the ephemeral range and above the media benchmarks' 10000-29999 (which may be
        # running on a shared machine); 600 ports, so that a few taken ones do not matter.
        base = 30000 + (h.free_port() % 4) * 600
        app = {"sounds_dir": self.sounds, "voicemail_dir": self.vm, "rtp_address": h.HOST,
               "rtp_port_min": base, "rtp_port_max": base + 599, "rtp_timeout_s": 5,
               "max_call_s": 60, "voicemail_max_s": 30, "voicemail_silence_s": 0}
        app.update(app_over)
        cfg = {"sip": {"listen": [f"udp:{h.HOST}:{self.sip_port}"]},
               "control": {"listen": f"{h.HOST}:{self.control_port}"},
               "workers": 2, "log": {"level": "info"}, "app": app}
        path = h.write_yaml(os.path.join(self.tmp, "app.yaml"), cfg)
        self.proc = self.cleanup.add(h.Process("app", [self.bin, "app", "--config", path],
                                               self.tmp))
        self.control_url = f"http://{h.HOST}:{self.control_port}"
        h.wait_http_ok(self.control_url + "/readyz", timeout=15, proc=self.proc)
        self.app_addr = (h.HOST, self.sip_port)

    def rpc(self, method, params=None):
        return h.rpc(self.control_url + "/rpc", method, params)

    def metrics(self) -> h.Metrics:
        return h.scrape(self.control_url + "/metrics")

    def assert_stream(self, pkts, pt: int, min_packets: int):
        self.assertGreaterEqual(len(pkts), min_packets, "too few RTP packets")
        first = pkts[0][1]
        self.assertTrue(first["marker"], "no marker on the first packet")
        for (_ta, a, _sa), (_tb, b, _sb) in zip(pkts, pkts[1:]):
            self.assertEqual(b["seq"], (a["seq"] + 1) & 0xFFFF, "sequence numbers not consecutive")
            self.assertEqual(b["ts"], (a["ts"] + 160) & 0xFFFFFFFF, "timestamp not +160")
            self.assertEqual(b["ssrc"], first["ssrc"], "SSRC changed")
            self.assertFalse(b["marker"], "marker in the middle of a talkspurt")
            self.assertEqual(b["pt"], pt)
            self.assertEqual(len(b["payload"]), 160)
        gaps = sorted(tb - ta for (ta, _a, _s), (tb, _b, _s2) in zip(pkts, pkts[1:]))
        mean = (pkts[-1][0] - pkts[0][0]) / (len(pkts) - 1)
        self.assertAlmostEqual(mean, 0.020, delta=0.002, msg=f"mean inter-arrival {mean}")
        median = gaps[len(gaps) // 2]
        self.assertAlmostEqual(median, 0.020, delta=0.004, msg=f"median inter-arrival {median}")


class AppPlayback(AppTest):
    def test_playback_answers_plays_the_tone_paced_then_hangs_up(self):
        for fmts, law, pt in (("0 8 101", "PCMU", 0), ("8 0", "PCMA", 8)):
            with self.subTest(law=law):
                c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: tone1k"], fmts=fmts)
                r = c.answer_call()
                _addr, port, answer_fmts, direction = sdp_media(r.body)
                self.assertEqual(answer_fmts[0], str(pt))
                self.assertEqual(direction, "sendrecv")
                self.assertEqual("101" in answer_fmts, "101" in fmts.split())
                self.assertIn("Contact", r.header_names())
                self.assertEqual(r.get("Record-Route"), c.record_route)
                pkts = c.rtp.collect(3.0, stop_after_silence=0.5)
                self.assertEqual(pkts[0][2], (h.HOST, port), "RTP not from the SDP port")
                self.assert_stream(pkts, pt, 45)
                self.assertLessEqual(len(pkts), 51)
                audio = decode(pkts, law)
                self.assertGreater(tone_ratio(audio[:7000], 1000), 0.8, "not the 1 kHz tone")
                bye = c.expect_bye(2.0)
                self.assertEqual(bye.ruri, f"sip:alice@{h.HOST}:{c.sip.local_port};transport=udp")
                self.assertIn(c.to_tag, bye.get("From"))
                self.assertIn(c.from_tag, bye.get("To"))
                self.assertEqual(bye.get("Route"), c.record_route)

    def test_custom_sound_set_then_default_then_404(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: tone1k",
                        "X-Evosip-SoundCustom: acme", "X-Evosip-SoundLocale: en"])
        c.answer_call()
        audio = decode(c.rtp.collect(2.0, stop_after_silence=0.5), "PCMU")
        self.assertGreater(tone_ratio(audio[:3000], 2000), 0.8, "not acme's 2 kHz tone")
        c.expect_bye(2)
        # acme has no menu.wav: the default one plays (500 Hz)
        c2 = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: menu",
                         "X-Evosip-SoundCustom: acme"])
        c2.answer_call()
        audio = decode(c2.rtp.collect(2.0, stop_after_silence=0.5), "PCMU")
        self.assertGreater(tone_ratio(audio[:3000], 500), 0.8)
        c3 = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: nothing-here"])
        c3.invite()
        self.assertEqual(c3.response().status, 404)
        c4 = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: ../../etc/passwd"])
        c4.invite()
        self.assertEqual(c4.response().status, 404)

    def test_16khz_prompt_is_decimated(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: wide"])
        c.answer_call()
        pkts = c.rtp.collect(2.0, stop_after_silence=0.5)
        self.assertTrue(22 <= len(pkts) <= 27, len(pkts))  # 0.5 s
        self.assertGreater(tone_ratio(decode(pkts, "PCMU")[:3200], 1000), 0.8)

    def test_noanswer_plays_early_media_then_fails_the_call(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: tone1k",
                        "X-Evosip-Option: noanswer"])
        c.invite()
        p = c.response(final=False)
        self.assertEqual(p.status, 183)
        self.assertTrue(p.body)
        pkts = c.rtp.collect(3.0, stop_after_silence=0.5)
        self.assert_stream(pkts, 0, 45)
        final = c.response(3)
        self.assertEqual(final.status, 480)
        self.assertNotIn(200, [r.status for r in c.responses])

    def test_errors_unknown_action_missing_action_no_codec_hangup(self):
        c = Call(self, ["X-Evosip-Action: Conference"])
        c.invite()
        r = c.response()
        self.assertEqual(r.status, 501)
        self.assertIn("Conference", r.first_line)
        c = Call(self, [])
        c.invite()
        self.assertEqual(c.response().status, 400)
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: tone1k"], fmts="18 9")
        c.invite()
        self.assertEqual(c.response().status, 488)
        c = Call(self, ["X-Evosip-Action: Hangup", "X-Evosip-Status: 486",
                        "X-Evosip-Reason: Busy Here Today"])
        c.invite()
        r = c.response()
        self.assertEqual(r.status, 486)
        self.assertEqual(r.first_line, "SIP/2.0 486 Busy Here Today")
        c = Call(self, ["X-Evosip-Action: Hangup"])
        c.invite()
        self.assertEqual(c.response().status, 480)
        c = Call(self, ["X-Evosip-Action: Echo", "Require: 100rel"])
        c.invite()
        r = c.response()
        self.assertEqual(r.status, 420)
        self.assertEqual(r.get("Unsupported"), "100rel")

    def test_cancel_during_early_media_gives_487_and_stops_rtp(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long",
                        "X-Evosip-Option: noanswer"])
        c.invite()
        self.assertEqual(c.response(final=False).status, 183)
        self.assertGreater(len(c.rtp.collect(0.3)), 5)
        branch = re.search(r"branch=([^;\r\n]+)", c.invite_bytes.decode()).group(1)
        c.sip.send(c._req("CANCEL", c.cseq, branch=branch, to_tag=""))
        statuses = {}
        deadline = time.monotonic() + 3
        while len(statuses) < 2 and time.monotonic() < deadline:
            m = c.recv(deadline - time.monotonic())
            if m and m.is_response:
                statuses[m.get("CSeq").split()[1]] = m.status
        self.assertEqual(statuses.get("CANCEL"), 200)
        self.assertEqual(statuses.get("INVITE"), 487)
        c.ack()
        time.sleep(0.1)
        c.rtp.drain()
        self.assertEqual(c.rtp.collect(0.5), [], "RTP after the CANCEL")

    def test_hold_stops_rtp_and_unhold_resumes_it(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        c.answer_call()
        self.assertGreater(len(c.rtp.collect(0.4)), 10)
        r = c.reinvite(offer(c.rtp.port, "0 101", "a=sendonly\r\n"))
        self.assertEqual(r.status, 200)
        self.assertEqual(sdp_media(r.body)[3], "recvonly")
        time.sleep(0.1)
        c.rtp.drain()
        self.assertEqual(c.rtp.collect(0.5), [], "RTP while on hold")
        # c=0.0.0.0 hold is the same
        r = c.reinvite(offer(c.rtp.port, "0 101", addr="0.0.0.0"))
        self.assertEqual(r.status, 200)
        self.assertEqual(c.rtp.collect(0.3), [])
        # off hold, at a new port: RTP goes there, a new talkspurt (marker)
        other = RtpPeer()
        self.addCleanup(other.close)
        r = c.reinvite(offer(other.port, "0 101"))
        self.assertEqual(sdp_media(r.body)[3], "sendrecv")
        pkts = other.collect(0.5)
        self.assertGreater(len(pkts), 15)
        self.assertTrue(pkts[0][1]["marker"])
        self.assertEqual(c.bye().status, 200)
        time.sleep(0.1)
        other.drain()
        self.assertEqual(other.collect(0.3), [], "RTP after our BYE")

    def test_2xx_is_retransmitted_until_the_ack(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        c.invite()
        first = c.response()
        self.assertEqual(first.status, 200)
        again = c.response(2.0)  # T1 = 500 ms: the 2xx again
        self.assertEqual(again.status, 200)
        self.assertEqual(again.get("To"), first.get("To"))
        # a retransmitted INVITE gets the same 2xx
        c.sip.send(c.invite_bytes)
        self.assertEqual(c.response(1.0).get("To"), first.get("To"))
        c.ack()
        time.sleep(0.1)
        while c.sip.recv(0.05) is not None:
            pass
        self.assertIsNone(c.sip.recv(2.5), "the 2xx went on after the ACK")
        self.assertEqual(c.bye().status, 200)

    def test_bye_for_unknown_dialog_is_481_and_options_200(self):
        c = Call(self, [])
        c.to_tag = "nope"
        r = c.bye()
        self.assertEqual(r.status, 481)
        c.sip.send(c._req("OPTIONS", 1, to_tag=""))
        self.assertEqual(c.sip.final_response(2).status, 200)

    def test_metrics_and_config_errors(self):
        c = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: tone1k"])
        c.answer_call()
        c.rtp.collect(2.0, stop_after_silence=0.5)
        c.expect_bye(2)
        time.sleep(0.2)
        m = self.metrics()
        self.assertEqual(m.get("evosip_app_calls_total", action="Playback"), 1)
        self.assertGreaterEqual(m.get("evosip_app_rtp_packets_total", direction="sent"), 45)
        self.assertTrue(m.has("evosip_app_pacing_jitter_seconds"))
        self.assertEqual(m.get("evosip_app_calls_active"), 0)
        # an unknown key: exit 2 naming it
        bad = h.write_yaml(os.path.join(self.tmp, "bad.yaml"),
                           {"app": {"sounds_dir": self.sounds, "sound_dir": "x"}})
        p = subprocess.run([self.bin, "app", "--config", bad], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("app.sound_dir", p.stderr)
        env = dict(os.environ, EVOSIP_APP_RTP_TIMEOUT_S="abc")
        p = subprocess.run([self.bin, "app", "--config", bad.replace("bad", "app")],
                           capture_output=True, text=True, timeout=10, env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("app.rtp_timeout_s", p.stderr)


class AppEchoVoicemailMenu(AppTest):
    def test_echo_returns_our_audio(self):
        c = Call(self, ["X-Evosip-Action: Echo"], fmts="0 101")
        c.answer_call()
        c.rtp.send_audio(tone(700, RATE), pt=0)
        pkts = c.rtp.collect(0.5, stop_after_silence=0.3)
        self.assertGreater(len(pkts), 40)
        self.assertTrue(pkts[0][1]["marker"])
        self.assertNotEqual(pkts[0][1]["ssrc"], c.rtp.ssrc)
        audio = decode(pkts, "PCMU")
        self.assertGreater(tone_ratio(audio[:6000], 700), 0.8)
        self.assertEqual(c.bye().status, 200)

    def test_rtcp_and_garbage_on_the_rtp_port_are_ignored(self):
        c = Call(self, ["X-Evosip-Action: Echo"], fmts="0 101")
        c.answer_call()
        rtcp_rr = struct.pack("!BBHI", 0x80, 201, 1, 0x1234ABCD)  # an empty receiver report
        for junk in (rtcp_rr, b"", b"\x00", b"\xff" * 11, os.urandom(1500), b"\x80" * 12):
            c.rtp.sock.sendto(junk, c.rtp.remote)
        c.rtp.send_audio(tone(700, RATE // 2), pt=0)
        pkts = c.rtp.collect(0.5, stop_after_silence=0.3)
        self.assertGreater(len(pkts), 20, "the echo stopped after RTCP/garbage")
        self.assertEqual(c.bye().status, 200)
        m = self.metrics()
        self.assertGreaterEqual(m.get("evosip_app_rtp_packets_total", direction="received_rtcp"), 1)

    def test_voicemail_records_the_tone_with_metadata_and_lists_it(self):
        c = Call(self, ["X-Evosip-Action: Voicemail", "X-Evosip-Mailbox: bob",
                        "X-Evosip-Sound: greeting"])
        started = time.time()
        c.answer_call()
        # greeting (600 Hz, 0.2 s) then the beep (1400 Hz, 0.1 s)
        heard = decode(c.rtp.collect(0.5), "PCMU")
        self.assertGreater(tone_ratio(heard[:1500], 600), 0.7)
        self.assertGreater(tone_ratio(heard[1700:2300], 1400), 0.6)
        c.rtp.send_audio(tone(440, RATE * 2), pt=0)
        self.assertEqual(c.bye().status, 200)
        box = os.path.join(self.vm, "bob")
        h.wait_until(lambda: glob.glob(os.path.join(box, "*.json")), 5, "voicemail metadata")
        meta_path = glob.glob(os.path.join(box, "*.json"))[0]
        with open(meta_path) as f:
            meta = json.load(f)
        self.assertEqual(meta["mailbox"], "bob")
        self.assertEqual(meta["caller"], "alice")
        self.assertEqual(meta["call_id"], c.call_id)
        self.assertRegex(meta["start"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertLess(abs(meta["start_unix"] - started), 5)
        self.assertTrue(1.8 <= meta["duration_s"] <= 2.3, meta)
        rate, samples = read_wav(os.path.join(box, meta["file"]))
        self.assertEqual(rate, 8000)
        self.assertAlmostEqual(len(samples) / 8000, meta["duration_s"], delta=0.01)
        self.assertGreater(tone_ratio(samples[800:12800], 440), 0.8)
        listed = self.rpc("voicemail.list", {"mailbox": "bob"})
        self.assertEqual([m["id"] for m in listed["messages"]], [meta["id"]])
        self.assertEqual(self.rpc("voicemail.list", {"mailbox": "nobody"})["messages"], [])
        with self.assertRaises(h.RpcError):
            self.rpc("voicemail.list", {"mailbox": "../etc"})
        m = self.metrics()
        self.assertEqual(m.get("evosip_app_recordings_total", result="written"), 1)

    def test_voicemail_without_mailbox_is_refused(self):
        c = Call(self, ["X-Evosip-Action: Voicemail"])
        c.invite()
        self.assertEqual(c.response().status, 400)

    def test_menu_redirects_on_dtmf(self):
        targets = "X-Evosip-Targets: 1=sip:100@evosip.local,2=sip:101@evosip.local"
        c = Call(self, ["X-Evosip-Action: Menu", targets])
        c.invite()
        p = c.response(final=False)
        self.assertEqual(p.status, 183)
        self.assertGreater(len(c.rtp.collect(0.2)), 3)  # the prompt as early media
        c.rtp.send_dtmf("1")
        r = c.response(3)
        self.assertEqual(r.status, 302)
        self.assertEqual(r.get("Contact"), "<sip:100@evosip.local>")
        c.ack()

    def test_menu_wrong_digit_plays_the_error_then_accepts_a_good_one(self):
        targets = "X-Evosip-Targets: 1=sip:100@evosip.local,2=sip:101@evosip.local"
        c = Call(self, ["X-Evosip-Action: Menu", targets], fmts="8 101")
        c.invite()
        self.assertEqual(c.response(final=False).status, 183)
        c.rtp.collect(0.1)
        c.rtp.send_dtmf("9")
        c.rtp.drain()
        heard = decode(c.rtp.collect(0.25), "PCMA")
        self.assertGreater(tone_ratio(heard[:1200], 300), 0.6, "no error prompt")
        c.rtp.send_dtmf("2")
        r = c.response(3)
        self.assertEqual(r.status, 302)
        self.assertEqual(r.get("Contact"), "<sip:101@evosip.local>")

    def test_menu_gives_up_after_the_retries(self):
        c = Call(self, ["X-Evosip-Action: Menu", "X-Evosip-Targets: 1=sip:100@evosip.local",
                        "X-Evosip-Retries: 0", "X-Evosip-Status: 404"])
        c.invite()
        self.assertEqual(c.response(final=False).status, 183)
        c.rtp.send_dtmf("7")
        self.assertEqual(c.response(3).status, 404)


class AppIpv6(AppTest):
    def setUp(self):
        h.ProxyTestCase.setUp(self)
        self.bin = h.require_role("app")
        self.sounds = os.path.join(self.tmp, "sounds")
        self.vm = os.path.join(self.tmp, "voicemail")
        write_wav(os.path.join(self.sounds, "default", "en", "tone1k.wav"), tone(1000, RATE // 2))

    def test_playback_over_ipv6(self):
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        sip_port, ctl = h.free_port(), h.free_port()
        cfg = {"sip": {"listen": [f"udp:[::1]:{sip_port}"]}, "control": {"listen": f"{h.HOST}:{ctl}"},
               "workers": 1, "app": {"sounds_dir": self.sounds, "voicemail_dir": self.vm,
                                     "rtp_address": "::1", "rtp_port_min": 32000,
                                     "rtp_port_max": 32599}}
        path = h.write_yaml(os.path.join(self.tmp, "app6.yaml"), cfg)
        proc = self.cleanup.add(h.Process("app6", [self.bin, "app", "--config", path], self.tmp))
        h.wait_http_ok(f"http://{h.HOST}:{ctl}/readyz", timeout=15, proc=proc)
        rtp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sip = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        for sock in (rtp, sip):
            self.addCleanup(sock.close)
            sock.bind(("::1", 0))
            sock.settimeout(2)
        rp, sp = rtp.getsockname()[1], sip.getsockname()[1]
        body = f"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio {rp} RTP/AVP 8\r\n"
        head = (f"SIP/2.0/UDP [::1]:{sp};branch=z9hG4bK-v6-{os.urandom(4).hex()};rport\r\n"
                f"From: <sip:alice@evosip.local>;tag=a6\r\nTo: <sip:100@evosip.local>")
        invite = (f"INVITE sip:100@[::1]:{sip_port} SIP/2.0\r\nVia: {head}\r\nCall-ID: v6@itest\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:alice@[::1]:{sp}>\r\nX-Evosip-Action: Playback\r\n"
                  f"X-Evosip-Sound: tone1k\r\nContent-Type: application/sdp\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}")
        sip.sendto(invite.encode(), ("::1", sip_port))
        ok = None
        for _ in range(3):
            m = h.SipMessage.parse(sip.recvfrom(4096)[0])
            if m.status == 200:
                ok = m
                break
        self.assertIsNotNone(ok)
        self.assertIn("c=IN IP6 ::1", ok.body.decode())
        to = ok.get("To")
        sip.sendto((f"ACK sip:app@[::1]:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:{sp};branch=z9hG4bK-v6a\r\n"
                    f"From: <sip:alice@evosip.local>;tag=a6\r\nTo: {to}\r\nCall-ID: v6@itest\r\n"
                    f"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode(), ("::1", sip_port))
        audio = []
        try:
            while len(audio) < 3200:
                audio.extend(ALAW[b] for b in parse_rtp(rtp.recvfrom(2048)[0])["payload"])
        except socket.timeout:
            pass
        self.assertGreater(tone_ratio(audio[:3200], 1000), 0.8)
        bye = h.SipMessage.parse(sip.recvfrom(4096)[0])
        self.assertEqual(bye.method, "BYE")
        self.assertIn("[::1]", bye.get("Via"))


class AppTimeouts(AppTest):
    def setUp(self):
        h.ProxyTestCase.setUp(self)
        self.bin = h.require_role("app")
        self.sounds = os.path.join(self.tmp, "sounds")
        self.vm = os.path.join(self.tmp, "voicemail")
        write_wav(os.path.join(self.sounds, "default", "en", "long.wav"), tone(1000, RATE * 20))
        self.start_app(rtp_timeout_s=1, max_call_s=2)

    def test_echo_without_rtp_times_out_and_max_duration_ends_playback(self):
        c = Call(self, ["X-Evosip-Action: Echo"])
        c.answer_call()
        t0 = time.monotonic()
        c.expect_bye(3)
        self.assertTrue(0.9 <= time.monotonic() - t0 <= 1.6)
        p = Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        p.answer_call()
        t0 = time.monotonic()
        p.expect_bye(4)
        self.assertTrue(1.7 <= time.monotonic() - t0 <= 2.5)
        m = self.metrics()
        self.assertEqual(m.get("evosip_app_events_total", event="rtp_timeout"), 1)
        self.assertEqual(m.get("evosip_app_events_total", event="max_duration"), 1)


if __name__ == "__main__":
    unittest.main()
