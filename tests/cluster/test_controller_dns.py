"""`evosip controller` in DNS mode (`controller.mode: dns`, platforms without the Kubernetes
API): peers come from the A records of each layer's name, re-resolved every
`dns.interval_ms`. Everything runs in a network namespace of its own whose /etc/hosts
(`ip netns exec` mounts /etc/netns/NAME/hosts there) is the name service the test edits: a
router whose address joins the name appears in the edge's set, one whose address leaves it
disappears.

    sudo EVOSIP_BIN=$PWD/build/evosip python3 -m unittest -v tests/cluster/test_controller_dns.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import netlab  # noqa: E402
from harness import router_config, rpc, test_failed  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
TOKEN = "dns-mode-control-token-0123456789"
EDGE = "127.0.1.11"
ROUTERS = ["127.0.1.21", "127.0.1.22"]
SIP, CONTROL = 5060, 8060


@unittest.skipUnless(netlab.can_make_namespaces(), "needs root and ip netns")
class ControllerDnsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.work = tempfile.mkdtemp(prefix="evosip-ctl-dns-")
        self.addCleanup(self.release_workdir)
        self.ns = f"evdns{os.getpid() % 100000}"
        self.etc = f"/etc/netns/{self.ns}"
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns])
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        os.makedirs(self.etc, exist_ok=True)
        self.addCleanup(shutil.rmtree, self.etc, True)
        self.procs: list = []
        self.addCleanup(self.stop_all)
        with open(os.path.join(self.work, "token"), "w") as f:
            f.write(TOKEN + "\n")

    def release_workdir(self) -> None:
        if test_failed(self):
            print(f"\n[artefacts kept in {self.work}]")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(2)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def hosts(self, routers) -> None:
        lines = ["127.0.0.1 localhost", f"{EDGE} evosip-edge"]
        lines += [f"{ip} evosip-router" for ip in routers]
        with open(os.path.join(self.etc, "hosts"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def spawn(self, role: str, name: str, cfg: dict) -> subprocess.Popen:
        path = os.path.join(self.work, f"{name}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        with open(os.path.join(self.work, f"{name}.log"), "wb") as log:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns, BINARY, role, "--config", path],
                                 stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def call(self, ip: str, method: str, token: str = TOKEN):
        return netlab.in_netns(self.ns, lambda: rpc(f"http://{ip}:{CONTROL}/rpc", method,
                                                    token=token))

    def routers_at_edge(self):
        try:
            return sorted(r["uri"] for r in self.call(EDGE, "dispatcher.list")["routers"])
        except Exception:  # noqa: BLE001  (not up yet)
            return None

    def wait_routers(self, want, timeout: float) -> float:
        t0 = time.monotonic()
        netlab.wait_until(lambda: self.routers_at_edge() == want, timeout,
                          f"the edge to hold {want} (it holds {self.routers_at_edge()})")
        return time.monotonic() - t0

    def test_routers_follow_the_names_a_records(self):
        self.hosts(ROUTERS[:1])
        for ip in ROUTERS:
            cfg = router_config(SIP, CONTROL, "127.0.0.1:1")
            cfg["sip"]["listen"] = [f"udp:{ip}:{SIP}"]
            cfg["control"] = {"listen": f"{ip}:{CONTROL}", "token": TOKEN}
            self.spawn("router", f"router-{ip}", cfg)
        self.spawn("edge", "edge", {
            "sip": {"listen": [f"udp:{EDGE}:{SIP}"]},
            "control": {"listen": f"{EDGE}:{CONTROL}", "token": TOKEN},
            "workers": 1, "edge": {"routers": ["sip:127.0.0.99:5999"]}})
        self.spawn("controller", "controller", {
            "control": {"listen": "127.0.0.1:8063", "token": ""},
            "controller": {
                "mode": "dns",
                "services": {"edge": "evosip-edge", "router": "evosip-router", "app": "",
                             "media": "", "api": ""},
                "control_token_file": os.path.join(self.work, "token"),
                "dns": {"interval_ms": 200, "sip_port": SIP, "control_port": CONTROL}}})
        first = self.wait_routers([f"sip:{ROUTERS[0]}:{SIP}"], 10)
        # A second address on the name: a router scaled up.
        self.hosts(ROUTERS)
        added = self.wait_routers(sorted(f"sip:{ip}:{SIP}" for ip in ROUTERS), 5)
        # The first address leaves the name: that router scaled down.
        self.hosts(ROUTERS[1:])
        removed = self.wait_routers([f"sip:{ROUTERS[1]}:{SIP}"], 5)
        print(f"\ndns mode: first set {first:.2f} s after start, a new address in "
              f"{added:.2f} s, a removed one in {removed:.2f} s (interval 0.2 s)",
              file=sys.stderr)
        self.assertLess(added, 1.5)
        self.assertLess(removed, 1.5)


if __name__ == "__main__":
    unittest.main()
