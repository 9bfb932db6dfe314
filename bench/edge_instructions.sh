#!/usr/bin/env bash
# User-space instructions per call of `evosip edge`, counted by callgrind: a figure that does not
# move with the machine's load, for changes to the edge's message path (parsing, rewriting,
# flow tokens). CPU-second figures on a shared 2-core machine move 10-30 % between runs; this
# one moves by less than 0.1 %.
#
#   bench/edge_instructions.sh                         # build/evosip, 1,000 calls
#   BASE_BIN=/path/to/older/evosip bench/edge_instructions.sh   # both, and the ratio
#
# Load: sipp uac (uac_bench.xml) -> evosip edge (1 worker, sip.io epoll, under valgrind
# --tool=callgrind, counting only inside EdgeProxy::onPacket: every request and response the
# edge handles, not the event loop or the kernel) -> sipp uas (uas_bench.xml), 100 calls/s.
# Printed: instructions per call, and the functions with the most instructions of their own
# (TOP, 12). Env: EVOSIP_BIN, BASE_BIN, CALLS (1000), TOP, KEEP=1 keeps the work dir.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export BENCH_ROOT="$ROOT"
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)" >&2; exit 2; }
exec python3 - "$@" <<'PY'
import os, re, shutil, subprocess, sys, tempfile

ROOT = os.environ["BENCH_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402

EVOSIP_BIN = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
BASE_BIN = os.environ.get("BASE_BIN", "")
CALLS = int(os.environ.get("CALLS", "1000"))
TOP = int(os.environ.get("TOP", "12"))


def measure(binary, label, work):
    """Instructions inside EdgeProxy::onPacket over CALLS calls, and the top functions."""
    cleanup = h.Cleanup()
    out = os.path.join(work, f"callgrind.{label}")
    try:
        uas = h.Sipp(work, f"uas_{label}", scenario=h.scenario("uas_bench.xml"),
                     keys={"router_name": "bench"}, timeout_s=900, timeout_error=False,
                     stat_period_s=60).start(cleanup)
        sip, ctl = h.free_port(), h.free_port()
        cfg = h.edge_config(sip, ctl, [f"sip:{h.HOST}:{uas.port}"], overrides={
            "workers": 1, "log": {"level": "warn", "format": "text"}, "sip": {"io": "epoll"},
            "edge": {"rate_limit": {"requests_per_second": 30, "exempt": ["127.0.0.0/8"]}}})
        path = h.write_yaml(os.path.join(work, f"edge_{label}.yaml"), cfg)
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                "--toggle-collect=*EdgeProxy::onPacket*", binary, "edge", "--config", path]
        proc = cleanup.add(h.Process(f"edge-{label}", argv, work))
        h.wait_http_ok(f"http://{h.HOST}:{ctl}/readyz", timeout=120, proc=proc)
        uac = h.Sipp(work, f"uac_{label}", scenario=h.scenario("uac_bench.xml"),
                     remote=f"{h.HOST}:{sip}", calls=CALLS, rate=100, rate_period_ms=1000,
                     limit=200, timeout_s=CALLS / 100 + 120, recv_timeout_ms=10000,
                     stat_period_s=60)
        res = uac.run()
    finally:
        cleanup.stop_all()  # callgrind writes its file when the edge exits
    if res.successful != CALLS or res.failed:
        sys.exit(f"{label}: {res.successful} of {CALLS} calls succeeded ({res.failed} failed)")
    text = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True,
                          check=True).stdout
    total = next(int(line.split()[0].replace(",", "")) for line in text.splitlines()
                 if "PROGRAM TOTALS" in line)
    rows = [line for line in text.splitlines() if re.match(r"^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", line)
            and "PROGRAM TOTALS" not in line]
    return total / CALLS, rows[:TOP]


def short(row):
    m = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)$", row)
    name = m.group(3)
    name = re.sub(r"^\S*?:", "", name, count=1)          # file:
    name = re.sub(r"\s*\[[^\]]*\]$", "", name)           # [object]
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"\(.*\)( const)?$", "", name)         # arguments
    return f"{m.group(2):>6}%  {name[:110]}"


work = tempfile.mkdtemp(prefix="evosip-edge-instr-")
try:
    sides = [("evosip", EVOSIP_BIN)] + ([("base", BASE_BIN)] if BASE_BIN else [])
    results = {}
    print(f"# callgrind, EdgeProxy::onPacket only, {CALLS} calls at 100/s, sipp uac -> edge "
          f"(1 worker, epoll) -> sipp uas; uac_bench.xml: 3 requests and 4 responses per call")
    for label, binary in sides:
        per_call, top = measure(binary, label, work)
        results[label] = per_call
        print(f"\n{label} ({binary}): {per_call:,.0f} instructions per call")
        for row in top:
            print("  " + short(row))
    if BASE_BIN:
        print(f"\nratio evosip/base: {results['evosip'] / results['base']:.3f} "
              f"({results['base']:,.0f} -> {results['evosip']:,.0f} per call)")
finally:
    if os.environ.get("KEEP") == "1":
        print(f"# work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
PY
