"""SIGTERM drains every role (edge, router, media, app, api): /readyz answers 503 at once, new
work is refused the way the tier in front understands (router 503, media "draining", app 503),
work in progress is served to its end (the router's transactions, the relay's sessions, the
app's calls, the edge's and the api's requests), then the process exits 0, long before
drain_timeout_s. A second SIGTERM or a SIGINT stops at once; instance.undrain is refused while
the process stops; instance.drain / instance.undrain do the same without the signal."""

import os
import signal
import time
import unittest

import harness as h
import test_app
import test_media_ng
from harness import (HOST, ROUTER_DOMAIN, Process, ProxyTestCase, RawRegistration, RouterTestCase,
                     RpcError, SipClient, create_subscribers, free_port, http_get, make_users,
                     require_role, rpc, scrape, wait_http_ok, wait_until, write_yaml)
from test_hostile_control import role_config

ROLES = ("edge", "router", "media", "app", "api")


def readyz(url: str) -> int:
    try:
        return http_get(url + "/readyz", timeout=1)[0]
    except OSError:
        return -1  # not listening (the process is gone)


def exit_within(test: unittest.TestCase, proc: Process, seconds: float, what: str) -> float:
    """Waits for proc to exit; asserts it did within `seconds` and with status 0. Returns how
    long it took."""
    t0 = time.monotonic()
    try:
        code = proc.wait(timeout=seconds)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        test.fail(f"{proc.name}: still running {seconds} s after {what}\n{proc.tail()}")
    test.assertEqual(code, 0, f"{proc.name}: exit status after {what}\n{proc.tail()}")
    return time.monotonic() - t0


def assert_stopping(test: unittest.TestCase, url: str, proc: Process) -> None:
    """What a peer sees right after the first SIGTERM: not ready, state "stopping",
    evosip_draining 1, and instance.undrain refused."""
    t0 = time.monotonic()
    wait_until(lambda: readyz(url) == 503, 1.0, "/readyz 503 after SIGTERM", proc=proc)
    test.assertLess(time.monotonic() - t0, 1.0)
    status = rpc(url + "/rpc", "instance.status")
    test.assertEqual((status["state"], status["draining"], status["ready"]),
                     ("stopping", True, False), status)
    test.assertEqual(scrape(url + "/metrics").get("evosip_draining"), 1)
    with test.assertRaises(RpcError, msg="instance.undrain while stopping on a signal") as e:
        rpc(url + "/rpc", "instance.undrain")
    test.assertIn("stopping", e.exception.body)
    test.assertEqual(readyz(url), 503, "instance.undrain made a stopping instance ready")


class SignalsInEveryRole(ProxyTestCase):
    """The same contract in every role, with no work in progress: drain_idle_s holds the
    process up, so what the signals do is seen apart from the work."""

    def start(self, role: str, **top) -> tuple:
        require_role(role)
        port = free_port()
        cfg = role_config(role, self.tmp, {"listen": f"{HOST}:{port}"})
        cfg.update(top)
        path = write_yaml(os.path.join(self.tmp, f"{role}.yaml"), cfg)
        proc = self.cleanup.add(Process(role, [h.require_evosip(), role, "--config", path],
                                        self.tmp))
        url = f"http://{HOST}:{port}"
        wait_http_ok(url + "/readyz", timeout=15, proc=proc)
        return proc, url

    def test_rpc_drain_and_undrain_in_every_role(self):
        for role in ROLES:
            with self.subTest(role=role):
                proc, url = self.start(role)
                self.assertEqual(scrape(url + "/metrics").get("evosip_draining"), 0)
                res = rpc(url + "/rpc", "instance.drain")
                self.assertEqual((res["state"], res["draining"]), ("draining", True), res)
                self.assertEqual(readyz(url), 503)
                self.assertEqual(scrape(url + "/metrics").get("evosip_draining"), 1)
                time.sleep(0.5)
                self.assertTrue(proc.alive(), "an RPC drain never ends the process")
                res = rpc(url + "/rpc", "instance.undrain")
                self.assertEqual((res["state"], res["draining"]), ("serving", False), res)
                self.assertEqual(readyz(url), 200)
                self.assertEqual(proc.stop(sig=signal.SIGINT), 0)

    def test_second_sigterm_or_sigint_stops_at_once(self):
        for role in ROLES:
            for second in (signal.SIGTERM, signal.SIGINT):
                with self.subTest(role=role, second=second.name):
                    proc, url = self.start(role, drain_idle_s=30, drain_timeout_s=60)
                    proc.send_signal(signal.SIGTERM)
                    assert_stopping(self, url, proc)
                    time.sleep(1)
                    self.assertTrue(proc.alive(), f"{role} left before drain_idle_s")
                    proc.send_signal(second)
                    took = exit_within(self, proc, 3, f"a {second.name} while draining")
                    self.assertLess(took, 2)


class EdgeDrain(ProxyTestCase):
    def test_edge_forwards_everything_while_draining_and_leaves_once_requests_stop(self):
        router = self.router("r1")
        edge = h.start_evosip_edge(self.tmp, self.cleanup, [router.uri], transports=("udp",),
                                   overrides={"drain_timeout_s": 60})
        edge.proc.send_signal(signal.SIGTERM)
        assert_stopping(self, edge.control_url, edge.proc)
        # Clients still reach the edge until readiness has withdrawn its route: new and
        # in-dialog requests are forwarded and answered as before, and they keep it up.
        t0 = time.monotonic()
        with SipClient("UDP", edge.addr, timeout=2) as c:
            while time.monotonic() - t0 < 3.5:
                for method in ("INVITE", "REGISTER", "OPTIONS"):
                    r = c.transact(c.request(method, f"sip:bob@{ROUTER_DOMAIN}"))
                    self.assertIsNotNone(r, f"no answer to a {method} while draining")
                    self.assertEqual(r.status, 200, f"{method} while draining:\n{r}")
                time.sleep(0.4)
        self.assertTrue(edge.alive(), "the edge left while requests still arrived")
        self.assertGreaterEqual(len(router.received("INVITE")), 5)
        # Quiet: it leaves after drain_idle_s (2 s by default), long before drain_timeout_s.
        took = exit_within(self, edge.proc, 10, "the requests stopped")
        self.assertGreater(took, 1.0, "left before drain_idle_s of quiet")


class RouterDrain(RouterTestCase):
    def test_router_finishes_the_call_in_setup_then_exits(self):
        p = self.platform(router_overrides={"drain_timeout_s": 60})
        alice, bob, carol = make_users(3, prefix="sigterm")
        create_subscribers(p.api, [alice, bob, carol])
        callee = self.registered_uas(p.edge.addr, bob, scen="router_uas_slow_answer.xml")
        caller = self.caller(p.edge.addr, alice, bob[0], calls=1, duration_ms=500)
        caller.start(self.cleanup, wait=False)
        wait_until(lambda: p.router.metrics().get("evosip_router_transactions", kind="proxy") >= 1,
                   10, "the INVITE in setup at the router", proc=caller.proc)
        p.router.proc.send_signal(signal.SIGTERM)
        assert_stopping(self, p.router.control_url, p.router.proc)
        with SipClient("UDP", p.edge.addr, timeout=4) as c:
            first, reg = RawRegistration(c, carol[0]).register(carol[1])
            self.assertEqual((reg or first).status, 503,
                             f"REGISTER while draining:\n{reg or first}")
        # The INVITE in setup is answered (3 s late), then its ACK and BYE are served.
        done = caller.wait(30)
        self.assertSippOk(done, 1)
        wait_until(lambda: callee.result().successful == 1, 5, "the callee's call completed")
        self.assertEqual(callee.result().failed, 0, callee.result().summary())
        exit_within(self, p.router.proc, 10, "its last transaction ended")


class MediaDrain(test_media_ng.MediaTestCase):
    def test_relay_keeps_the_call_up_refuses_new_ones_and_exits_when_it_is_deleted(self):
        self.start_media()
        a, b = self.phone(), self.phone()
        toward_a, toward_b = self.call(a, b)
        self.assertRelays(a.rtp, toward_a[1], b.rtp, 1)
        self.proc.send_signal(signal.SIGTERM)
        assert_stopping(self, self.control_url, self.proc)
        r = self.ng.request("offer", call_id="new-after-sigterm", from_tag="x",
                            sdp=test_media_ng.make_sdp(4000))
        self.assertEqual(r, {"result": "error", "error-reason": "draining"})
        time.sleep(1)
        self.assertRelays(b.rtp, toward_b[1], a.rtp, 2)  # the call up keeps its media
        self.assertRelays(a.rtp, toward_a[1], b.rtp, 3)
        self.assertTrue(self.proc.alive(), "the relay left with a call up")
        r = self.ng.request("delete", call_id=self.call_id, from_tag="tag-a")
        self.assertEqual(r["result"], "ok", r)
        exit_within(self, self.proc, 5, "its last call was deleted")


class AppDrain(test_app.AppTest):
    def test_app_refuses_new_calls_serves_the_call_up_and_exits_after_its_bye(self):
        c = test_app.Call(self, ["X-Evosip-Action: Echo"])
        c.answer_call()
        self.proc.send_signal(signal.SIGTERM)
        assert_stopping(self, self.control_url, self.proc)
        new = test_app.Call(self, ["X-Evosip-Action: Echo"])
        new.invite()
        self.assertEqual(new.response().status, 503, "a new call while draining")
        time.sleep(1)
        self.assertTrue(self.proc.alive(), "the app left with a call up")
        self.assertEqual(c.bye().status, 200, "the BYE of the call up")
        exit_within(self, self.proc, 5, "its last call ended")


class ApiDrain(ProxyTestCase):
    def test_api_answers_while_requests_arrive_then_exits(self):
        require_role("api")
        api = h.start_api(self.tmp, self.cleanup)
        api.proc.send_signal(signal.SIGTERM)
        assert_stopping(self, api.control_url, api.proc)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            status, _body = api.request("GET", "/v1/domains", timeout=2)
            self.assertEqual(status, 200, "a REST request while draining")
            time.sleep(0.3)
        self.assertTrue(api.proc.alive(), "the api left while requests still arrived")
        exit_within(self, api.proc, 10, "the requests stopped")


if __name__ == "__main__":
    unittest.main()
