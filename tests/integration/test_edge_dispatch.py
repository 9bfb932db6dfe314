"""Router selection: rendezvous hashing of the Call-ID over the live router set,
run-time set changes by RPC, failover on a silent router, 503 when none is up."""

import time
import unittest

from harness import (HOST, ProxyTestCase, SipClient, free_port, new_call_id,
                     require_evosip, start_proxy, wait_until)

LOAD_CALLS = 200


def router_states(proxy):
    res = proxy.rpc("dispatcher.list")
    return {r["uri"]: r for r in res["routers"]}


class EdgeDispatch(ProxyTestCase):
    def _options(self, client, call_id, timeout=3.0):
        req = client.request("OPTIONS", "sip:bob@example.com", call_id=call_id)
        return client.transact(req, timeout=timeout)

    def test_two_routers_share_the_load(self):
        a = self.uas("A", "uas_router.xml")
        b = self.uas("B", "uas_router.xml")
        proxy = start_proxy(self.tmp, self.cleanup,
                            [f"sip:{HOST}:{a.port}", f"sip:{HOST}:{b.port}"])
        uac = self.uac("uac", proxy, "uac_call.xml", LOAD_CALLS, 50, timeout_s=45)
        self.assertSippOk(uac.run(self.cleanup), LOAD_CALLS)
        ra, rb = a.result(), b.result()
        got_a, got_b = int(ra.stats.get("IncomingCall(C)", 0)), int(rb.stats.get("IncomingCall(C)", 0))
        self.assertEqual(got_a + got_b, LOAD_CALLS, (ra.summary(), rb.summary()))
        # random Call-IDs, 2 routers: ~50 % each; 30..70 % is > 5 sigma at n=200
        for name, n in (("A", got_a), ("B", got_b)):
            self.assertTrue(0.30 * LOAD_CALLS <= n <= 0.70 * LOAD_CALLS,
                            f"router {name} got {n} of {LOAD_CALLS} calls (A={got_a}, B={got_b})")
        self.assertEqual((ra.failed, rb.failed), (0, 0))
        if proxy.kind == "evosip":
            m = proxy.metrics()
            fwd = {labels.get("router"): v
                   for labels, v in m.series("evosip_edge_router_forwarded_total")}
            self.assertEqual(len([v for v in fwd.values() if v > 0]), 2, m.text[:3000])
            self.assertGreaterEqual(m.get("evosip_edge_requests_total", method="INVITE"),
                                    LOAD_CALLS)

    def test_call_id_affinity(self):
        ra, rb = self.router("A"), self.router("B")
        proxy = start_proxy(self.tmp, self.cleanup, [ra.uri, rb.uri])
        owners = {}
        with SipClient("UDP", proxy.addr) as c:
            for _ in range(20):
                cid = new_call_id()
                for _rep in range(4):
                    resp = self._options(c, cid)
                    self.assertIsNotNone(resp, f"no answer for Call-ID {cid}")
                    self.assertEqual(resp.status, 200, str(resp))
                    owner = resp.get("X-Router")
                    owners.setdefault(cid, set()).add(owner)
        for cid, who in owners.items():
            self.assertEqual(len(who), 1, f"Call-ID {cid} reached routers {who}")
        used = set().union(*owners.values())
        self.assertEqual(used, {"A", "B"}, "20 Call-IDs should reach both routers")
        # the routers agree with what the responses say
        for r in (ra, rb):
            for cid in r.call_ids():
                self.assertEqual(owners[cid], {r.name})

    def test_a_flows_requests_leave_from_its_workers_own_sockets(self):
        """Each worker sends to routers from egress sockets of its own: one client's flow (one
        worker, SO_REUSEPORT) reaches a router from that worker's sockets only, the answers come
        back to the worker that keeps the requests, and nothing is handed between workers."""
        require_evosip()
        r = self.router("A")
        # 2 workers with 2 egress sockets each (the defaults of the test configuration)
        proxy = start_proxy(self.tmp, self.cleanup, [r.uri])
        with SipClient("UDP", proxy.addr) as c:
            for _ in range(40):
                resp = self._options(c, new_call_id())
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 200, str(resp))
        ports = {m.source[1] for m in r.received("OPTIONS")}
        self.assertEqual(len(ports), 2, f"40 calls of one flow came from the ports {ports}")
        m = proxy.metrics()
        self.assertTrue(m.has("evosip_edge_handoffs_total"), m.text[:2000])
        self.assertEqual(m.get("evosip_edge_handoffs_total"), 0)

    def test_dispatcher_set_moves_traffic(self):
        require_evosip()
        ra, rb = self.router("A"), self.router("B")
        proxy = start_proxy(self.tmp, self.cleanup, [ra.uri, rb.uri])
        states = router_states(proxy)
        self.assertEqual(set(states), {ra.uri, rb.uri}, states)
        proxy.rpc("dispatcher.set", {"set": "routers", "targets": [rb.uri]})
        self.assertEqual(set(router_states(proxy)), {rb.uri})
        ra.clear(); rb.clear()
        with SipClient("UDP", proxy.addr) as c:
            for _ in range(30):
                resp = self._options(c, new_call_id())
                self.assertIsNotNone(resp)
                self.assertEqual(resp.get("X-Router"), "B", str(resp))
        self.assertEqual(len(ra.received()), 0, "removed router still gets traffic")
        self.assertEqual(len(rb.received("OPTIONS")), 30)
        # and back: both again
        proxy.rpc("dispatcher.set", {"set": "routers", "targets": [ra.uri, rb.uri]})
        seen = set()
        with SipClient("UDP", proxy.addr) as c:
            for _ in range(20):
                seen.add(self._options(c, new_call_id()).get("X-Router"))
        self.assertEqual(seen, {"A", "B"})
        self.assertGreater(router_states(proxy)[rb.uri].get("forwarded", 0), 0)

    def test_failover_when_a_router_stops_answering(self):
        require_evosip()
        a = self.uas("A", "uas_router.xml")
        b = self.uas("B", "uas_router.xml")
        ua, ub = f"sip:{HOST}:{a.port}", f"sip:{HOST}:{b.port}"
        proxy = start_proxy(self.tmp, self.cleanup, [ua, ub],
                            overrides={"edge": {"router_timeout_ms": 300}})
        first = self.uac("uac1", proxy, "uac_call.xml", 40, 40, timeout_s=30)
        self.assertSippOk(first.run(self.cleanup), 40)
        self.assertGreater(a.incoming_calls(), 0)
        a.kill()  # router A stops answering (no in-flight calls left on it)
        second = self.uac("uac2", proxy, "uac_call.xml", 80, 40, timeout_s=40)
        self.assertSippOk(second.run(self.cleanup), 80)
        wait_until(lambda: router_states(proxy)[ua]["state"] == "down", 5,
                   "dispatcher.list to show router A down")
        self.assertEqual(router_states(proxy)[ub]["state"], "up")
        m = proxy.metrics()
        self.assertEqual(m.get("evosip_edge_router_up", router=ua), 0, m.text[:3000])
        self.assertEqual(m.get("evosip_edge_router_up", router=ub), 1, m.text[:3000])

    def test_no_router_up_gives_503(self):
        require_evosip()
        dead1, dead2 = self.router("D1", mute=True), self.router("D2", mute=True)
        proxy = start_proxy(self.tmp, self.cleanup, [dead1.uri, dead2.uri],
                            overrides={"edge": {"router_timeout_ms": 200}})
        with SipClient("UDP", proxy.addr) as c:
            t0 = time.monotonic()
            req = c.request("INVITE", "sip:bob@example.com")
            resp = None
            # first request: the edge waits router_timeout per router, then 503
            for _ in range(3):
                resp = c.transact(req, timeout=2.0)  # also a retransmission
                if resp is not None:
                    break
            self.assertIsNotNone(resp, "no 503 when no router answers")
            self.assertEqual(resp.status, 503, str(resp))
            self.assertIsNotNone(resp.get("Retry-After"), str(resp))
            self.assertLess(time.monotonic() - t0, 6.0)
            # both marked down now: a new request is refused at once
            t1 = time.monotonic()
            resp = c.transact(c.request("INVITE", "sip:carol@example.com"), timeout=2.0)
            self.assertIsNotNone(resp)
            self.assertEqual(resp.status, 503)
            self.assertLess(time.monotonic() - t1, 1.0)
        states = router_states(proxy)
        self.assertEqual({s["state"] for s in states.values()}, {"down"}, states)
        self.assertAlive(proxy)


if __name__ == "__main__":
    unittest.main()
