"""The edge moves calls off a router that drains or dies, and a caller never waits in silence.

- `instance.drain` on router A while sipp places calls through the edge: no call fails, new calls
  land on router B, and the BYEs of A's calls still reach A (two real routers on Redis);
- a router that answers 100 Trying and then dies: the INVITE moves to the other router and the
  call completes there;
- a router that answered 180 Ringing and then goes silent: the caller gets a final response
  (408) within a few seconds, and the silent router gets a CANCEL for its branch.
"""

import threading
import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, FakeRouter, ProxyTestCase, RouterTestCase, SipClient,
                     build_response, create_subscribers, make_users, require_evosip,
                     start_evosip_edge, start_redis, via_params, wait_until)

# A caller hears nothing for at most this long once its router died: setup_check_ms (1 s) +
# router_timeout_ms (0.5 s) + a tick, with room for a loaded machine.
FINAL_WITHIN_S = 5.0


def counter(handle, name, **labels) -> float:
    return handle.metrics().get(name, **labels)


class EdgeDrainMovesNewCalls(RouterTestCase):
    def test_drain_of_a_router_fails_no_call(self):
        redis = start_redis(self.tmp, self.cleanup)
        # The routers Record-Route: each BYE names the router that set its call up.
        p = self.platform(routers=2, redis=redis,
                          router_overrides={"router": {"record_route": True}})
        a, b = p.routers
        alice, bob = make_users(2, prefix="edgedrain")
        create_subscribers(p.api, [alice, bob])
        callee = self.registered_uas(p.edge.addr, bob)
        calls = 40
        caller = self.caller(p.edge.addr, alice, bob[0], calls=calls, rate=10,
                             duration_ms=2500, name="through_drain")
        caller.start(self.cleanup, wait=False)
        created = lambda r: counter(r, "evosip_router_dialogs_total", event="created")  # noqa: E731
        removed = lambda r: counter(r, "evosip_router_dialogs_total", event="removed")  # noqa: E731
        wait_until(lambda: created(a) >= 3 and created(b) >= 3, 15,
                   "both routers carrying calls", proc=caller.proc)
        self.assertTrue(a.rpc("instance.drain").get("draining"))
        # What A accepted before the drain may still be answered just after it.
        time.sleep(1.0)
        created_by_a = created(a)
        done = caller.wait(60)
        self.assertSippOk(done, calls)
        # The callee counts a call when its BYE is answered: give the last one a moment.
        wait_until(lambda: callee.result().successful >= calls, 5, "the callee ending every call")
        uas = callee.result()
        self.assertEqual((uas.successful, uas.failed), (calls, 0), uas.summary())
        # New calls reached A (refused, and moved by the edge) but none was set up there.
        self.assertGreater(counter(a, "evosip_router_drain_rejected_total"), 0)
        self.assertGreater(counter(p.edge, "evosip_edge_drain_retries_total"), 0)
        self.assertEqual(created(a), created_by_a, "a call was set up on the draining router")
        self.assertEqual(created(a) + created(b), calls)
        # Every call A set up was ended by A: the BYEs followed its Record-Route.
        wait_until(lambda: removed(a) == created(a) and removed(b) == created(b), 5,
                   "each router removing the dialogs it created")
        self.assertAlive(a)
        self.assertAlive(p.edge)


class OneShotRouters:
    """Two fake routers that share a script: the first to receive an INVITE answers it with the
    given provisional responses and then dies (`close`) or goes silent (`mute`); every other
    request, and every INVITE at the other router, is answered 200."""

    def __init__(self, test, provisional, then):
        self.provisional = provisional
        self.then = then
        self.victim = None
        self.lock = threading.Lock()
        self.routers = [test.router(name) for name in ("A", "B")]
        for r in self.routers:
            r._answer = self._answerer(r)

    def _answerer(self, router):
        def answer(msg, data, src):
            if msg.method == "ACK":
                return
            with self.lock:
                first = msg.method == "INVITE" and self.victim is None
                if first:
                    self.victim = router
            to = router._reply_address(msg, src)
            if router is self.victim and not first:
                return  # silent, or dead
            if not first:
                resp = build_response(msg, 200, "OK", to_tag=f"r{router.name}",
                                      contact=f"<sip:{HOST}:{router.port}>",
                                      extra_headers=[f"X-Router: {router.name}"])
                router.sock.sendto(resp, to)
                return
            for code, reason in self.provisional:
                tag = f"r{router.name}" if code > 100 else ""
                router.sock.sendto(build_response(msg, code, reason, to_tag=tag), to)
            if self.then == "close":
                router._stop.set()  # its own receive thread: end it without joining
                router.sock.close()
            else:
                router.mute = True
        return answer


class EdgeRouterDiesInSetup(ProxyTestCase):
    def setUp(self):
        super().setUp()
        require_evosip()

    def _call(self, routers):
        proxy = start_evosip_edge(self.tmp, self.cleanup, [r.uri for r in routers.routers],
                                  transports=("udp",))
        with SipClient("UDP", proxy.addr, timeout=1.0) as c:
            req = c.request("INVITE", "sip:bob@example.com")
            c.send(req)
            t0 = time.monotonic()
            seen = []
            final = None
            while final is None and time.monotonic() - t0 < 12:
                msg = c.recv(timeout=0.5)
                if msg is None or not msg.is_response:
                    continue
                seen.append(msg.status)
                if msg.status >= 200:
                    final = msg
            return proxy, final, time.monotonic() - t0, seen

    def test_router_killed_after_100_the_call_completes_on_the_other_router(self):
        routers = OneShotRouters(self, [(100, "Trying")], then="close")
        proxy, final, took, seen = self._call(routers)
        self.assertIsNotNone(final, f"no final response after the router died (saw {seen})")
        self.assertEqual(final.status, 200, str(final))
        other = [r for r in routers.routers if r is not routers.victim][0]
        self.assertEqual(final.get("X-Router"), other.name, str(final))
        self.assertLess(took, FINAL_WITHIN_S)
        self.assertEqual(len(other.received("INVITE")), 1)
        self.assertAlive(proxy)

    def test_router_silent_after_180_the_caller_gets_408_and_the_router_a_cancel(self):
        routers = OneShotRouters(self, [(100, "Trying"), (180, "Ringing")], then="mute")
        proxy, final, took, seen = self._call(routers)
        self.assertIsNotNone(final, f"no final response after the router went silent ({seen})")
        self.assertEqual(final.status, 408, str(final))
        self.assertIn(180, seen)
        self.assertLess(took, FINAL_WITHIN_S)
        victim = routers.victim
        other = [r for r in routers.routers if r is not victim][0]
        # The caller heard ringing: the call is not set up again elsewhere.
        self.assertEqual(other.received("INVITE"), [])
        invite = victim.received("INVITE")[0]
        wait_until(lambda: victim.received("CANCEL"), 2, "a CANCEL to the silent router")
        cancel = victim.received("CANCEL")[0]
        self.assertEqual(via_params(cancel.get("Via"))["branch"],
                         via_params(invite.get("Via"))["branch"])
        self.assertEqual(cancel.all("Via"), [invite.all("Via")[0]])
        self.assertEqual(cancel.get("CSeq").split()[1], "CANCEL")
        self.assertAlive(proxy)


if __name__ == "__main__":
    unittest.main()
