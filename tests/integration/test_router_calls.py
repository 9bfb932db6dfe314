"""Calls through edge -> router -> edge between registered sipp user agents (issue 3):
alice calls bob (0 failed); callee not registered -> 480; unknown user -> 404; foreign
domain from an unauthenticated source -> 403; service number 100 -> the app set with
X-Evosip-Action: Playback / X-Evosip-Sound: welcome, and no X-Evosip-* back to the caller.
Skips until `evosip router` exists."""

import os
import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, RouterTestCase, SipClient, create_subscribers,
                     free_port, make_users, raw_invite, scenario, wait_until)

CALLS = 5


class RouterCalls(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.app_port = free_port()
        self.p = self.platform(app_ports=[self.app_port])
        self.alice, self.bob, self.carol = make_users(3, prefix="call")
        create_subscribers(self.p.api, [self.alice, self.bob, self.carol])

    def client(self) -> SipClient:
        c = SipClient("UDP", self.p.edge.addr, timeout=5)
        self.addCleanup(c.close)
        return c

    def test_alice_calls_bob(self):
        bob = self.registered_uas(self.p.edge.addr, self.bob)
        self.assertEqual(len(self.lookup(self.p.router, self.bob[0])), 1)
        caller = self.caller(self.p.edge.addr, self.alice, self.bob[0], calls=CALLS, rate=5)
        res = caller.run(self.cleanup)
        self.assertSippOk(res, CALLS)
        uas = bob.result()
        self.assertEqual((uas.successful, uas.failed), (CALLS, 0), uas.summary())
        wait_until(lambda: self.p.router.rpc("dialog.list").get("dialogs", [None]) == [], 5,
                   "dialog records removed after BYE")
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_dialogs_active"), 0)
        self.assertAlive(self.p.router)
        self.assertAlive(self.p.edge)

    def test_callee_not_registered_480(self):
        _first, final = raw_invite(self.client(), f"sip:{self.carol[0]}@{ROUTER_DOMAIN}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 480, str(final))

    def test_first_invite_challenged_407(self):
        first, _final = raw_invite(self.client(), f"sip:{self.carol[0]}@{ROUTER_DOMAIN}",
                                   caller=self.alice[0])
        self.assertEqual(first.status, 407, str(first))
        self.assertTrue(first.all("Proxy-Authenticate"), str(first))

    def test_unknown_user_404(self):
        _first, final = raw_invite(self.client(), f"sip:nobody-here@{ROUTER_DOMAIN}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 404, str(final))

    def test_alias_host_counts_as_domain(self):
        # a tester that dials sip:user@127.0.0.1:EDGE_PORT reaches the local domain
        _first, final = raw_invite(self.client(), f"sip:nobody-here@{self.p.edge.hostport}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 404, str(final))

    def test_foreign_domain_unauthenticated_403(self):
        for from_domain in ("foreign.example", ROUTER_DOMAIN):
            with self.subTest(from_domain=from_domain):
                first, _ = raw_invite(self.client(), "sip:someone@elsewhere.example",
                                      caller="mallory", from_domain=from_domain)
                self.assertIsNotNone(first, "no answer")
                if from_domain == ROUTER_DOMAIN:
                    # claims to be local: challenged; never relayed without credentials
                    self.assertIn(first.status, (403, 407), str(first))
                else:
                    self.assertEqual(first.status, 403, f"open relay?\n{first}")

    def test_service_number_100_reaches_app(self):
        app = self.sipp("app", scenario=scenario("router_uas_app.xml"), port=self.app_port,
                        keys={"router_name": "app"}, timeout_s=60, timeout_error=False,
                        trace_msg=True).start(self.cleanup)
        caller = self.caller(self.p.edge.addr, self.alice, "100", calls=2, rate=5,
                             trace_msg=True)
        res = caller.run(self.cleanup)
        self.assertSippOk(res, 2)
        # The app counts a call when its BYE exchange ends, which may be just after the
        # caller's run returns: wait for it (bounded).
        wait_until(lambda: app.result().successful >= 2, 5, "the app to count both calls")
        a = app.result()
        self.assertEqual((a.successful, a.failed), (2, 0), a.summary())
        with open(app.msg_path, encoding="utf-8", errors="replace") as f:
            app_log = f.read()
        self.assertRegex(app_log, r"(?im)^X-Evosip-Action:\s*Playback\s*$")
        self.assertRegex(app_log, r"(?im)^X-Evosip-Sound:\s*welcome\s*$")
        with open(caller.msg_path, encoding="utf-8", errors="replace") as f:
            caller_log = f.read()
        self.assertNotRegex(caller_log, r"(?im)^X-Evosip-", "X-Evosip-* reached the caller")


if __name__ == "__main__":
    unittest.main()
