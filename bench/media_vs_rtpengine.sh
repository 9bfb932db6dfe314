#!/usr/bin/env bash
# evosip media vs Debian rtpengine (userspace forwarding), same RTP load, side by side.
#
#   bench/media_vs_rtpengine.sh                   # default: 10k/25k/50k pps + saturation (~2.5 min)
#   QUICK=1 bench/media_vs_rtpengine.sh           # shorter steps (~1 min)
#   EVOSIP_BIN=build-bench/evosip REQUIRE_BOTH=1 bench/media_vs_rtpengine.sh
#
# Load: bench/tools/rtp_load (C++, built as the `rtp_load` target) sets up STREAMS calls on the
# relay over the ng protocol (offer + answer, like Kamailio's rtpengine module), then sends
# 172-byte RTP packets (12-byte header + 160 bytes PCMU) at a fixed total rate spread evenly
# over the streams with sendmmsg from one caller socket to the relay's caller-side ports; the
# relay forwards each stream to its own callee socket (epoll + recvmmsg). The payload carries
# the send time (CLOCK_MONOTONIC); added latency = kernel receive timestamp - send time. The
# calls are deleted at the end of each step. Streams = rate / 50 (20 ms G.711 ptime).
# Relays, both on 127.0.0.1 with the same port range size, one forwarding thread each:
#   evosip   `evosip media` with workers: 1 (services/media, config generated here)
#   rtpengine  rtpengine --table=-1 (no kernel forwarding) --num-threads=1 --delete-delay=0
# At each rate the relays are loaded one after the other. Printed per relay and step:
# forwarded packets per relay CPU-second (utime+stime of all its threads from /proc, over the
# measured window only, read by rtp_load), loss, added latency p50/p99/max, and the ratios
# evosip/rtpengine. A --direct run (no relay) first gives the tool's own latency floor, and at the
# highest rate each round also loads a reflector (rtp_load --reflect: one socket, blocking
# recvmmsg + sendmmsg, no relay logic) on the relay's CPU with the relays' scheduling: the floor
# of any relay there (wake-up of that CPU, scheduling, the second trip through the UDP stack).
# Targets: >= 1.5x rtpengine's packets per CPU-second, 0 loss below saturation, p99 added
# latency < 200 us at 50k pps.
#
# Env: EVOSIP_BIN (default build/evosip; skipped with a message when missing or without a
# `media` subcommand, or fails with REQUIRE_BOTH=1), RTPENGINE_BIN (default rtpengine in PATH),
# RTP_LOAD (default build-bench/bench/rtp_load, then build/bench/rtp_load), RATES="10000,...",
# SAT_RATE (saturation step, pps; 0 = none; default 150000), STEP_SECONDS (measured seconds per
# step), WARMUP_SECONDS, CALLEE_SOCKETS (receive sockets, 0 = one per stream) and
# SAT_CALLEE_SOCKETS (16) for the saturation step, PORT_MIN/PORT_MAX (relay port range,
# default 10000-29999, the same for both; keep it below the ephemeral range), RESULTS_FILE (default
# bench/results/media_vs_rtpengine.txt; empty = do not write), REPEAT (rounds, default 1:
# packets/CPU-s pooled over all rounds, latency and saturation figures are medians), PIN (1 by
# default on >= 2 CPUs: relay on the last CPU, rtp_load on the others), REFLECTOR (1 by default;
# 0 = no reflector step), KEEP=1 keeps the work dir.
# Exit status non-zero when a relay failed to run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export BENCH_ROOT="$ROOT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 - "$@" <<'PY'
import json, os, shutil, subprocess, sys, time

ROOT = os.environ["BENCH_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402  (stdlib-only helpers shared with the integration tests)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import fmt, loadavg, memory_kb  # noqa: E402

QUICK = os.environ.get("QUICK", "") == "1"
RATES = [int(r) for r in os.environ.get("RATES", "10000,25000,50000").split(",") if r]
SAT_RATE = int(os.environ.get("SAT_RATE", "150000"))
STEP = float(os.environ.get("STEP_SECONDS", "3" if QUICK else "8"))
WARMUP = float(os.environ.get("WARMUP_SECONDS", "0.5" if QUICK else "1"))
PORT_MIN = int(os.environ.get("PORT_MIN", "10000"))
PORT_MAX = int(os.environ.get("PORT_MAX", "29999"))
EVOSIP_BIN = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
RTPENGINE_BIN = os.environ.get("RTPENGINE_BIN", shutil.which("rtpengine") or "/usr/bin/rtpengine")
REQUIRE_BOTH = os.environ.get("REQUIRE_BOTH", "") == "1"
RESULTS_FILE = os.environ.get("RESULTS_FILE",
                              os.path.join(ROOT, "bench", "results", "media_vs_rtpengine.txt"))
PPS_PER_STREAM = 50
REPEAT = max(1, int(os.environ.get("REPEAT", "1")))
# RT=N: both relays' forwarding threads run SCHED_FIFO priority N (evosip media.realtime_priority,
# rtpengine --scheduling=fifo --priority=N), so other processes on the relay's CPU cannot hold a
# packet back for a scheduler slice, and rtp_load runs SCHED_FIFO N-1 (its receive wake-ups are
# part of every latency it measures). Needs CAP_SYS_NICE. 0 (default): the normal policy.
RT = int(os.environ.get("RT", "0"))
# PIN=1 (default with >= 2 CPUs): the relay runs on the last CPU, rtp_load on the others, so
# the generator never competes with the relay for its core (other jobs still can).
PIN = os.environ.get("PIN", "1" if (os.cpu_count() or 1) >= 2 else "0") == "1"
NCPU = os.cpu_count() or 1
RELAY_CPUS = [str(NCPU - 1)] if PIN else []
TOOL_CPUS = [",".join(str(c) for c in range(NCPU - 1))] if PIN else []


def pinned(argv, cpus):
    """taskset execs the program: the PID stays the program's."""
    return (["taskset", "-c", cpus[0]] + argv) if cpus else argv
# REFLECTOR=1 (default): each round also loads the smallest possible relay (rtp_load --reflect)
# at the highest rate, pinned and scheduled like the relays: the machine's floor for the latency.
REFLECTOR = os.environ.get("REFLECTOR", "1") == "1"
# Receive sockets on the callee side: 0 = one per stream (below saturation, by default); the
# saturation step points the streams at 16 sockets so the receiver costs less (the relay does
# the same work: it still sends every stream from its own port).
CALLEE_SOCKETS = int(os.environ.get("CALLEE_SOCKETS", "0"))
SAT_CALLEE_SOCKETS = int(os.environ.get("SAT_CALLEE_SOCKETS", "16"))


def find_rtp_load():
    env = os.environ.get("RTP_LOAD", "")
    if env:
        return env
    for d in ("build-bench", "build"):
        p = os.path.join(ROOT, d, "bench", "rtp_load")
        if os.access(p, os.X_OK):
            return p
    return ""


RTP_LOAD = find_rtp_load()
OUT = []


def say(line=""):
    print(line, flush=True)
    OUT.append(line)


def ng_ping(port, timeout=0.5):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(b"bench_ping d7:command4:pinge", (h.HOST, port))
        data = s.recv(2000)
        return data.startswith(b"bench_ping ") and b"pong" in data
    except OSError:
        return False
    finally:
        s.close()


def start_rtpengine(work, cleanup):
    ng = h.free_port()
    argv = [RTPENGINE_BIN, "--config-file=none", "--foreground", "--log-stderr",
            "--table=-1", f"--interface={h.HOST}", f"--listen-ng={h.HOST}:{ng}",
            f"--port-min={PORT_MIN}", f"--port-max={PORT_MAX}", "--num-threads=1",
            "--delete-delay=0", "--timeout=60", "--log-level=4",
            *([f"--scheduling=fifo", f"--priority={RT}"] if RT > 0 else []),
            f"--pidfile={os.path.join(work, 'rtpengine.pid')}"]
    proc = cleanup.add(h.Process("rtpengine", pinned(argv, RELAY_CPUS), work))
    h.wait_until(lambda: ng_ping(ng, 0.2), 10, "rtpengine answering ng ping", proc=proc)
    return proc, ng


def evosip_has_media():
    if not (os.path.isfile(EVOSIP_BIN) and os.access(EVOSIP_BIN, os.X_OK)):
        return False, f"binary {EVOSIP_BIN} not built yet (set EVOSIP_BIN)"
    try:
        roles = h.evosip_roles(EVOSIP_BIN)
    except Exception as e:  # noqa: BLE001
        return False, f"`{EVOSIP_BIN} --help` failed: {e}"
    if "media" not in roles:
        return False, f"{EVOSIP_BIN} has no `media` subcommand yet (roles: {sorted(roles)})"
    return True, ""


def start_evosip(work, cleanup):
    ng, ctl = h.free_port(), h.free_port()
    cfg = {
        "media": {"ng_listen": f"{h.HOST}:{ng}", "address": h.HOST, "port_min": PORT_MIN,
                  "port_max": PORT_MAX, "timeout_s": 60, "max_sessions": 0},
        "control": {"listen": f"{h.HOST}:{ctl}", "token": ""},
        "workers": 1,
        "log": {"level": "warn", "format": "text"},
    }
    if RT > 0:
        cfg["media"]["realtime_priority"] = RT
    path = h.write_yaml(os.path.join(work, "media.yaml"), cfg)
    proc = cleanup.add(h.Process("evosip-media",
                                 pinned([EVOSIP_BIN, "media", "--config", path], RELAY_CPUS), work))
    h.wait_until(lambda: ng_ping(ng, 0.2), 15, "evosip media answering ng ping", proc=proc)
    return proc, ng


def run_load(args, timeout):
    # With RT the generator runs SCHED_FIFO too (below the relays), so that the latency it
    # reports is the relay's, not its own wake-ups behind other processes on its CPU.
    tool = (["chrt", "-f", str(max(1, RT - 1))] if RT > 0 else []) + [RTP_LOAD]
    res = subprocess.run(pinned(tool + args, TOOL_CPUS), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=timeout)
    line = res.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        doc = json.loads(line[-1]) if line else None
    except ValueError:
        doc = None
    if doc is None:
        raise RuntimeError(f"rtp_load {' '.join(args)} rc={res.returncode}: "
                           f"{res.stderr.decode('utf-8', 'replace')[-1500:]}")
    doc["rc"] = res.returncode
    return doc


def step(side, proc, ng, rate, label):
    streams = max(1, rate // PPS_PER_STREAM)
    callee = SAT_CALLEE_SOCKETS if label == "sat" else CALLEE_SOCKETS
    args = ["--ng", f"{h.HOST}:{ng}", "--streams", str(streams), "--rate", str(rate),
            "--duration", str(STEP), "--warmup", str(WARMUP), "--cpu-pid", str(proc.pid),
            "--callee-sockets", str(min(callee, streams)), "--label", f"{side}@{label}"]
    r = run_load(args, timeout=STEP + WARMUP + 120)
    r["side"], r["step"], r["alive"] = side, label, proc.alive()
    r["rss_kb"] = memory_kb(proc.pid)[0] if proc.alive() else 0
    r["generator_limited"] = r["achieved_pps"] < 0.97 * rate
    return r


def reflector_step(rate):
    """The machine's floor for a relay on the relay's CPU: rtp_load --reflect (one socket,
    blocking recvmmsg, sendmmsg; no relay logic) pinned and scheduled like the relays, loaded
    like them. What it adds is the cost of the crossing itself: the wake-up of the relay's CPU,
    scheduling there, and the second trip through the UDP stack."""
    port = h.free_port()
    dur = STEP + WARMUP + 3
    argv = (["chrt", "-f", str(RT)] if RT > 0 else []) + [RTP_LOAD, "--reflect",
                                                          f"{h.HOST}:{port}", "--duration", str(dur)]
    refl = subprocess.Popen(pinned(argv, RELAY_CPUS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        streams = max(1, rate // PPS_PER_STREAM)
        r = run_load(["--direct", "--via", f"{h.HOST}:{port}", "--streams", str(streams),
                      "--rate", str(rate), "--duration", str(STEP), "--warmup", str(WARMUP),
                      "--cpu-pid", str(refl.pid), "--label", "reflector"], timeout=dur + 60)
    finally:
        try:
            refl.wait(timeout=dur + 10)
        except subprocess.TimeoutExpired:
            refl.kill()
            refl.wait()
    r["side"], r["step"], r["alive"], r["rss_kb"] = "reflector", str(rate), True, 0
    r["generator_limited"] = r["achieved_pps"] < 0.97 * rate
    return r


def median(values):
    v = sorted(x for x in values if x is not None)
    return v[len(v) // 2] if v else None


def show(r):
    say(f"{r['side']:9} {r['step']:>6} {r['rate']:>7.0f} {r['streams']:>6} {r['achieved_pps']:>7.0f} "
        f"{r['forwarded_pps']:>7.0f} {r['lost']:>7} {r['loss_pct']:>7.3f} {r['relay_cpu_s']:>6.2f} "
        f"{r['pkts_per_relay_cpu_s']:>9.0f} {r['p50_us']:>7.1f} {r['p99_us']:>8.1f} "
        f"{r['max_us']:>8.1f} {r['rss_kb'] / 1024:>6.1f}"
        + (" GENERATOR-LIMITED" if r["generator_limited"] else "")
        + (f" ng_errors={r['ng_errors']} ({r['first_error']})" if r["ng_errors"] else "")
        + (f" delete_errors={r['delete_errors']}" if r["delete_errors"] else ""))


def main():
    t_start = time.monotonic()
    if not RTP_LOAD:
        print("rtp_load not built: cmake --build build-bench --target rtp_load (or set RTP_LOAD)",
              file=sys.stderr)
        return 2
    if not os.access(RTPENGINE_BIN, os.X_OK):
        print(f"rtpengine not found at {RTPENGINE_BIN} (apt-get install rtpengine-daemon, "
              "or set RTPENGINE_BIN)", file=sys.stderr)
        return 2
    work = h.make_tmpdir("evosip-bench-media-")
    cleanup = h.Cleanup()
    if os.environ.get("KEEP") != "1":
        cleanup.dirs.append(work)
    failed, skipped = [], []
    results = {"rtpengine": [], "evosip": [], "reflector": []}
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                                ).stdout.decode().strip() or "?"
        say(f"# bench/media_vs_rtpengine.sh  commit {commit}  {time.strftime('%Y-%m-%d %H:%M:%S')}"
            f"  load average at start {loadavg()}  cores {os.cpu_count()}")
        say(f"# rates {RATES} pps + saturation {SAT_RATE or 'none'}, streams = rate/{PPS_PER_STREAM}, "
            f"{STEP:g} s measured (+{WARMUP:g} s warm-up) per step, 172-byte RTP, one forwarding "
            f"thread per relay, ports {PORT_MIN}-{PORT_MAX}, 127.0.0.1, scheduling "
            f"{'SCHED_FIFO ' + str(RT) + ' for both relays (RT)' if RT > 0 else 'normal'}")
        say(f"# rtp_load {RTP_LOAD}; rtpengine {RTPENGINE_BIN}; evosip {EVOSIP_BIN}")
        say(f"# {REPEAT} round(s); " + (f"relay pinned to CPU {RELAY_CPUS[0]}, rtp_load to CPU(s) "
                                        f"{TOOL_CPUS[0]}" if PIN else "no CPU pinning"))
        la = float(loadavg().split()[0])
        if la > 0.5:
            say(f"# WARNING: load average {la:.2f} before the run: other jobs share the CPUs; "
                "latency and saturation figures are not trustworthy (CPU per packet less so)")
        busy = [p for p in h._proc_net_ports("udp", False) if PORT_MIN <= p <= PORT_MAX]
        if busy:
            say(f"# WARNING: {len(busy)} UDP ports in {PORT_MIN}-{PORT_MAX} are bound by other "
                "processes: set PORT_MIN/PORT_MAX to a free range (evosip splits its range between "
                "workers and answers 'Ran out of ports' when its part is taken)")
        floor = run_load(["--direct", "--streams", str(max(RATES) // PPS_PER_STREAM), "--rate",
                          str(max(RATES)), "--duration", str(min(STEP, 3)), "--warmup", "0.5",
                          "--label", "direct"], timeout=60)
        say(f"# tool floor (--direct, no relay, {floor['rate']:.0f} pps over {floor['streams']} "
            f"streams): p50 {floor['p50_us']:.1f} us, p99 {floor['p99_us']:.1f} us, max "
            f"{floor['max_us']:.1f} us, lost {floor['lost']}, tool CPU {floor['tool_cpu_s']:.2f} s "
            f"for {floor['duration_s']:.1f} s")
        sides = {}
        try:
            sides["rtpengine"] = start_rtpengine(work, cleanup)
        except Exception as e:  # noqa: BLE001
            say(f"rtpengine: FAILED TO START: {e}")
            failed.append("rtpengine")
        ok, why = evosip_has_media()
        if ok:
            try:
                sides["evosip"] = start_evosip(work, cleanup)
            except Exception as e:  # noqa: BLE001
                say(f"evosip: FAILED TO START: {e}")
                failed.append("evosip")
        else:
            say(f"evosip: SKIPPED - {why}")
            skipped.append("evosip")
            if REQUIRE_BOTH:
                failed.append("evosip")
        say(f"{'relay':9} {'step':>6} {'rate':>7} {'strms':>6} {'sent/s':>7} {'fwd/s':>7} "
            f"{'lost':>7} {'loss%':>7} {'cpu_s':>6} {'pkt/cpu_s':>9} {'p50us':>7} {'p99us':>8} "
            f"{'maxus':>8} {'RSS_MB':>6}")
        steps = [(r, str(r)) for r in RATES] + ([(SAT_RATE, "sat")] if SAT_RATE else [])
        dead = set()
        # every round loads the relays one after the other at each rate; odd rounds reverse
        # the order so neither relay always runs right after the other's step
        for rnd, (rate, label) in [(i, st) for i in range(REPEAT) for st in steps]:
            order = list(sides.items())
            if rnd % 2 == 1:
                order.reverse()
            if label != "sat" and rate == max(RATES) and REFLECTOR:
                try:
                    r = reflector_step(rate)
                    results["reflector"].append(r)
                    show(r)
                except Exception as e:  # noqa: BLE001
                    say(f"reflector {label:>6} FAILED: {e}")
                time.sleep(0.5)
            for side, (proc, ng) in order:
                if side in dead:
                    continue
                try:
                    r = step(side, proc, ng, rate, label)
                except Exception as e:  # noqa: BLE001
                    say(f"{side:9} {label:>6} FAILED: {e}")
                    failed.append(side)
                    dead.add(side)
                    continue
                results[side].append(r)
                show(r)
                if not r["alive"]:
                    say(f"{side}: relay died at {rate} pps\n{proc.tail()}")
                    failed.append(side)
                    dead.add(side)
                time.sleep(0.5)
        say()
        summary = {}
        refl = median([r["p99_us"] for r in results["reflector"]])
        if refl is not None:
            say(f"reflector (the floor: the smallest relay, on the relay's CPU with its scheduling) "
                f"at {max(RATES)} pps (median of {len(results['reflector'])}): p50 "
                f"{median([r['p50_us'] for r in results['reflector']]):.1f} us p99 {refl:.1f} us, "
                f"{fmt(median([r['pkts_per_relay_cpu_s'] for r in results['reflector']]), '{:.0f}')}"
                " pkt/CPU-s")
        for side, rs in results.items():
            if not rs or side == "reflector":
                continue
            below = [r for r in rs if r["step"] != "sat"]
            sat = [r for r in rs if r["step"] == "sat"]
            pk = sum(r["received"] for r in below)
            cpu = sum(r["relay_cpu_s"] for r in below)
            lat_rate = 50000 if any(int(r["rate"]) == 50000 for r in below) else \
                (int(max(r["rate"] for r in below)) if below else 0)
            at = [r for r in below if int(r["rate"]) == lat_rate]
            s = summary[side] = {
                "ppcs": pk / cpu if cpu > 0 else None,
                "lost_below": sum(r["lost"] for r in below),
                "sent_below": sum(r["sent"] for r in below),
                "p50": median([r["p50_us"] for r in at]), "p99": median([r["p99_us"] for r in at]),
                "at_rate": lat_rate,
                "sat_fwd": median([r["forwarded_pps"] for r in sat]),
                "sat_loss": median([r["loss_pct"] for r in sat]),
                "sat_ppcs": median([r["pkts_per_relay_cpu_s"] for r in sat]),
                "rss_mb": max(r["rss_kb"] for r in rs) / 1024,
                "gen_limited": any(r["generator_limited"] for r in below),
                "sat_limited": any(r["generator_limited"] for r in sat),
            }
            say(f"{side:9} forwarded packets per relay CPU-s {fmt(s['ppcs'], '{:.0f}')} (steps "
                f"{','.join(sorted(set(r['step'] for r in below), key=int))} x{REPEAT} pooled), lost {s['lost_below']} of "
                f"{s['sent_below']} below saturation, added latency at {s['at_rate']} pps (median of {REPEAT}) p50 "
                f"{fmt(s['p50'])} us p99 {fmt(s['p99'])} us"
                + (f"; saturation step: {s['sat_fwd']:.0f} pps forwarded, loss {s['sat_loss']:.2f} %,"
                   f" {s['sat_ppcs']:.0f} pkt/CPU-s" if s["sat_fwd"] is not None else "")
                + f"; RSS {s['rss_mb']:.1f} MB"
                + (" (some steps GENERATOR-LIMITED: rates not reached)" if s["gen_limited"] else ""))
        if "rtpengine" in summary and "evosip" in summary:
            e, k = summary["evosip"], summary["rtpengine"]

            def ratio(a, b):
                return "-" if not a or not b else f"{a / b:.2f}"
            sat_ratio = ratio(e["sat_fwd"], k["sat_fwd"])
            if e["sat_limited"] or k["sat_limited"]:
                sat_ratio = "n/a (generator-limited: the relays were not saturated)"
            elif sat_ratio != "-":
                sat_ratio += "x"
            say(f"ratio evosip/rtpengine: packets/CPU-s {ratio(e['ppcs'], k['ppcs'])}x, "
                f"p50 {ratio(e['p50'], k['p50'])}x, p99 {ratio(e['p99'], k['p99'])}x, "
                f"saturation throughput {sat_ratio}, "
                f"RSS {ratio(e['rss_mb'], k['rss_mb'])}x")
            t1 = bool(e["ppcs"] and k["ppcs"] and e["ppcs"] >= 1.5 * k["ppcs"])
            t2 = e["lost_below"] == 0
            t3 = e["p99"] is not None and e["at_rate"] == 50000 and e["p99"] < 200
            say(f"target evosip >= 1.5x rtpengine packets per CPU-second: {'MET' if t1 else 'NOT MET'}")
            say(f"target evosip 0 loss below saturation: {'MET' if t2 else 'NOT MET'}")
            say(f"target evosip p99 added latency < 200 us at 50k pps: {'MET' if t3 else 'NOT MET'}"
                f" (tool floor p99 {floor['p99_us']:.1f} us"
                + (f", reflector p99 {refl:.1f} us" if refl is not None else "") + ")")
        elif skipped:
            say("ratios: n/a (evosip side skipped)")
    finally:
        cleanup.stop_all()
        if os.environ.get("KEEP") == "1":
            print(f"work dir kept: {work}")
    say(f"# total {time.monotonic() - t_start:.0f} s, load average at end {loadavg()}")
    if RESULTS_FILE:
        with open(RESULTS_FILE, "w") as f:
            f.write("\n".join(OUT) + "\n")
        print(f"# written to {RESULTS_FILE}")
    if failed:
        print(f"FAILED relays: {sorted(set(failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
PY
