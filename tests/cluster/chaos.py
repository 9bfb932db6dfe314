#!/usr/bin/env python3
"""Churn under load on the namespace cluster: what callers see while instances restart and die.

    sudo EVOSIP_BIN=$PWD/build/evosip python3 tests/cluster/chaos.py [--rate 100] [--call-s 5]
    make chaos

For each tier (edge, router, media) under `--rate` calls/s of `--call-s` s calls
(authenticated, record-routed, media anchored, through the anycast address):
  1. a rolling restart: SIGTERM each instance in turn, wait until it has exited, start it
     again, wait until it is ready;
  2. a SIGKILL of one instance, restarted once the load step is over;
  3. a partition: one instance's data leg off the network for `--cut-s` s, then back (an edge
     keeps its link to the callers: it must withdraw its anycast route while it reaches no
     router, and announce it again once healed; a relay that takes calls over must fence
     itself, and stand by once healed while its peer holds its address).
`--steps restart,kill,cut` picks the steps (e.g. `--tiers media --steps cut`).
Printed per step: calls placed, failed, and the exit codes of the drained instances; for the
edge kill and cut, the time until the core router stopped sending to that edge; for the relay
kill and cut, the media gap of `--probes` calls carrying RTP (echoed by the callee) that were
anchored on the victim, and after the cut's heal how many hosts route its address. At the end:
the registrations in Redis against those after the bring-up, and per instance its evosip
processes and UDP sockets (`ss` in its namespace) against those after the bring-up. The exit status
is non-zero when a rolling restart failed a call or an instance did not exit 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import media_probe  # noqa: E402
import netlab  # noqa: E402
from cluster import (ANYCAST, CALLEE, ECHO, Cluster, callers_and_callee,  # noqa: E402
                     place_calls)

CALLEE_USER = CALLEE[0]

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def bindings(lab) -> list:
    """The address-of-record keys of the location store in Redis (registrations)."""
    svc = lab.hosts["svc"].data_ip
    out = lab.nsexec("svc", "redis-cli", "-h", svc, "--scan", "--pattern", "evosip:loc:*").stdout
    return sorted(out.split())


def evosip_sockets(lab, cluster) -> dict:
    """Per instance: its evosip processes and UDP sockets (ss in its namespace)."""
    seen = {}
    for name, inst in cluster.instances.items():
        out = lab.nsexec(inst.host, "ss", "-uanpH", check=False).stdout
        lines = [ln for ln in out.splitlines() if '"evosip"' in ln]
        pids = {ln.split("pid=")[1].split(",")[0] for ln in lines if "pid=" in ln}
        seen[name] = (len(pids), len(lines))
    return seen


def main() -> int:
    ap = argparse.ArgumentParser(description="churn under load on the namespace cluster")
    ap.add_argument("--rate", type=int, default=100, help="calls per second")
    ap.add_argument("--call-s", type=float, default=5.0, help="call duration")
    ap.add_argument("--tiers", default="edge,router,media",
                    help="edge, router, media, app (app: the calls go to an Echo service "
                         "number the apps answer)")
    ap.add_argument("--cut-s", type=float, default=5.0, help="how long a partition lasts")
    ap.add_argument("--steps", default="restart,kill,cut",
                    help="which steps to run per tier (restart, kill, cut)")
    ap.add_argument("--probes", type=int, default=6,
                    help="media tier: calls with RTP echoed beside the load in the kill and cut "
                         "steps, to measure the media gap")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--no-takeover", action="store_true",
                    help="relays without media.state takeover (a relay's death ends its calls)")
    args = ap.parse_args()
    binary = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
    if not netlab.can_make_namespaces() or not netlab.frr_available():
        print("chaos: needs root, ip netns and FRR (apt-get install frr)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="evosip-chaos-")
    lab = netlab.Lab(work)
    bad = []
    try:
        takeover = not args.no_takeover
        lab.build()
        lab.start_routing(relays=takeover)
        cluster = Cluster(lab, binary)
        cluster.up(relay_takeover=takeover)
        _uas, csv = callers_and_callee(cluster, 200, "chaos",
                                       uas_extra=["-max_recv_loops", "100000", "-mp", "40004",
                                                  "-rtp_echo"])
        step = [0]

        def load(seconds: float, tier: str = ""):
            """Calls to the callee; for the app tier to ECHO, which the apps answer."""
            step[0] += 1
            n = int(args.rate * seconds)
            return place_calls(cluster, f"load{step[0]}", csv, n, args.rate,
                               int(args.call_s * 1000), int(seconds + args.call_s + 60),
                               port=5070 + step[0] % 20, extra=["-l", str(args.rate * 20)],
                               callee=ECHO if tier == "app" else CALLEE_USER), n

        # One second of load first: sockets made at first use (a router's ng client) are there.
        warm, _ = load(1)
        warm.wait(120)
        bindings0, sockets0 = bindings(lab), evosip_sockets(lab, cluster)
        print(f"# {args.rate} calls/s, {args.call_s:g} s calls, through {ANYCAST}; relay "
              f"takeover {'on' if takeover else 'off'}; binary {binary}", flush=True)
        def probe(victim: str, seconds: float):
            """--probes calls of `seconds` beside the load, with RTP echoed by the callee: the
            streams of those anchored on the victim relay (media tier only)."""
            step[0] += 1
            run = place_calls(cluster, f"probe{step[0]}", csv, args.probes, args.probes,
                              int(seconds * 1000), int(seconds + 60), port=5090 + step[0] % 10,
                              extra=["-cid_str", "probe-%u-%p@%s"])
            relays = cluster.names("media")

            def anchored():
                return [c for m in relays for c in cluster.rpc(m, "media.list")["calls"]
                        if c.startswith("probe-")]
            netlab.wait_until(lambda: len(anchored()) == args.probes, 15, "probe calls up")
            mine = [c for c in cluster.rpc(victim, "media.list")["calls"]
                    if c.startswith("probe-")]
            return run, media_probe.echo_streams(cluster, victim, mine)

        def gaps(streams, since: float) -> str:
            g = [s.gap_after(since) for s in streams]
            return f"{max(g) * 1000:.0f} ms" if g else "no probe call on it"

        def rolling_restart(tier: str, names) -> None:
            run, n = load(len(names) * 8 + 4, tier)
            time.sleep(2)
            codes = []
            for name in names:
                t0 = time.monotonic()
                cluster.signal(name, signal.SIGTERM)
                codes.append(cluster.instances[name].proc.wait(timeout=120))
                drained = time.monotonic() - t0
                cluster.start(name)
                print(f"  {tier} {name}: drained and exited {codes[-1]} in {drained:.1f} s, "
                      f"ready again", flush=True)
                time.sleep(2)
            totals = run.wait(600)
            failed = totals.get("FailedCall", -1)
            print(f"{tier:6} rolling restart: {n} calls, {failed} failed, exit codes {codes}",
                  flush=True)
            if failed != 0 or any(c != 0 for c in codes):
                bad.append(f"{tier} rolling restart")

        def kill(tier: str, victim: str, paths0: int) -> None:
            probes, streams = probe(victim, 20) if tier == "media" else (None, [])
            run, n = load(12, tier)
            time.sleep(4)
            t0 = time.monotonic()
            cluster.signal(victim, signal.SIGKILL)
            extra = ""
            if tier == "edge":
                netlab.wait_until(lambda: len(lab.anycast_paths()) < paths0, 10, "withdrawal")
                extra = f", anycast converged in {time.monotonic() - t0:.3f} s"
            if probes is not None:
                time.sleep(5)
                media_probe.close(streams)
                failed = probes.wait(120).get("FailedCall", -1)
                extra = (f", media gap of its calls {gaps(streams, t0)} ({len(streams)} probe "
                         f"calls with RTP, {failed} of {args.probes} failed)")
            totals = run.wait(600)
            cluster.start(victim)
            if tier == "edge":
                netlab.wait_until(lambda: len(lab.anycast_paths()) == paths0, 10,
                                  "re-announce")
            print(f"{tier:6} SIGKILL {victim}: {n} calls, {totals.get('FailedCall', -1)} failed"
                  f"{extra}", flush=True)

        def cut(tier: str, victim: str, paths0: int) -> None:
            if tier == "media" and takeover:
                # The victim's own address back from the peer that took it over, if it did.
                netlab.wait_until(lambda: victim in [x["instance"] for x in cluster.rpc(
                    victim, "instance.status")["served"]], 30, f"{victim} serving")
            probes, streams = probe(victim, 25) if tier == "media" else (None, [])
            run, n = load(12, tier)
            time.sleep(4)
            t0 = time.monotonic()
            lab.cut(victim)
            extra = ""
            try:
                if tier == "edge":
                    netlab.wait_until(lambda: len(lab.anycast_paths()) < paths0, 10,
                                      "withdrawal")
                    extra = f", anycast withdrawn in {time.monotonic() - t0:.2f} s"
                time.sleep(max(0.0, args.cut_s - (time.monotonic() - t0)))
            finally:
                lab.heal(victim)
            t1 = time.monotonic()
            if tier == "edge":
                netlab.wait_until(lambda: len(lab.anycast_paths()) == paths0, 10,
                                  "re-announce")
                extra += f", back {time.monotonic() - t1:.2f} s after the heal"
            if probes is not None:
                # How many hosts route the victim's address after the heal (2: split brain).
                address = cluster.instances[victim].config["media"]["address"]
                hosts = 0
                while time.monotonic() < t1 + 5:
                    hosts = max(hosts, len(lab.route_via(address)))
                    time.sleep(0.2)
                media_probe.close(streams)
                failed = probes.wait(120).get("FailedCall", -1)
                extra += (f", media gap of its calls {gaps(streams, t0)}, after the heal "
                          f"{gaps(streams, t1)}, its address routed to {hosts} host(s) after "
                          f"the heal ({len(streams)} probe calls with RTP, {failed} of "
                          f"{args.probes} failed)")
            totals = run.wait(600)
            print(f"{tier:6} cut {victim} for {args.cut_s:g} s: {n} calls, "
                  f"{totals.get('FailedCall', -1)} failed{extra}", flush=True)

        steps = set(args.steps.split(","))
        for tier in args.tiers.split(","):
            names = cluster.names(tier)
            victim = names[0]
            paths0 = len(lab.anycast_paths())
            if "restart" in steps:
                rolling_restart(tier, names)
            if "kill" in steps:
                kill(tier, victim, paths0)
            if "cut" in steps:
                cut(tier, victim, paths0)
        # Nothing lost or left behind: the registrations, one process per instance and as many
        # UDP sockets as after the bring-up (the calls have ended; relays idle).
        time.sleep(3)
        bindings1, sockets1 = bindings(lab), evosip_sockets(lab, cluster)
        lost = sorted(set(bindings0) - set(bindings1))
        leaked = {n: (sockets0.get(n), c) for n, c in sockets1.items() if c != sockets0.get(n)}
        print(f"end: {len(bindings1)} registrations ({len(lost)} lost of {len(bindings0)}); "
              f"processes and UDP sockets per instance as after the bring-up: "
              f"{'yes' if not leaked else leaked}", flush=True)
        if lost or leaked:
            bad.append("registrations lost or processes/sockets left")
    finally:
        lab.destroy()
        if not args.keep:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept: {work}")
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
