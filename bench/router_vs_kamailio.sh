#!/usr/bin/env bash
# evosip router vs Debian kamailio (registrar + stateful proxy), same sipp load, side by side.
#
#   bench/router_vs_kamailio.sh            # default (< 10 min)
#   QUICK=1 bench/router_vs_kamailio.sh    # fewer/shorter steps (< 3 min)
#
# Both sides are ONE proxy layer: sipp talks to `evosip router` directly (no edge in front)
# and to kamailio (bench/kamailio/router.cfg). Same users (10,000 + a callee), same sipp
# scenarios, same rates; at each rate the sides are loaded one after the other.
#
# 1. Registrations: sipp tests/integration/scenarios/router_uac_register.xml, one REGISTER
#    with digest auth per user (REGISTER / 401 / REGISTER+Authorization / 200: 2 round
#    trips), all 10,000 users at each rate (from one fixed sipp port, so the first pass
#    creates 10,000 bindings and later passes refresh them).
# 2. Calls: a sipp UAS (router_uas_callee.xml) registered as `callee`; a sipp UAC
#    (router_uac_call_auth.xml) calls it: INVITE / 407 / ACK / INVITE+Proxy-Authorization /
#    100 / 180 / 200 / ACK / BYE / 200. Calls are AUTHENTICATED ON BOTH SIDES (callers cycle
#    through the 10,000 users), record-routed by the proxy, tracked as dialogs (kamailio:
#    dialog module dlg_manage(); evosip: its dialog records in the memory store).
#
# Printed per side and step: operations per proxy CPU-second (utime+stime of every
# process/thread of the instance, from /proc, over the sipp run), failures, latency p50/p99
# (sipp -trace_rtt: from the first request of the call/registration to the final 200, so
# both round trips), RSS/PSS (of the router for evosip-up). evosip: the router's CPU and, separately, the api's (it serves
# HA1 values to the router on cache misses); the ratios and the targets use router+api.
# Kamailio runs as an operator runs it in production (bench/kamailio/router.cfg): debug=0, no
# memory debugging, the faster of the tlsf and fm allocators (measured at start with a short
# REGISTER step, printed; KAMAILIO_MEM=tlsf|fm forces one), and in these variants:
#   kamailio     HA1 from an htable loaded at start, checked with pv_auth_check (the reference
#                platform's own method), every new request transaction-stateful (t_newtran,
#                as evosip's router) with the nonce-count replay check (evosip checks nc
#                replays too). The targets are judged here.
#   kamailio-sl  the same, with REGISTER/401/407 answered statelessly and no nonce-count check:
#                the cheapest stock-Kamailio config; it does less than evosip (no replay check).
#   kamailio-db  (KAMAILIO_AUTH_DB=1 only) auth_db with a db_text query per request: slower,
#                not a production setup, for comparison.
# Each variant's command line and the sha256 of router.cfg are printed with its figures.
# evosip-up is the whole platform path of `evosip up`: sipp -> evosip edge -> evosip router (with
# the same api), its CPU the sum of edge, router and api: three processes and two SIP hops
# against one Kamailio (target >= 1x; the router alone is judged against 2x).
#
# Env: EVOSIP_BIN (default build/evosip; missing -> evosip skipped, or fails with
# REQUIRE_BOTH=1), USERS (10000), REG_RATES="500,1000,...", CALL_RATES, CALL_STEP_SECONDS,
# CALL_MS (pause ACK->BYE, 0), WORKERS (evosip workers = kamailio children, 2),
# KAMAILIO_VARIANTS=0 (only the "kamailio" side), KAMAILIO_AUTH_DB=1, KAMAILIO_MEM (auto),
# KEEP=1 keeps the work dir.
# Exit status non-zero when a side failed to run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export BENCH_ROOT="$ROOT"
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || { echo "kamailio not installed" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || true
exec timeout --foreground -k 10 900 python3 - "$@" <<'PY'
import hashlib, os, signal, sys, time, threading

# the outer `timeout` (or a user) sends SIGTERM: unwind so that `finally` stops every process
signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))

ROOT = os.environ["BENCH_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402  (stdlib-only helpers shared with the integration tests)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import (TICK, cpu_seconds, fmt, loadavg, memory_kb, percentile,  # noqa: E402
                      read_rtt, tree)

QUICK = os.environ.get("QUICK", "") == "1"
USERS = int(os.environ.get("USERS", "10000"))
REG_RATES = [int(r) for r in os.environ.get(
    "REG_RATES", "1000,2000" if QUICK else "500,1000,2000,4000").split(",") if r]
CALL_RATES = [int(r) for r in os.environ.get(
    "CALL_RATES", "200,500" if QUICK else "250,500,1000,2000").split(",") if r]
CALL_STEP = float(os.environ.get("CALL_STEP_SECONDS", "5" if QUICK else "8"))
CALL_MS = int(os.environ.get("CALL_MS", "0"))
WORKERS = int(os.environ.get("WORKERS", "2"))
EVOSIP_BIN = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))
REQUIRE_BOTH = os.environ.get("REQUIRE_BOTH", "") == "1"
VARIANTS = os.environ.get("KAMAILIO_VARIANTS", "1") != "0"
AUTH_DB = os.environ.get("KAMAILIO_AUTH_DB", "") == "1"
# SIDES=evosip runs evosip alone (profiling, iterating on a change); no ratios are printed then.
# SIDES names any of kamailio, kamailio-sl, kamailio-db, evosip, evosip-up.
SIDES = [s for s in os.environ.get("SIDES", "").split(",") if s]
KAMAILIO_CFG = os.path.join(ROOT, "bench", "kamailio", "router.cfg")
# Not q_malloc (Debian's default): it is built without MEM_JOIN_FREE, so freed transaction
# cells fragment the shm pool until "Free fragment not found" (seen at 256 MB: out of memory
# and a crash at 1000 calls/s), and its free-list walks inflate Kamailio's CPU. "auto" measures
# tlsf and fm and keeps the faster.
KAM_MEM = os.environ.get("KAMAILIO_MEM", "auto")
KAM_SHM_MB = os.environ.get("KAMAILIO_SHM_MB", "1024")
DOMAIN = h.ROUTER_DOMAIN
CALLEE = ("callee", "pw-callee-Secret")


def thread_cpu(pid):
    """{"thread name/tid": CPU seconds} over the threads of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                raw = f.read()
            name = f'{raw[raw.index("(") + 1:raw.rindex(")")]}/{t}'  # name/tid
            fields = raw.rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            pass
    return out


def print_thread_split(side, before, after):
    for pname, proc in side.procs.items():
        b, a = before.get(pname, {}), after.get(pname, {})
        parts = sorted(((a[k] - b.get(k, 0), k) for k in a), reverse=True)
        total = sum(v for v, _ in parts)
        if total <= 0:
            continue
        shown = ", ".join(f"{k} {v:.2f}s ({100 * v / total:.0f}%)" for v, k in parts[:6]
                          if v > 0)
        print(f"  {side.name} {pname} CPU by thread: {shown}")


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


# -- sides -----------------------------------------------------------------------------------

class Side:
    def __init__(self, name, port, procs, main):
        self.name, self.port = name, port
        self.procs = procs          # {"router": Process, "api": Process} or {"kamailio": ...}
        self.main = main            # the SIP proxy process
        self.metrics_url = ""

    def cpu(self):
        return {k: cpu_seconds(p.pid) for k, p in self.procs.items()}

    def mem_pid(self):
        """The process whose memory is reported: the one that holds bindings and dialogs."""
        return self.procs.get("router", self.main).pid

    def alive(self):
        return all(p.alive() for p in self.procs.values())


def write_kamailio_db(dbdir, users):
    os.makedirs(dbdir, exist_ok=True)
    with open(os.path.join(dbdir, "version"), "w") as f:
        f.write("id(int,auto) table_name(string) table_version(int) \n"
                "1:subscriber:7\n2:cred_ht:2\n")
    with open(os.path.join(dbdir, "subscriber"), "w") as f:
        f.write("id(int,auto) username(string) domain(string) password(string) "
                "ha1(string) ha1b(string) \n")
        for i, (u, p) in enumerate(users, 1):
            f.write(f"{i}:{u}:{DOMAIN}:x:{md5(f'{u}:{DOMAIN}:{p}')}:"
                    f"{md5(f'{u}@{DOMAIN}:{DOMAIN}:{p}')}\n")
    with open(os.path.join(dbdir, "cred_ht"), "w") as f:
        f.write("id(int,auto) key_name(string) key_type(int) value_type(int) "
                "key_value(string) expires(int) \n")
        for i, (u, p) in enumerate(users, 1):
            f.write(f"{i}:{u}:0:0:{md5(f'{u}:{DOMAIN}:{p}')}:0\n")


def start_kamailio(work, cleanup, name, dbdir, defines, mem):
    port = h.free_port()
    rundir = os.path.join(work, name)
    os.makedirs(rundir, exist_ok=True)
    argv = [h.KAMAILIO, "-f", KAMAILIO_CFG, "-A", f'DBURL="text://{dbdir}"',
            "-l", f"udp:{h.HOST}:{port}", "-n", str(WORKERS), "-m", KAM_SHM_MB, "-M", "16",
            "-x", mem, "-DD", "-E", "-Y", rundir, "-w", rundir]
    for d in defines:
        argv[3:3] = ["-A", d]
    proc = cleanup.add(h.Process(name, argv, work))
    h.wait_port(port, "udp", timeout=15, proc=proc)
    h.wait_until(lambda: len(tree(proc.pid)) > WORKERS, 10, "kamailio workers", proc=proc)
    side = Side(name, port, {"kamailio": proc}, proc)
    side.argv = argv
    return side


def choose_allocator(work, cleanup, dbdir, csv_path):
    """The faster of tlsf and fm for the main variant: a short REGISTER step on each."""
    if KAM_MEM != "auto":
        return KAM_MEM
    n = min(USERS, 3000)
    figures = {}
    for mem in ("tlsf", "fm"):
        side = start_kamailio(work, cleanup, f"calibrate-{mem}", dbdir, (), mem)
        try:
            r = run_step(work, side, "reg", 1000, n, 0, csv_path)
            figures[mem] = r["per_cpu"]
            if not r["clean"]:
                print(f"# calibration {mem}: {r['failed']} failed: {r['summary']}", flush=True)
        finally:
            side.main.stop()
    best = max(figures, key=figures.get)
    print(f"# kamailio allocator: {best} (REGISTER/CPU-s over {n} users at 1000/s: "
          + ", ".join(f"{m} {v:.0f}" for m, v in figures.items()) + ")")
    return best

def provision_api(api, users, threads=4):
    """Subscribers through the REST API (no bulk endpoint), a few keep-alive connections."""
    api.create_domain(DOMAIN)
    errors = []
    chunks = [users[i::threads] for i in range(threads)]

    def run(chunk):
        conn = h.ApiHandle(api.proc, api.port, api.control_port, api.config_path)
        try:
            for u, p in chunk:
                st, doc = conn.request("POST", "/v1/subscribers",
                                       {"domain": DOMAIN, "username": u, "password": p})
                if st not in (201, 409):
                    errors.append(f"{u}: {st} {doc}")
                    return
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
        finally:
            conn.close()

    ts = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    if errors or any(t.is_alive() for t in ts):
        raise RuntimeError(f"provisioning failed: {errors[:3]}")


def start_evosip(work, cleanup, users):
    os.environ["EVOSIP_BIN"] = EVOSIP_BIN
    # the api, as harness.start_api but logging warnings only and no router to invalidate
    port, ctl = h.free_port(), h.free_port()
    cfg = {"api": {"listen": f"{h.HOST}:{port}",
                   "database": f"sqlite://{os.path.join(work, 'evosip.db')}",
                   "token": h.API_TOKEN, "internal_token": h.API_INTERNAL_TOKEN,
                   "routers": [], "router_timeout_ms": 1000},
           "control": {"listen": f"{h.HOST}:{ctl}"}, "log": {"level": "warn"}}
    path = h.write_yaml(os.path.join(work, "evosip-api.yaml"), cfg)
    aproc = cleanup.add(h.Process("evosip-api", [EVOSIP_BIN, "api", "--config", path], work))
    api = h.ApiHandle(aproc, port, ctl, path)
    cleanup.callbacks.append(api.close)
    h.wait_http_ok(api.control_url + "/readyz", timeout=20, proc=aproc)
    h.wait_port(port, "tcp", timeout=5, proc=aproc)
    t0 = time.monotonic()
    provision_api(api, users)
    prov = time.monotonic() - t0
    router = start_bench_router(work, cleanup, api, "router")
    side = Side("evosip", router.sip_port, {"router": router.proc, "api": aproc}, router.proc)
    side.metrics_url = router.control_url + "/metrics"
    return side, prov, api


def start_bench_router(work, cleanup, api, name):
    return h.start_router(work, cleanup, api.address, name=name, overrides={
        "workers": WORKERS, "log": {"level": "warn", "format": "text"},
        "router": {"record_route": True, "auth_algorithms": ["MD5"], "apps": [],
                   "credential_ttl_s": 300,
                   # 4,000 REGISTER/s from one sipp port reach one worker, whose transactions
                   # (32 s each, Timer J) hold ~512 MiB: above the 128 MiB default cap.
                   "max_transaction_bytes": 1 << 30}})


def start_evosip_up(work, cleanup, api):
    """The `evosip up` path: an edge in front of its own router, sharing the api."""
    router = start_bench_router(work, cleanup, api, "router-up")
    # loopback exempt from the per-source rate limit, as in bench/edge_vs_kamailio.sh
    edge = h.start_evosip_edge(work, cleanup, [f"sip:{h.HOST}:{router.sip_port}"],
                               transports=("udp",), overrides={
                                   "workers": WORKERS, "log": {"level": "warn", "format": "text"},
                                   "edge": {"rate_limit": {"requests_per_second": 30,
                                                           "exempt": ["127.0.0.0/8"]}}})
    side = Side("evosip-up", edge.sip_port,
                {"edge": edge.proc, "router": router.proc, "api": api.proc}, edge.proc)
    side.metrics_url = router.control_url + "/metrics"
    return side


# -- one sipp step ------------------------------------------------------------------------------

def run_step(work, side, kind, rate, n, idx, csv_path, port=0):
    if kind == "reg":
        scen, keys = "router_uac_register.xml", {"domain": DOMAIN}
        extra = ["-inf", csv_path, "-auth_uri", DOMAIN]
        duration = None
    else:
        scen, keys = "router_uac_call_auth.xml", {"domain": DOMAIN, "callee": CALLEE[0]}
        extra = ["-inf", csv_path, "-auth_uri", f"{CALLEE[0]}@{DOMAIN}"]
        duration = CALL_MS
    if port:
        h.wait_until(lambda: not h.port_bound(port, "udp"), 10, f"port {port} free")
    uac = h.Sipp(work, f"{kind}_{side.name}_{rate}_{idx}", scenario=h.scenario(scen),
                 remote=f"{h.HOST}:{side.port}", port=port, calls=n, rate=rate,
                 rate_period_ms=1000, limit=max(200, rate * 2), duration_ms=duration,
                 timeout_s=n / rate + 30, recv_timeout_ms=5000, trace_rtt=True,
                 stat_period_s=60, keys=keys, extra=extra)
    cpu0, t0 = side.cpu(), time.monotonic()
    res = uac.run()
    wall = time.monotonic() - t0
    cpu1 = side.cpu()
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    total_cpu = sum(cpu.values())
    rss, pss = memory_kb(side.mem_pid())
    base = os.path.splitext(scen)[0]
    rtts = []
    for f in os.listdir(work):
        if f.startswith(f"{base}_{uac.proc.pid}_rtt"):
            rtts += read_rtt(os.path.join(work, f))
    if rtts:
        p50, p99 = percentile(rtts, 50), percentile(rtts, 99)
    else:  # the coarse repartition buckets
        pc = h.rtd_percentiles(res.stats)
        p50, p99 = pc.get(50), pc.get(99)
    alive = side.alive()
    if not alive:  # its processes are gone: their CPU is no longer readable
        cpu = {k: 0.0 for k in cpu}
        total_cpu = 0.0
    clean = res.failed == 0 and res.successful == n and alive
    return {"rate": rate, "n": n, "ok": res.successful, "failed": res.failed, "wall": wall,
            "cpu": total_cpu, "cpu_parts": cpu,
            "per_cpu": res.successful / total_cpu if total_cpu > 0 else 0.0,
            "achieved": res.successful / wall if wall > 0 else 0, "p50": p50, "p99": p99,
            "rss_kb": rss, "pss_kb": pss, "clean": clean, "alive": alive,
            "summary": "" if clean else res.summary().splitlines()[0]}


def print_row(side, r):
    parts = r["cpu_parts"]
    split = (" (" + " + ".join(f"{k} {v:.2f}" for k, v in parts.items()) + ")"
             if len(parts) > 1 else "")
    print(f"{side:11} {r['rate']:>6} {r['ok']:>6} {r['failed']:>6} {r['achieved']:>7.0f} "
          f"{r['cpu']:>6.2f} {r['per_cpu']:>9.0f} {fmt(r['p50'])!s:>6} {fmt(r['p99'])!s:>7} "
          f"{r['rss_kb']/1024:>7.1f} {r['pss_kb']/1024:>7.1f}{split}", flush=True)


def phase(work, sides, kind, rates, csv_path, failed_sides, reg_port=0):
    unit = "reg" if kind == "reg" else "calls"
    print(f"{'side':11} {'rate':>6} {'ok':>6} {'failed':>6} {'achv/s':>7} {'cpu_s':>6} "
          f"{unit + '/cpu_s':>9} {'p50ms':>6} {'p99ms':>7} {'RSS_MB':>7} {'PSS_MB':>7}")
    results = {s.name: [] for s in sides}
    threads0 = {s.name: {k: thread_cpu(p.pid) for k, p in s.procs.items()}
                for s in sides if s.metrics_url}
    stopped = set()
    for i, rate in enumerate(rates):
        for side in sides:
            if side.name in stopped:
                continue
            n = USERS if kind == "reg" else int(rate * CALL_STEP)
            r = run_step(work, side, kind, rate, n, i, csv_path, port=reg_port)
            results[side.name].append(r)
            print_row(side.name, r)
            if not r["alive"]:
                print(f"{side.name}: died at {rate}/s\n{side.main.tail(1500)}", file=sys.stderr)
                failed_sides.append(side.name)
                stopped.add(side.name)
            elif not r["clean"]:
                print(f"  {side.name} failures at {rate}/s: {r['summary']}".rstrip())
                stopped.add(side.name)  # no higher rate for a side that already fails
            time.sleep(0.5)
    for s in sides:
        if s.name in threads0:
            print_thread_split(s, threads0[s.name],
                               {k: thread_cpu(p.pid) for k, p in s.procs.items()})
    return results


def summarize(results, unit, failed_sides):
    out = {}
    for name, rs in results.items():
        if not rs:
            continue
        if not any(r["ok"] > 0 for r in rs):
            failed_sides.append(name)
        clean = [r for r in rs if r["clean"]]
        best = max(clean, key=lambda r: r["rate"]) if clean else None
        ops = sum(r["ok"] for r in clean)
        cpu = sum(r["cpu"] for r in clean)
        parts = {}
        for r in clean:
            for k, v in r["cpu_parts"].items():
                parts[k] = parts.get(k, 0) + v
        s = {"per_cpu": ops / cpu if cpu > 0 else None, "ops": ops, "cpu": cpu,
             "parts": parts, "max_rate": best["rate"] if best else 0,
             "p50": best["p50"] if best else None, "p99": best["p99"] if best else None}
        out[name] = s
        split = ""
        if "router" in parts and ops:
            r_only = ops / parts["router"] if parts["router"] > 0 else float("inf")
            others = "".join(f"; {k} {v:.2f} s" for k, v in parts.items() if k != "router")
            split = (f" [router {parts['router']:.2f} s -> {r_only:.0f} {unit}/router-CPU-s"
                     f"{others}]")
        print(f"{name:11} {unit}/proxy-CPU-s {fmt(s['per_cpu'], '{:.0f}')} over the clean steps "
              f"({ops} in {cpu:.2f} CPU-s){split}; max rate with 0 failures {s['max_rate']}/s, "
              f"latency there p50 {fmt(s['p50'])} ms p99 {fmt(s['p99'])} ms")
    return out


# evosip side -> (what its CPU counts, its target against the "kamailio" side)
EVOSIP_SIDES = {"evosip": ("router+api", 2.0), "evosip-up": ("edge+router+api", 1.0)}


def ratios(results, unit, label):
    """Each evosip side vs each kamailio variant over the rates where BOTH ran clean (same
    load). The verdicts: {evosip side: target met}."""
    verdicts = {}
    for name, (counted, target) in EVOSIP_SIDES.items():
        ev = {r["rate"]: r for r in results.get(name, []) if r["clean"]}
        if ev:
            verdicts[name] = side_ratios(results, ev, name, counted, target, label)
    return verdicts


def side_ratios(results, ev, name, counted, target, label):
    verdict = None
    for ref in ("kamailio", "kamailio-sl", "kamailio-db"):
        kr = {r["rate"]: r for r in results.get(ref, []) if r["clean"]}
        rates = sorted(set(ev) & set(kr))
        if not rates:
            if ev and ref in results:
                print(f"ratio evosip/{ref}: no rate where both ran without failures")
            continue
        e_ops = sum(ev[x]["ok"] for x in rates)
        e_cpu = sum(ev[x]["cpu"] for x in rates)
        e_router = sum(ev[x]["cpu_parts"].get("router", 0) for x in rates)
        k_ops = sum(kr[x]["ok"] for x in rates)
        k_cpu = sum(kr[x]["cpu"] for x in rates)
        if not e_cpu or not k_cpu or not e_router:
            continue
        ratio = (e_ops / e_cpu) / (k_ops / k_cpu)
        r_only = (e_ops / e_router) / (k_ops / k_cpu)
        line = (f"ratio {name}({counted})/{ref} at rates {rates}: {label} per CPU-s "
                f"{e_ops / e_cpu:.0f} vs {k_ops / k_cpu:.0f} = {ratio:.2f}x "
                f"(router alone {r_only:.2f}x)")
        if ref == "kamailio":
            verdict = ratio >= target
            line += f" -> target >= {target:g}x: {'MET' if verdict else 'NOT MET'}"
            if not verdict:
                line += f" (short by {target / ratio:.2f}x)"
        print(line)
    return verdict


def metrics_snapshot(side):
    if not side.metrics_url:
        return None
    try:
        return h.scrape(side.metrics_url)
    except Exception:  # noqa: BLE001
        return None


def metric_lines(m, names):
    if m is None:
        return []
    out = []
    for n in names:
        for labels, v in m.series(n):
            if v == 0:
                continue
            lab = ",".join(f"{k}={x}" for k, x in sorted(labels.items()))
            out.append(f"{n}{{{lab}}} {v:.0f}")
    return out


def main():
    t_start = time.monotonic()
    work = h.make_tmpdir("evosip-rbench-")
    cleanup = h.Cleanup()
    if os.environ.get("KEEP") != "1":
        cleanup.dirs.append(work)
    failed_sides, skipped = [], []
    verdicts = {}
    users = h.make_users(USERS)
    with open(KAMAILIO_CFG, "rb") as f:
        cfg_hash = hashlib.sha256(f.read()).hexdigest()[:16]
    print(f"# evosip router vs {h.KAMAILIO} (bench/kamailio/router.cfg sha256 {cfg_hash}, "
          f"-m {KAM_SHM_MB}), {USERS} users, workers/children={WORKERS}, 127.0.0.1, sipp {h.SIPP}")
    print(f"# single proxy layer on both sides: sipp -> evosip router (no edge; record_route: true,"
          f" auth_algorithms [MD5], memory store) | sipp -> kamailio; evosip-up: sipp -> evosip "
          f"edge -> evosip router")
    print(f"# load average at start: {loadavg()} (2 shared cores: other jobs add noise)")
    try:
        dbdir = os.path.join(work, "kamdb")
        write_kamailio_db(dbdir, users + [CALLEE])
        reg_csv = h.write_auth_csv(os.path.join(work, "users.csv"), users)
        sides = []
        variants = [("kamailio", ())]
        if VARIANTS:
            variants.append(("kamailio-sl", ("STATELESS",)))
        if AUTH_DB:
            variants.append(("kamailio-db", ("AUTH_DB",)))
        variants = [v for v in variants if not SIDES or v[0] in SIDES]
        mem = choose_allocator(work, cleanup, dbdir, reg_csv) if variants else KAM_MEM
        for name, defines in variants:
            try:
                side = start_kamailio(work, cleanup, name, dbdir, defines, mem)
                sides.append(side)
                print(f"# {name}: {' '.join(side.argv)}")
            except Exception as e:  # noqa: BLE001
                print(f"{name}: FAILED TO START: {e}", file=sys.stderr)
                failed_sides.append(name)
        if SIDES and not {"evosip", "evosip-up"} & set(SIDES):
            pass
        elif os.path.isfile(EVOSIP_BIN) and os.access(EVOSIP_BIN, os.X_OK):
            try:
                ev, prov, api = start_evosip(work, cleanup, users + [CALLEE])
                if not SIDES or "evosip" in SIDES:
                    sides.append(ev)
                if not SIDES or "evosip-up" in SIDES:
                    sides.append(start_evosip_up(work, cleanup, api))
                print(f"# evosip: {USERS + 1} subscribers created through the api REST API in "
                      f"{prov:.1f} s (not measured); kamailio: db_text files written")
            except Exception as e:  # noqa: BLE001
                print(f"evosip: FAILED TO START: {e}", file=sys.stderr)
                failed_sides.append("evosip")
        else:
            print(f"evosip: SKIPPED - binary {EVOSIP_BIN} not built (or set EVOSIP_BIN)")
            skipped.append("evosip")
            if REQUIRE_BOTH:
                failed_sides.append("evosip")
        if not sides:
            raise RuntimeError("no side started")

        # 1. registrations ----------------------------------------------------------------
        reg_port = h.free_port()
        mem0 = {s.name: memory_kb(s.mem_pid()) for s in sides}
        print(f"\n== 1. REGISTER with digest auth: {USERS} users per step (2 round trips each), "
              f"rates {REG_RATES}/s ==")
        m0 = {s.name: metrics_snapshot(s) for s in sides}
        reg = phase(work, sides, "reg", REG_RATES, reg_csv, failed_sides, reg_port=reg_port)
        print()
        reg_sum = summarize(reg, "reg", failed_sides)
        verdicts["registrations"] = ratios(reg, "reg", "registrations")
        # memory per binding: growth of the proxy's PSS over the first pass (10,000 bindings)
        print("memory growth after the first pass (~%d bindings; PSS delta / bindings, rough: "
              "includes allocator and transaction churn):" % USERS)
        for s in sides:
            first = reg[s.name][0] if reg[s.name] else None
            if first:
                d = first["pss_kb"] - mem0[s.name][1]
                print(f"  {s.name:11} PSS {mem0[s.name][1]/1024:.1f} -> "
                      f"{first['pss_kb']/1024:.1f} MB: {d * 1024 / USERS:.0f} B per binding")
        for s in sides:
            for line in metric_lines(metrics_snapshot(s), [
                    "evosip_router_api_fetches_total", "evosip_router_auth_challenges_total",
                    "evosip_router_auth_failures_total", "evosip_router_registrations_total"]):
                print(f"  {s.name} {line}")

        # 2. calls -------------------------------------------------------------------------
        live = [s for s in sides if s.alive()]
        uas_port = h.free_port()
        for s in live:  # register the callee from the UAS port on every side
            r = run_step(work, s, "reg", 10, 1, 99,
                         h.write_auth_csv(os.path.join(work, "callee.csv"), [CALLEE]),
                         port=uas_port)
            if not r["clean"]:
                raise RuntimeError(f"{s.name}: callee registration failed: {r['summary']}")
        h.wait_until(lambda: not h.port_bound(uas_port, "udp"), 10, "uas port free")
        h.Sipp(work, "uas", scenario=h.scenario("router_uas_callee.xml"), port=uas_port,
               keys={"router_name": "bench"}, timeout_s=900, timeout_error=False,
               stat_period_s=60, extra=["-max_recv_loops", "100000"]).start(cleanup)
        call_csv = h.write_auth_csv(os.path.join(work, "callers.csv"), users)
        print(f"\n== 2. calls INVITE/407/ACK/INVITE+auth/100/180/200/ACK/BYE/200 (authenticated on "
              f"both sides, record-routed, dialog-tracked), {CALL_STEP:g} s per step, rates "
              f"{CALL_RATES}/s, pause ACK->BYE {CALL_MS} ms ==")
        calls = phase(work, live, "call", CALL_RATES, call_csv, failed_sides)
        print()
        call_sum = summarize(calls, "calls", failed_sides)
        verdicts["calls"] = ratios(calls, "calls", "calls")
        for s in live:
            for line in metric_lines(metrics_snapshot(s), [
                    "evosip_router_api_fetches_total", "evosip_router_dialogs_total",
                    "evosip_router_dialogs_active", "evosip_router_store_errors_total"]):
                print(f"  {s.name} {line}")
        print()
        for what, per_side in verdicts.items():
            for name, v in per_side.items():
                if v is not None:
                    target = EVOSIP_SIDES[name][1]
                    print(f"TARGET {name} >= {target:g}x kamailio {what} per proxy CPU-second: "
                          f"{'MET' if v else 'NOT MET'}")
        if skipped:
            print("ratios: n/a (evosip side skipped)")
    finally:
        cleanup.stop_all()
        if os.environ.get("KEEP") == "1":
            print(f"work dir kept: {work}")
    print(f"# load average at end: {loadavg()}; total {time.monotonic() - t_start:.0f} s")
    if failed_sides:
        print(f"FAILED sides: {sorted(set(failed_sides))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
PY
