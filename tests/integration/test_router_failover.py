"""The router fails over between the apps of its app set and between its media relays, as a
caller sees it: edge -> router -> two `evosip app` instances, one of them killed or draining,
and every call to a service number is still answered 200, by the other app; two `evosip media`
relays, one of them draining or killed, and every call still gets its media anchored (the SDP at
the callee names the other relay's ports) and answered.
"""

from __future__ import annotations

import os
import re
import time
import unittest
from typing import List, Tuple

import harness as h
import test_app as ta
import test_media_kamailio as km
import test_router_media as rm

CALLS = 16  # enough that the rendezvous choice of some Call-IDs is the failed instance


class AppPair:
    """Two `evosip app` instances with a 'welcome' prompt, each with its control server."""

    def __init__(self, test: h.RouterTestCase):
        self.bin = h.require_role("app")
        sounds = os.path.join(test.tmp, "sounds")
        ta.write_wav(os.path.join(sounds, "default", "en", "welcome.wav"),
                     ta.tone(1000, ta.RATE * 3))
        self.ports: List[int] = []
        self.controls: List[str] = []
        self.procs: List[h.Process] = []
        for i in range(2):
            sip, ctl = h.free_port(), h.free_port()
            base = 30000 + (h.free_port() % 4) * 600 + i * 300
            cfg = {"sip": {"listen": [f"udp:{h.HOST}:{sip}"]},
                   "control": {"listen": f"{h.HOST}:{ctl}"},
                   "workers": 1, "log": {"level": "info"},
                   "app": {"sounds_dir": sounds, "voicemail_dir": os.path.join(test.tmp, "vm"),
                           "rtp_address": h.HOST, "rtp_port_min": base,
                           "rtp_port_max": base + 299, "rtp_timeout_s": 5, "max_call_s": 60}}
            path = h.write_yaml(os.path.join(test.tmp, f"app{i}.yaml"), cfg)
            proc = test.cleanup.add(h.Process(f"app{i}", [self.bin, "app", "--config", path],
                                              test.tmp))
            h.wait_http_ok(f"http://{h.HOST}:{ctl}/readyz", timeout=15, proc=proc)
            self.ports.append(sip)
            self.controls.append(f"http://{h.HOST}:{ctl}")
            self.procs.append(proc)

    def rpc(self, i: int, method: str):
        return h.rpc(self.controls[i] + "/rpc", method)


def drain(phone: rm.Phone, quiet: float = 0.3) -> None:
    """Reads what is still on its way (a retransmitted final, a BYE's second 200) so that the
    next call's transaction sees only its own responses."""
    while phone.sip.recv(quiet) is not None:
        pass


def app_port_of(resp: h.SipMessage) -> int:
    m = re.search(r"sip:app@[^:>]+:(\d+)", resp.get("Contact") or "")
    return int(m.group(1)) if m else 0


class TestAppFailover(h.RouterTestCase):
    def platform_with_apps(self) -> Tuple[h.Platform, AppPair, rm.Phone]:
        apps = AppPair(self)
        p = self.platform(app_ports=apps.ports)  # router.app_timeout_ms: 2000 by default
        users = h.make_users(1, prefix="afo")
        h.create_subscribers(p.api, users)
        caller = rm.Phone(self, p.edge.addr, *users[0])
        return p, apps, caller

    def endpoint(self, name: str) -> km.RtpEndpoint:
        ep = km.RtpEndpoint(name, h.free_port())
        self.cleanup.callbacks.append(ep.close)
        return ep

    def call_service(self, caller: rm.Phone) -> h.SipMessage:
        call = rm.Call(caller, f"sip:100@{h.ROUTER_DOMAIN}")
        call.invite()
        resp = call.final(timeout=10)
        if resp.status == 200:
            call.cseq += 1
            caller.sip.send(call._request("BYE", in_dialog=True))
        drain(caller)
        return resp

    def calls_answered_by_the_live_app(self, p: h.Platform, apps: AppPair, caller: rm.Phone,
                                       live: int) -> None:
        answered_by = set()
        for i in range(CALLS):
            resp = self.call_service(caller)
            self.assertEqual(resp.status, 200, f"call {i}: {resp}")
            answered_by.add(app_port_of(resp))
        self.assertEqual(answered_by, {apps.ports[live]}, "every call answered by the live app")
        failovers = p.router.metrics().get("evosip_router_failovers_total", to="app")
        self.assertGreaterEqual(failovers, 1, "no call picked the failed app first")

    def test_killed_app_calls_answered_by_the_other(self) -> None:
        p, apps, caller = self.platform_with_apps()
        self.assertEqual(self.call_service(caller).status, 200)
        apps.procs[0].kill()
        self.calls_answered_by_the_live_app(p, apps, caller, live=1)

    def test_draining_app_calls_answered_by_the_other(self) -> None:
        p, apps, caller = self.platform_with_apps()
        apps.rpc(0, "instance.drain")
        self.calls_answered_by_the_live_app(p, apps, caller, live=1)
        state = {a["address"]: a["state"] for a in p.router.rpc("dispatcher.list")["apps"]}
        self.assertEqual(state[f"{h.HOST}:{apps.ports[0]}"], "draining", state)


def start_media(work: str, cleanup: h.Cleanup, name: str, avoid: Tuple[int, int] = (0, 0)):
    """`evosip media` with its own port block and control server; returns (relay, control)."""
    binary = km.evosip_media_binary()
    ng, ctl = h.free_port(), h.free_port()
    while True:
        lo, hi = km.port_block()
        if hi < avoid[0] or lo > avoid[1]:
            break
    cfg = {"media": {"ng_listen": f"{h.HOST}:{ng}", "address": h.HOST, "port_min": lo,
                     "port_max": hi, "timeout_s": 60, "max_sessions": 0},
           "control": {"listen": f"{h.HOST}:{ctl}", "token": ""},
           "workers": 2, "log": {"level": "info", "format": "text"}}
    path = h.write_yaml(os.path.join(work, f"{name}.yaml"), cfg)
    proc = cleanup.add(h.Process(name, [binary, "media", "--config", path], work))
    km.wait_ng_pong(ng, 15, proc)
    relay = km.Relay(proc, ng, (lo, hi))
    relay.kind = "evosip"
    return relay, f"http://{h.HOST}:{ctl}"


class TestRelayFailover(rm.RouterMediaMixin, h.RouterTestCase):
    """Two relays; the first one fails; calls are anchored on the second."""

    # The single-relay tests of the mixin are test_router_media's.
    test_call_through_relay_and_bye_deletes_it = None
    test_busy_callee_deletes_the_session = None

    @staticmethod
    def start_relay(work: str, cleanup: h.Cleanup):
        return None  # setUp starts both

    def setUp(self) -> None:
        super().setUp()
        self.failed, self.failed_control = start_media(self.tmp, self.cleanup, "media-a")
        self.relay, _ = start_media(self.tmp, self.cleanup, "media-b", self.failed.ports)

    def media_platform(self, **kw) -> h.Platform:
        over = {"router": {"media": {"mode": "always", "timeout_ms": 300, "retries": 1,
                                     "relays": [self.failed.sock, self.relay.sock]}}}
        return self.platform(router_overrides=over, **kw)

    def calls_anchored_on_the_second(self, p: h.Platform) -> None:
        alice, bob = self.phones(p)
        for i in range(CALLS // 2):
            call, to_bob_side, to_alice_side = self.establish(alice, bob)  # asserts B's ports
            self.assertIn(call.call_id, self.relay.call_ids())
            if i == 0:
                self.assert_rtp_both_ways(alice, bob, to_bob_side, to_alice_side)
            self.assertEqual(call.bye(bob).status, 200)
            drain(alice)
            drain(bob)
        failovers = p.router.metrics().get("evosip_router_failovers_total", to="relay")
        self.assertGreaterEqual(failovers, 1, "no call picked the failed relay first")

    def test_draining_relay_calls_anchored_on_the_other(self) -> None:
        p = self.media_platform()
        h.rpc(self.failed_control + "/rpc", "instance.drain")
        self.calls_anchored_on_the_second(p)

    def test_dead_relay_calls_anchored_on_the_other(self) -> None:
        p = self.media_platform()
        self.failed.proc.kill()
        self.calls_anchored_on_the_second(p)


if __name__ == "__main__":
    unittest.main()
