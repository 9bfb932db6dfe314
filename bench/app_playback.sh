#!/usr/bin/env bash
# evosip app: concurrent Playback streams on one worker (target: >= 2,000 concurrent
# G.711 playback streams on one core with pacing jitter p99 < 1 ms).
#
#   bench/app_playback.sh                       # CALLS=500,1000,2000,3000, 10 s windows
#   CALLS=2000 DURATION=20 bench/app_playback.sh
#   RT=0 bench/app_playback.sh                  # app.realtime_priority: 0 (pacing threads with
#                                               # normal scheduling); default: the app's default,
#                                               # SCHED_FIFO 10 for the pacing threads
#
# For each step: `evosip app` (workers: 1, config generated here, a 120 s 1 kHz prompt made
# here) pinned to the last CPU, and bench/tools/app_load (the `app_load` target) on the other
# CPUs: it sets up CALLS Playback INVITEs at CPS per second (all SDPs point at its one receive
# socket), ACKs them, waits WARMUP s, then measures for DURATION s:
#   - app CPU (utime+stime from /proc over the window) -> CPU share of one core and
#     concurrent streams per app CPU-second (= calls / CPU share);
#   - packets received, loss (sequence gaps);
#   - receive-side inter-arrival deviation |gap - 20 ms| per stream, from kernel receive
#     timestamps (on loopback: the app's send time), p50/p99/p99.9;
#   - the app's own evosip_app_pacing_jitter_seconds (lateness of each paced packet behind its
#     schedule, last full 5 s window), read before the teardown.
# Then every call is hung up (BYE) and the app stopped.
#
# Env: EVOSIP_BIN (default build/evosip), APP_LOAD (default build*/bench/app_load),
# CALLS, CPS (default 1000), DURATION (10), WARMUP (2), RT (1), PORT_MIN/PORT_MAX (app RTP
# range, default 20000-29999), RESULTS_FILE (default bench/results/app_playback.txt; empty =
# do not write), KEEP=1 keeps the work dir.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export BENCH_ROOT="$ROOT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 - "$@" <<'PY'
import json, math, os, shutil, struct, subprocess, sys, tempfile, time, wave

ROOT = os.environ["BENCH_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402

CALLS = [int(c) for c in os.environ.get("CALLS", "500,1000,2000,3000").split(",") if c]
CPS = float(os.environ.get("CPS", "1000"))
DURATION = float(os.environ.get("DURATION", "10"))
WARMUP = float(os.environ.get("WARMUP", "2"))
RT = os.environ.get("RT", "1") != "0"
PORT_MIN = int(os.environ.get("PORT_MIN", "20000"))
PORT_MAX = int(os.environ.get("PORT_MAX", "29999"))
KEEP = os.environ.get("KEEP", "") == "1"


def first_exe(*paths):
    for p in paths:
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return ""


EVOSIP = os.path.abspath(os.environ.get("EVOSIP_BIN", "")) if os.environ.get("EVOSIP_BIN") else first_exe(
    *(os.path.join(ROOT, d, "evosip") for d in ("build", "build-app", "build-bench")))
APP_LOAD = os.path.abspath(os.environ["APP_LOAD"]) if os.environ.get("APP_LOAD") else first_exe(
    *(os.path.join(ROOT, d, "bench", "app_load") for d in ("build-app", "build-bench", "build")))
RESULTS = os.environ.get("RESULTS_FILE", os.path.join(ROOT, "bench", "results", "app_playback.txt"))
if not EVOSIP or not APP_LOAD:
    sys.exit(f"app_playback.sh: need EVOSIP_BIN ({EVOSIP or 'not found'}) and APP_LOAD "
             f"({APP_LOAD or 'not found'}: build the app_load target)")
if "app" not in h.evosip_roles(EVOSIP):
    sys.exit(f"app_playback.sh: {EVOSIP} has no `app` subcommand")

ncpu = os.cpu_count() or 1
app_cpu = str(ncpu - 1)
load_cpus = ",".join(str(c) for c in range(ncpu - 1)) or "0"
work = tempfile.mkdtemp(prefix="evosip-app-bench-")
sounds = os.path.join(work, "sounds", "default", "en")
os.makedirs(sounds)
with wave.open(os.path.join(sounds, "long.wav"), "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    one = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)))
                   for i in range(8000))
    w.writeframes(one * 120)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def step(calls):
    sip, ctl = h.free_port(), h.free_port()
    cfg = {"sip": {"listen": [f"udp:127.0.0.1:{sip}"]}, "control": {"listen": f"127.0.0.1:{ctl}"},
           "workers": 1, "log": {"level": "warn"},
           "app": {"sounds_dir": os.path.join(work, "sounds"), "voicemail_dir": os.path.join(work, "vm"),
                   "rtp_port_min": PORT_MIN, "rtp_port_max": PORT_MAX, "rtp_timeout_s": 0,
                   # app_load only receives: no RTP comes back, so the check that the peer
                   # answers (app.rtp_peer_timeout_s) is off for this load.
                   "rtp_peer_timeout_s": 0, "max_call_s": 600,
                   "routers": ["127.0.0.1"]}}  # app_load sends its INVITEs from here
    cfg["app"]["realtime_priority"] = 10 if RT else 0  # 10: the app's default
    path = h.write_yaml(os.path.join(work, f"app-{calls}.yaml"), cfg)
    argv = ["taskset", "-c", app_cpu, EVOSIP, "app", "--config", path]
    proc = h.Process(f"app-{calls}", argv, work)
    try:
        h.wait_http_ok(f"http://127.0.0.1:{ctl}/readyz", timeout=15, proc=proc)
        before = loadavg()
        out = subprocess.run(["taskset", "-c", load_cpus, APP_LOAD, "--app", f"127.0.0.1:{sip}",
                              "--calls", str(calls), "--cps", str(CPS), "--duration", str(DURATION),
                              "--warmup", str(WARMUP), "--cpu-pid", str(proc.pid),
                              "--metrics", f"127.0.0.1:{ctl}", "--setup-timeout", "60"],
                             capture_output=True, text=True, timeout=DURATION + WARMUP + 120)
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
        r = json.loads(line)
        r["loadavg_before"], r["loadavg_after"] = before, loadavg()
        r["rc"] = out.returncode
        if out.returncode != 0:
            r["stderr"] = out.stderr[-500:]
        return r
    finally:
        proc.stop()


# The machine's floor: how late a thread that only sleeps 1 ms wakes up on the app's CPU, with
# the pacing threads' scheduling (SCHED_FIFO with RT) and, for comparison, the other one.
def measure_floor(rt):
    fl = subprocess.run(["taskset", "-c", app_cpu, APP_LOAD, "--floor", "5"] + (["--rt"] if rt else []),
                        capture_output=True, text=True, timeout=60)
    return json.loads(fl.stdout.strip() or "{}").get("floor_wakeup_late_us", {})


floor = measure_floor(RT)
other_floor = measure_floor(not RT)
print(f"timer floor on CPU {app_cpu} ({'SCHED_FIFO' if RT else 'normal'}): {floor}; "
      f"({'normal' if RT else 'SCHED_FIFO'}): {other_floor}", flush=True)

rows = []
for n in CALLS:
    r = step(n)
    rows.append(r)
    print(json.dumps(r), flush=True)

hdr = (f"{'calls':>6} {'ok':>6} {'pps':>7} {'lost':>6} {'app CPU':>8} {'streams/CPU-s':>13} "
       f"{'rx dev p50':>10} {'rx p99':>8} {'rx p99.9':>9} {'app p50':>8} {'app p99':>8} {'app max':>8}  load")
lines = [hdr]
for r in rows:
    d = r.get("interarrival_dev_us", {})
    j = r.get("app_pacing_jitter", {})
    lines.append(
        f"{r.get('calls', 0):>6} {r.get('answered', 0):>6} {r.get('pps', 0):>7.0f} {r.get('lost', 0):>6} "
        f"{100 * r.get('app_cpu_share', 0):>7.1f}% {r.get('streams_per_cpu_s', 0):>13.0f} "
        f"{d.get('p50', 0):>8.0f}us {d.get('p99', 0):>6.0f}us {d.get('p999', 0):>7.0f}us "
        f"{j.get('w0_q0.5_us', 0):>6.0f}us {j.get('w0_q0.99_us', 0):>6.0f}us {j.get('w0_q1_us', 0):>6.0f}us"
        f"  {r['loadavg_before']} -> {r['loadavg_after']}")
def kept_up(r):
    return r.get("answered") == r.get("calls") and r.get("lost", 1) == 0 and \
        r.get("pps", 0) >= 0.99 * r.get("calls", 0) * 50


best = max((r for r in rows if kept_up(r)), key=lambda r: r["calls"], default=None)
summary = [
    "",
    f"machine: {ncpu} CPUs ({os.uname().release}), app on CPU {app_cpu} with realtime_priority "
    f"{'10 (pacing threads SCHED_FIFO, the default)' if RT else '0 (RT=0: normal scheduling)'}, "
    f"app_load on CPU {load_cpus}; "
    f"{DURATION:.0f} s windows after {WARMUP:.0f} s warm-up, {CPS:.0f} call set-ups/s",
    "streams/CPU-s = packets received / 50 / app CPU seconds; 'app' columns: the app's "
    "evosip_app_pacing_jitter_seconds (lateness behind the schedule), 'rx dev': |inter-arrival - "
    "20 ms| from kernel receive timestamps",
    f"timer floor (a thread doing nothing but 1 ms sleeps on CPU {app_cpu}"
    f"{', SCHED_FIFO' if RT else ''}, 5 s, before the steps): wake-up lateness p50 "
    f"{floor.get('p50', 0):.0f} us, p99 {floor.get('p99', 0):.0f} us, p99.9 "
    f"{floor.get('p999', 0):.0f} us, max {floor.get('max', 0):.0f} us; "
    f"{'normal scheduling' if RT else 'SCHED_FIFO'}: p99 {other_floor.get('p99', 0):.0f} us, "
    f"p99.9 {other_floor.get('p999', 0):.0f} us",
    "targets: >= 2,000 concurrent playback streams on one core; pacing jitter p99 < 1 ms",
]
if best:
    summary.append(f"largest step that kept up (every frame sent, no loss): {best['calls']} streams "
                   f"at {100 * best['app_cpu_share']:.1f}% of one core -> "
                   f"{best['streams_per_cpu_s']:.0f} streams per app CPU-second")
else:
    summary.append("no step kept up")
at2000 = next((r for r in rows if r.get("calls") == 2000), None)
if at2000:
    p99 = at2000.get("app_pacing_jitter", {}).get("w0_q0.99_us", float("nan"))
    rx = at2000.get("interarrival_dev_us", {}).get("p99", float("nan"))
    summary.append(f"at 2,000 streams: {'kept up' if kept_up(at2000) else 'did NOT keep up'}, "
                   f"{100 * at2000['app_cpu_share']:.1f}% of one core, app pacing p99 {p99:.0f} us, "
                   f"receive-side deviation p99 {rx:.0f} us -> jitter target "
                   f"{'met' if p99 < 1000 else 'missed'}")
text = "\n".join(lines + summary) + "\n"
print(text)
if RESULTS:
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a" if os.environ.get("APPEND") == "1" else "w") as f:
        f.write(f"# bench/app_playback.sh {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                f" CALLS={','.join(map(str, CALLS))} RT={int(RT)}\n" + text + "\n")
if not KEEP:
    shutil.rmtree(work, ignore_errors=True)
else:
    print(f"work dir kept: {work}")
PY
