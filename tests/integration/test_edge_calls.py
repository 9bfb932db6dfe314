"""uac -> edge -> uas calls over UDP and TCP (client side), edge -> router over UDP.

Checks: 0 failed calls; the router sees Record-Route ;lr and the client's Via with
received/rport (uas_check_rr.xml); the client's responses carry received/rport
(uac_call.xml); OPTIONS addressed to the edge itself is answered 200.
"""

import unittest

from harness import HOST, ProxyTestCase, SipClient, start_proxy, via_params

CALLS = 60
RATE = 30


class EdgeCalls(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.uas_ = self.uas("router", "uas_check_rr.xml")
        self.proxy = start_proxy(self.tmp, self.cleanup, [f"sip:{HOST}:{self.uas_.port}"])

    def _calls(self, transport):
        uac = self.uac(f"uac_{transport}", self.proxy, "uac_call.xml", CALLS, RATE,
                       transport=transport)
        res = uac.run(self.cleanup)
        self.assertSippOk(res, CALLS)
        uas = self.uas_.result()
        self.assertEqual(uas.failed, 0, uas.summary())
        self.assertEqual(uas.stats.get("FailedRegexpDoesntMatch(C)", "0"), "0", uas.summary())
        self.assertEqual(uas.stats.get("FailedRegexpShouldntMatch(C)", "0"), "0", uas.summary())
        self.assertAlive(self.proxy)

    def test_calls_over_udp(self):
        self._calls("u1")

    def test_calls_over_tcp_client_side(self):
        self._calls("t1")

    def test_response_via_has_received_and_rport_raw(self):
        for transport in ("UDP", "TCP"):
            with self.subTest(transport=transport), \
                    SipClient(transport, self.proxy.addr) as c:
                # OPTIONS addressed to the edge itself (no user part): answered by the edge
                req = c.request("OPTIONS", f"sip:{self.proxy.hostport}")
                resp = c.transact(req, timeout=3)
                self.assertIsNotNone(resp, "no answer to OPTIONS addressed to the edge")
                self.assertEqual(resp.status, 200, str(resp))
                via = via_params(resp.get("Via"))
                self.assertEqual(via.get("received"), HOST, str(resp))
                self.assertEqual(via.get("rport"), str(c.local_port), str(resp))


if __name__ == "__main__":
    unittest.main()
