"""The harness checks itself: the assertion scenarios must FAIL when a proxy does not do
its job (here: no proxy at all, uac straight to uas), so an edge test can never pass
because a check silently did nothing. Needs only sipp, not evosip."""

import unittest

from harness import (FakeRouter, Metrics, SipClient, SipMessage, make_tmpdir, rtd_percentiles,
                     scenario, Cleanup, Sipp, to_yaml)


class ScenarioChecksBite(unittest.TestCase):
    def setUp(self):
        self.cleanup = Cleanup()
        self.addCleanup(self.cleanup.stop_all)
        self.tmp = make_tmpdir("evosip-selftest-")
        self.cleanup.dirs.append(self.tmp)

    def _direct(self, uas_scen, uac_scen):
        uas = Sipp(self.tmp, "uas", scenario=scenario(uas_scen), keys={"router_name": "x"},
                   timeout_s=30, timeout_error=False).start(self.cleanup)
        uac = Sipp(self.tmp, "uac", scenario=scenario(uac_scen), remote=f"127.0.0.1:{uas.port}",
                   calls=2, rate=10, timeout_s=10, recv_timeout_ms=1500)
        return uac.run(self.cleanup), uas

    def test_check_rr_fails_without_record_route_and_received(self):
        res, uas = self._direct("uas_check_rr.xml", "uac_call.xml")
        self.assertEqual(res.successful, 0, res.summary())
        self.assertNotEqual(res.rc, 0)
        st = uas.result().stats
        self.assertGreater(int(st.get("FailedRegexpDoesntMatch(C)", "0")) +
                           int(st.get("FailedRegexpShouldntMatch(C)", "0")), 0, st)

    def test_register_fails_without_path(self):
        # sipp goes on with the scenario after a failed check (the uac sees a 200), but
        # counts the call failed on the uas side: tests must read the uas result.
        _res, uas = self._direct("uas_register_path.xml", "uac_register.xml")
        r = uas.result()
        self.assertGreater(r.failed, 0, r.summary())
        self.assertGreater(int(r.stats.get("FailedRegexpDoesntMatch(C)", "0")), 0)

    def test_no_xevosip_fails_when_present(self):
        res, uas = self._direct("uas_no_xevosip.xml", "uac_call.xml")
        self.assertEqual(res.successful, 0, res.summary())
        self.assertGreater(int(uas.result().stats.get("FailedRegexpShouldntMatch(C)", "0")), 0)

    def test_uac_fails_without_received_rport(self):
        res, _uas = self._direct("uas_router.xml", "uac_call.xml")
        self.assertEqual(res.successful, 0, res.summary())
        self.assertGreater(int(res.stats.get("FailedRegexpDoesntMatch(C)", "0")), 0, res.summary())

    def test_router_scenario_passes_direct(self):
        res, _uas = self._direct("uas_router.xml", "uac_bench.xml")
        self.assertEqual((res.rc, res.successful, res.failed), (0, 2, 0), res.summary())
        self.assertIsNotNone(rtd_percentiles(res.stats)[50])

    def test_raw_client_and_fake_router(self):
        r = FakeRouter("a")
        self.cleanup.callbacks.append(r.close)
        with SipClient("UDP", ("127.0.0.1", r.port)) as c:
            resp = c.transact(c.request("OPTIONS", "sip:bob@example.com"))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.get("X-Router"), "a")
        self.assertEqual(len(r.received("OPTIONS")), 1)

    def test_parsers(self):
        m = Metrics('# HELP x y\nevosip_edge_requests_total{method="INVITE"} 3\n'
                    'evosip_edge_requests_total{method="BYE"} 2\nup 1\n')
        self.assertEqual(m.get("evosip_edge_requests_total"), 5)
        self.assertEqual(m.get("evosip_edge_requests_total", method="BYE"), 2)
        msg = SipMessage.parse(b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b\r\n"
                               b"i: x\r\n\r\n")
        self.assertEqual(len(msg.all("Via")), 2)
        self.assertEqual(msg.call_id, "x")
        self.assertIn('listen:\n    - "udp:1"', to_yaml({"sip": {"listen": ["udp:1"]}}))


if __name__ == "__main__":
    unittest.main()
