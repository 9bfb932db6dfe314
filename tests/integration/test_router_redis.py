"""Two routers sharing a real redis-server: a binding registered through router A
is found by a call through router B; router A killed after the 200 OK -> the BYE goes
through router B (which loads the dialog from the store) and completes; Redis restarted
mid-test -> 5xx while it is down (never a hang or a crash), service back afterwards.
The edge's router set is switched with dispatcher.set, as the controller would do.
Skips until `evosip router` exists."""

import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, RawRegistration, RouterTestCase, RpcError, SipClient,
                     create_subscribers, make_users, start_redis, wait_until)


class RouterRedis(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.redis = start_redis(self.tmp, self.cleanup)
        self.p = self.platform(routers=2, redis=self.redis, edge_routers=[0])
        self.a, self.b = self.p.routers
        self.alice, self.bob, self.carol = make_users(3, prefix="shared")
        create_subscribers(self.p.api, [self.alice, self.bob, self.carol])

    def use_routers(self, *routers) -> None:
        targets = [f"sip:{HOST}:{r.sip_port}" for r in routers]
        self.p.edge.rpc("dispatcher.set", {"set": "routers", "targets": targets})

    def dialogs(self, router) -> list:
        return router.rpc("dialog.list").get("dialogs", [])

    def test_binding_shared_and_bye_survives_router_a(self):
        # register through A only
        callee = self.registered_uas(self.p.edge.addr, self.bob)
        self.assertTrue(self.redis.keys("*"), "router A wrote nothing to redis")
        self.assertEqual(len(self.lookup(self.b, self.bob[0])), 1,
                         "router B does not see the binding registered through A")
        # a call through B finds the binding
        self.use_routers(self.b)
        res = self.caller(self.p.edge.addr, self.alice, self.bob[0], name="via_b").run(
            self.cleanup)
        self.assertSippOk(res, 1)
        # a call set up through A; A dies after the 200 OK; the BYE goes through B
        self.use_routers(self.a)
        caller = self.caller(self.p.edge.addr, self.alice, self.bob[0], name="a_dies",
                             duration_ms=4000)
        caller.start(self.cleanup, wait=False)
        wait_until(lambda: len(self.dialogs(self.b)) == 1, 10,
                   "the dialog record (written by A) visible through B", proc=caller.proc)
        self.a.proc.kill()
        self.use_routers(self.b)
        done = caller.wait(30)
        self.assertSippOk(done, 1)
        # the callee counts a call once its timewait after the BYE's 200 has passed
        wait_until(lambda: callee.result().successful >= 2, 5, "the callee ending the calls")
        uas = callee.result()
        self.assertEqual((uas.successful, uas.failed), (2, 0), uas.summary())
        wait_until(lambda: self.dialogs(self.b) == [], 5, "dialog removed by the BYE via B")
        self.assertAlive(self.b)

    def test_redis_restart(self):
        user, pw = self.alice
        with SipClient("UDP", self.p.edge.addr, timeout=6) as c:
            self.assertEqual(RawRegistration(c, user).register(pw)[1].status, 200)
            self.redis.stop()
            t0 = time.monotonic()
            first, final = RawRegistration(c, user).register(pw)
            answered = final or first
            self.assertIsNotNone(answered, "no answer while redis is down")
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn(answered.status, (500, 503),
                          f"store down must give 500/503:\n{answered}")
            self.assertGreater(self.a.metrics().get("evosip_router_store_errors_total"), 0)
            self.redis.start()
            deadline = time.monotonic() + 15
            status = None
            while time.monotonic() < deadline:
                _f, final = RawRegistration(c, user).register(pw)
                status = final.status if final else None
                if status == 200:
                    break
                time.sleep(0.3)
            self.assertEqual(status, 200, "service did not recover after redis came back")
        # Each worker of each router reconnects on its own back-off (up to 5 s): router B's
        # worker 0, which answers the RPC, may come back after the worker that took the
        # REGISTER. Until then the RPC says the store is not connected.
        bindings = None
        deadline = time.monotonic() + 10
        while bindings is None and time.monotonic() < deadline:
            try:
                bindings = self.lookup(self.b, user)
            except RpcError as e:
                self.assertIn("not connected", str(e))
                time.sleep(0.2)
        self.assertIsNotNone(bindings, "router B's store did not come back within 10 s")
        self.assertEqual(len(bindings), 1)
        self.assertAlive(self.a)
        self.assertAlive(self.b)


if __name__ == "__main__":
    unittest.main()
