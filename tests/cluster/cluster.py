"""The whole platform on the namespace lab (netlab.py): 2 edges behind an anycast address, 2
routers on Redis, 2 relays, 2 apps, the api and Redis, callers in their own namespaces.

Every instance is the real `evosip` binary in its own namespace with its own address; the
control servers listen on the data network with a token, and the driver reaches them from a
thread that joined the instance's namespace (netlab.in_netns).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import netlab
from netlab import ANYCAST, MEDIA_NET, Lab, in_netns, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "..", "integration", "scenarios")
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
DOMAIN = "evosip.local"
TOKEN = "cluster-control-token-0123456789"
API_TOKEN = "cluster-api-token-0123456789"
API_INTERNAL = "cluster-api-internal-token-0123456789"
NONCE_SECRET = "cluster-nonce-secret-0123456789abcdef"
FLOW_SECRET = "cluster-flow-secret-0123456789abcdef"
CONTROL_PORT = {"edge": 8060, "router": 8070, "media": 8062, "app": 8090, "api": 8081}


@dataclass
class Instance:
    role: str
    host: str            # lab host (namespace) name
    ip: str              # its data-network address
    config: dict
    proc: Optional[subprocess.Popen] = None
    starts: int = 0

    @property
    def control(self) -> Tuple[str, int]:
        return self.ip, CONTROL_PORT[self.role]

    @property
    def name(self) -> str:
        return self.host


@dataclass
class Cluster:
    lab: Lab
    binary: str
    instances: Dict[str, Instance] = field(default_factory=dict)
    watchers: Dict[str, subprocess.Popen] = field(default_factory=dict)

    # -- control plane -------------------------------------------------------------------------
    def http(self, host: str, method: str, addr: Tuple[str, int], path: str, body=None,
             token: str = TOKEN, timeout: float = 3.0) -> Tuple[int, object]:
        def call():
            conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
            try:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    headers["Content-Type"] = "application/json"
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                text = r.read().decode("utf-8", "replace")
                try:
                    return r.status, json.loads(text) if text else None
                except ValueError:
                    return r.status, text
            finally:
                conn.close()
        return in_netns(self.lab.hosts[host].ns, call)  # type: ignore[return-value]

    def rpc(self, name: str, method: str, params=None):
        inst = self.instances[name]
        status, doc = self.http(inst.host, "POST", inst.control, "/rpc",
                                {"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": params or {}})
        if status != 200 or not isinstance(doc, dict) or "error" in doc:
            raise RuntimeError(f"{name} {method}: {status} {doc}")
        return doc.get("result")

    def ready(self, name: str) -> bool:
        inst = self.instances[name]
        try:
            status, _ = self.http(inst.host, "GET", inst.control, "/readyz", timeout=1.0)
        except OSError:
            return False
        return status == 200

    # -- instances -----------------------------------------------------------------------------
    def add(self, role: str, host: str, config: dict) -> Instance:
        ip = self.lab.hosts[host].data_ip
        base = {"control": {"listen": f"{ip}:{CONTROL_PORT[role]}", "token": TOKEN},
                "log": {"level": os.environ.get("EVOSIP_CLUSTER_LOG", "info"), "format": "text"}}
        if role != "api":
            base["workers"] = 1
        inst = Instance(role, host, ip, {**base, **config})
        self.instances[host] = inst
        return inst

    def start(self, name: str, wait: bool = True) -> Instance:
        inst = self.instances[name]
        path = os.path.join(self.lab.workdir, f"{name}.json")  # JSON is valid YAML
        with open(path, "w") as f:
            json.dump(inst.config, f, indent=1)
        inst.starts += 1
        inst.proc = self.lab.spawn(inst.host, f"{name}.{inst.starts}",
                                   [self.binary, inst.role, "--config", path])
        if wait:
            wait_until(lambda: self.ready(name) or inst.proc.poll() is not None, 20,
                       f"{name} ready")
            if inst.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {inst.proc.returncode}: "
                                   f"{self.log_tail(name)}")
        return inst

    def log_tail(self, name: str, n: int = 2000) -> str:
        inst = self.instances[name]
        try:
            with open(os.path.join(self.lab.workdir, f"{name}.{inst.starts}.log")) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def signal(self, name: str, sig: int) -> None:
        p = self.instances[name].proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)

    def names(self, role: str) -> List[str]:
        return [n for n, i in self.instances.items() if i.role == role]

    # -- bring-up ------------------------------------------------------------------------------
    def up(self, apps: bool = True, relays: bool = True, relay_takeover: bool = False) -> None:
        """relay_takeover: each relay serves a service address (MEDIA_NET, announced by OSPF
        through media_watch.py), keeps its calls in Redis and takes over the other relays'
        addresses and calls when they die (media.state, media.takeover; start_routing(relays=
        True) first)."""
        lab = self.lab
        svc = lab.hosts["svc"].data_ip
        lab.spawn("svc", "redis", [REDIS, "--bind", svc, "--port", "6379", "--save", "",
                                   "--appendonly", "no", "--protected-mode", "no"])
        routers = [n for n in lab.hosts if n.startswith("r")]
        self.add("api", "svc", {"api": {
            "listen": f"{svc}:8080", "database": f"sqlite://{lab.workdir}/evosip.db",
            "token": API_TOKEN, "internal_token": API_INTERNAL,
            "routers": [f"{lab.hosts[r].data_ip}:{CONTROL_PORT['router']}" for r in routers],
            "router_token": TOKEN, "router_timeout_ms": 1000}})
        self.start("svc")
        relay_hosts = [n for n in lab.hosts if n.startswith("m")] if relays else []
        app_hosts = [n for n in lab.hosts if n.startswith("a")] if apps else []
        relay_address = {m: lab.hosts[m].data_ip for m in relay_hosts}
        if relay_takeover:
            relay_address = {m: f"{MEDIA_NET}.{31 + i}" for i, m in enumerate(relay_hosts)}
        for m in relay_hosts:
            addr = relay_address[m]
            # Each relay holds every call alone (its peer dead, cut off or held out of new
            # calls by the routers): 2,000 audio calls of the range's 2,500 (2 port pairs each).
            media = {"ng_listen": f"{addr}:2223", "address": addr, "max_sessions": 2000,
                     "ng_allow": [f"{netlab.DATA_NET}.0/24"]}
            extra = {}
            if relay_takeover:
                media.update({"free_bind": True, "instance_id": m, "state": {"enabled": True},
                              "takeover": {"peers": [p for p in relay_hosts if p != m]}})
                extra = {"store": {"backend": "redis", "redis": {"host": svc, "port": 6379}}}
            self.add("media", m, {"media": media, **extra})
            self.start(m)
            if relay_takeover:
                self.watch_relay(m)
        if relay_takeover:
            wait_until(lambda: all(lab.route_via(a) for a in relay_address.values()), 20,
                       "routes to every relay's service address")
        for a in app_hosts:
            ip = lab.hosts[a].data_ip
            self.add("app", a, {"sip": {"listen": [f"udp:{ip}:5080"]},
                                "app": {"routers": [f"{netlab.DATA_NET}.0/24"],
                                        "rtp_address": ip, "realtime_priority": 0,
                                # the churn load sends no RTP: calls are not hung up for it
                                "rtp_peer_timeout_s": 60,
                                        "voicemail_dir": os.path.join(lab.workdir, f"vm-{a}")}})
            self.start(a)
        for r in routers:
            ip = lab.hosts[r].data_ip
            self.add("router", r, {
                "sip": {"listen": [f"udp:{ip}:5060"]},
                "router": {
                    "domain": DOMAIN, "aliases": [ANYCAST, ip], "api": f"{svc}:8080",
                    "api_token": API_INTERNAL, "nonce_secret": NONCE_SECRET,
                    "apps": [f"sip:{lab.hosts[a].data_ip}:5080" for a in app_hosts],
                    "media": {"relays": [f"udp:{relay_address[m]}:2223"
                                         for m in relay_hosts],
                              "mode": "always" if relay_hosts else "never"},
                    "dialplan": {"100": {"action": "Playback", "sound": "welcome",
                                         "sound_locale": "en", "public": True},
                                 ECHO: {"action": "Echo"}}},
                "store": {"backend": "redis", "redis": {"host": svc, "port": 6379}}})
            self.start(r)
        for e in [n for n in lab.hosts if n.startswith("e")]:
            ip = lab.hosts[e].data_ip
            self.add("edge", e, {
                "sip": {"listen": [f"udp:{ANYCAST}:5060"], "free_bind": True},
                "edge": {"routers": [f"sip:{lab.hosts[r].data_ip}:5060" for r in routers],
                         "flow_secret": FLOW_SECRET, "egress_addresses": [ip],
                         "rate_limit": {"exempt": ["10.77.0.0/16"]}}})
            self.start(e)
            self.watch(e)
        wait_until(lambda: len(lab.anycast_paths()) == len(self.names("edge")), 15,
                   "every edge announced")

    def watch(self, edge: str) -> None:
        """The anycast sidecar of an edge: withdraws the address while the edge is not ready."""
        inst = self.instances[edge]
        self.watchers[edge] = self.lab.spawn(edge, f"watch-{edge}", [
            sys.executable, os.path.join(HERE, "anycast_watch.py"),
            "--url", f"http://{inst.ip}:{CONTROL_PORT['edge']}/readyz",
            "--address", f"{ANYCAST}/32", "--interval", "0.1"])

    def watch_relay(self, relay: str) -> None:
        """The address sidecar of a relay: keeps the addresses it serves on its loopback."""
        inst = self.instances[relay]
        self.watchers[relay] = self.lab.spawn(relay, f"watch-{relay}", [
            sys.executable, os.path.join(HERE, "media_watch.py"),
            "--url", f"http://{inst.ip}:{CONTROL_PORT['media']}/rpc", "--token", TOKEN,
            "--prefix", f"{MEDIA_NET}.", "--interval", "0.1"])

    def provision(self, users: Sequence[Tuple[str, str]]) -> None:
        svc = self.lab.hosts["svc"].data_ip
        st, doc = self.http("svc", "POST", (svc, 8080), "/v1/domains", {"name": DOMAIN},
                            token=API_TOKEN)
        if st not in (201, 409):
            raise RuntimeError(f"POST /v1/domains: {st} {doc}")
        for u, p in users:
            st, doc = self.http("svc", "POST", (svc, 8080), "/v1/subscribers",
                                {"domain": DOMAIN, "username": u, "password": p},
                                token=API_TOKEN)
            if st not in (201, 409):
                raise RuntimeError(f"POST /v1/subscribers {u}: {st} {doc}")


def bring_up(binary: str, prefix: str, relay_takeover: bool = False) -> Tuple[Lab, Cluster]:
    """A new lab in a new work directory with the whole platform up (Cluster.up); the lab is
    destroyed again when that fails."""
    lab = Lab(tempfile.mkdtemp(prefix=prefix))
    try:
        lab.build()
        lab.start_routing(relays=relay_takeover)
        cluster = Cluster(lab, binary)
        cluster.up(relay_takeover=relay_takeover)
    except BaseException:
        lab.destroy()
        raise
    return lab, cluster


# -- sipp in a caller namespace ----------------------------------------------------------------

def write_auth_csv(path: str, users: Sequence[Tuple[str, str]]) -> str:
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for u, p in users:
            f.write(f"{u};[authentication username={u} password={p}]\n")
    return path


@dataclass
class SippRun:
    proc: subprocess.Popen
    stat: str
    name: str

    def wait(self, timeout: float) -> Dict[str, int]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        return read_sipp_totals(self.stat)


def read_sipp_totals(stat_path: str) -> Dict[str, int]:
    """Cumulative counters of the last line of a sipp -trace_stat file."""
    try:
        with open(stat_path) as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head, last = lines[0].split(";"), lines[-1].split(";")
    out = {}
    for k, v in zip(head, last):
        if k.endswith("(C)"):
            try:
                out[k[:-3]] = int(v)
            except ValueError:
                pass
    return out


def sipp(cluster: Cluster, host: str, name: str, scenario: str, *, remote: str = "",
         port: int = 5060, calls: int = 0, rate: float = 0, duration_ms: int = 0,
         keys: Optional[Dict[str, str]] = None, extra: Sequence[str] = (),
         timeout_s: int = 0) -> SippRun:
    lab = cluster.lab
    ip = lab.hosts[host].p2p_ip
    stat = os.path.join(lab.workdir, f"{name}_stat.csv")
    argv = [SIPP, "-sf", os.path.join(SCENARIOS, scenario)]
    if remote:
        argv.append(remote)
    argv += ["-i", ip, "-p", str(port), "-t", "u1", "-nostdin", "-trace_stat", "-stf", stat,
             "-fd", "1", "-trace_err", "-error_file",
             os.path.join(lab.workdir, f"{name}_errors.log"),
             "-default_behaviors", "all,-abortunexp", "-max_recv_loops", "10000",
             "-deadcall_wait", "2000"]
    if calls:
        argv += ["-m", str(calls)]
    if rate:
        argv += ["-r", str(rate), "-rp", "1000"]
    if duration_ms:
        argv += ["-d", str(duration_ms)]
    if timeout_s:
        argv += ["-timeout", f"{timeout_s}s", "-timeout_error"]
    for k, v in (keys or {}).items():
        argv += ["-key", k, str(v)]
    argv += list(extra)
    p = lab.spawn(host, name, argv)
    return SippRun(p, stat, name)


def register_callee(cluster: Cluster, host: str, user: Tuple[str, str], port: int) -> None:
    csv = write_auth_csv(os.path.join(cluster.lab.workdir, f"{user[0]}.csv"), [user])
    r = sipp(cluster, host, f"reg-{user[0]}", "router_uac_register.xml",
             remote=f"{ANYCAST}:5060", port=port, calls=1, rate=1, timeout_s=20,
             keys={"domain": DOMAIN}, extra=["-inf", csv, "-auth_uri", DOMAIN])
    totals = r.wait(30)
    if totals.get("SuccessfulCall") != 1:
        raise RuntimeError(f"registration of {user[0]} failed: {totals}")


# -- the callers and the callee of the cluster's tests ------------------------------------------

CALLEE = ("callee", "pw-callee-Secret")
ECHO = "101"  # the service number the apps answer with Echo (until the caller's BYE)


def callers(n: int) -> List[Tuple[str, str]]:
    return [(f"user{i:04d}", f"pw-user{i:04d}-Secret") for i in range(n)]


def callers_and_callee(cluster: Cluster, n: int, router_name: str,
                       uas_extra: Sequence[str] = ()) -> Tuple[SippRun, str]:
    """Provisions n callers and CALLEE, registers CALLEE from c2 and starts its sipp UAS there
    (router_uas_callee.xml); returns the UAS and the callers' authentication CSV."""
    users = callers(n)
    cluster.provision(users + [CALLEE])
    register_callee(cluster, "c2", CALLEE, 5062)
    uas = sipp(cluster, "c2", "uas", "router_uas_callee.xml", port=5062,
               keys={"router_name": router_name}, extra=list(uas_extra))
    return uas, write_auth_csv(os.path.join(cluster.lab.workdir, "callers.csv"), users)


def place_calls(cluster: Cluster, name: str, csv: str, calls: int, rate: int, duration_ms: int,
                timeout_s: int, port: int = 5070, extra: Sequence[str] = (),
                callee: str = CALLEE[0]):
    """Authenticated calls from c1 to `callee` (CALLEE, or a service number such as ECHO, which
    an app answers) through the anycast address (sipp, in the background): the run's wait()
    gives its totals."""
    return sipp(cluster, "c1", name, "router_uac_call_auth.xml", remote=f"{ANYCAST}:5060",
                port=port, calls=calls, rate=rate, duration_ms=duration_ms, timeout_s=timeout_s,
                keys={"domain": DOMAIN, "callee": callee},
                extra=["-inf", csv, "-auth_uri", f"{callee}@{DOMAIN}", "-recv_timeout",
                       "10000", *extra])
