"""instance.drain: readyz -> 503 at once, a new INVITE -> 503, a call already
established still ends with its BYE. Skips until `evosip router` exists."""

import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, RawRegistration, RouterTestCase, SipClient,
                     create_subscribers, http_get, make_users, raw_invite, wait_until)


class RouterDrain(RouterTestCase):
    def test_drain(self):
        p = self.platform()
        alice, bob, carol = make_users(3, prefix="drain")
        create_subscribers(p.api, [alice, bob, carol])
        callee = self.registered_uas(p.edge.addr, bob)
        caller = self.caller(p.edge.addr, alice, bob[0], calls=1, duration_ms=4000)
        caller.start(self.cleanup, wait=False)
        wait_until(lambda: len(p.router.rpc("dialog.list").get("dialogs", [])) == 1, 10,
                   "the call established (dialog record)", proc=caller.proc)
        res = p.router.rpc("instance.drain")
        self.assertTrue(res.get("draining"), res)
        self.assertGreaterEqual(res.get("dialogs", 0), 1, res)
        self.assertEqual(http_get(p.router.control_url + "/readyz")[0], 503,
                         "readyz must fail at once when draining")
        with SipClient("UDP", p.edge.addr, timeout=4) as c:
            first, final = raw_invite(c, f"sip:{bob[0]}@{ROUTER_DOMAIN}", caller=carol[0],
                                      password=carol[1])
            self.assertIsNotNone(first, "no answer to a new INVITE while draining")
            self.assertEqual((final or first).status, 503,
                             f"new INVITE while draining:\n{final or first}")
            _f, reg = RawRegistration(c, carol[0]).register(carol[1])
            self.assertEqual((reg or _f).status, 503, f"REGISTER while draining:\n{reg or _f}")
        done = caller.wait(30)
        self.assertSippOk(done, 1)
        # the callee counts a call once its timewait after the BYE's 200 has passed
        wait_until(lambda: callee.result().successful >= 1, 5, "the callee ending the calls")
        uas = callee.result()
        self.assertEqual((uas.successful, uas.failed), (1, 0), uas.summary())
        wait_until(lambda: p.router.rpc("dialog.list").get("dialogs", [None]) == [], 5,
                   "dialog removed by the BYE")
        self.assertAlive(p.router)


if __name__ == "__main__":
    unittest.main()
