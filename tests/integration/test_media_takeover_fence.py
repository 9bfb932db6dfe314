"""A relay cut off from the store fences itself (media.state.fence) and, healed, stands by when
another relay holds its address.

Relay A (127.0.0.2) reaches Redis through a TCP proxy the test can cut (bytes dropped both ways,
as in a partition) and heal (its connections closed, new ones forwarded). Relay B (127.0.0.3)
reaches Redis directly and lists A in media.takeover.peers. Two phones send RTP both ways every
20 ms through A.

- Cut, then healed with nobody holding A's address: A stops relaying before its heartbeat can
  expire (no packet reaches a phone from heartbeat_ttl_ms after the cut on), closes its sockets
  (its ng and call ports can be bound by another process: a peer on this host takes the address
  over, test_media_takeover_restart.py), /readyz 503, `served` empty; healed, A binds its ports
  again and relays the call.
- Cut, then healed while another relay's hold of A's address is in the store (written by the
  test as B's takeover would): A does not take it back. No packet is relayed, the call is
  dropped (its record left to the holder), A stands by until the address is given back.
"""

import os
import select
import socket
import threading
import time
import unittest

from harness import (HOST, Process, ProxyTestCase, free_port, http_get, require_role, rpc,
                     scrape, start_redis, wait_http_ok, wait_until, write_yaml)
from ngclient import NgClient
from test_media_ng import make_sdp
from test_media_takeover import A_ADDR, B_ADDR, Stream, TwoRelays

TTL_S = 1.2  # media.state.heartbeat_ttl_ms (default)


class CuttableTcpProxy:
    """127.0.0.1:port -> upstream. cut(): every byte is dropped both ways and new connections
    are accepted but go nowhere (a partition: the client hears nothing). heal(): the connections
    are closed and new ones reach the upstream again."""

    def __init__(self, upstream_port: int):
        self.upstream = (HOST, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.cut_now = False
        self.pairs = []  # [client, upstream or None]
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def cut(self):
        self.cut_now = True

    def heal(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
            self.cut_now = False
        for pair in pairs:
            for s in pair:
                if s is not None:
                    s.close()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.heal()
        self.listener.close()

    def _run(self):
        while not self.stopping:
            with self.lock:
                socks = [self.listener] + [s for p in self.pairs for s in p if s is not None]
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue  # a socket closed by heal()
            for s in ready:
                if s is self.listener:
                    self._accept()
                else:
                    self._forward(s)

    def _accept(self):
        client, _ = self.listener.accept()
        upstream = None
        if not self.cut_now:
            upstream = socket.create_connection(self.upstream, timeout=2)
        with self.lock:
            self.pairs.append([client, upstream])

    def _forward(self, s: socket.socket):
        with self.lock:
            pair = next((p for p in self.pairs if s in p), None)
        if pair is None:
            return
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            with self.lock:
                if pair in self.pairs:
                    self.pairs.remove(pair)
            for x in pair:
                if x is not None:
                    x.close()
            return
        other = pair[1] if s is pair[0] else pair[0]
        if self.cut_now or other is None:
            return  # dropped: the partition
        try:
            other.sendall(data)
        except OSError:
            pass


class MediaFence(TwoRelays):
    def setUp(self):
        super().setUp()
        self.proxy = CuttableTcpProxy(self.redis.port)
        self.cleanup.callbacks.append(self.proxy.close)

    def relay_via_proxy(self, name: str, address: str, peer: str, ng_port: int, port_min: int):
        control = free_port()
        cfg = {
            "media": {"ng_listen": f"{address}:{ng_port}", "address": address,
                      "port_min": port_min, "port_max": port_min + 199, "timeout_s": 60,
                      "max_sessions": 0, "instance_id": name,
                      "state": {"enabled": True}, "takeover": {"peers": [peer]}},
            "store": {"backend": "redis", "redis": {"host": HOST, "port": self.proxy.port}},
            "control": {"listen": f"{HOST}:{control}"}, "workers": 2, "log": {"level": "info"}}
        path = write_yaml(os.path.join(self.tmp, f"{name}.yaml"), cfg)
        proc = self.cleanup.add(Process(name, [self.bin, "media", "--config", path], self.tmp))
        url = f"http://{HOST}:{control}"
        wait_http_ok(url + "/readyz", timeout=15, proc=proc)
        return proc, url

    def setup_call(self, with_peer: bool):
        ng_a, ng_b = free_port(), free_port()
        base = 20000 + (free_port() % 100) * 400
        _, url_a = self.relay_via_proxy("relay-a", A_ADDR, "relay-b", ng_a, base)
        url_b = None
        if with_peer:
            _, url_b = self.relay("relay-b", B_ADDR, "relay-a", ng_b, base + 200)
        ng = NgClient((A_ADDR, ng_a))
        self.cleanup.callbacks.append(ng.close)
        wait_until(lambda: rpc(url_a + "/rpc", "instance.status")["served"], 5,
                   "relay-a serves its address")
        time.sleep(1.0)  # relay-b has seen relay-a alive
        a, b = self.phone(), self.phone()
        toward_a, toward_b = self.call(ng, a, b, "fenced-call")
        streams = [Stream(a.rtp, (A_ADDR, toward_a[1]), b.rtp),
                   Stream(b.rtp, (A_ADDR, toward_b[1]), a.rtp)]
        self.addCleanup(lambda: [s.close() for s in streams])
        time.sleep(0.5)
        self.assertTrue(all(len(s.arrivals) > 10 for s in streams), "media before the cut")
        return ng, url_a, url_b, streams

    def assert_fenced(self, ng: NgClient, url_a: str, streams, cut_at: float):
        """No packet relayed from heartbeat_ttl after the cut on (the earliest a peer may take
        the address over), its sockets released (ng commands unanswered, the ports free for a
        peer), not ready, nothing served."""
        time.sleep(max(0.0, cut_at + TTL_S + 1.0 - time.monotonic()))
        for s in streams:
            late = [t - cut_at for t in s.arrivals if t > cut_at + TTL_S]
            self.assertEqual(late, [], "packets relayed after the heartbeat could have expired "
                             f"(s after the cut): {late[:5]}")
        status = rpc(url_a + "/rpc", "instance.status")
        self.assertTrue(status.get("fenced"), status)
        self.assertEqual(status["served"], [], status)
        self.assertFalse(status["ready"], status)
        self.assertEqual(http_get(url_a + "/readyz")[0], 503)
        with self.assertRaises(TimeoutError):
            ng.request_raw("while-fenced", b"d7:command4:pinge", timeout=0.5)
        for port in [ng.address[1]] + [s.dst[1] for s in streams]:
            taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                taken.bind((A_ADDR, port))  # what a peer on this host does to take over
            finally:
                taken.close()
        metrics = scrape(url_a + "/metrics")
        self.assertEqual(metrics.get("evosip_media_fenced"), 1)
        self.assertEqual(metrics.get("evosip_media_fences_total"), 1)

    def test_cut_from_the_store_fences_before_the_ttl_and_resumes_when_nobody_took_over(self):
        ng, url_a, _, streams = self.setup_call(with_peer=False)
        cut_at = time.monotonic()
        self.proxy.cut()
        self.assert_fenced(ng, url_a, streams, cut_at)
        time.sleep(2.0)
        healed_at = time.monotonic()
        self.proxy.heal()
        wait_until(lambda: all(s.arrivals and s.arrivals[-1] > healed_at + 0.2
                               for s in streams), 10, "media relayed again after the heal")
        print(f"\nstore cut for {healed_at - cut_at:.1f} s: media back "
              f"{max(min(t for t in s.arrivals if t > healed_at) for s in streams) - healed_at:.2f}"
              f" s after the heal")
        status = rpc(url_a + "/rpc", "instance.status")
        self.assertFalse(status["fenced"], status)
        self.assertEqual([s["instance"] for s in status["served"]], ["relay-a"])
        self.assertEqual(http_get(url_a + "/readyz")[0], 200)
        self.assertEqual(rpc(url_a + "/rpc", "media.list")["calls"], ["fenced-call"])
        self.assertEqual(scrape(url_a + "/metrics").get("evosip_media_fenced"), 0)
        wait_until(lambda: self.redis.keys("*sess:relay-a:fenced-call"), 3, "record kept")

    def test_healed_while_another_relay_holds_its_address_it_stands_by(self):
        ng, url_a, _, streams = self.setup_call(with_peer=False)
        cut_at = time.monotonic()
        self.proxy.cut()
        self.assert_fenced(ng, url_a, streams, cut_at)
        # What relay-b's takeover leaves in the store: its hold of relay-a's address.
        key = "evosip:v:media:hb:relay-a"
        hold = f'{{"by":"relay-b","a":"{A_ADDR}","ng":"{A_ADDR}:9"}}'
        self.redis.cli("SET", key, hold, "PX", "60000")
        healed_at = time.monotonic()
        self.proxy.heal()
        wait_until(lambda: scrape(url_a + "/metrics").get("evosip_media_addresses_lost_total")
                   == 1, 10, "relay-a finds its address held")
        wait_until(lambda: rpc(url_a + "/rpc", "media.list")["calls"] == [], 2,
                   "the call dropped on relay-a")
        time.sleep(1.5)
        for s in streams:
            late = [t - healed_at for t in s.arrivals if t > cut_at + TTL_S]
            self.assertEqual(late, [], f"relay-a relayed after the heal (s): {late[:5]}")
        self.assertEqual(self.redis.cli("GET", key)[1], hold)  # not overwritten
        self.assertTrue(self.redis.keys("*sess:relay-a:fenced-call"), "the holder's record")
        status = rpc(url_a + "/rpc", "instance.status")
        self.assertFalse(status["fenced"], status)
        self.assertEqual(status["served"], [], status)
        refused = ng.request("offer", call_id="standby", from_tag="t", sdp=make_sdp(4000))
        self.assertEqual(refused.get("error-reason"), "draining", refused)
        self.redis.cli("DEL", key)  # the holder gave the address back
        wait_until(lambda: [s["instance"] for s in rpc(url_a + "/rpc", "instance.status")
                            ["served"]] == ["relay-a"], 3, "relay-a serves its address again")
        ok = ng.request("offer", call_id="after", from_tag="t", sdp=make_sdp(4000))
        self.assertEqual(ok.get("result"), "ok", ok)


if __name__ == "__main__":
    unittest.main()
