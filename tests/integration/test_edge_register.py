"""REGISTER through the edge: Path added (RFC 3327), X-Evosip-* headers stripped."""

import re
import unittest

from harness import HOST, ProxyTestCase, SipClient, start_proxy

REGS = 30


class EdgeRegister(ProxyTestCase):
    def setUp(self):
        super().setUp()

    def _sipp_register(self, transport):
        registrar = self.uas("registrar", "uas_register_path.xml")
        proxy = start_proxy(self.tmp, self.cleanup, [f"sip:{HOST}:{registrar.port}"])
        uac = self.uac(f"uac_register_{transport}", proxy, "uac_register.xml", REGS, 30,
                       transport=transport, timeout_s=30, recv_timeout_ms=5000)
        res = uac.run(self.cleanup)
        self.assertSippOk(res, REGS)
        reg = registrar.result()
        self.assertEqual(reg.failed, 0, reg.summary())
        self.assertAlive(proxy)

    def test_register_path_udp(self):
        self._sipp_register("u1")

    def test_register_path_tcp(self):
        self._sipp_register("t1")

    def test_path_and_stripping_raw(self):
        router = self.router("r")
        proxy = start_proxy(self.tmp, self.cleanup, [router.uri])
        for transport in ("UDP", "TCP"):
            with self.subTest(transport=transport), SipClient(transport, proxy.addr) as c:
                router.clear()
                extra = ["X-Evosip-Action: Voicemail", "x-evosip-tenant: evil",
                         "X-EVOSIP-Subscriber: admin", "X-Other: kept"]
                for method, ruri in (("REGISTER", "sip:example.com"),
                                     ("INVITE", "sip:bob@example.com"),
                                     ("MESSAGE", "sip:bob@example.com")):
                    req = c.request(method, ruri, extra_headers=extra)
                    resp = c.transact(req, timeout=3)
                    self.assertIsNotNone(resp, f"{method} over {transport}: no final answer")
                    self.assertEqual(resp.status, 200, str(resp))
                    if method == "INVITE":  # complete the transaction
                        c.send(c.request("ACK", ruri, call_id=resp.call_id,
                                         to_tag="r" + router.name))
                got = {m.method: m for m in router.received()}
                for method in ("REGISTER", "INVITE", "MESSAGE"):
                    self.assertIn(method, got, f"router never got {method}")
                    msg = got[method]
                    names = [n.lower() for n in msg.header_names()]
                    self.assertFalse([n for n in names if n.startswith("x-evosip-")],
                                     f"X-Evosip-* reached the router:\n{msg}")
                    self.assertIn("x-other", names, "unrelated X- header must be kept")
                path = got["REGISTER"].all("Path")
                self.assertTrue(path, f"no Path on REGISTER:\n{got['REGISTER']}")
                self.assertRegex(path[0], r";lr\b", path[0])
                self.assertIn(f":{proxy.sip_port}", path[0],
                              "Path must point at the edge's SIP address")
                self.assertFalse(got["MESSAGE"].all("Path"), "Path only on REGISTER")
                rr = got["INVITE"].all("Record-Route")
                self.assertTrue(rr, f"no Record-Route on INVITE:\n{got['INVITE']}")
                self.assertTrue(any(re.search(r";lr\b", r) for r in rr), rr)


if __name__ == "__main__":
    unittest.main()
