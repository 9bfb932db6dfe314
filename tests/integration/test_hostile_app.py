"""`evosip app` attacked as an outsider would, on the wire: an INVITE that does not come from a
router (straight to the app's SIP port), an SDP that names a victim who never sends anything
back, voicemail to mailbox names that are paths, more messages than a mailbox may hold, and a
two-second message whose RTP timestamps leap a second a packet (silence padding).

Only loopback exists here: 127.0.0.2 plays the outside host and the app is told, through the
environment (an app without the key still starts), that its router is 127.0.0.1. The tests
assert what the attacker, the victim's RTP socket and the voicemail directory see.
"""

import glob
import json
import os
import socket
import time
import unittest

import harness as h
import test_app as ta

OUTSIDER = "127.0.0.2"
ROUTER_ONLY = {"EVOSIP_APP_ROUTERS": "127.0.0.1/32"}


class HostileAppBase(ta.AppTest):
    ENV = ROUTER_ONLY

    def setUp(self):
        h.ProxyTestCase.setUp(self)
        self.bin = h.require_role("app")
        self.sounds = os.path.join(self.tmp, "sounds")
        self.vm = os.path.join(self.tmp, "voicemail")
        d = os.path.join(self.sounds, "default", "en")
        ta.write_wav(os.path.join(d, "long.wav"), ta.tone(1000, ta.RATE * 20))
        ta.write_wav(os.path.join(d, "greeting.wav"), ta.tone(600, ta.RATE // 5))
        ta.write_wav(os.path.join(d, "beep.wav"), ta.tone(1400, ta.RATE // 10))
        self.start_app()

    def start_app(self, **app_over):
        self.sip_port = h.free_port()
        self.control_port = h.free_port()
        base = 30000 + (h.free_port() % 4) * 600
        app = {"sounds_dir": self.sounds, "voicemail_dir": self.vm, "rtp_address": h.HOST,
               "rtp_port_min": base, "rtp_port_max": base + 599, "max_call_s": 60,
               "voicemail_max_s": 30, "voicemail_silence_s": 0}
        app.update(app_over)
        cfg = {"sip": {"listen": [f"udp:{h.HOST}:{self.sip_port}"]},
               "control": {"listen": f"{h.HOST}:{self.control_port}"},
               "workers": 2, "log": {"level": "info"}, "app": app}
        path = h.write_yaml(os.path.join(self.tmp, "app.yaml"), cfg)
        self.proc = self.cleanup.add(h.Process("app", [self.bin, "app", "--config", path],
                                               self.tmp, env=dict(self.ENV)))
        self.control_url = f"http://{h.HOST}:{self.control_port}"
        h.wait_http_ok(self.control_url + "/readyz", timeout=15, proc=self.proc)
        self.app_addr = (h.HOST, self.sip_port)

    def outsider_call(self, headers, **kw) -> ta.Call:
        """A call whose SIP comes from 127.0.0.2 (not a router); its SDP names the caller's
        RTP socket on 127.0.0.1: the victim."""
        c = ta.Call(self, headers, **kw)
        c.sip.sock.close()
        c.sip.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.sip.sock.bind((OUTSIDER, 0))
        c.sip.sock.settimeout(3)
        c.sip.local_port = c.sip.sock.getsockname()[1]
        request = c.sip.request
        c.sip.request = lambda method, ruri, **k: request(method, ruri, via_host=OUTSIDER, **k)
        return c

    def deposit(self, mailbox: str, seconds: float = 1.0) -> ta.Call:
        c = ta.Call(self, ["X-Evosip-Action: Voicemail", f"X-Evosip-Mailbox: {mailbox}",
                           "X-Evosip-Sound: greeting"])
        c.answer_call()
        c.rtp.collect(0.4)  # greeting and beep
        c.rtp.send_audio(ta.tone(440, int(ta.RATE * seconds)), pt=0)
        self.assertEqual(c.bye().status, 200)
        return c

    def messages(self, mailbox: str):
        return sorted(glob.glob(os.path.join(self.vm, mailbox, "*.json")))



class HostileApp(HostileAppBase):
    # ---- who may call ---------------------------------------------------------------------

    def test_invite_from_outside_the_routers_gets_403_and_the_victim_nothing(self):
        c = self.outsider_call(["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        c.invite()
        r = c.response()
        self.assertEqual(r.status, 403, str(r))
        self.assertEqual(c.rtp.collect(1.5), [], "the app sent RTP to the SDP's victim")
        # Voicemail from outside: refused the same way, and no mailbox is created.
        v = self.outsider_call(["X-Evosip-Action: Voicemail", "X-Evosip-Mailbox: mallory",
                                "X-Evosip-Sound: greeting"])
        v.invite()
        self.assertEqual(v.response().status, 403)
        self.assertEqual(v.rtp.collect(0.5), [])
        self.assertFalse(os.path.exists(os.path.join(self.vm, "mallory")))
        self.assertEqual(self.rpc("app.calls")["active"], 0)
        m = self.metrics()
        self.assertEqual(m.get("evosip_app_events_total", event="forbidden_source"), 2)
        self.assertEqual(m.get("evosip_app_calls_total", action="Playback"), 0)
        # The router (127.0.0.1) is served as before.
        ok = ta.Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        ok.answer_call()
        self.assertGreater(len(ok.rtp.collect(0.5)), 10)
        self.assertEqual(ok.bye().status, 200)

    # ---- where media goes -----------------------------------------------------------------

    def test_the_app_stops_streaming_to_an_address_that_never_answers(self):
        # A router-originated call whose SDP names a victim that never sends RTP: the 20 s
        # prompt must not all go there.
        victim = ta.Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        victim.answer_call()
        t0 = time.monotonic()
        bye = victim.expect_bye(9.0)
        took = time.monotonic() - t0
        self.assertLess(took, 7.5, "the app streamed to a silent peer for too long")
        self.assertIsNotNone(bye)
        time.sleep(0.2)
        victim.rtp.drain()
        self.assertEqual(victim.rtp.collect(0.5), [], "RTP after the app gave up")
        m = self.metrics()
        self.assertEqual(m.get("evosip_app_events_total", event="rtp_timeout"), 1)
        # A phone whose RTP comes from another address than its SDP's (NAT): the app latches
        # to the real source and the SDP's address gets nothing more.
        natted = ta.Call(self, ["X-Evosip-Action: Playback", "X-Evosip-Sound: long"])
        natted.answer_call()
        real = ta.RtpPeer()
        self.addCleanup(real.close)
        real.remote = natted.rtp.remote
        real.send_audio(ta.tone(500, 800), pt=0)
        natted.rtp.drain()
        got = real.collect(0.6)
        self.assertGreater(len(got), 15, "the app did not answer the real source")
        self.assertEqual(natted.rtp.collect(0.4), [], "the SDP's address still got RTP")
        self.assertEqual(natted.bye().status, 200)

    # ---- voicemail ------------------------------------------------------------------------

    def test_voicemail_to_a_mailbox_name_that_is_a_path_is_refused(self):
        for name in ("a..b", "..", "../../tmp/x", "bob/../../x", "%2e%2e", "x" * 65):
            with self.subTest(mailbox=name):
                c = ta.Call(self, ["X-Evosip-Action: Voicemail", f"X-Evosip-Mailbox: {name}"])
                c.invite()
                self.assertEqual(c.response().status, 400)
        made = os.listdir(self.vm) if os.path.exists(self.vm) else []
        self.assertEqual(made, [], "a mailbox directory was made for a refused name")

    def test_a_two_second_message_is_stored_as_two_seconds(self):
        c = ta.Call(self, ["X-Evosip-Action: Voicemail", "X-Evosip-Mailbox: dave",
                           "X-Evosip-Sound: greeting"])
        c.answer_call()
        c.rtp.collect(0.4)
        # 100 packets, 20 ms apart (2 s), whose timestamps leap one second each: a recorder that
        # fills timestamp gaps with silence would store 30 s (voicemail_max_s) of mostly nothing.
        samples = ta.tone(440, 160)
        t0 = time.monotonic()
        for i in range(100):
            c.rtp.sock.sendto(ta.rtp_packet(0, 1000 + i, 8000 * i, 0x5151, ta.ulaw_bytes(samples),
                                            marker=(i == 0)), c.rtp.remote)
            delay = t0 + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        c.bye()  # (481 when the app hung up first: a full 30 s recording)
        h.wait_until(lambda: self.messages("dave"), 5, "dave's message")
        with open(self.messages("dave")[0]) as f:
            meta = json.load(f)
        self.assertTrue(1.8 <= meta["duration_s"] <= 2.3, meta)
        rate, stored = ta.read_wav(os.path.join(self.vm, "dave", meta["file"]))
        self.assertLessEqual(len(stored) / rate, 2.3)


class HostileAppQuota(HostileAppBase):
    ENV = dict(ROUTER_ONLY, EVOSIP_APP_VOICEMAIL_MAX_MESSAGES="2")

    def test_a_full_mailbox_is_refused_before_recording(self):
        for n in (1, 2):
            self.deposit("bob")
            h.wait_until(lambda n=n: len(self.messages("bob")) >= n, 5, "the message stored")
        full = ta.Call(self, ["X-Evosip-Action: Voicemail", "X-Evosip-Mailbox: bob",
                              "X-Evosip-Sound: greeting"])
        full.invite()
        r = full.response()
        self.assertEqual(r.status, 486, str(r))
        self.assertEqual(full.rtp.collect(0.5), [], "media for a full mailbox")
        time.sleep(0.5)
        self.assertEqual(len(self.messages("bob")), 2)
        self.assertEqual(len(glob.glob(os.path.join(self.vm, "bob", "*.wav"))), 2)
        # Another mailbox still takes messages.
        self.deposit("carol")
        h.wait_until(lambda: self.messages("carol"), 5, "carol's message")
        m = self.metrics()
        self.assertEqual(m.get("evosip_app_events_total", event="mailbox_full"), 1)


if __name__ == "__main__":
    unittest.main()
