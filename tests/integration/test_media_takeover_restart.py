"""A relay that crashes and comes back keeps its calls' media; a fenced relay gives its address up
to a peer on the same host.

Relays relay-a (127.0.0.2) and relay-b (127.0.0.3) list each other in media.takeover.peers and
keep their calls in a real Redis. Two phones send RTP both ways every 20 ms through relay-a.

- relay-a SIGKILLed and started again with the same configuration within heartbeat_ttl_ms: it
  wins its own lease back, restores its calls on the same address and ports before it is ready,
  and the phones' RTP flows again through it with no new offer; query and delete work; relay-b
  took nothing over (each packet arrives once).
- relay-a started again after relay-b took its address over: it stands by (its ng address is
  relay-b's on this host), restores nothing, and relay-b keeps relaying the calls alone.
- relay-a cut from Redis (a TCP proxy that drops every byte): it fences itself and closes its
  sockets, so relay-b, on the same host, binds relay-a's address and ports and relays the calls;
  healed, relay-a finds its address held and drops the calls.
- A call through edge -> router -> relay whose BYE comes while the relay is SIGKILLed: the
  router's delete goes unanswered; the relay back within its lease must not keep the call (the
  router sends the delete again until it is answered): it is gone from `media.list`, its record
  from Redis and its ports are free.
"""

import os
import signal
import time
import unittest

import test_media_kamailio as km
from harness import (HOST, Process, RouterTestCase, create_subscribers, free_port, make_users,
                     port_bound, require_role, rpc, scrape, start_redis, wait_http_ok, wait_until,
                     write_yaml)
from test_media_takeover import A_ADDR, B_ADDR, Stream, TwoRelays
from test_media_takeover_fence import CuttableTcpProxy
from test_router_media import Call, Phone, sdp_for, sdp_media

TTL_MS = 3000  # heartbeat_ttl_ms: a restart on a loaded machine fits in it


class RelayRestart(TwoRelays):
    def setUp(self):
        super().setUp()
        self.proxy = None

    def start_relay(self, name: str, address: str, peer: str, ng_port: int, port_min: int,
                    via_proxy: bool = False):
        control = free_port()
        redis_port = self.proxy.port if via_proxy else self.redis.port
        cfg = {
            "media": {"ng_listen": f"{address}:{ng_port}", "address": address,
                      "port_min": port_min, "port_max": port_min + 199, "timeout_s": 60,
                      "max_sessions": 0, "instance_id": name,
                      "state": {"enabled": True, "heartbeat_ttl_ms": TTL_MS},
                      "takeover": {"peers": [peer]}},
            "store": {"backend": "redis", "redis": {"host": HOST, "port": redis_port}},
            "control": {"listen": f"{HOST}:{control}"}, "workers": 2, "log": {"level": "info"}}
        path = write_yaml(os.path.join(self.tmp, f"{name}-{control}.yaml"), cfg)
        proc = self.cleanup.add(Process(f"{name}-{control}", [self.bin, "media", "--config", path],
                                        self.tmp))
        return proc, f"http://{HOST}:{control}"

    def two_relays_with_calls(self, calls: int = 2, a_via_proxy: bool = False):
        self.ng_a, ng_b = free_port(), free_port()
        self.base = 20000 + (free_port() % 100) * 400
        relay_a, url_a = self.start_relay("relay-a", A_ADDR, "relay-b", self.ng_a, self.base,
                                          a_via_proxy)
        relay_b, url_b = self.start_relay("relay-b", B_ADDR, "relay-a", ng_b, self.base + 200)
        wait_http_ok(url_a + "/readyz", timeout=15, proc=relay_a)
        wait_http_ok(url_b + "/readyz", timeout=15, proc=relay_b)
        from ngclient import NgClient
        ng = NgClient((A_ADDR, self.ng_a))
        self.cleanup.callbacks.append(ng.close)
        wait_until(lambda: self.redis.keys("*hb:relay-a") and self.redis.keys("*hb:relay-b"),
                   5, "both heartbeats in redis")
        time.sleep(1.0)  # each relay has seen the other alive
        flows, ports = [], []
        for i in range(calls):
            a, b = self.phone(), self.phone()
            toward_a, toward_b = self.call(ng, a, b, f"call-{i}")
            self.assertEqual(toward_a[0], A_ADDR)
            flows.append(Stream(a.rtp, (A_ADDR, toward_a[1]), b.rtp))  # a -> b
            flows.append(Stream(b.rtp, (A_ADDR, toward_b[1]), a.rtp))  # b -> a
            ports += [toward_b[1], toward_a[1]]  # each flow arrives from the other leg's port
        self.addCleanup(lambda: [f.close() for f in flows])
        time.sleep(1.0)
        self.assertTrue(all(len(f.arrivals) > 20 for f in flows), "media before the event")
        return relay_a, url_a, relay_b, url_b, ng, flows, ports

    def assert_flowing_from(self, flows, ports, t0: float, what: str):
        """Every flow has packets after t0, all from relay-a's address and the call's ports."""
        wait_until(lambda: all(len(f.since(t0)) > 10 for f in flows), 10, what)
        for f, port in zip(flows, ports):
            sources = {a[1] for a in f.since(t0)}
            self.assertEqual(sources, {(A_ADDR, port)}, what)

    def test_a_relay_restarted_within_the_ttl_restores_its_calls(self):
        relay_a, url_a, relay_b, url_b, ng, flows, ports = self.two_relays_with_calls()
        killed_at = time.monotonic()
        relay_a.send_signal(signal.SIGKILL)
        relay_a.wait(5)
        relay_a, url_a = self.start_relay("relay-a", A_ADDR, "relay-b", self.ng_a, self.base)
        wait_http_ok(url_a + "/readyz", timeout=TTL_MS / 1000, proc=relay_a)
        ready_at = time.monotonic()
        self.assertLess(ready_at - killed_at, TTL_MS / 1000, "restarted within the TTL")
        # Ready means restored: its calls are there.
        self.assertEqual(sorted(rpc(url_a + "/rpc", "media.list")["calls"]),
                         ["call-0", "call-1"])
        self.assert_flowing_from(flows, ports, ready_at, "media through the restarted relay")
        time.sleep(TTL_MS / 1000 + 1.0)  # relay-b would have taken over by now
        for f in flows:
            f.close()
        gaps = [f.gap_after(killed_at) for f in flows]
        print(f"\nrelay SIGKILLed and restarted: ready after {ready_at - killed_at:.2f} s, "
              f"media gap max {max(gaps) * 1000:.0f} ms, per flow "
              f"{', '.join(f'{g * 1000:.0f}' for g in gaps)} ms")
        for g in gaps:
            self.assertLess(g, TTL_MS / 1000, f"media gaps {gaps}")
        for f in flows:
            self.assertEqual(f.duplicates(), 0, "each packet relayed once")

        metrics_a = scrape(url_a + "/metrics")
        self.assertEqual(metrics_a.get("evosip_media_restored_sessions_total"), 2)
        self.assertEqual(metrics_a.get("evosip_media_restore_errors_total"), 0)
        status_b = rpc(url_b + "/rpc", "instance.status")
        self.assertEqual([s["instance"] for s in status_b["served"]], ["relay-b"])
        self.assertEqual(scrape(url_b + "/metrics").get("evosip_media_takeovers_total"), 0)
        self.assertEqual(rpc(url_b + "/rpc", "media.list")["calls"], [])
        self.assertEqual([s["instance"] for s in rpc(url_a + "/rpc", "instance.status")
                          ["served"]], ["relay-a"])

        q = ng.request("query", call_id="call-0")
        self.assertEqual(q.get("result"), "ok", q)
        self.assertEqual(sorted(t["tag"] for t in q["tags"].values()), ["tag-a", "tag-b"])
        for i in range(2):
            d = ng.request("delete", call_id=f"call-{i}", from_tag="tag-a")
            self.assertEqual(d.get("result"), "ok", d)
            self.assertNotIn("warning", d)
        self.assertEqual(rpc(url_a + "/rpc", "media.list")["calls"], [])
        wait_until(lambda: not self.redis.keys("*sess:relay-a:*"), 3, "records removed")

    def test_a_relay_restarted_after_its_peer_took_over_stands_by(self):
        relay_a, url_a, relay_b, url_b, ng, flows, ports = self.two_relays_with_calls()
        killed_at = time.monotonic()
        relay_a.send_signal(signal.SIGKILL)
        relay_a.wait(5)
        wait_until(lambda: scrape(url_b + "/metrics").get("evosip_media_takeovers_total") == 1,
                   TTL_MS / 1000 + 5, "relay-b takes relay-a's address over")
        self.assert_flowing_from(flows, ports, time.monotonic(), "media through relay-b")
        relay_a, url_a = self.start_relay("relay-a", A_ADDR, "relay-b", self.ng_a, self.base)
        wait_http_ok(url_a + "/readyz", timeout=15, proc=relay_a)
        back_at = time.monotonic()
        time.sleep(TTL_MS / 1000 + 1.0)
        for f in flows:
            f.close()
        self.assertTrue(relay_a.alive(), "relay-a runs (standby)")
        status_a = rpc(url_a + "/rpc", "instance.status")
        self.assertEqual(status_a["served"], [], status_a)
        self.assertEqual(rpc(url_a + "/rpc", "media.list")["calls"], [])
        metrics_a = scrape(url_a + "/metrics")
        self.assertEqual(metrics_a.get("evosip_media_restored_sessions_total"), 0)
        self.assertEqual(metrics_a.get("evosip_media_takeovers_total"), 0)
        served_b = [s["instance"] for s in rpc(url_b + "/rpc", "instance.status")["served"]]
        self.assertEqual(sorted(served_b), ["relay-a", "relay-b"])
        self.assertEqual(sorted(rpc(url_b + "/rpc", "media.list")["calls"]),
                         ["call-0", "call-1"])
        for f, port in zip(flows, ports):
            after = f.since(back_at)
            self.assertGreater(len(after), 40, "media after relay-a came back")
            self.assertEqual({a[1] for a in after}, {(A_ADDR, port)})
            self.assertEqual(f.duplicates(), 0, "each packet relayed once")
        print(f"\nrelay-a back {back_at - killed_at:.2f} s after its SIGKILL, taken over: "
              f"stands by, media gap max {max(f.gap_after(killed_at) for f in flows) * 1000:.0f}"
              f" ms (the takeover)")
        d = ng.request("delete", call_id="call-0", from_tag="tag-a")  # answered by relay-b
        self.assertEqual(d.get("result"), "ok", d)
        self.assertNotIn("warning", d)
        self.assertEqual(rpc(url_b + "/rpc", "media.list")["calls"], ["call-1"])

    def test_a_fenced_relay_gives_its_address_to_a_peer_on_the_same_host(self):
        self.proxy = CuttableTcpProxy(self.redis.port)
        self.cleanup.callbacks.append(self.proxy.close)
        relay_a, url_a, relay_b, url_b, ng, flows, ports = self.two_relays_with_calls(
            a_via_proxy=True)
        cut_at = time.monotonic()
        self.proxy.cut()
        wait_until(lambda: scrape(url_b + "/metrics").get("evosip_media_takeovers_total") == 1,
                   TTL_MS / 1000 + 5, "relay-b takes relay-a's address over on this host")
        taken_at = time.monotonic()
        self.assertTrue(rpc(url_a + "/rpc", "instance.status")["fenced"])
        self.assert_flowing_from(flows, ports, taken_at, "media through relay-b")
        served_b = [s["instance"] for s in rpc(url_b + "/rpc", "instance.status")["served"]]
        self.assertEqual(sorted(served_b), ["relay-a", "relay-b"])
        self.assertEqual(scrape(url_b + "/metrics").get("evosip_media_restored_sessions_total"),
                         2)
        q = ng.request("query", call_id="call-1")  # relay-a's ng address, served by relay-b
        self.assertEqual(q.get("result"), "ok", q)
        healed_at = time.monotonic()
        self.proxy.heal()
        wait_until(lambda: scrape(url_a + "/metrics").get("evosip_media_addresses_lost_total")
                   == 1, 10, "relay-a finds its address held")
        wait_until(lambda: rpc(url_a + "/rpc", "media.list")["calls"] == [], 3,
                   "the calls dropped on relay-a")
        time.sleep(1.0)
        for f in flows:
            f.close()
        gaps = [f.gap_after(cut_at) for f in flows]
        print(f"\nrelay-a cut from the store: taken over on the same host after "
              f"{taken_at - cut_at:.2f} s, media gap max {max(gaps) * 1000:.0f} ms; healed "
              f"after {healed_at - cut_at:.2f} s")
        for f, port in zip(flows, ports):
            self.assertGreater(len(f.since(healed_at)), 20, "media after the heal")
            self.assertEqual({a[1] for a in f.since(healed_at)}, {(A_ADDR, port)})
            self.assertEqual(f.duplicates(), 0, "each packet relayed once")
        self.assertEqual(sorted(rpc(url_b + "/rpc", "media.list")["calls"]),
                         ["call-0", "call-1"])


class RelayRestartAfterABye(RouterTestCase):
    """A call's BYE while its relay is down, the relay back within its lease."""

    def endpoint(self, name: str) -> km.RtpEndpoint:  # for test_router_media.Phone
        ep = km.RtpEndpoint(name, free_port())
        self.cleanup.callbacks.append(ep.close)
        return ep

    def start_relay(self, ng_port: int, port_min: int):
        control = free_port()
        cfg = {
            "media": {"ng_listen": f"{HOST}:{ng_port}", "address": HOST, "port_min": port_min,
                      "port_max": port_min + 199, "timeout_s": 60, "max_sessions": 0,
                      "instance_id": "relay-r",
                      "state": {"enabled": True, "heartbeat_ttl_ms": TTL_MS}},
            "store": {"backend": "redis", "redis": {"host": HOST, "port": self.redis.port}},
            "control": {"listen": f"{HOST}:{control}"}, "workers": 2, "log": {"level": "info"}}
        path = write_yaml(os.path.join(self.tmp, f"relay-{control}.yaml"), cfg)
        proc = self.cleanup.add(Process(f"relay-{control}",
                                        [require_role("media"), "media", "--config", path],
                                        self.tmp))
        url = f"http://{HOST}:{control}"
        wait_http_ok(url + "/readyz", timeout=15, proc=proc)
        return proc, url

    def test_a_call_ended_while_its_relay_was_down_is_not_restored(self):
        self.redis = start_redis(self.tmp, self.cleanup)
        ng_port, base = free_port(), 20000 + (free_port() % 100) * 400
        relay, url = self.start_relay(ng_port, base)
        # The router gives a silent relay 2 x 300 ms per command.
        p = self.platform(router_overrides={"router": {"media": {
            "mode": "always", "relays": [f"udp:{HOST}:{ng_port}"], "timeout_ms": 300,
            "retries": 1}}})
        users = make_users(2, prefix="relaybye")
        create_subscribers(p.api, users)
        alice, bob = Phone(self, p.edge.addr, *users[0]), Phone(self, p.edge.addr, *users[1])
        bob.register()
        call = Call(alice, bob.uri)
        call.invite()
        invite = bob.next_request("INVITE")
        tag = os.urandom(4).hex()
        bob.reply(invite, 200, "OK", tag, sdp_for(bob.rtp.port, "bob"))
        answered = call.final()
        self.assertEqual(answered.status, 200, str(answered))
        ports = [sdp_media(invite.body)[1], sdp_media(answered.body)[1]]
        self.assertTrue(all(base <= port < base + 200 for port in ports), ports)
        self.assertEqual(rpc(url + "/rpc", "media.list")["calls"], [call.call_id])
        wait_until(lambda: self.redis.keys("*sess:relay-r:*"), 3, "the call's record in redis")

        def failed_commands() -> float:
            return sum(v for lbl, v in p.router.metrics().series(
                "evosip_router_media_commands_total") if lbl.get("result") == "failed")

        killed_at = time.monotonic()
        relay.send_signal(signal.SIGKILL)
        relay.wait(5)
        self.assertEqual(call.bye(bob).status, 200)
        wait_until(lambda: failed_commands() >= 1, 5, "the router's delete unanswered")
        relay, url = self.start_relay(ng_port, base)
        ready_at = time.monotonic()
        self.assertLess(ready_at - killed_at, TTL_MS / 1000, "back within the lease")
        wait_until(lambda: rpc(url + "/rpc", "media.list")["calls"] == [], 5,
                   "the call ended while the relay was down gone from it", proc=relay)
        gone_at = time.monotonic()
        self.assertEqual(self.redis.keys("*sess:relay-r:*"), [], "its record left in redis")
        for port in ports:
            self.assertFalse(port_bound(port, "udp"), f"relay port {port} still bound")
        print(f"\nrelay SIGKILLed, BYE meanwhile, relay ready {ready_at - killed_at:.2f} s "
              f"after the kill: the call gone {gone_at - ready_at:.2f} s after it was ready")
        self.assertTrue(relay.alive())


if __name__ == "__main__":
    unittest.main()
