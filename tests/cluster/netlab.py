"""Network namespaces as hosts on one machine: the platform's cluster for churn and chaos tests.

Topology (every name is prefixed with the lab's own prefix, so parallel labs never collide):

    callers c1, c2 --p2p--+
                          core (router: forwards, runs FRR OSPF, ECMP to the anycast /32)
    edges e1, e2 ---p2p---+      |
        (OSPF, anycast        br0 10.77.1.0/24: the platform's data network
         10.99.0.1/32 on lo)     |
    e1, e2, routers, relays, apps, svc (api + Redis) each have one leg on br0

Callers reach the edges only through the anycast address; the core spreads flows over the
edges that announce it (ECMP, layer-4 hash). An edge that is not ready withdraws the /32 from
its loopback (anycast_watch.py), so OSPF stops sending it new flows.

Only private addresses inside namespaces this module created are used; destroy() removes
every namespace and process it made.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

ANYCAST = "10.99.0.1"
DATA_NET = "10.77.1"  # .1 core, .11.. edges, .21.. routers, .31.. relays, .41.. apps, .51 svc
MEDIA_NET = "10.98.0"  # relays' service addresses (.31..), on lo of the host that serves them
FRR_DIR = "/usr/lib/frr"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def frr_available() -> bool:
    return os.access(os.path.join(FRR_DIR, "zebra"), os.X_OK) and \
        os.access(os.path.join(FRR_DIR, "ospfd"), os.X_OK)


def can_make_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"evprobe{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


def in_netns(ns: str, fn: Callable[[], object]) -> object:
    """Runs fn in a thread that has joined network namespace ns (sockets fn opens live there)."""
    out: Dict[str, object] = {}

    def run() -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
        finally:
            os.close(fd)
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


@dataclass
class Host:
    name: str       # short name: core, e1, r1, ...
    ns: str         # the namespace
    data_ip: str = ""  # address on br0 ("" for callers)
    p2p_ip: str = ""   # its end of the link to core (edges, callers)
    core_ip: str = ""  # core's end of that link


@dataclass
class Lab:
    workdir: str
    prefix: str = field(default_factory=lambda: f"ev{os.getpid() % 100000}")
    hosts: Dict[str, Host] = field(default_factory=dict)
    procs: List[subprocess.Popen] = field(default_factory=list)
    log: Callable[[str], None] = print

    # -- commands ------------------------------------------------------------------------------
    def sh(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
        return r

    def nsexec(self, host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.sh("ip", "netns", "exec", self.hosts[host].ns, *argv, check=check)

    def ip(self, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.sh("ip", "-n", self.hosts[host].ns, *args, check=check)

    def spawn(self, host: str, name: str, argv: Sequence[str],
              env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """A process in host's namespace, output in workdir/<name>.log; stopped by destroy()."""
        out = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(["ip", "netns", "exec", self.hosts[host].ns, *argv],
                             cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        out.close()
        p.lab_name = name  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    # -- topology ------------------------------------------------------------------------------
    def add_host(self, name: str) -> Host:
        h = Host(name, f"{self.prefix}-{name}")
        self.sh("ip", "netns", "add", h.ns)
        self.hosts[name] = h
        self.ip(name, "link", "set", "lo", "up")
        for key in ("all", "default", "lo"):
            self.nsexec(name, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
        return h

    def link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        self.ip(a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns",
                self.hosts[b].ns)
        self.ip(a, "link", "set", a_if, "up")
        self.ip(b, "link", "set", b_if, "up")

    def build(self, edges: int = 2, routers: int = 2, relays: int = 2, apps: int = 2,
              callers: int = 2) -> None:
        core = self.add_host("core")
        core.data_ip = f"{DATA_NET}.1"
        self.nsexec("core", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.nsexec("core", "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
        # No ICMP redirects from core: a host on the data network that core redirected straight
        # to a relay for a service address would keep sending there after the address moved.
        for conf in ("all", "default"):
            self.nsexec("core", "sysctl", "-qw", f"net.ipv4.conf.{conf}.send_redirects=0")
        self.ip("core", "link", "add", "br0", "type", "bridge")
        self.ip("core", "addr", "add", f"{core.data_ip}/24", "dev", "br0")
        self.ip("core", "link", "set", "br0", "up")
        plan = ([(f"e{i + 1}", 11 + i) for i in range(edges)]
                + [(f"r{i + 1}", 21 + i) for i in range(routers)]
                + [(f"m{i + 1}", 31 + i) for i in range(relays)]
                + [(f"a{i + 1}", 41 + i) for i in range(apps)] + [("svc", 51)])
        for name, last in plan:
            h = self.add_host(name)
            h.data_ip = f"{DATA_NET}.{last}"
            self.link(name, "eth0", "core", f"b-{name}")
            self.ip("core", "link", "set", f"b-{name}", "master", "br0")
            self.ip(name, "addr", "add", f"{h.data_ip}/24", "dev", "eth0")
            if not name.startswith("e"):
                self.ip(name, "route", "add", "default", "via", core.data_ip)
        for i in range(edges):
            self._p2p(f"e{i + 1}", f"10.77.2.{2 * i}")
            self.ip(f"e{i + 1}", "addr", "add", f"{ANYCAST}/32", "dev", "lo")
        for i in range(callers):
            name = f"c{i + 1}"
            self.add_host(name)
            self._p2p(name, f"10.77.3.{2 * i}")

    def _p2p(self, name: str, core_ip: str) -> None:
        h = self.hosts[name]
        a, b, c, last = core_ip.split(".")
        h.core_ip, h.p2p_ip = core_ip, f"{a}.{b}.{c}.{int(last) + 1}"
        self.link(name, "up0", "core", f"p-{name}")
        self.ip(name, "addr", "add", f"{h.p2p_ip}/31", "dev", "up0")
        self.ip("core", "addr", "add", f"{h.core_ip}/31", "dev", f"p-{name}")
        self.ip(name, "route", "add", "default", "via", h.core_ip)

    # -- FRR -----------------------------------------------------------------------------------
    def start_frr(self, host: str, ospf_ifaces: Sequence[str], networks: Sequence[str],
                  router_id: str, broadcast: Sequence[str] = ()) -> None:
        d = os.path.join(self.workdir, f"frr-{host}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "zebra.conf"), "w") as f:
            f.write(f"hostname {host}\n")
        lines = [f"hostname {host}"]
        for iface in ospf_ifaces:
            lines += [f"interface {iface}", " ip ospf network point-to-point",
                      " ip ospf hello-interval 1", " ip ospf dead-interval 3"]
        for iface in broadcast:  # a shared segment (the data network's bridge)
            lines += [f"interface {iface}", " ip ospf hello-interval 1",
                      " ip ospf dead-interval 3"]
        lines += ["router ospf", f" ospf router-id {router_id}",
                  " timers throttle spf 0 50 1000", " timers throttle lsa all 0",
                  " timers lsa min-arrival 0"]
        lines += [f" network {n} area 0" for n in networks]
        with open(os.path.join(d, "ospfd.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.workdir, 0o755)  # the daemons drop to the frr user, which must reach d
        shutil.chown(d, "frr", "frr")
        common = ["-z", os.path.join(d, "zserv.api"), "--vty_socket", d]
        self.spawn(host, f"zebra-{host}", [os.path.join(FRR_DIR, "zebra"), *common,
                                           "-i", os.path.join(d, "zebra.pid"),
                                           "-f", os.path.join(d, "zebra.conf")])
        wait_until(lambda: os.path.exists(os.path.join(d, "zserv.api")), 10,
                   f"zebra in {host}")
        self.spawn(host, f"ospfd-{host}", [os.path.join(FRR_DIR, "ospfd"), *common,
                                           "-i", os.path.join(d, "ospfd.pid"),
                                           "-f", os.path.join(d, "ospfd.conf")])

    def start_routing(self, relays: bool = False) -> None:
        """OSPF between core and the edges; returns when core has a path to every edge. With
        relays, the relays speak OSPF with core on the data network too and announce the service
        addresses (MEDIA_NET) on their loopback (media_watch.py puts them there)."""
        edges = [n for n in self.hosts if n.startswith("e")]
        core_nets = ["10.77.2.0/24"] + ([f"{DATA_NET}.0/24"] if relays else [])
        self.start_frr("core", [f"p-{e}" for e in edges], core_nets, "10.77.2.250",
                       broadcast=["br0"] if relays else [])
        for i, e in enumerate(edges):
            self.start_frr(e, ["up0"], [f"10.77.2.{2 * i}/31", f"{ANYCAST}/32"],
                           self.hosts[e].p2p_ip)
        if relays:
            for m in [n for n in self.hosts if n.startswith("m")]:
                self.start_frr(m, [], [f"{DATA_NET}.0/24", f"{MEDIA_NET}.0/24"],
                               self.hosts[m].data_ip, broadcast=["eth0"])
        wait_until(lambda: len(self.anycast_paths()) == len(edges), 30,
                   f"ECMP route to {ANYCAST} over {len(edges)} edges")

    def route_via(self, address: str) -> List[str]:
        """The next hops core uses for address/32 (empty: no route)."""
        out = self.ip("core", "route", "show", f"{address}/32", check=False).stdout
        hops = []
        for line in out.splitlines():
            words = line.split()
            if "via" in words:
                hops.append(words[words.index("via") + 1])
        return sorted(hops)

    def anycast_paths(self) -> List[str]:
        """The edges the core currently sends anycast traffic to (by their p2p address)."""
        return self.route_via(ANYCAST)

    # -- partitions ----------------------------------------------------------------------------
    def cut(self, host: str) -> None:
        """Takes host's data leg off the bridge: it keeps its addresses, its link and its p2p
        link to core (an edge stays reachable from callers), but reaches no other data host."""
        self.ip("core", "link", "set", f"b-{host}", "nomaster")

    def heal(self, host: str) -> None:
        self.ip("core", "link", "set", f"b-{host}", "master", "br0")

    # -- teardown ------------------------------------------------------------------------------
    def stop(self, p: subprocess.Popen, timeout: float = 5.0, sig: int = 2) -> Optional[int]:
        """SIGINT (evosip roles stop at once, without a drain), SIGKILL after timeout."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, 9)
                p.wait(timeout=5)
            except ProcessLookupError:
                pass
        return p.returncode

    def destroy(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p, timeout=3)
            except Exception:  # noqa: BLE001
                pass
        for h in list(self.hosts.values()):
            subprocess.run(["ip", "netns", "del", h.ns], capture_output=True)
        self.hosts.clear()


def wait_until(pred: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
