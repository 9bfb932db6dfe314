"""`evosip controller` against a Kubernetes API server stand-in (kube_standin.py: HTTPS, bearer
token, EndpointSlice list + chunked watch, 410 Gone, dropped connections, Leases), with real
`evosip edge` and `evosip router` instances on 127.0.0.x receiving the peer sets over their
control RPC. Prints the time from an EndpointSlice change to the new set at every edge, and
each instance's start-to-ready time."""

import json
import os
import signal
import subprocess
import time
import unittest

from harness import (Cleanup, Process, SharedWorkdir, SipClient, free_port, make_tmpdir, new_call_id, router_config,
                     require_evosip, rpc, scrape, wait_until, write_yaml)
from kube_standin import KubeStandin, endpoint

CONTROL_TOKEN = "itest-control-token"
EDGES = ["127.0.0.11", "127.0.0.12"]
ROUTERS = ["127.0.0.21", "127.0.0.22", "127.0.0.23"]
LEASE_S = 2


def start_to_ready(proc: Process, control: str, timeout: float = 15.0) -> float:
    """Seconds from the process's start until its /readyz answers 200 (polled every 2 ms)."""
    import urllib.request
    t0 = proc.started
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{control}/readyz", timeout=0.5) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
        time.sleep(0.002)
    raise AssertionError(f"{proc.name} not ready after {timeout}s:\n{proc.tail()}")


def spawn(tmp: str, cleanup: Cleanup, role: str, name: str, cfg: dict) -> Process:
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = {"EVOSIP_EDGE_AUTH_BAN_EXEMPT": "127.0.0.0/8"} if role == "edge" else {}
    t0 = time.monotonic()
    proc = cleanup.add(Process(name, [require_evosip(), role, "--config", path], tmp, env))
    proc.started = t0
    return proc


class Controller(SharedWorkdir, unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        require_evosip()
        cls.cleanup = Cleanup()
        cls.tmp = make_tmpdir("evosip-controller-")
        cls.edge_ports = {"sip": free_port(), "control": free_port()}
        cls.router_ports = {"sip": free_port(), "control": free_port()}
        cls.kube = KubeStandin(cls.tmp).start()
        with open(os.path.join(cls.tmp, "kube-token"), "w") as f:
            f.write(cls.kube.token + "\n")
        with open(os.path.join(cls.tmp, "control-token"), "w") as f:
            f.write(CONTROL_TOKEN + "\n")
        try:
            cls._start_instances()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start_instances(cls) -> None:
        procs = []
        for i, ip in enumerate(ROUTERS):
            cfg = router_config(cls.router_ports["sip"], cls.router_ports["control"],
                                "127.0.0.1:1")
            cfg["sip"]["listen"] = [f"udp:{ip}:{cls.router_ports['sip']}"]
            cfg["control"] = {"listen": f"{ip}:{cls.router_ports['control']}",
                              "token": CONTROL_TOKEN}
            cfg["workers"] = 1
            procs.append((spawn(cls.tmp, cls.cleanup, "router", f"router{i + 1}", cfg),
                          f"{ip}:{cls.router_ports['control']}"))
        for ip in EDGES + ["127.0.0.13"]:
            procs.append((cls._spawn_edge(ip), f"{ip}:{cls.edge_ports['control']}"))
        cls.ready_s = {p.name: start_to_ready(p, control) for p, control in procs}
        print("\nstart-to-ready: " + ", ".join(f"{n} {s * 1000:.0f} ms"
                                               for n, s in cls.ready_s.items()))

    @classmethod
    def _spawn_edge(cls, ip: str) -> Process:
        cfg = {"sip": {"listen": [f"udp:{ip}:{cls.edge_ports['sip']}"]},
               "control": {"listen": f"{ip}:{cls.edge_ports['control']}",
                           "token": CONTROL_TOKEN},
               "workers": 1, "log": {"level": "info"},
               "edge": {"routers": ["sip:127.0.0.99:5999"], "router_timeout_ms": 500,
                        "rate_limit": {"requests_per_second": 0}}}
        return spawn(cls.tmp, cls.cleanup, "edge", f"edge-{ip}", cfg)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.cleanup.stop_all()
        cls.kube.stop()
        cls.release_workdir(cls.tmp)

    # -- helpers --------------------------------------------------------------------------

    def setUp(self) -> None:
        with self.kube.cond:
            self.kube.slices.clear()
            self.kube.events.clear()
            self.kube.leases.clear()
            self.kube.down = False
        self.kube.drop_watches()
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "ready"})
        self.kube.put_slice("evosip-edge-a", "evosip-edge", [endpoint(ip) for ip in EDGES],
                            self.edge_ports)
        self.procs = Cleanup()
        self.addCleanup(self.procs.stop_all)

    def set_routers(self, states: dict) -> None:
        eps = []
        for ip, state in states.items():
            if state == "ready":
                eps.append(endpoint(ip))
            elif state == "terminating":
                eps.append(endpoint(ip, ready=False, serving=True, terminating=True))
            else:
                eps.append(endpoint(ip, ready=False, serving=False))
        self.kube.put_slice("evosip-router-x", "evosip-router", eps, self.router_ports)

    def controller(self, identity: str, check_ms: int = 60000, leads: bool = True) -> tuple:
        control = f"127.0.0.1:{free_port()}"
        cfg = {"control": {"listen": control, "token": ""}, "log": {"level": "info"},
               "controller": {
                   "kubernetes": {"api": self.kube.url,
                                  "token_file": os.path.join(self.tmp, "kube-token"),
                                  "ca_file": self.kube.cert, "namespace": "evosip"},
                   "services": {"edge": "evosip-edge", "router": "evosip-router",
                                "app": "", "media": "", "api": ""},
                   "control_token_file": os.path.join(self.tmp, "control-token"),
                   "resync_s": 60, "check_ms": check_ms,
                   "lease": {"name": "evosip-controller", "duration_s": LEASE_S,
                             "identity": identity}}}
        name = f"controller-{identity}-{self._testMethodName}"
        proc = spawn(self.tmp, self.procs, "controller", name, cfg)
        ready = start_to_ready(proc, control)
        print(f"controller {identity} start-to-ready {ready * 1000:.0f} ms")
        url = f"http://{control}"
        if leads:
            wait_until(lambda: self.settled(url), 10, f"controller {identity} to push", proc=proc)
        return proc, url

    def settled(self, url: str) -> bool:
        """The controller leads, has listed every Service and every instance acknowledged."""
        s = rpc(url + "/rpc", "controller.status")
        return (s["leader"] and all(x["listed"] for x in s["services"]) and s["instances"] != []
                and all(i["acknowledged"] for i in s["instances"]))

    def routers_at(self, ip: str) -> dict:
        res = rpc(f"http://{ip}:{self.edge_ports['control']}/rpc", "dispatcher.list",
                  token=CONTROL_TOKEN)
        return {r["uri"]: r["state"] for r in res["routers"]}

    def uri(self, ip: str) -> str:
        return f"sip:{ip}:{self.router_ports['sip']}"

    def wait_edges(self, want: dict, timeout: float, edges=EDGES, proc=None) -> float:
        """Waits until every edge holds exactly `want` (uri -> state); returns the seconds."""
        t0 = time.monotonic()
        wait_until(lambda: all(self.routers_at(e) == want for e in edges), timeout,
                   f"edges {edges} to hold {want}", interval=0.01, proc=proc)
        return time.monotonic() - t0

    def up(self, *ips) -> dict:
        return {self.uri(ip): "up" for ip in ips}

    # -- tests ----------------------------------------------------------------------------

    def test_a_router_scaled_up_reaches_every_edge_within_a_second(self):
        proc, url = self.controller("a")
        self.wait_edges(self.up(ROUTERS[0], ROUTERS[1]), 10, proc=proc)
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "ready", ROUTERS[2]: "ready"})
        took = self.wait_edges(self.up(*ROUTERS), 5, proc=proc)
        print(f"EndpointSlice change -> new set at {len(EDGES)} edges: {took * 1000:.0f} ms")
        self.assertLess(took, 1.0)
        status = rpc(url + "/rpc", "controller.status")
        self.assertTrue(status["leader"], status)
        self.assertEqual(self.kube.unauthorized, 0)
        # a new edge gets the current set as soon as its endpoint appears
        t0 = time.monotonic()
        self.kube.put_slice("evosip-edge-b", "evosip-edge", [endpoint("127.0.0.13")],
                            self.edge_ports)
        self.wait_edges(self.up(*ROUTERS), 5, edges=["127.0.0.13"], proc=proc)
        print(f"new edge endpoint -> its set: {(time.monotonic() - t0) * 1000:.0f} ms")
        self.assertLess(time.monotonic() - t0, 1.0)
        m = scrape(url + "/metrics")
        self.assertEqual(m.get("evosip_controller_leader"), 1)
        self.assertGreaterEqual(m.get("evosip_controller_pushes_total"), 4)

    def test_a_terminating_router_leaves_new_call_selection(self):
        proc, _ = self.controller("a")
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "ready", ROUTERS[2]: "ready"})
        self.wait_edges(self.up(*ROUTERS), 10, proc=proc)
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "terminating", ROUTERS[2]: "ready"})
        want = {**self.up(ROUTERS[0], ROUTERS[2]), self.uri(ROUTERS[1]): "draining"}
        self.wait_edges(want, 2, proc=proc)
        # new calls through an edge go to the two others only
        edge = (EDGES[0], self.edge_ports["sip"])
        before = self.forwarded(EDGES[0])
        with SipClient("UDP", edge) as c:
            for _ in range(30):
                c.send(c.request("OPTIONS", f"sip:bob@{EDGES[0]}", call_id=new_call_id()))
                time.sleep(0.005)
        wait_until(lambda: sum(self.forwarded(EDGES[0]).values()) >= sum(before.values()) + 30,
                   5, "30 requests forwarded")
        after = self.forwarded(EDGES[0])
        gained = {u: after.get(u, 0) - before.get(u, 0) for u in after}
        self.assertEqual(gained.get(self.uri(ROUTERS[1]), 0), 0, gained)
        self.assertGreater(gained.get(self.uri(ROUTERS[0]), 0), 0, gained)
        self.assertGreater(gained.get(self.uri(ROUTERS[2]), 0), 0, gained)
        # once it stops serving, it leaves the set
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "gone", ROUTERS[2]: "ready"})
        self.wait_edges(self.up(ROUTERS[0], ROUTERS[2]), 2, proc=proc)

    def forwarded(self, ip: str) -> dict:
        m = scrape(f"http://{ip}:{self.edge_ports['control']}/metrics", token=CONTROL_TOKEN)
        return {labels.get("router"): v
                for labels, v in m.series("evosip_edge_router_forwarded_total")}

    def test_gone_and_api_outage_never_push_a_wrong_set(self):
        proc, url = self.controller("a")
        two = self.up(ROUTERS[0], ROUTERS[1])
        self.wait_edges(two, 10, proc=proc)
        # 410 as a Status answer while a router was added: a fresh list finds it
        self.kube.compact(as_event=False)
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "ready", ROUTERS[2]: "ready"})
        self.wait_edges(self.up(*ROUTERS), 5, proc=proc)
        # 410 as an ERROR event in the stream
        self.kube.compact(as_event=True)
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "ready"})
        self.wait_edges(two, 5, proc=proc)
        m = scrape(url + "/metrics")
        self.assertGreaterEqual(m.get("evosip_controller_watch_gone_total",
                                      service="evosip-router"), 2)
        # a dropped watch connection: the next change still arrives
        self.kube.drop_watches()
        self.set_routers({ROUTERS[0]: "ready"})
        self.wait_edges(self.up(ROUTERS[0]), 5, proc=proc)
        self.set_routers({ROUTERS[0]: "ready", ROUTERS[1]: "ready"})
        self.wait_edges(two, 5, proc=proc)
        # an outage: the sets stay as they are the whole time
        pushes = scrape(url + "/metrics").get("evosip_controller_pushes_total")
        self.kube.set_down(True)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for e in EDGES:
                self.assertEqual(self.routers_at(e), two)
            time.sleep(0.1)
        m = scrape(url + "/metrics")
        self.assertEqual(m.get("evosip_controller_pushes_total"), pushes)
        self.assertGreater(m.get("evosip_controller_api_errors_total", service="evosip-router"),
                           0)
        # a change during the outage arrives after it
        self.set_routers({ROUTERS[1]: "ready", ROUTERS[2]: "ready"})
        self.kube.set_down(False)
        took = self.wait_edges(self.up(ROUTERS[1], ROUTERS[2]), 10, proc=proc)
        print(f"set after the API came back: {took * 1000:.0f} ms")

    def test_drift_is_pushed_again(self):
        proc, url = self.controller("a", check_ms=300)
        two = self.up(ROUTERS[0], ROUTERS[1])
        self.wait_edges(two, 10, proc=proc)
        rpc(f"http://{EDGES[0]}:{self.edge_ports['control']}/rpc", "dispatcher.set",
            {"set": "routers", "targets": [self.uri(ROUTERS[2])]}, token=CONTROL_TOKEN)
        self.wait_edges(two, 3, proc=proc)
        self.assertGreaterEqual(scrape(url + "/metrics").get("evosip_controller_drift_total"), 1)

    def test_second_replica_stays_passive_until_the_lease_expires(self):
        a, url_a = self.controller("a")
        wait_until(lambda: rpc(url_a + "/rpc", "controller.status")["leader"], 5, "a leads")
        b, url_b = self.controller("b", leads=False)
        time.sleep(LEASE_S * 1.5)
        status = rpc(url_b + "/rpc", "controller.status")
        self.assertFalse(status["leader"], status)
        self.assertEqual(status["holder"], "a")
        self.assertEqual(scrape(url_b + "/metrics").get("evosip_controller_pushes_total"), 0)
        a.stop(sig=signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: rpc(url_b + "/rpc", "controller.status")["leader"], LEASE_S * 4,
                   "b takes over", interval=0.02, proc=b)
        took = time.monotonic() - t0
        print(f"lease takeover {took * 1000:.0f} ms after the leader died (lease {LEASE_S} s)")
        self.assertGreater(took, LEASE_S * 0.5)
        self.set_routers({ROUTERS[2]: "ready"})
        self.wait_edges(self.up(ROUTERS[2]), 3, proc=b)
        holders = {h for _m, h in self.kube.lease_writes if h}  # "": a released Lease
        self.assertEqual(holders, {"a", "b"})

    def test_a_stopped_leader_gives_the_lease_to_the_standby_at_once(self):
        a, url_a = self.controller("a")
        b, url_b = self.controller("b", leads=False)
        time.sleep(LEASE_S * 0.5)  # b has seen a's Lease
        self.assertFalse(rpc(url_b + "/rpc", "controller.status")["leader"])
        t0 = time.monotonic()
        self.assertEqual(a.stop(sig=signal.SIGTERM), 0, a.tail())
        wait_until(lambda: rpc(url_b + "/rpc", "controller.status")["leader"], LEASE_S * 4,
                   "b takes over", interval=0.02, proc=b)
        took = time.monotonic() - t0
        print(f"lease handed over {took * 1000:.0f} ms after SIGTERM of the leader "
              f"(lease {LEASE_S} s, standby attempts every {LEASE_S / 3:.2f} s)")
        # Without the release b waits until a's last renewal is a whole duration old.
        self.assertLess(took, LEASE_S * 0.6)
        self.assertIn(("PUT", ""), self.kube.lease_writes)
        self.set_routers({ROUTERS[2]: "ready"})
        self.wait_edges(self.up(ROUTERS[2]), 3, proc=b)

    def test_a_rotated_token_is_used_from_the_next_request_on(self):
        proc, url = self.controller("a")
        old = self.kube.token
        new = "kube-token-rotated"
        token_file = os.path.join(self.tmp, "kube-token")
        try:
            # The kubelet swaps the projected token file whole; the old token is refused from now.
            with open(token_file + ".new", "w") as f:
                f.write(new + "\n")
            os.replace(token_file + ".new", token_file)
            with self.kube.cond:
                self.kube.token = new
                refused_before = self.kube.unauthorized
                seen_before = len(self.kube.requests)
            self.kube.drop_watches()  # a watch authorised with the old token ends
            self.set_routers({ROUTERS[1]: "ready", ROUTERS[2]: "ready"})
            self.wait_edges(self.up(ROUTERS[1], ROUTERS[2]), 10, proc=proc)
            with self.kube.cond:
                after = self.kube.requests[seen_before:]
                refused = self.kube.unauthorized - refused_before
            self.assertTrue(any(r.startswith("GET") and "watch" in r for r in after), after)
            # At most one request read the file just before the swap and arrived just after.
            self.assertLessEqual(refused, 1, "requests went out with the old token")
            wait_until(lambda: rpc(url + "/rpc", "controller.status")["leader"], 3, "a leads")
        finally:
            with open(token_file, "w") as f:
                f.write(old + "\n")
            with self.kube.cond:
                self.kube.token = old


if __name__ == "__main__":
    unittest.main()
