"""Real softphones: two headless baresip 1.0 instances register with digest auth through
edge -> router (credentials from the api) and alice calls bob; both sides see the call
established and receive RTP, and the hang-up (BYE) crosses the platform.

baresip 1.0 refuses a 401 that offers SHA-256 instead of ignoring that challenge, so the
platform here challenges with MD5 only, as `evosip up` does."""

import os
import shutil
import socket
import unittest
import wave

from harness import (HOST, ROUTER_DOMAIN, Process, RouterTestCase, create_subscribers,
                     free_port, wait_until)

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


@unittest.skipUnless(BARESIP and os.path.isdir(MODULES), "baresip is not installed")
class PlatformBaresip(RouterTestCase):
    def softphone(self, name: str, password: str, edge_port: int, tone: str,
                  extra_args=()) -> Process:
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        port = sip_port_pair()
        with open(os.path.join(d, "config"), "w") as f:
            f.write(f"sip_listen {HOST}:{port}\nnet_interface {HOST}\n"
                    f"module_path {MODULES}\nmodule g711.so\nmodule aufile.so\n"
                    "module account.so\nmodule menu.so\n"
                    f"audio_source aufile,{tone}\n"
                    f"audio_player aufile,{os.path.join(d, 'received.wav')}\n")
        with open(os.path.join(d, "accounts"), "w") as f:
            f.write(f"<sip:{name}@{HOST}:{edge_port}>;auth_pass={password};regint=600;"
                    "audio_codecs=PCMU;answermode=auto\n")
        return self.cleanup.add(Process(f"baresip-{name}", [BARESIP, "-f", d, *extra_args],
                                        self.tmp))

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
