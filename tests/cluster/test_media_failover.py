"""A relay's death in the namespace cluster: calls keep their media and end normally.

Each relay serves a service address (10.98.0.31, .32) on its loopback, announced by OSPF through
media_watch.py, keeps its calls in Redis and watches the other relay's heartbeat (media.state,
media.takeover). Calls go caller (c1) -> anycast edge -> router -> relay -> edge -> callee (c2,
sipp with -rtp_echo). Per call a small RTP sender in c1 sends a packet every 20 ms to the relay
and receives the callee's echo: each packet crosses the relay both ways. The relay carrying the
calls is SIGKILLed; the other relay takes its address over (the watcher announces it, OSPF moves
the route), restores the calls from Redis and relays them. Asserted: the echo resumes within
2 s (the gap and the packets lost are printed), the calls end with a 200 to their BYE, and the
BYEs' deletes (sent by the routers to the dead relay's ng address) reach the survivor.

    sudo EVOSIP_BIN=$PWD/build/evosip python3 -m unittest -v tests/cluster/test_media_failover.py

Skipped when namespaces cannot be made (not root) or FRR is not installed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import netlab  # noqa: E402
from cluster import bring_up, callers_and_callee, place_calls  # noqa: E402
from ngclient import NgClient  # noqa: E402
from test_media_takeover import Stream  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
CALLS = 4


@unittest.skipUnless(netlab.can_make_namespaces(), "needs root and ip netns")
@unittest.skipUnless(netlab.frr_available(), "needs FRR (apt-get install frr)")
class MediaFailoverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab, cls.cluster = bring_up(BINARY, "evosip-mediafail-", relay_takeover=True)
        cls.work = cls.lab.workdir
        try:
            _uas, cls.csv = callers_and_callee(cls.cluster, CALLS, "cluster",
                                               uas_extra=["-mp", "40004", "-rtp_echo"])
        except BaseException:
            cls.lab.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lab.destroy()

    def relay_calls(self, relay: str):
        return self.cluster.rpc(relay, "media.list")["calls"]

    def caller_port(self, relay: str, call_id: str) -> int:
        """The relay port the caller sends to: the local port of the leg whose endpoint is the
        caller's address (ng query from a router's namespace, which ng_allow lets in)."""
        caller_ip = self.lab.hosts["c1"].p2p_ip
        address = self.cluster.instances[relay].config["media"]["address"]

        def query():
            with NgClient((address, 2223), bind=self.lab.hosts["r1"].data_ip) as ng:
                return ng.request("query", call_id=call_id)
        q = netlab.in_netns(self.lab.hosts["r1"].ns, query)
        for tag in q["tags"].values():
            stream = tag["medias"][0]["streams"][0]
            if stream.get("endpoint", {}).get("address") == caller_ip:
                return stream["local port"]
        raise AssertionError(f"no caller leg in {q}")

    def test_relay_sigkill_media_resumes_within_2s_and_calls_end(self):
        run = place_calls(self.cluster, "calls", self.csv, CALLS, CALLS, 12000, 60)
        relays = self.cluster.names("media")
        netlab.wait_until(lambda: sum(len(self.relay_calls(m)) for m in relays) == CALLS, 15,
                          "every call anchored")
        victim = max(relays, key=lambda m: len(self.relay_calls(m)))
        survivor = next(m for m in relays if m != victim)
        address = self.cluster.instances[victim].config["media"]["address"]
        caller_ip = self.lab.hosts["c1"].p2p_ip
        streams = []
        victim_calls = self.relay_calls(victim)
        ports = {}
        for call_id in victim_calls:
            port = ports[call_id] = self.caller_port(victim, call_id)

            def bind():
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((caller_ip, 0))
                return s
            sock = netlab.in_netns(self.lab.hosts["c1"].ns, bind)
            self.addCleanup(sock.close)
            streams.append(Stream(sock, (address, port), sock))  # the callee echoes
        self.addCleanup(lambda: [s.close() for s in streams])
        time.sleep(1.5)
        self.assertTrue(all(len(s.arrivals) > 30 for s in streams),
                        f"echo before the kill: {[len(s.arrivals) for s in streams]}")

        killed_at = time.monotonic()
        self.cluster.signal(victim, signal.SIGKILL)
        netlab.wait_until(lambda: all(s.arrivals and s.arrivals[-1] > killed_at + 0.2
                                      for s in streams), 8, "echo after the relay's death")
        time.sleep(1.0)
        for s in streams:
            s.close()
        gaps = [s.gap_after(killed_at) for s in streams]
        lost = [s.sent - len(s.arrivals) for s in streams]
        served = [x["instance"] for x in self.cluster.rpc(survivor, "instance.status")["served"]]
        print(f"\nrelay SIGKILL with {len(streams)} calls on it: media gap (both ways) max "
              f"{max(gaps) * 1000:.0f} ms, per call {[round(g * 1000) for g in gaps]} ms; "
              f"packets lost per call {lost}; survivor serves {served}", file=sys.stderr)
        for g in gaps:
            self.assertLess(g, 2.0, f"media gaps {gaps}")
        self.assertEqual(sorted(served), sorted(relays))

        # ng at the dead relay's address is answered by the survivor, for the calls it restored.
        for call_id in victim_calls:
            self.assertEqual(self.caller_port(victim, call_id), ports[call_id])

        totals = run.wait(60)
        self.assertEqual(totals.get("SuccessfulCall"), CALLS, totals)
        self.assertEqual(totals.get("FailedCall", 0), 0, totals)
        # The BYEs' deletes went to the dead relay's ng address and reached the survivor.
        try:
            netlab.wait_until(lambda: not self.relay_calls(survivor), 10,
                              "the survivor's calls deleted by the BYEs")
        except TimeoutError:
            inst = self.cluster.instances[survivor]
            _, metrics = self.cluster.http(inst.host, "GET", inst.control, "/metrics")
            ng = [ln for ln in str(metrics).splitlines() if "ng_commands_total" in ln
                  and not ln.startswith("#") and not ln.endswith(" 0")]
            raise AssertionError(f"calls left on {survivor}: {self.relay_calls(survivor)}; "
                                 f"ng commands: {ng}")


if __name__ == "__main__":
    unittest.main()
