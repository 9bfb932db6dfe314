"""`evosip controller` in DNS mode against a DNS server stand-in (dns_standin.py): each layer's
instances come from the SRV records of its name (`_sip._udp.NAME` gives each router's SIP port,
`_control._tcp.NAME` each edge's control port), as Kubernetes DNS publishes a headless Service's
named ports, and a changed answer reaches the edges once its TTL has run out."""

from __future__ import annotations

import time
import unittest

import harness as h
from dns_standin import DnsStandin
from test_controller import spawn, start_to_ready

ROUTERS = ["127.0.3.21", "127.0.3.22"]


class ControllerDnsRecords(h.ProxyTestCase):
    def setUp(self) -> None:
        h.require_evosip()
        super().setUp()
        self.dns = DnsStandin(h.HOST)
        self.cleanup.callbacks.append(self.dns.close)

    def start_edge(self) -> str:
        sip, control = h.free_port(), h.free_port()
        proc = spawn(self.tmp, self.cleanup, "edge", "edge", {
            "sip": {"listen": [f"udp:{h.HOST}:{sip}"]},
            "control": {"listen": f"{h.HOST}:{control}", "token": ""},
            "workers": 1, "edge": {"routers": ["sip:127.0.0.99:5999"]}})
        start_to_ready(proc, f"{h.HOST}:{control}")
        return f"{h.HOST}:{control}"

    def edge_routers(self, control: str):
        return sorted(r["uri"] for r in h.rpc(f"http://{control}/rpc",
                                              "dispatcher.list")["routers"])

    def test_srv_records_give_instances_and_ports_and_follow_the_ttl(self) -> None:
        edge = self.start_edge()
        edge_port = int(edge.rsplit(":", 1)[1])
        sip_ports = [h.free_port(), h.free_port()]  # not 5060: only SRV records name them
        self.dns.set("edge-0.dns.test", "A", [h.HOST], ttl=1)
        self.dns.set("_control._tcp.edges.dns.test", "SRV", [(0, 0, edge_port, "edge-0.dns.test")],
                     ttl=1)
        for i, ip in enumerate(ROUTERS):
            self.dns.set(f"router-{i}.dns.test", "A", [ip], ttl=1)
        self.dns.set("_sip._udp.routers.dns.test", "SRV",
                     [(0, 0, sip_ports[0], "router-0.dns.test")], ttl=1)
        control = f"{h.HOST}:{h.free_port()}"
        proc = spawn(self.tmp, self.cleanup, "controller", "controller", {
            "control": {"listen": control, "token": ""},
            "controller": {
                "mode": "dns",
                "services": {"edge": "edges.dns.test", "router": "routers.dns.test",
                             "app": "", "media": "", "api": ""},
                "dns": {"servers": [self.dns.address], "interval_ms": 500, "max_ttl_s": 30,
                        "timeout_s": 1, "attempts": 1}}})
        start_to_ready(proc, control)
        first = [f"sip:{ROUTERS[0]}:{sip_ports[0]}"]
        h.wait_until(lambda: self.edge_routers(edge) == first, 10,
                     "the edge to get the router named by the SRV record", proc=proc)
        # A router scaled up: a second SRV record; the edge holds both once the TTL ran out.
        asked = self.dns.asked("_sip._udp.routers.dns.test", "SRV")
        changed_at = time.monotonic()
        self.dns.set("_sip._udp.routers.dns.test", "SRV",
                     [(0, 0, sip_ports[0], "router-0.dns.test"),
                      (0, 0, sip_ports[1], "router-1.dns.test")], ttl=1)
        both = sorted(f"sip:{ip}:{port}" for ip, port in zip(ROUTERS, sip_ports))
        h.wait_until(lambda: self.edge_routers(edge) == both, 5,
                     "the edge to get the second router", proc=proc)
        took = time.monotonic() - changed_at
        print(f"\ndns mode: a new SRV record at the edge {took:.2f} s after the change (ttl 1 s)")
        self.assertLess(took, 3.0)
        self.assertGreater(self.dns.asked("_sip._udp.routers.dns.test", "SRV"), asked)
        # The name server stops answering: the edge keeps the last set.
        self.dns.silent = True
        time.sleep(2.5)
        self.assertEqual(self.edge_routers(edge), both)
        self.assertTrue(proc.alive(), proc.tail())


if __name__ == "__main__":
    unittest.main()
