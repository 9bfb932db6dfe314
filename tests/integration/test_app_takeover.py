"""A call survives the death of the app that serves it (app.state): `evosip app` instances keep
their established calls in a real Redis and watch each other's heartbeat; edge -> router -> app
carries a caller's call to a service (Playback of a long prompt, or Echo). The serving app is
SIGKILLed; a peer app wins its lock, sends the caller a re-INVITE within the dialog (same Call-ID
and tags, the next CSeq, through the edge, with its own Contact and media address) and goes on
with the service. The caller (raw SIP and RTP sockets of this test) answers the re-INVITE and
moves its RTP to the new address; the test measures the time from the kill to the re-INVITE and
the longest time without RTP at the caller, and asserts that the caller's BYE, sent to the new
remote target, gets 200 from the peer. Two peers racing for one dead app: exactly one re-INVITE.
A corrupt and an oversized record in the store: skipped and counted, the real call taken over.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
import unittest
from typing import List, Optional, Tuple

import harness as h
import test_app as ta
import test_router_media as rm

HEARTBEAT_MS, HEARTBEAT_TTL_MS = 200, 1000
# The re-INVITE reaches the caller within the heartbeat TTL plus this (a heartbeat period to
# notice, the store round trips, a loaded machine).
REINVITE_SLACK_S = 1.5
MEDIA_GAP_MAX_S = 3.0


class Media:
    """The caller's RTP socket: sends PCMU every 20 ms to where the SDP it last saw says, and
    records (arrival time, source) of every packet it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.HOST, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.dest: Optional[Tuple[str, int]] = None
        self.arrivals: List[Tuple[float, Tuple[str, int]]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._receive, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self) -> None:
        seq, n = 1, 0
        while not self.stop.is_set() and n < 10000:
            if self.dest is not None:
                pkt = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 0x1234) + b"\xff" * 160
                try:
                    self.sock.sendto(pkt, self.dest)
                except OSError:
                    pass
                seq += 1
            n += 1
            time.sleep(0.02)

    def _receive(self) -> None:
        while not self.stop.is_set():
            try:
                _data, src = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            self.arrivals.append((time.monotonic(), src))

    def sources_since(self, t0: float) -> set:
        return {src for t, src in self.arrivals if t > t0}

    def gap_after(self, t0: float) -> float:
        """The longest time without a packet from shortly before t0 to the last arrival."""
        times = [t for t, _ in self.arrivals if t >= t0 - 0.1]
        if len(times) < 2:
            return float("inf")
        return max(b - a for a, b in zip(times, times[1:]))

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(2)
        self.sock.close()


def sdp(port: int, version: int) -> bytes:
    return (f"v=0\r\no=caller 7 {version} IN IP4 {h.HOST}\r\ns=-\r\nc=IN IP4 {h.HOST}\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
            ).encode()


def contact_port(msg: h.SipMessage) -> int:
    m = re.search(r"sip:app@[^:>]+:(\d+)", msg.get("Contact") or "")
    return int(m.group(1)) if m else 0


class Apps:
    """`evosip app` instances named app-0.. with app.state on the test's Redis; each takes over
    the apps listed for it."""

    def __init__(self, test: "TakeoverCase", peers: List[List[int]]):
        self.bin = h.require_role("app")
        sounds = os.path.join(test.tmp, "sounds")
        ta.write_wav(os.path.join(sounds, "default", "en", "welcome.wav"),
                     ta.tone(1000, ta.RATE * 30))
        self.ports: List[int] = []
        self.controls: List[str] = []
        self.procs: List[h.Process] = []
        self.rtp: List[Tuple[int, int]] = []
        base = 30000 + (h.free_port() % 8) * 400
        for i, mine in enumerate(peers):
            sip, ctl = h.free_port(), h.free_port()
            lo = base + i * 100
            cfg = {"sip": {"listen": [f"udp:{h.HOST}:{sip}"]},
                   "control": {"listen": f"{h.HOST}:{ctl}"},
                   "workers": 1, "log": {"level": "info"},
                   "app": {"sounds_dir": sounds, "voicemail_dir": os.path.join(test.tmp, "vm"),
                           "rtp_address": h.HOST, "rtp_port_min": lo, "rtp_port_max": lo + 99,
                           "rtp_timeout_s": 10, "max_call_s": 120,
                           # sipp callers send no RTP
                           "rtp_peer_timeout_s": 0,
                           "instance_id": f"app-{i}",
                           "state": {"enabled": True, "heartbeat_ms": HEARTBEAT_MS,
                                     "heartbeat_ttl_ms": HEARTBEAT_TTL_MS},
                           "takeover": {"peers": [f"app-{p}" for p in mine]}},
                   "store": {"backend": "redis",
                             "redis": {"host": h.HOST, "port": test.redis.port}}}
            path = h.write_yaml(os.path.join(test.tmp, f"app{i}.yaml"), cfg)
            proc = test.cleanup.add(h.Process(f"app{i}", [self.bin, "app", "--config", path],
                                              test.tmp))
            h.wait_http_ok(f"http://{h.HOST}:{ctl}/readyz", timeout=15, proc=proc)
            self.ports.append(sip)
            self.controls.append(f"http://{h.HOST}:{ctl}")
            self.procs.append(proc)
            self.rtp.append((lo, lo + 99))
        # Each app has seen its peers' heartbeats before a test kills one.
        time.sleep(3 * HEARTBEAT_MS / 1000)

    def metric(self, i: int, name: str, **labels) -> float:
        return h.scrape(self.controls[i] + "/metrics").get(name, **labels)

    def index_of_port(self, port: int) -> int:
        return self.ports.index(port)


class TakeoverCase(h.RouterTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.redis = h.start_redis(self.tmp, self.cleanup)
        self.media = Media()
        self.addCleanup(self.media.close)

    def platform_for(self, apps: Apps, routed: List[int]) -> Tuple[h.Platform, rm.Phone]:
        over = {"router": {"dialplan": {"101": {"action": "Echo"}}}}
        p = self.platform(app_ports=[apps.ports[i] for i in routed], router_overrides=over)
        users = h.make_users(1, prefix="tko")
        h.create_subscribers(p.api, users)
        caller = rm.Phone(self, p.edge.addr, *users[0])
        return p, caller

    def endpoint(self, name: str):
        return self.media  # rm.Phone's media port: this test's sender and receiver

    def establish(self, caller: rm.Phone, number: str) -> Tuple[rm.Call, h.SipMessage]:
        call = rm.Call(caller, f"sip:{number}@{h.ROUTER_DOMAIN}")
        body = sdp(self.media.port, 1)
        call.cseq += 1
        req = call._request("INVITE", body=body)
        first = caller.sip.transact(req, timeout=5)
        self.assertIsNotNone(first)
        self.assertEqual(first.status, 407, str(first))
        h.ack_for(caller.sip, req, first)
        ch = h.pick_challenge(first, "MD5")
        auth = h.digest_authorization(ch, caller.user, caller.pw, "INVITE", call.ruri)
        call.cseq += 1
        caller.sip.send(call._request("INVITE", [f"Proxy-Authorization: {auth}"], body=body))
        resp = call.final(timeout=10)
        self.assertEqual(resp.status, 200, str(resp))
        self.media.dest = rm.sdp_media(resp.body)
        return call, resp

    def await_reinvite(self, caller: rm.Phone, call: rm.Call,
                       timeout: float) -> Optional[h.SipMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = caller.sip.recv(max(0.01, deadline - time.monotonic()))
            if m is not None and not m.is_response and m.method == "INVITE":
                return m
        return None

    def answer_reinvite(self, caller: rm.Phone, call: rm.Call, inv: h.SipMessage) -> None:
        caller.reply(inv, 200, "OK", to_tag="", body=sdp(self.media.port, 2))
        self.media.dest = rm.sdp_media(inv.body)
        m = re.search(r"<([^>]+)>", inv.get("Contact") or "")
        call.target = m.group(1)  # the remote target refresh
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            a = caller.sip.recv(0.5)
            if a is not None and not a.is_response and a.method == "ACK":
                return
        self.fail("no ACK for the 200 to the re-INVITE")

    def bye(self, caller: rm.Phone, call: rm.Call, timeout: float = 10) -> h.SipMessage:
        call.cseq += 1
        req = call._request("BYE", in_dialog=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            caller.sip.send(req)
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                r = caller.sip.recv(0.1)
                if (r is not None and r.is_response and r.status >= 200
                        and (r.get("CSeq") or "").endswith("BYE")):
                    return r
        self.fail("no final response to the BYE")

    def assert_same_dialog(self, inv: h.SipMessage, call: rm.Call, peer_port: int) -> None:
        self.assertEqual(inv.call_id, call.call_id)
        self.assertIn(f"tag={call.to_tag}", inv.get("From"), "the app's tag")
        self.assertIn(f"tag={call.from_tag}", inv.get("To"), "the caller's tag")
        self.assertEqual(contact_port(inv), peer_port, "Contact of the app that took over")
        self.assertNotIn("X-Evosip", inv.raw.decode("utf-8", "replace"))

    def takeover(self, apps: Apps, number: str, live: List[int]):
        """A call to `number`, its app killed; returns (call, caller, dead, peer, inv, kill
        time, re-INVITE delay)."""
        p, caller = self.platform_for(apps, [0])
        call, resp = self.establish(caller, number)
        dead = apps.index_of_port(contact_port(resp))
        h.wait_until(lambda: self.redis.keys(f"*app:call:app-{dead}:{call.call_id}"), 3,
                     "the call's record in the store")
        h.wait_until(lambda: len(self.media.arrivals) > 20, 3, "RTP from the app")
        apps.procs[dead].kill()
        killed = time.monotonic()
        inv = self.await_reinvite(caller, call, HEARTBEAT_TTL_MS / 1000 + REINVITE_SLACK_S)
        self.assertIsNotNone(inv, "no re-INVITE from a peer app in time")
        delay = time.monotonic() - killed
        peer = apps.index_of_port(contact_port(inv))
        self.assertIn(peer, live)
        self.assert_same_dialog(inv, call, apps.ports[peer])
        self.assertGreater(int(inv.get("CSeq").split()[0]), 0)
        self.answer_reinvite(caller, call, inv)
        return call, caller, dead, peer, inv, killed, delay


class TestAppTakeover(TakeoverCase):
    def test_killed_app_playback_goes_on_at_its_peer(self) -> None:
        apps = Apps(self, [[1], [0]])
        call, caller, dead, peer, _inv, killed, delay = self.takeover(apps, "100", [0, 1])
        self.assertNotEqual(dead, peer)
        lo, hi = apps.rtp[peer]
        h.wait_until(lambda: any(lo <= s[1] <= hi for s in self.media.sources_since(killed)), 3,
                     "RTP from the peer app at the caller")
        time.sleep(1.0)
        gap = self.media.gap_after(killed)
        print(f"\ntakeover: re-INVITE {delay * 1000:.0f} ms after the kill, "
              f"media gap {gap * 1000:.0f} ms", flush=True)
        self.assertLess(gap, MEDIA_GAP_MAX_S)
        self.assertEqual(apps.metric(peer, "evosip_app_takeovers_total"), 1)
        self.assertEqual(apps.metric(peer, "evosip_app_events_total", event="resumed"), 1)
        bye = self.bye(caller, call)
        self.assertEqual(bye.status, 200, str(bye))
        h.wait_until(lambda: not self.redis.keys("*app:call:*"), 3, "the record removed")

    def test_two_peers_race_only_one_takes_over(self) -> None:
        apps = Apps(self, [[1, 2], [0, 2], [0, 1]])
        call, caller, dead, peer, _inv, _killed, _delay = self.takeover(apps, "101", [1, 2])
        self.assertEqual(dead, 0)
        # No second re-INVITE from the other survivor.
        second = self.await_reinvite(caller, call, 2 * HEARTBEAT_TTL_MS / 1000 + 1)
        self.assertIsNone(second, f"a second re-INVITE: {second}")
        other = 3 - peer
        self.assertEqual(apps.metric(peer, "evosip_app_takeovers_total"), 1)
        self.assertEqual(apps.metric(other, "evosip_app_takeovers_total"), 0)
        self.assertEqual(apps.metric(other, "evosip_app_calls_active"), 0)
        # Echo: what the caller sends comes back from the peer.
        lo, hi = apps.rtp[peer]
        t0 = time.monotonic()
        h.wait_until(lambda: any(lo <= s[1] <= hi for s in self.media.sources_since(t0)), 3,
                     "echoed RTP from the peer app")
        bye = self.bye(caller, call)
        self.assertEqual(bye.status, 200, str(bye))

    def test_corrupt_records_are_skipped_and_counted(self) -> None:
        apps = Apps(self, [[1], [0]])
        for key, value in (("bad", "{not json"), ("big", "x" * 20000),
                           ("wrong", '{"v":1,"id":"x"}')):
            for dead in (0, 1):
                self.redis.cli("SET", f"evosip:v:app:call:app-{dead}:{key}", value, "PX", "60000")
        call, caller, dead, peer, _inv, _killed, _delay = self.takeover(apps, "100", [0, 1])
        self.assertEqual(apps.metric(peer, "evosip_app_bad_records_total"), 3)
        self.assertEqual(apps.metric(peer, "evosip_app_events_total", event="resumed"), 1)
        self.assertTrue(apps.procs[peer].alive())
        bye = self.bye(caller, call)
        self.assertEqual(bye.status, 200, str(bye))

    def test_sipp_callers_answer_the_reinvite_and_complete(self) -> None:
        """sipp callers (router_uac_call_auth.xml, as `make chaos` places them) in Echo calls:
        their app killed mid-call, every call still ends with a BYE answered 200."""
        apps = Apps(self, [[1], [0]])
        p = self.platform(app_ports=[apps.ports[0]],
                          router_overrides={"router": {"dialplan": {"101": {"action": "Echo"}}}})
        users = h.make_users(1, prefix="tks")
        h.create_subscribers(p.api, users)
        calls = 8
        csv = h.write_auth_csv(os.path.join(self.tmp, "callers.csv"), users * calls)
        sipp = self.sipp("sipp_takeover", scenario=h.scenario("router_uac_call_auth.xml"),
                         remote=p.edge.hostport, calls=calls, rate=8, limit=50,
                         duration_ms=4000, timeout_s=40, recv_timeout_ms=6000,
                         keys={"domain": h.ROUTER_DOMAIN, "callee": "101"},
                         extra=["-inf", csv, "-auth_uri", f"101@{h.ROUTER_DOMAIN}"])
        sipp.start(self.cleanup)
        h.wait_until(lambda: apps.metric(0, "evosip_app_state_records") == calls, 10,
                     "every call stored")
        apps.procs[0].kill()
        res = sipp.wait(40)
        self.assertSippOk(res, calls)
        self.assertEqual(apps.metric(1, "evosip_app_events_total", event="resumed"), calls)


if __name__ == "__main__":
    unittest.main()
