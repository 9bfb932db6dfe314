"""Next hops given by DNS name: an edge whose routers and a router whose apps are host names
(A records, and SRV records for a name without a port) reaches the peers the name server
names, in RFC 3263 order, and moves its traffic when the answer changes, once the TTL has run
out. The names are served by a DNS stand-in on loopback (dns_standin.py) with 1 s TTLs."""

from __future__ import annotations

import time
import unittest

import harness as h
import test_router_failover as rf
from dns_standin import DnsStandin

SRV = "_sip._udp.routers.evosip.test"


class DnsTestMixin:
    def start_dns(self) -> DnsStandin:
        dns = DnsStandin(h.HOST)
        self.cleanup.callbacks.append(dns.close)
        return dns

    @staticmethod
    def dns_keys(dns: DnsStandin) -> dict:
        return {"dns": {"servers": [dns.address], "min_ttl_s": 1, "max_ttl_s": 30,
                        "timeout_s": 1, "attempts": 1}}


class TestEdgeRoutersByName(DnsTestMixin, h.ProxyTestCase):
    def setUp(self) -> None:
        h.require_evosip()
        super().setUp()
        self.dns = self.start_dns()

    def options_owners(self, proxy: h.ProxyHandle, n: int) -> dict:
        owners: dict = {}
        with h.SipClient("UDP", proxy.addr) as c:
            for _ in range(n):
                req = c.request("OPTIONS", "sip:bob@example.com", call_id=h.new_call_id())
                resp = c.transact(req, timeout=3.0)
                self.assertIsNotNone(resp, "no answer through the edge")
                self.assertEqual(resp.status, 200, str(resp))
                owner = resp.get("X-Router")
                owners[owner] = owners.get(owner, 0) + 1
        return owners

    def test_srv_routers_in_priority_order_and_a_changed_answer_moves_calls(self) -> None:
        a, b = self.router("A"), self.router("B")
        self.dns.set("ra.evosip.test", "A", [h.HOST], ttl=1)
        self.dns.set("rb.evosip.test", "A", [h.HOST], ttl=1)
        self.dns.set(SRV, "SRV", [(10, 0, a.port, "ra.evosip.test"),
                                  (20, 0, b.port, "rb.evosip.test")], ttl=1)
        proxy = h.start_evosip_edge(self.tmp, self.cleanup, ["sip:routers.evosip.test"],
                                    overrides=self.dns_keys(self.dns))
        # Priority 10 takes every call; priority 20 stands by.
        self.assertEqual(self.options_owners(proxy, 20), {"A": 20})
        listed = proxy.rpc("dispatcher.list")
        routers = {r["address"]: r for r in listed["routers"]}
        self.assertEqual(set(routers), {f"{h.HOST}:{a.port}", f"{h.HOST}:{b.port}"}, listed)
        for r in routers.values():
            self.assertEqual(r["name"], "sip:routers.evosip.test", listed)
        (name,) = listed["names"]
        self.assertEqual(name["name"], "sip:routers.evosip.test")
        self.assertEqual(sorted(name["addresses"]),
                         sorted([f"{h.HOST}:{a.port}", f"{h.HOST}:{b.port}"]), listed)
        self.assertEqual(name["ttl"], 1, listed)
        # The name server now names B first: new calls go to B once the TTL has run out.
        asked = self.dns.asked(SRV, "SRV")
        changed_at = time.monotonic()
        self.dns.set(SRV, "SRV", [(5, 0, b.port, "rb.evosip.test"),
                                  (20, 0, a.port, "ra.evosip.test")], ttl=1)

        def all_to_b() -> bool:
            return self.options_owners(proxy, 5) == {"B": 5}
        h.wait_until(all_to_b, 6, "calls moving to B after the SRV answer changed", interval=0.2)
        self.assertLess(time.monotonic() - changed_at, 4.0, "the answer was used past its TTL")
        self.assertGreater(self.dns.asked(SRV, "SRV"), asked, "the name was not asked again")
        self.assertEqual(self.options_owners(proxy, 20), {"B": 20})

    def test_dispatcher_set_takes_a_name_and_keeps_the_last_answer_when_dns_fails(self) -> None:
        a, b = self.router("A"), self.router("B")
        proxy = h.start_evosip_edge(self.tmp, self.cleanup, [a.uri],
                                    overrides=self.dns_keys(self.dns))
        self.assertEqual(self.options_owners(proxy, 5), {"A": 5})
        self.dns.set("rb.evosip.test", "A", [h.HOST], ttl=1)
        uri = f"sip:rb.evosip.test:{b.port}"
        proxy.rpc("dispatcher.set", {"set": "routers", "targets": [uri]})
        h.wait_until(lambda: len(proxy.rpc("dispatcher.list")["routers"]) == 1
                     and proxy.rpc("dispatcher.list")["routers"][0].get("name") == uri, 5,
                     "the name's address in dispatcher.list")
        self.assertEqual(self.options_owners(proxy, 10), {"B": 10})
        # The name server goes silent: the last good answer stays in use past its TTL.
        self.dns.silent = True
        h.wait_until(lambda: proxy.rpc("dispatcher.list")["names"][0]["error"] != "", 8,
                     "a lookup that got no answer")
        listed = proxy.rpc("dispatcher.list")
        self.assertEqual([r["address"] for r in listed["routers"]], [f"{h.HOST}:{b.port}"],
                         listed)
        self.assertEqual(self.options_owners(proxy, 10), {"B": 10})
        self.assertAlive(proxy)

    def test_a_name_that_cannot_be_a_host_is_refused(self) -> None:
        proxy = h.start_evosip_edge(self.tmp, self.cleanup, [f"sip:{h.HOST}:{h.free_port()}"],
                                    overrides=self.dns_keys(self.dns))
        with self.assertRaises(h.RpcError):
            proxy.rpc("dispatcher.set", {"set": "routers", "targets": ["sip:bad..name"]})


class TestRouterAppsByName(DnsTestMixin, h.RouterTestCase):
    # A caller's RTP endpoint and a call to a service number, as the app failover tests make them.
    endpoint = rf.TestAppFailover.endpoint
    call_service = rf.TestAppFailover.call_service

    def test_apps_by_srv_answer_calls_and_follow_a_changed_answer(self) -> None:
        dns = self.start_dns()
        apps = rf.AppPair(self)
        dns.set("app0.evosip.test", "A", [h.HOST], ttl=1)
        dns.set("app1.evosip.test", "A", [h.HOST], ttl=1)
        srv = "_sip._udp.apps.evosip.test"
        dns.set(srv, "SRV", [(10, 0, apps.ports[0], "app0.evosip.test")], ttl=1)
        overrides = {"router": {"apps": ["sip:apps.evosip.test"]}, **self.dns_keys(dns)}
        p = self.platform(router_overrides=overrides)
        users = h.make_users(1, prefix="dns")
        h.create_subscribers(p.api, users)
        caller = rf.rm.Phone(self, p.edge.addr, *users[0])
        for i in range(3):
            resp = self.call_service(caller)
            self.assertEqual(resp.status, 200, f"call {i}: {resp}")
            self.assertEqual(rf.app_port_of(resp), apps.ports[0])
        listed = p.router.rpc("dispatcher.list")
        self.assertEqual([a["name"] for a in listed["apps"]], ["sip:apps.evosip.test"], listed)
        self.assertEqual(listed["names"]["apps"][0]["addresses"], [f"{h.HOST}:{apps.ports[0]}"])
        dns.set(srv, "SRV", [(10, 0, apps.ports[1], "app1.evosip.test")], ttl=1)
        h.wait_until(lambda: [a["address"] for a in p.router.rpc("dispatcher.list")["apps"]]
                     == [f"{h.HOST}:{apps.ports[1]}"], 5, "the app set following the answer")
        for i in range(3):
            resp = self.call_service(caller)
            self.assertEqual(resp.status, 200, f"call {i}: {resp}")
            self.assertEqual(rf.app_port_of(resp), apps.ports[1])


if __name__ == "__main__":
    unittest.main()
