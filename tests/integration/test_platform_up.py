"""The whole platform as a user runs it: `evosip up` (edge, router, api, media, app on loopback)
with real headless baresip softphones registering as the demo subscribers it prints. Every
call's audio goes through `evosip media` (the up config
anchors all calls), so each test also proves the relay on the way.

- alice calls bob: each hears the other's tone (alice 440 Hz, bob 1000 Hz; Goertzel).
- alice calls 100: she receives the welcome prompt (duration and level of the prompt file).
- alice calls 101: she hears her own 440 Hz tone back (Echo).
- alice calls *97, plays 440 Hz and hangs up: a WAV holding that tone and its JSON metadata
  appear in her mailbox under `--data`, and the app's voicemail.list RPC lists it.
- a raw SIP phone calls 102 and sends the RFC 4733 digit 2: redirected (302) to 101.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import struct
import time
import unittest
import wave

import harness as h
import test_platform_baresip as pb
import test_router_media as rm


def free_block() -> int:
    """A port P with P (UDP+TCP) and P+10, P+20, P+30 (UDP) free: evosip up's layout."""
    for _ in range(100):
        p = h.free_port()
        if p + 30 > 65000:
            continue
        try:
            checks = [(p, socket.SOCK_STREAM)] + [(p + k, socket.SOCK_DGRAM)
                                                  for k in (0, 10, 20, 30)]
            for port, kind in checks:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind((h.HOST, port))
            return p
        except OSError:
            continue
    raise AssertionError("no free port block for evosip up")


class Up:
    """A running `evosip up`, with what it printed."""

    def __init__(self, work: str, cleanup: h.Cleanup):
        binary = h.require_role("up")
        for role in ("media", "app"):
            h.require_role(role)
        self.data = os.path.join(work, "data")
        self.sip_port = free_block()
        self.api_port = h.free_port()
        self.proc = cleanup.add(h.Process(
            "evosip-up", [binary, "up", "--data", self.data, "--sip-port", str(self.sip_port),
                          "--api-port", str(self.api_port)], work))
        h.wait_until(lambda: "Ctrl-C stops everything" in self.stdout(), 30,
                     "evosip up printing its banner", proc=self.proc)
        out = self.stdout()
        self.passwords = dict(re.findall(r"(?m)^  (\w+)\s+password (\S+)$", out))
        self.controls = dict(re.findall(r"(?m)^  (\w+) .*control (http://\S+)", out))
        self.sounds = os.path.join(os.path.dirname(binary), "sounds", "default", "en")

    def stdout(self) -> str:
        with open(self.proc.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def metric(self, role: str, name: str) -> float:
        return h.scrape(self.controls[role] + "/metrics").get(name)

    def rpc(self, role: str, method: str, params=None):
        return h.rpc(self.controls[role] + "/rpc", method, params)


@unittest.skipUnless(pb.BARESIP and os.path.isdir(pb.MODULES), "baresip is not installed")
class PlatformUp(h.ProxyTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.up = Up(self.tmp, self.cleanup)
        self.assertEqual(set(self.up.passwords), {"alice", "bob"}, self.up.stdout())
        self.assertTrue({"edge", "router", "api", "media", "app"} <= set(self.up.controls),
                        self.up.stdout())

    def tone(self, name: str, freq: float, seconds: float) -> str:
        path = os.path.join(self.tmp, f"{name}.wav")
        pb.write_sine(path, freq, seconds=seconds)
        return path

    def phone(self, user: str, tone: str, args=()) -> h.Process:
        return pb.start_softphone(self.tmp, self.cleanup, user, self.up.passwords[user],
                                  self.up.sip_port, tone, args)

    def registered(self, user: str) -> None:
        def bound() -> bool:
            r = self.up.rpc("router", "location.lookup", {"aor": f"{user}@evosip.local"})
            return bool(r.get("bindings"))
        h.wait_until(bound, 10, f"{user} registered through evosip up")

    def dial(self, user: str, target: str, tone: str, seconds: int = 25) -> h.Process:
        """user's phone calls target (and hangs up when its tone file ends)."""
        return self.phone(user, tone, ["-t", str(seconds), "-e",
                                       f"/dial sip:{target}@{h.HOST}:{self.up.sip_port}"])

    def wait_ended(self, p: h.Process, timeout: float = 30) -> str:
        h.wait_until(lambda: "terminated" in p.tail(20000) or "session closed" in p.tail(20000),
                     timeout, f"{p.name}'s call to end", proc=p)
        return p.tail(20000)

    def recording(self, user: str) -> str:
        rec = pb.received_wav(os.path.join(self.tmp, user))
        self.assertTrue(rec, f"{user} recorded nothing")
        return rec

    def assert_hears(self, rec: str, freq: float, who: str) -> None:
        tone, ratio, rms = pb.dominant_tone(rec, (440.0, 1000.0))
        self.assertEqual(tone, freq, f"{who} heard {tone} Hz (ratio {ratio:.2f}), not {freq}")
        self.assertGreater(ratio, 0.5, f"{who}: {freq} Hz buried in noise ({ratio:.2f})")
        self.assertGreater(rms, 1000, f"{who}: too quiet ({rms:.0f})")

    def test_alice_calls_bob_through_the_relay(self) -> None:
        bob = self.phone("bob", self.tone("bob-1000", 1000.0, 8.0), ["-t", "30"])
        self.registered("bob")
        before = self.up.metric("media", "evosip_media_packets_relayed_total")
        alice = self.dial("alice", "bob", self.tone("alice-440", 440.0, 4.0))
        log = self.wait_ended(alice)
        self.assertIn("Call established", log, log)
        h.wait_until(lambda: "terminated" in bob.tail(20000), 10, "bob seeing the hang-up")
        self.assertGreater(self.up.metric("media", "evosip_media_packets_relayed_total") - before,
                           200, "the relay forwarded (almost) no RTP")
        self.assert_hears(self.recording("alice"), 1000.0, "alice")
        self.assert_hears(self.recording("bob"), 440.0, "bob")

    def test_100_plays_the_welcome_prompt(self) -> None:
        with wave.open(os.path.join(self.up.sounds, "welcome.wav"), "rb") as w:
            prompt_s = w.getnframes() / w.getframerate()
        alice = self.dial("alice", "100", self.tone("alice-silence", 440.0, 20.0))
        log = self.wait_ended(alice, timeout=prompt_s + 15)
        self.assertIn("Call established", log, log)
        samples, rate = pb.read_samples(self.recording("alice"))
        loud = [i for i, x in enumerate(samples) if abs(x) > 300]
        self.assertTrue(loud, "alice received silence from 100")
        heard_s = (loud[-1] - loud[0]) / rate
        # The app hangs up after the prompt: what alice heard spans about the prompt's length.
        self.assertAlmostEqual(heard_s, prompt_s, delta=0.8,
                               msg=f"heard {heard_s:.2f} s of a {prompt_s:.2f} s prompt")
        block = samples[loud[0]:loud[-1]]
        rms = (sum(x * x for x in block) / len(block)) ** 0.5
        self.assertGreater(rms, 500, f"the prompt arrived too quiet ({rms:.0f})")

    def test_101_echoes_the_callers_audio(self) -> None:
        alice = self.dial("alice", "101", self.tone("alice-440", 440.0, 5.0))
        log = self.wait_ended(alice)
        self.assertIn("Call established", log, log)
        self.assert_hears(self.recording("alice"), 440.0, "alice (echo)")

    def test_star97_voicemail_records_the_tone(self) -> None:
        alice = self.dial("alice", "*97", self.tone("alice-440", 440.0, 9.0))
        log = self.wait_ended(alice, timeout=40)
        self.assertIn("Call established", log, log)
        box = os.path.join(self.up.data, "voicemail", "alice")
        h.wait_until(lambda: glob.glob(os.path.join(box, "*.json")), 10,
                     "the voicemail's metadata in alice's mailbox")
        meta_path = glob.glob(os.path.join(box, "*.json"))[0]
        with open(meta_path) as f:
            meta = json.load(f)
        self.assertEqual((meta["mailbox"], meta["caller"]), ("alice", "alice"), meta)
        self.assertGreater(meta["duration_s"], 1.5, meta)
        wav = os.path.join(box, meta["file"])
        self.assertTrue(os.path.exists(wav), meta)
        tone, ratio, rms = pb.dominant_tone(wav, (440.0, 1000.0))
        self.assertEqual(tone, 440.0, f"the recording holds {tone} Hz ({ratio:.2f})")
        self.assertGreater(ratio, 0.5)
        listed = self.up.rpc("app", "voicemail.list", {"mailbox": "alice"})
        self.assertEqual([m["id"] for m in listed["messages"]], [meta["id"]], listed)

    # -- Menu: a raw phone (sends RFC 4733 itself) ---------------------------------------------

    def endpoint(self, name: str):
        return rm.km.RtpEndpoint(name, h.free_port())

    def test_102_menu_redirects_on_a_dtmf_digit(self) -> None:
        edge = (h.HOST, self.up.sip_port)
        alice = rm.Phone(self, edge, "alice", self.up.passwords["alice"])
        self.cleanup.callbacks.append(alice.rtp.close)
        call = rm.Call(alice, "sip:102@evosip.local")
        call.invite()
        early = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and early is None:
            m = alice.sip.recv(0.5)
            if m is not None and m.is_response and m.status == 183 and m.body:
                early = m
        self.assertIsNotNone(early, "no 183 with SDP (the menu prompt as early media)")
        relay = rm.sdp_media(early.body)
        ssrc, seq, ts = 0x4733, 1000, 8000
        # RFC 4733 event 2: start (marker), updates every 50 ms, three end packets.
        for k, (end, duration) in enumerate([(False, 400), (False, 800), (False, 1200),
                                             (True, 1600), (True, 1600), (True, 1600)]):
            payload = struct.pack("!BBH", 2, (0x80 if end else 0) | 10, duration)
            header = struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) | 101, seq + k, ts, ssrc)
            alice.rtp.sock.sendto(header + payload, relay)
            time.sleep(0.05 if not end else 0.02)
        final = call.final(timeout=10)
        self.assertEqual(final.status, 302, str(final))
        self.assertIn("sip:101@evosip.local", final.get("Contact") or "", str(final))
        self.assertNotIn("X-Evosip", final.raw.decode("utf-8", "replace"))


class UpDrain(h.ProxyTestCase):
    """SIGTERM to `evosip up` lets the calls in progress end: new calls are refused meanwhile,
    and the process exits 0 once the last call hung up."""

    def endpoint(self, name: str):
        return rm.km.RtpEndpoint(name, h.free_port())

    def test_sigterm_refuses_new_calls_and_exits_after_the_last_one(self) -> None:
        up = Up(self.tmp, self.cleanup)
        edge = (h.HOST, up.sip_port)
        alice = rm.Phone(self, edge, "alice", up.passwords["alice"])
        self.cleanup.callbacks.append(alice.rtp.close)
        call = rm.Call(alice, "sip:101@evosip.local")
        call.invite()
        ok = call.final(timeout=10)
        self.assertEqual(ok.status, 200, str(ok))

        up.proc.send_signal(signal.SIGTERM)
        h.wait_until(lambda: h.http_get(up.controls["router"] + "/readyz")[0] == 503, 5,
                     "the router turning unready")
        time.sleep(3)  # longer than any role's drain_idle_s: the call keeps it up
        self.assertIsNone(up.proc.poll(), "evosip up exited with a call in progress")

        # A new call: refused, and the caller hears why.
        bob = rm.Phone(self, edge, "bob", up.passwords["bob"])
        self.cleanup.callbacks.append(bob.rtp.close)
        refused = bob.sip.transact(rm.Call(bob, "sip:100@evosip.local")._request(
            "INVITE", body=rm.sdp_for(bob.rtp.port, "bob")), timeout=5)
        self.assertIsNotNone(refused, "no answer to a new INVITE while draining")
        self.assertEqual(refused.status, 503, str(refused))
        self.assertNotIn("X-Evosip", refused.raw.decode("utf-8", "replace"))

        # The call in progress still works: its BYE is answered by the app.
        call.cseq += 1
        bye = call._request("BYE", in_dialog=True)
        final = None
        for _ in range(10):
            final = alice.sip.transact(bye, timeout=1)
            if final is not None and final.status >= 200:
                break
        self.assertIsNotNone(final, "no answer to the BYE while draining")
        self.assertEqual(final.status, 200, str(final))
        h.wait_until(lambda: up.proc.poll() is not None, 15,
                     "evosip up exiting after the last call")
        self.assertEqual(up.proc.returncode, 0, up.stdout())


if __name__ == "__main__":
    unittest.main()
