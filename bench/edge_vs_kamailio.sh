#!/usr/bin/env bash
# evosip edge vs Debian kamailio (stateless forward()), same sipp load, side by side.
#
#   bench/edge_vs_kamailio.sh            # default: rates 500..8000 c/s, 8 s per step (< 10 min)
#   QUICK=1 bench/edge_vs_kamailio.sh    # 3 short steps (< 2 min)
#
# Load: sipp uac (tests/integration/scenarios/uac_bench.xml: INVITE/100?/180/200/ACK/BYE/200,
# ACK/BYE through the proxy by Record-Route) -> proxy -> sipp uas (uas_bench.xml: uas_router.xml's
# flow, and a 200 to the edge's OPTIONS liveness probes, as a router answers them), all on
# 127.0.0.1. At each rate, kamailio and evosip are loaded one after the other (alternately).
# Printed per side: calls per proxy CPU-second (utime+stime of every process/thread of
# that proxy instance from /proc), max rate with 0 failed calls, INVITE->200 latency
# p50/p99 (sipp -trace_rtt), RSS (sum of VmRSS of its processes; also PSS, which does not
# count kamailio's shared memory once per process), and the ratios evosip/kamailio.
#
# Kamailio runs as in production: debug=0, no memory debugging, the faster of the tlsf and fm
# allocators (a short 2,000 calls/s step on each at start, printed; KAMAILIO_MEM=tlsf|fm forces
# one); its command line and the sha256 of its configuration are printed with the figures.
#
# Env: EVOSIP_BIN (default build/evosip; when missing the evosip side is skipped with a
# message, or fails with REQUIRE_BOTH=1), RATES="500,1000,...", STEP_SECONDS, CALL_MS
# (pause between ACK and BYE, default 0), WORKERS (evosip workers = kamailio children, 2),
# KEEP=1 keeps the work dir. Exit status non-zero when a side failed to run.
#
# SYSCALLS=1: after each step, a second step of SYSCALL_CALLS calls (default 6000) at the same
# rate with the proxy's system calls counted per kind (`perf stat` on the syscall tracepoints
# of all its threads and processes), printed as system calls per SIP message received (sc/msg:
# the messages the scenarios send to the proxy, 6 per call) beside calls per CPU-second, then
# per kind. The counted step is not in the CPU figures. PROFILE=1: the same extra step runs
# under `perf record -g` (999 Hz) too, and the hottest symbols are printed (PROFILE_TOP, 12).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export BENCH_ROOT="$ROOT"
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || { echo "kamailio not installed" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || true
exec python3 - "$@" <<'PY'
import hashlib, os, sys, time, signal, statistics

ROOT = os.environ["BENCH_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402  (stdlib-only helpers shared with the integration tests)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import (Profile, SyscallCount, cpu_seconds, fmt, memory_kb,  # noqa: E402
                      per_message, percentile, perf_usable, read_rtt, tree)

QUICK = os.environ.get("QUICK", "") == "1"
RATES = [int(r) for r in os.environ.get(
    "RATES", "250,1000,2000" if QUICK else "500,1000,2000,4000,8000").split(",") if r]
STEP = float(os.environ.get("STEP_SECONDS", "4" if QUICK else "8"))
CALL_MS = int(os.environ.get("CALL_MS", "0"))
WORKERS = int(os.environ.get("WORKERS", "2"))
EVOSIP_BIN = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
REQUIRE_BOTH = os.environ.get("REQUIRE_BOTH", "") == "1"
KAMAILIO_CFG = os.path.join(ROOT, "bench", "kamailio", "stateless_proxy.cfg")
KAM_MEM = os.environ.get("KAMAILIO_MEM", "auto")
SYSCALLS = os.environ.get("SYSCALLS", "") == "1"
PROFILE = os.environ.get("PROFILE", "") == "1"
PROFILE_TOP = int(os.environ.get("PROFILE_TOP", "12"))
SYSCALL_CALLS = int(os.environ.get("SYSCALL_CALLS", "6000"))


def messages_per_call():
    """SIP messages the proxy receives per call: what the uac and the uas scenarios send in a
    call (the uas's answer to a liveness probe, after its "probe" label, is not part of one)."""
    n = 0
    for name in ("uac_bench.xml", "uas_bench.xml"):
        with open(h.scenario(name)) as f:
            n += f.read().split('<label id="probe"/>')[0].count("<send")
    return n


def start_kamailio(work, cleanup, uas_uri, mem, name="kamailio"):
    port = h.free_port()
    argv = [h.KAMAILIO, "-f", KAMAILIO_CFG, "-A", f'UAS_URI="{uas_uri}"',
            "-l", f"udp:{h.HOST}:{port}", "-l", f"tcp:{h.HOST}:{port}",
            "-n", str(WORKERS), "-m", "64", "-M", "8", "-x", mem, "-DD", "-E", "-Y", work,
            "-w", work]
    proc = cleanup.add(h.Process(name, argv, work))
    h.wait_port(port, "udp", timeout=10, proc=proc)
    h.wait_until(lambda: len(tree(proc.pid)) > WORKERS, 10, "kamailio workers", proc=proc)
    return proc, port


def choose_allocator(work, cleanup, uas_uri):
    """The faster of tlsf and fm for this job: a short 2,000 calls/s step on each."""
    if KAM_MEM != "auto":
        return KAM_MEM
    figures = {}
    for mem in ("tlsf", "fm"):
        proc, port = start_kamailio(work, cleanup, uas_uri, mem, name=f"calibrate-{mem}")
        try:
            r = step(work, f"calibrate-{mem}", proc, port, 2000, 0, seconds=3)
            figures[mem] = r["cps_per_cpu"]
            if not r["clean"]:
                print(f"# calibration {mem}: {r['failed']} failed: {r['summary']}", flush=True)
        finally:
            proc.stop()
    best = max(figures, key=figures.get)
    print("# kamailio allocator: " + best + " (calls/CPU-s at 2000/s: "
          + ", ".join(f"{m} {v:.0f}" for m, v in figures.items()) + ")", flush=True)
    return best


def start_evosip(work, cleanup, uas_uri):
    sip, ctl = h.free_port(), h.free_port()
    # sipp sends thousands of calls/s from 127.0.0.1: loopback is exempt from the per-source
    # rate limit (on by default), as an operator exempts a trusted SBC or carrier.
    cfg = h.edge_config(sip, ctl, [uas_uri], overrides={
        "workers": WORKERS, "log": {"level": "warn", "format": "text"},
        "edge": {"rate_limit": {"requests_per_second": 30, "exempt": ["127.0.0.0/8"]}}})
    path = h.write_yaml(os.path.join(work, "edge.yaml"), cfg)
    proc = cleanup.add(h.Process("evosip-edge", [EVOSIP_BIN, "edge", "--config", path], work))
    h.wait_http_ok(f"http://{h.HOST}:{ctl}/readyz", timeout=15, proc=proc)
    h.wait_port(sip, "udp", timeout=5, proc=proc)
    EVOSIP_CONTROL[proc.pid] = f"http://{h.HOST}:{ctl}/rpc"
    return proc, sip


EVOSIP_CONTROL = {}  # evosip edge pid -> its control RPC URL


def wait_router_up(side, proc):
    """Before a step: waits (at most 15 s) until the edge counts its router up, and says so when
    it was not. A stand-in that answered no probe was held down for router_hold_down_ms after a
    request it left unanswered at the end of an overloaded step, and every call of the next step
    got 503 (uas_bench.xml answers the probes)."""
    url = EVOSIP_CONTROL.get(proc.pid)
    if url is None or not proc.alive():
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        routers = h.rpc(url, "dispatcher.list")["routers"]
        if all(r["state"] == "up" for r in routers):
            break
        time.sleep(0.1)
    waited = time.monotonic() - t0
    if waited >= 0.1:
        print(f"  {side}: router held down after the last step: waited {waited:.1f} s for it",
              flush=True)


def step(work, side, proc, port, rate, idx, seconds=None):
    seconds = seconds or STEP
    calls = int(rate * seconds)
    uac = h.Sipp(work, f"uac_{side}_{rate}_{idx}", scenario=h.scenario("uac_bench.xml"),
                 remote=f"{h.HOST}:{port}", calls=calls, rate=rate, rate_period_ms=1000,
                 limit=max(200, rate * 2), duration_ms=CALL_MS, timeout_s=seconds + 20,
                 recv_timeout_ms=5000, trace_rtt=True, stat_period_s=60)
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    res = uac.run()
    wall = time.monotonic() - t0
    cpu = cpu_seconds(proc.pid) - cpu0
    rss, pss = memory_kb(proc.pid)
    rtt_files = [f for f in os.listdir(work) if f.startswith(f"uac_bench_{uac.proc.pid}_rtt")]
    rtts = []
    for f in rtt_files:
        rtts += read_rtt(os.path.join(work, f))
    if not rtts:  # fall back to the coarse repartition buckets
        pc = h.rtd_percentiles(res.stats)
        p50, p99 = pc.get(50), pc.get(99)
    else:
        p50, p99 = percentile(rtts, 50), percentile(rtts, 99)
    ok = res.failed == 0 and res.successful == calls and proc.alive()
    return {"rate": rate, "calls": calls, "ok": res.successful, "failed": res.failed,
            "rc": res.rc, "wall": wall, "cpu": cpu,
            "cps_per_cpu": (res.successful / cpu) if cpu > 0 else float("inf"),
            "achieved": res.successful / wall if wall > 0 else 0,
            "p50": p50, "p99": p99, "rss_kb": rss, "pss_kb": pss, "clean": ok,
            "alive": proc.alive(), "summary": "" if ok else res.summary().splitlines()[0]}


def syscall_step(work, side, proc, port, rate, idx):
    """SYSCALL_CALLS calls at rate with the proxy's system calls counted: (counts, messages)."""
    calls = SYSCALL_CALLS
    seconds = calls / rate
    uac = h.Sipp(work, f"uac_sc_{side}_{rate}_{idx}", scenario=h.scenario("uac_bench.xml"),
                 remote=f"{h.HOST}:{port}", calls=calls, rate=rate, rate_period_ms=1000,
                 limit=max(200, rate * 2), duration_ms=CALL_MS, timeout_s=seconds + 20,
                 recv_timeout_ms=5000, stat_period_s=60)
    out = os.path.join(work, f"perf_stat_{side}_{rate}_{idx}.csv")
    pids = tree(proc.pid)
    if PROFILE:
        profile = Profile(pids, os.path.join(work, f"perf_{side}_{rate}_{idx}.data"))
        with SyscallCount(pids, out) as counted, profile:
            res = uac.run()
        print(f"  {side} {rate} c/s profile (perf record -g, self time):")
        for line in profile.top(PROFILE_TOP):
            print(f"    {line}")
    else:
        with SyscallCount(pids, out) as counted:
            res = uac.run()
    return counted.counts, res.successful * messages_per_call(), res.failed


def main():
    t_start = time.monotonic()
    work = h.make_tmpdir("evosip-bench-")
    cleanup = h.Cleanup()
    if os.environ.get("KEEP") != "1":
        cleanup.dirs.append(work)
    failed_sides, skipped = [], []
    results = {"kamailio": [], "evosip": []}
    try:
        uas = h.Sipp(work, "uas", scenario=h.scenario("uas_bench.xml"),
                     keys={"router_name": "bench"}, timeout_s=900, timeout_error=False,
                     stat_period_s=60, extra=["-max_recv_loops", "100000"]).start(cleanup)
        uas_uri = f"sip:{h.HOST}:{uas.port}"
        sides = {}
        try:
            mem = choose_allocator(work, cleanup, uas_uri)
            sides["kamailio"] = start_kamailio(work, cleanup, uas_uri, mem)
            with open(KAMAILIO_CFG, "rb") as f:
                cfg_hash = hashlib.sha256(f.read()).hexdigest()[:16]
            print(f"# kamailio: {' '.join(sides['kamailio'][0].argv)}")
            print(f"# kamailio config bench/kamailio/stateless_proxy.cfg sha256 {cfg_hash}")
        except Exception as e:  # noqa: BLE001
            print(f"kamailio: FAILED TO START: {e}", file=sys.stderr)
            failed_sides.append("kamailio")
        if os.path.isfile(EVOSIP_BIN) and os.access(EVOSIP_BIN, os.X_OK):
            try:
                sides["evosip"] = start_evosip(work, cleanup, uas_uri)
            except Exception as e:  # noqa: BLE001
                print(f"evosip: FAILED TO START: {e}", file=sys.stderr)
                failed_sides.append("evosip")
        else:
            msg = f"evosip: SKIPPED - binary {EVOSIP_BIN} not built yet (make build, or set EVOSIP_BIN)"
            print(msg)
            skipped.append("evosip")
            if REQUIRE_BOTH:
                failed_sides.append("evosip")
        print(f"# rates {RATES} c/s, {STEP:g} s per step, workers/children={WORKERS}, "
              f"call pause {CALL_MS} ms, 127.0.0.1, uac/uas sipp {h.SIPP}")
        if (SYSCALLS or PROFILE) and not perf_usable():
            print("SYSCALLS=1: perf stat cannot count syscall tracepoints here", file=sys.stderr)
            return 2
        if SYSCALLS:
            print(f"# sc/msg: system calls per SIP message received, {SYSCALL_CALLS} calls "
                  f"counted after each step ({messages_per_call()} messages per call)")
        print(f"{'side':9} {'rate':>6} {'calls':>7} {'failed':>6} {'achv/s':>7} {'cpu_s':>6} "
              f"{'calls/cpu_s':>11} {'sc/msg':>6} {'p50ms':>6} {'p99ms':>7} {'RSS_MB':>7} "
              f"{'PSS_MB':>7}")
        stopped = set()
        for i, rate in enumerate(RATES):
            for side, (proc, port) in sides.items():
                if side in stopped:
                    continue
                wait_router_up(side, proc)
                r = step(work, side, proc, port, rate, i)
                results[side].append(r)
                per_msg, kinds = "-", ""
                if (SYSCALLS or PROFILE) and r["alive"]:
                    time.sleep(0.5)
                    wait_router_up(side, proc)
                    counts, messages, sc_failed = syscall_step(work, side, proc, port, rate, i)
                    if messages > 0:
                        per_msg = f"{counts.get('total', 0) / messages:.2f}"
                    kinds = (f"  {side} {rate} c/s syscalls per message ({messages} messages"
                             f"{f', {sc_failed} failed calls' if sc_failed else ''}): "
                             f"{per_message(counts, messages)}")
                print(f"{side:9} {rate:>6} {r['ok']:>7} {r['failed']:>6} {r['achieved']:>7.0f} "
                      f"{r['cpu']:>6.2f} {r['cps_per_cpu']:>11.0f} {per_msg:>6} "
                      f"{fmt(r['p50'])!s:>6} {fmt(r['p99'])!s:>7} {r['rss_kb']/1024:>7.1f} "
                      f"{r['pss_kb']/1024:>7.1f}", flush=True)
                if kinds:
                    print(kinds, flush=True)
                if not r["alive"]:
                    print(f"{side}: proxy died at {rate} c/s\n{proc.tail()}", file=sys.stderr)
                    failed_sides.append(side)
                    stopped.add(side)
                elif not r["clean"]:
                    print(f"  {side} first failures at {rate} c/s: {r['summary']}".rstrip())
                    stopped.add(side)  # no higher rate for a side that already fails
                time.sleep(0.5)
        print()
        summary = {}
        for side, rs in results.items():
            if not rs:
                continue
            clean = [r for r in rs if r["clean"]]
            if not any(r["ok"] > 0 for r in rs):
                failed_sides.append(side)
            best = max(clean, key=lambda r: r["rate"]) if clean else None
            # efficiency: the clean steps' calls over their CPU (all clean steps pooled)
            calls = sum(r["ok"] for r in clean)
            cpu = sum(r["cpu"] for r in clean)
            summary[side] = {
                "cps_per_cpu": calls / cpu if cpu > 0 else None,
                "max_rate": best["rate"] if best else 0,
                "max_achieved": best["achieved"] if best else 0,
                "p50": best["p50"] if best else None, "p99": best["p99"] if best else None,
                "rss_mb": max(r["rss_kb"] for r in rs) / 1024,
                "pss_mb": max(r["pss_kb"] for r in rs) / 1024,
            }
            s = summary[side]
            print(f"{side:9} calls/proxy-CPU-s {fmt(s['cps_per_cpu'], '{:.0f}')}, max rate with 0 "
                  f"failed {s['max_rate']} c/s (achieved {s['max_achieved']:.0f}), latency at that "
                  f"rate p50 {fmt(s['p50'])} ms p99 {fmt(s['p99'])} ms, RSS {s['rss_mb']:.1f} MB "
                  f"(PSS {s['pss_mb']:.1f} MB)")
        if "kamailio" in summary and "evosip" in summary:
            k, e = summary["kamailio"], summary["evosip"]
            def ratio(a, b):
                return "-" if not a or not b else f"{a / b:.2f}"
            print(f"ratio evosip/kamailio: calls/CPU-s {ratio(e['cps_per_cpu'], k['cps_per_cpu'])}x, "
                  f"max rate {ratio(e['max_rate'], k['max_rate'])}x, p50 {ratio(e['p50'], k['p50'])}x, "
                  f"p99 {ratio(e['p99'], k['p99'])}x, RSS {ratio(e['rss_mb'], k['rss_mb'])}x, "
                  f"PSS {ratio(e['pss_mb'], k['pss_mb'])}x")
            target = e["cps_per_cpu"] and k["cps_per_cpu"] and e["cps_per_cpu"] >= 2 * k["cps_per_cpu"]
            print(f"target evosip >= 2x kamailio calls per CPU-second: {'MET' if target else 'NOT MET'}")
        elif skipped:
            print("ratios: n/a (evosip side skipped)")
    finally:
        cleanup.stop_all()
        if os.environ.get("KEEP") == "1":
            print(f"work dir kept: {work}")
    print(f"# total {time.monotonic() - t_start:.0f} s")
    if failed_sides:
        print(f"FAILED sides: {sorted(set(failed_sides))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
PY
