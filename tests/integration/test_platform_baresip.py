"""Real softphones: two headless baresip 1.0 instances register with digest auth through
edge -> router (credentials from the api) and alice calls bob; both sides see the call
established and receive RTP, and the hang-up (BYE) crosses the platform. With the router
anchoring media in `evosip media`, each phone plays its own tone (alice 440 Hz, bob 1000 Hz)
and the audio each one received (baresip's sndfile filter) must hold the other's tone
(Goertzel), with the relay counting the packets.

baresip 1.0 refuses a 401 that offers SHA-256 instead of ignoring that challenge, so the
platform here challenges with MD5 only, as `evosip up` does."""

import math
import os
import shutil
import socket
import time
import unittest
import wave

from harness import (HOST, ROUTER_DOMAIN, Process, RouterTestCase, create_subscribers,
                     free_port, scrape, wait_until)

BARESIP = shutil.which("baresip")
MODULES = "/usr/lib/baresip/modules"


def sip_port_pair() -> int:
    """A port P with P and P+1 free on UDP and TCP: baresip also binds TLS on P+1."""
    for _ in range(50):
        p = free_port()
        try:
            for port in (p, p + 1):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((HOST, port))
            return p
        except OSError:
            continue
    raise AssertionError("no free pair of ports for baresip")


def write_sine(path: str, freq: float, seconds: float = 4.0, amplitude: int = 12000) -> None:
    """8 kHz mono 16-bit PCM sine."""
    rate = 8000
    frames = bytearray()
    for i in range(int(rate * seconds)):
        v = int(amplitude * math.sin(2 * math.pi * freq * i / rate))
        frames += v.to_bytes(2, "little", signed=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def read_samples(path: str) -> list:
    with wave.open(path, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    assert width == 2, f"{path}: {width * 8}-bit samples"
    samples = [int.from_bytes(raw[i:i + 2], "little", signed=True)
               for i in range(0, len(raw), 2 * channels)]
    return samples, rate


def goertzel(samples, rate: int, freq: float) -> float:
    """Power of `freq` in the block (Goertzel), normalised by the block's energy: ~1 for a pure
    tone at freq, ~0 without it."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    energy = sum(x * x for x in samples) * len(samples) / 2
    return power / energy if energy else 0.0


def dominant_tone(path: str, candidates=(440.0, 1000.0)):
    """(frequency with the most power, its ratio, the RMS) over the loud part of a recording."""
    samples, rate = read_samples(path)
    loud = [x for x in samples if abs(x) > 200]
    if len(loud) < rate // 2:
        return None, 0.0, 0.0
    start = samples.index(loud[0])
    block = samples[start + rate // 2: start + rate // 2 + rate]  # 1 s, after set-up
    rms = math.sqrt(sum(x * x for x in block) / max(1, len(block)))
    ratios = {f: goertzel(block, rate, f) for f in candidates}
    best = max(ratios, key=ratios.get)
    return best, ratios[best], rms


def write_tone(path: str, seconds: float = 4.0) -> None:
    """8 kHz mono 16-bit PCM: a square-ish 400 Hz tone (no numpy, no sox needed)."""
    rate = 8000
    frames = bytearray()
    for i in range(int(rate * seconds)):
        v = 8000 if (i // 10) % 2 == 0 else -8000
        frames += int(v).to_bytes(2, "little", signed=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def received_wav(d: str, timeout: float = 5.0):
    """The WAV baresip's sndfile filter wrote with the decoded (received) audio, or None.

    baresip prints the end of a call before its audio stream is torn down, and the file's
    header is complete only once the stream closed it: wait (bounded) until it reads."""
    end = time.monotonic() + timeout
    while True:
        path = next((os.path.join(d, n) for n in sorted(os.listdir(d))
                     if n.startswith("dump") and n.endswith("-dec.wav")), None)
        if path is not None:
            try:
                with wave.open(path, "rb"):
                    return path
            except (wave.Error, EOFError):
                pass
        if time.monotonic() >= end:
            return path
        time.sleep(0.05)


def start_softphone(work: str, cleanup, name: str, password: str, edge_port: int, tone: str,
                    extra_args=(), instance: str = "") -> Process:
    """A headless baresip registered as name@127.0.0.1:edge_port, playing the WAV `tone` in
    every call and writing what it receives to <work>/<name>[instance]/dump-*-dec.wav."""
    d = os.path.join(work, name + instance)
    os.makedirs(d, exist_ok=True)
    port = sip_port_pair()
    with open(os.path.join(d, "config"), "w") as f:
        f.write(f"sip_listen {HOST}:{port}\nnet_interface {HOST}\n"
                f"module_path {MODULES}\nmodule g711.so\nmodule aufile.so\n"
                "module account.so\nmodule menu.so\n"
                f"audio_source aufile,{tone}\n"
                # baresip 1.0 has no file player: ALSA's "null" device plays, and the
                # sndfile filter writes what was received to dump-*-dec.wav in snd_path.
                "module alsa.so\naudio_player alsa,null\n"
                f"module sndfile.so\nsnd_path {d}\n")
    with open(os.path.join(d, "accounts"), "w") as f:
        f.write(f"<sip:{name}@{HOST}:{edge_port}>;auth_pass={password};regint=600;"
                "audio_codecs=PCMU;answermode=auto\n")
    return cleanup.add(Process(f"baresip-{name}{instance}", [BARESIP, "-f", d, *extra_args],
                               work))


def start_media(work: str, cleanup):
    """`evosip media` on loopback; returns (its ng address "udp:HOST:PORT", control URL)."""
    import harness as h
    import test_media_kamailio as km
    binary = h.require_role("media")
    ng, ctl = free_port(), free_port()
    lo, hi = km.port_block()
    cfg = {"media": {"ng_listen": f"{HOST}:{ng}", "address": HOST, "port_min": lo,
                     "port_max": hi, "timeout_s": 60},
           "control": {"listen": f"{HOST}:{ctl}", "token": ""}, "workers": 2}
    path = h.write_yaml(os.path.join(work, "media.yaml"), cfg)
    proc = cleanup.add(Process("evosip-media", [binary, "media", "--config", path], work))
    km.wait_ng_pong(ng, 15, proc)
    return f"udp:{HOST}:{ng}", f"http://{HOST}:{ctl}"


@unittest.skipUnless(BARESIP and os.path.isdir(MODULES), "baresip is not installed")
class PlatformBaresip(RouterTestCase):
    def softphone(self, name: str, password: str, edge_port: int, tone: str,
                  extra_args=()) -> Process:
        return start_softphone(self.tmp, self.cleanup, name, password, edge_port, tone,
                               extra_args)

    def test_tones_cross_the_media_relay_both_ways(self):
        relay, media_control = start_media(self.tmp, self.cleanup)
        p = self.platform(router_overrides={"router": {
            "auth_algorithms": ["MD5"],
            "media": {"mode": "always", "relays": [relay]}}})
        create_subscribers(p.api, [("alice", "alice-Secret1"), ("bob", "bob-Secret2")])
        alice_tone = os.path.join(self.tmp, "alice-440.wav")
        bob_tone = os.path.join(self.tmp, "bob-1000.wav")
        write_sine(alice_tone, 440.0, seconds=4.0)
        write_sine(bob_tone, 1000.0, seconds=8.0)
        edge_port = p.edge.addr[1]
        bob = self.softphone("bob", "bob-Secret2", edge_port, bob_tone, ["-t", "30"])
        wait_until(lambda: len(self.lookup(p.router, "bob")) == 1, 10, "bob registered")
        alice = self.softphone("alice", "alice-Secret1", edge_port, alice_tone,
                               ["-t", "20", "-e", f"/dial sip:bob@{HOST}:{edge_port}"])
        wait_until(lambda: "terminated" in alice.tail(20000), 25,
                   "alice's call to end (her tone file ends after 4 s)")
        wait_until(lambda: "terminated" in bob.tail(20000), 10, "bob to see the hang-up")
        self.assertIn("Call established", alice.tail(20000))
        # The audio went through the relay (the SDPs named it) and each side heard the other.
        relayed = scrape(media_control + "/metrics").get("evosip_media_packets_relayed_total")
        self.assertGreater(relayed, 200, "the relay forwarded (almost) no RTP")
        for who, expected in (("alice", 1000.0), ("bob", 440.0)):
            rec = received_wav(os.path.join(self.tmp, who))
            self.assertTrue(rec and os.path.getsize(rec) > 16000,
                            f"{who} recorded nothing: {os.listdir(os.path.join(self.tmp, who))}")
            tone, ratio, rms = dominant_tone(rec)
            self.assertEqual(tone, expected, f"{who} heard {tone} Hz (ratio {ratio:.2f}), "
                                             f"expected the other side's {expected} Hz")
            self.assertGreater(ratio, 0.5, f"{who}: the {expected} Hz tone is buried in noise")
            self.assertGreater(rms, 1000, f"{who}: the received audio is too quiet ({rms:.0f})")

    def test_alice_calls_bob_with_real_softphones(self):
        p = self.platform(router_overrides={"router": {"auth_algorithms": ["MD5"]}})
        create_subscribers(p.api, [("alice", "alice-Secret1"), ("bob", "bob-Secret2")])
        tone = os.path.join(self.tmp, "tone.wav")
        write_tone(tone)
        edge_port = p.edge.addr[1]
        bob = self.softphone("bob", "bob-Secret2", edge_port, tone, ["-t", "30"])
        wait_until(lambda: len(self.lookup(p.router, "bob")) == 1, 10, "bob registered")
        alice = self.softphone("alice", "alice-Secret1", edge_port, tone,
                               ["-t", "20", "-e", f"/dial sip:bob@{HOST}:{edge_port}"])
        wait_until(lambda: "terminated" in alice.tail(20000),
                   25, "alice's call to end (the tone file ends after 4 s)")
        alice_log = alice.tail(20000)
        bob_log = bob.tail(20000)
        self.assertIn("Call established", alice_log, alice_log)
        self.assertIn("Call established", bob_log, bob_log)
        self.assertIn("incoming rtp for 'audio' established", alice_log, alice_log)
        self.assertIn("incoming rtp for 'audio' established", bob_log, bob_log)
        # The BYE crossed the platform: bob saw the call end too.
        wait_until(lambda: "terminated" in bob.tail(20000), 10, "bob to see the hang-up")


if __name__ == "__main__":
    unittest.main()
