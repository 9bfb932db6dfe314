"""A relay's death does not end its calls' media (media.state): two `evosip media` relays on one
host, each on its own address (127.0.0.2 and 127.0.0.3), keep their calls in a real Redis and
watch each other's heartbeat. Two phones send RTP both ways every 20 ms through relay A; A is
SIGKILLed; relay B takes A's address over (its ng and media ports, IP_FREEBIND) and restores the
call from the store. The test measures, per direction, the longest time without a packet and
the packets lost, asserts media resumes within 2 s, and that the BYE's delete sent to A's ng
address is answered by B."""

import os
import signal
import socket
import threading
import time
import unittest

from harness import (HOST, Process, ProxyTestCase, free_port, require_role, rpc, scrape,
                     start_redis, wait_http_ok, wait_until, write_yaml)
from ngclient import NgClient
from test_media_ng import Phone, make_sdp, media_ports, rtp_packet

A_ADDR, B_ADDR = "127.0.0.2", "127.0.0.3"


class Stream:
    """RTP every 20 ms (at most 5,000 packets) from one phone socket to a relay port; the
    receiving socket (the other phone's, or the same one when the far end echoes) records the
    arrival time of each packet, and with it the packet's source and sequence number."""

    def __init__(self, src: socket.socket, dst, rx: socket.socket):
        self.src, self.dst, self.rx = src, dst, rx
        self.sent = 0
        self.arrivals = []  # times
        self.packets = []  # (time, source, sequence)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._receive, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self):
        next_at = time.monotonic()
        while not self.stop.is_set() and self.sent < 5000:
            try:
                self.src.sendto(rtp_packet(self.sent % 65536), self.dst)
            except OSError:
                pass  # ICMP unreachable reported on the socket while nobody serves the port
            self.sent += 1
            next_at += 0.02
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _receive(self):
        self.rx.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, source = self.rx.recvfrom(4096)
                now = time.monotonic()
                self.packets.append((now, source, int.from_bytes(data[2:4], "big")))
                self.arrivals.append(now)
            except (socket.timeout, OSError):
                pass

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(2)

    def since(self, t0: float):
        """The packets (time, source, sequence) that arrived after t0."""
        return [p for p in self.packets if p[0] > t0]

    def gap_after(self, t0: float) -> float:
        """The longest time without a packet from shortly before t0 to the last arrival."""
        times = [t for t in self.arrivals if t >= t0 - 0.1]
        if len(times) < 2:
            return float("inf")
        return max(b - a for a, b in zip(times, times[1:]))

    def duplicates(self) -> int:
        """Packets that arrived more than once (by sequence number)."""
        seqs = [p[2] for p in self.packets]
        return len(seqs) - len(set(seqs))


class TwoRelays(ProxyTestCase):
    """Relays named relay-a / relay-b on their own loopback addresses, Redis, fake phones."""

    def setUp(self):
        super().setUp()
        self.bin = require_role("media")
        self.redis = start_redis(self.tmp, self.cleanup)
        self.phones = []

    def tearDown(self):
        for p in self.phones:
            p.close()
        super().tearDown()

    def relay(self, name: str, address: str, peer: str, ng_port: int, port_min: int,
              drain_timeout_s: int = 30):
        control = free_port()
        cfg = {
            "media": {"ng_listen": f"{address}:{ng_port}", "address": address,
                      "port_min": port_min, "port_max": port_min + 199, "timeout_s": 60,
                      "max_sessions": 0, "instance_id": name,
                      "state": {"enabled": True},
                      "takeover": {"peers": [peer]}},
            "store": {"backend": "redis", "redis": {"host": HOST, "port": self.redis.port}},
            "control": {"listen": f"{HOST}:{control}"}, "workers": 2, "log": {"level": "info"},
            "drain_timeout_s": drain_timeout_s}
        path = write_yaml(os.path.join(self.tmp, f"{name}.yaml"), cfg)
        proc = self.cleanup.add(Process(name, [self.bin, "media", "--config", path], self.tmp))
        url = f"http://{HOST}:{control}"
        wait_http_ok(url + "/readyz", timeout=15, proc=proc)
        return proc, url

    def phone(self) -> Phone:
        p = Phone()
        self.phones.append(p)
        return p

    def call(self, ng: NgClient, a: Phone, b: Phone, call_id: str):
        common = dict(replace=["origin", "session-connection"], ICE="remove",
                      flags=["strict-source"], **{"received-from": ["IP4", HOST]})
        offer = ng.request("offer", call_id=call_id, from_tag="tag-a", sdp=make_sdp(a.port),
                           **common)
        self.assertEqual(offer.get("result"), "ok", offer)
        answer = ng.request("answer", call_id=call_id, from_tag="tag-a", to_tag="tag-b",
                            sdp=make_sdp(b.port), **common)
        self.assertEqual(answer.get("result"), "ok", answer)
        return media_ports(answer["sdp"]), media_ports(offer["sdp"])  # toward a, toward b


class MediaTakeover(TwoRelays):
    def test_sigkill_of_a_relay_its_peer_takes_the_calls_over_within_2s(self):
        ng_a, ng_b = free_port(), free_port()
        base = 20000 + (free_port() % 100) * 400
        relay_a, url_a = self.relay("relay-a", A_ADDR, "relay-b", ng_a, base)
        relay_b, url_b = self.relay("relay-b", B_ADDR, "relay-a", ng_b, base + 200)
        ng = NgClient((A_ADDR, ng_a))
        self.cleanup.callbacks.append(ng.close)
        wait_until(lambda: self.redis.keys("*hb:relay-a") and self.redis.keys("*hb:relay-b"),
                   5, "both heartbeats in redis")
        time.sleep(1.0)  # each relay has seen the other alive

        calls = []
        for i in range(3):
            a, b = self.phone(), self.phone()
            toward_a, toward_b = self.call(ng, a, b, f"takeover-{i}")
            self.assertEqual(toward_a[0], A_ADDR)
            calls.append((a, b, toward_a, toward_b))
        self.assertEqual(len(self.redis.keys("*sess:relay-a:*")), 3)
        streams = []
        for a, b, toward_a, toward_b in calls:
            streams.append(Stream(a.rtp, (A_ADDR, toward_a[1]), b.rtp))  # a -> b
            streams.append(Stream(b.rtp, (A_ADDR, toward_b[1]), a.rtp))  # b -> a
        self.addCleanup(lambda: [s.close() for s in streams])
        time.sleep(1.0)
        self.assertTrue(all(len(s.arrivals) > 20 for s in streams), "media before the kill")

        killed_at = time.monotonic()
        relay_a.send_signal(signal.SIGKILL)
        wait_until(lambda: all(s.arrivals and s.arrivals[-1] > killed_at + 0.1 for s in streams),
                   6, "media again after the relay's death")
        time.sleep(1.0)
        for s in streams:
            s.close()
        gaps = [s.gap_after(killed_at) for s in streams]
        lost = [s.sent - len(s.arrivals) for s in streams]
        print(f"\nmedia gap after SIGKILL of the relay (3 calls, both ways): "
              f"max {max(gaps) * 1000:.0f} ms, per stream "
              f"{', '.join(f'{g * 1000:.0f}' for g in gaps)} ms; "
              f"packets lost per stream {lost}")
        for g in gaps:
            self.assertLess(g, 2.0, f"media gaps {gaps}")

        status = rpc(url_b + "/rpc", "instance.status")
        served = {s["instance"]: s for s in status["served"]}
        self.assertEqual(set(served), {"relay-a", "relay-b"})
        self.assertEqual(served["relay-a"]["address"], A_ADDR)
        metrics = scrape(url_b + "/metrics")
        self.assertEqual(metrics.get("evosip_media_takeovers_total"), 1)
        self.assertEqual(metrics.get("evosip_media_restored_sessions_total"), 3)

        # The BYE's delete goes where the dialog says: A's ng address, now served by B.
        for i in range(3):
            d = ng.request("delete", call_id=f"takeover-{i}", from_tag="tag-a")
            self.assertEqual(d.get("result"), "ok", d)
            self.assertNotIn("warning", d)
        self.assertEqual(rpc(url_b + "/rpc", "media.list")["calls"], [])
        wait_until(lambda: not self.redis.keys("*sess:relay-a:*"), 3, "records removed")

        # Its calls ended, B gives A's address back; A, restarted under the same name, serves it.
        wait_until(lambda: [s["instance"] for s in rpc(url_b + "/rpc", "instance.status")
                            ["served"]] == ["relay-b"], 5, "relay-b gives relay-a's address back")
        relay_a, url_a = self.relay("relay-a", A_ADDR, "relay-b", ng_a, base)
        wait_until(lambda: [s["instance"] for s in rpc(url_a + "/rpc", "instance.status")
                            ["served"]] == ["relay-a"], 3, "relay-a serves its address again")
        ng2 = NgClient((A_ADDR, ng_a))
        self.cleanup.callbacks.append(ng2.close)
        toward_a, _ = self.call(ng2, self.phone(), self.phone(), "after-restart")
        self.assertEqual(toward_a[0], A_ADDR)
        self.assertEqual(rpc(url_a + "/rpc", "media.list")["calls"], ["after-restart"])

    def test_a_drain_that_runs_out_of_time_hands_its_calls_over(self):
        ng_a, ng_b = free_port(), free_port()
        base = 20000 + (free_port() % 100) * 400
        relay_a, _ = self.relay("relay-a", A_ADDR, "relay-b", ng_a, base, drain_timeout_s=1)
        _, url_b = self.relay("relay-b", B_ADDR, "relay-a", ng_b, base + 200)
        ng = NgClient((A_ADDR, ng_a))
        self.cleanup.callbacks.append(ng.close)
        time.sleep(1.0)
        a, b = self.phone(), self.phone()
        toward_a, _ = self.call(ng, a, b, "drained")
        stream = Stream(a.rtp, (A_ADDR, toward_a[1]), b.rtp)
        self.addCleanup(stream.close)
        time.sleep(0.5)
        stopped_at = time.monotonic()
        self.assertEqual(relay_a.stop(timeout=10), 0)  # SIGTERM: the call outlives the drain
        wait_until(lambda: stream.arrivals and stream.arrivals[-1] > time.monotonic() - 0.1
                   and stream.arrivals[-1] > stopped_at + 1.5, 8, "media after the drain")
        stream.close()
        print(f"\nmedia gap after a drain ran out of time: "
              f"{stream.gap_after(stopped_at) * 1000:.0f} ms")
        self.assertEqual(rpc(url_b + "/rpc", "media.list")["calls"], ["drained"])

    def test_a_relay_whose_address_a_peer_serves_waits_in_standby(self):
        key = "evosip:v:media:hb:relay-a"  # store prefix, "v:", media.state.key_prefix, "hb:"
        self.redis.cli("SET", key, '{"by":"relay-b","a":"127.0.0.2","ng":"127.0.0.2:9"}',
                       "PX", "60000")
        ng_a = free_port()
        _, url_a = self.relay("relay-a", A_ADDR, "relay-b", ng_a, 20000 + (free_port() % 100) * 400)
        ng = NgClient((A_ADDR, ng_a))
        self.cleanup.callbacks.append(ng.close)
        time.sleep(1.0)
        self.assertEqual(rpc(url_a + "/rpc", "instance.status")["served"], [])
        refused = ng.request("offer", call_id="standby", from_tag="t", sdp=make_sdp(4000))
        self.assertEqual(refused.get("error-reason"), "draining", refused)
        self.redis.cli("DEL", key)  # relay-b gave the address back
        wait_until(lambda: [s["instance"] for s in rpc(url_a + "/rpc", "instance.status")
                            ["served"]] == ["relay-a"], 3, "relay-a serves its address")
        ok = ng.request("offer", call_id="standby", from_tag="t", sdp=make_sdp(4000))
        self.assertEqual(ok.get("result"), "ok", ok)

    def test_a_relay_that_stops_with_no_call_is_not_taken_over(self):
        ng_a, ng_b = free_port(), free_port()
        base = 20000 + (free_port() % 100) * 400
        relay_a, _ = self.relay("relay-a", A_ADDR, "relay-b", ng_a, base)
        relay_b, url_b = self.relay("relay-b", B_ADDR, "relay-a", ng_b, base + 200)
        time.sleep(1.0)
        self.assertEqual(relay_a.stop(timeout=10), 0)
        time.sleep(2.0)  # longer than the heartbeat's TTL
        served = [s["instance"] for s in rpc(url_b + "/rpc", "instance.status")["served"]]
        self.assertEqual(served, ["relay-b"])
        self.assertEqual(scrape(url_b + "/metrics").get("evosip_media_takeovers_total"), 0)


if __name__ == "__main__":
    unittest.main()
