"""Integration test harness for evosip (stdlib only, Python 3.9+).

Everything runs on 127.0.0.1 with ports picked at run time. Every process a test
starts is stopped by its PID (SIGTERM, then SIGKILL after a timeout) in tearDown /
finally blocks; nothing is ever killed by name. Every wait has a deadline.

Which proxy is under test:
  EVOSIP_BIN=/path/to/evosip            the real `evosip edge` (the normal mode)
  EVOSIP_ITEST_STANDIN=kamailio         (only when EVOSIP_BIN is unset) Debian's
                                        kamailio as a stateless stand-in, to check
                                        the harness and the sipp scenarios; tests of
                                        edge-only features skip with a message.
  neither                               every proxy test is skipped, saying why.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")
KAMAILIO_DIR = os.path.join(HERE, "kamailio")
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"


def scenario(name: str) -> str:
    path = os.path.join(SCENARIOS, name)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return path


# --------------------------------------------------------------------------------------
# Which proxy is under test
# --------------------------------------------------------------------------------------

SKIP_NO_BIN = (
    "EVOSIP_BIN is not set: build evosip (make build) and run with "
    "EVOSIP_BIN=/work/main/build/evosip; EVOSIP_ITEST_STANDIN=kamailio runs the "
    "proxy-generic checks against kamailio instead")


def proxy_kind() -> str:
    """'evosip' or 'kamailio'; raises SkipTest when neither is configured."""
    binary = os.environ.get("EVOSIP_BIN", "")
    if binary:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            # A set but broken EVOSIP_BIN is an error, never a skip.
            raise AssertionError(f"EVOSIP_BIN={binary!r} is not an executable file")
        return "evosip"
    if os.environ.get("EVOSIP_ITEST_STANDIN", "") == "kamailio":
        return "kamailio"
    raise unittest.SkipTest(SKIP_NO_BIN)


def require_evosip() -> str:
    kind = proxy_kind()
    if kind != "evosip":
        raise unittest.SkipTest(
            "edge-specific behaviour (RPC, metrics, failover, config, exact error codes): "
            "needs EVOSIP_BIN; not applicable to the kamailio stand-in")
    return os.environ["EVOSIP_BIN"]


# --------------------------------------------------------------------------------------
# Ports, temp dirs, waiting
# --------------------------------------------------------------------------------------

_port_lock = threading.Lock()
_ports_given: set = set()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, never handed out twice here."""
    with _port_lock:
        for _ in range(200):
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                t.bind((HOST, 0))
                port = t.getsockname()[1]
                # sipp binds port and (for some transports) neighbours; keep distance
                if port in _ports_given or port + 1 in _ports_given or port - 1 in _ports_given:
                    continue
                try:
                    u.bind((HOST, port))
                except OSError:
                    continue
                _ports_given.add(port)
                return port
            finally:
                t.close()
                u.close()
    raise RuntimeError("no free port found")


def make_tmpdir(prefix: str = "evosip-itest-") -> str:
    return tempfile.mkdtemp(prefix=prefix)


def ipv6_loopback() -> bool:
    """Whether this machine has ::1 (some containers have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _proc_net_ports(kind: str, listening_only: bool) -> set:
    ports = set()
    for name in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state = parts[1], parts[3]
                    if listening_only and state != "0A":
                        continue
                    ports.add(int(local.rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def port_bound(port: int, proto: str = "udp") -> bool:
    """True when some socket on this host is bound to UDP port / listening on TCP port."""
    if proto == "udp":
        return port in _proc_net_ports("udp", False)
    return port in _proc_net_ports("tcp", True)


def wait_until(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.05,
               proc: Optional["Process"] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"{proc.name} exited with {proc.returncode} while waiting for {what}:\n"
                f"{proc.tail()}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f"\n{proc.tail()}" if proc else ""))


def wait_port(port: int, proto: str = "udp", timeout: float = 10.0,
              proc: Optional["Process"] = None) -> None:
    wait_until(lambda: port_bound(port, proto), timeout, f"{proto} port {port}", proc=proc)


def http_get(url: str, timeout: float = 2.0, token: str = "") -> Tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def wait_http_ok(url: str, timeout: float = 10.0, proc: Optional["Process"] = None) -> None:
    def ok() -> bool:
        try:
            return http_get(url, timeout=0.5)[0] == 200
        except (OSError, urllib.error.URLError):
            return False
    wait_until(ok, timeout, f"HTTP 200 from {url}", interval=0.1, proc=proc)


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------

class Process:
    """A child process with stdout/stderr in files, stopped by PID only."""

    def __init__(self, name: str, argv: Sequence[str], workdir: str,
                 env: Optional[Dict[str, str]] = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.workdir = workdir
        self.stdout_path = os.path.join(workdir, f"{name}.stdout")
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(self.argv, cwd=workdir, env=full_env,
                                      stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._err, start_new_session=True)
        self.pid = self.popen.pid

    @property
    def returncode(self) -> Optional[int]:
        return self.popen.returncode

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> Optional[int]:
        """SIGTERM (or sig), then SIGKILL after timeout. Returns the exit status."""
        try:
            if self.popen.poll() is None:
                os.kill(self.pid, sig)
                try:
                    self.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.popen.wait(timeout=5)
        except ProcessLookupError:
            self.popen.wait(timeout=5)
        finally:
            self._out.close()
            self._err.close()
        return self.popen.returncode

    def kill(self) -> None:
        """Abrupt stop (a peer that 'stops answering')."""
        self.stop(timeout=0.1, sig=signal.SIGKILL)

    def stderr_text(self) -> str:
        self._err.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def tail(self, n: int = 4000) -> str:
        out = []
        for path in (self.stdout_path, self.stderr_path):
            try:
                with open(path, "rb") as f:
                    data = f.read()[-n:].decode("utf-8", "replace")
                out.append(f"--- {path} ---\n{data}")
            except OSError:
                pass
        return "\n".join(out)


class Cleanup:
    """Collects processes and dirs; stop_all() stops them in reverse order."""

    def __init__(self) -> None:
        self.procs: List[Process] = []
        self.dirs: List[str] = []
        self.callbacks: List[Callable[[], None]] = []

    def add(self, proc: Process) -> Process:
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for cb in reversed(self.callbacks):
            try:
                cb()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        for p in reversed(self.procs):
            try:
                p.stop(sig=signal.SIGINT)  # at once: SIGTERM would drain first
            except Exception:  # noqa: BLE001
                pass
        if os.environ.get("EVOSIP_ITEST_KEEP", "") != "1":
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------
# YAML config (the small subset evosip configs need)
# --------------------------------------------------------------------------------------

def _yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def _yaml_key(k) -> str:
    """A plain key as is; any other (e.g. "*97", which YAML reads as an alias) double-quoted."""
    k = str(k)
    return k if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", k) else json.dumps(k)


def to_yaml(obj, indent: int = 0) -> str:
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            k = _yaml_key(k)
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                if not v:
                    lines.append(f"{pad}{k}: []")
                else:
                    lines.append(f"{pad}{k}:")
                    for item in v:
                        lines.append(f"{pad}  - {_yaml_scalar(item)}")
            elif isinstance(v, dict):
                lines.append(f"{pad}{k}: {{}}")
            else:
                lines.append(f"{pad}{k}: {_yaml_scalar(v)}")
    else:
        raise TypeError("top level must be a dict")
    return "\n".join(lines)


def write_yaml(path: str, obj: dict) -> str:
    with open(path, "w") as f:
        f.write(to_yaml(obj) + "\n")
    return path


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------
# Control plane: JSON-RPC and metrics
# --------------------------------------------------------------------------------------

class RpcError(Exception):
    def __init__(self, status: int, body: str, error=None):
        super().__init__(f"RPC failed: HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body
        self.error = error


_rpc_ids = iter(range(1, 1 << 30))


def rpc_raw(url: str, method: str, params=None, token: str = "",
            timeout: float = 3.0) -> Tuple[int, str]:
    body = {"jsonrpc": "2.0", "id": next(_rpc_ids), "method": method}
    if params is not None:
        body["params"] = params
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def rpc(url: str, method: str, params=None, token: str = "", timeout: float = 3.0):
    """Calls a JSON-RPC 2.0 method; returns `result`, raises RpcError otherwise."""
    status, text = rpc_raw(url, method, params, token, timeout)
    if status != 200:
        raise RpcError(status, text)
    doc = json.loads(text)
    if "error" in doc and doc["error"] is not None:
        raise RpcError(status, text, doc["error"])
    if "result" not in doc:
        raise RpcError(status, text)
    return doc["result"]


_METRIC_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([-+]?[0-9.eE+-]+|NaN|[+-]?Inf)(\s+\d+)?$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Parsed Prometheus text: samples[(name, frozenset(labels.items()))] = value."""

    def __init__(self, text: str):
        self.text = text
        self.samples: Dict[Tuple[str, frozenset], float] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = _METRIC_RE.match(line)
            if not m:
                raise ValueError(f"unparsable metrics line: {line!r}")
            labels = {}
            if m.group(3):
                for lm in _LABEL_RE.finditer(m.group(3)):
                    labels[lm.group(1)] = bytes(lm.group(2), "utf-8").decode("unicode_escape")
            self.samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))

    def get(self, name: str, **labels) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    def series(self, name: str) -> List[Tuple[Dict[str, str], float]]:
        return [(dict(ls), v) for (n, ls), v in self.samples.items() if n == name]

    def has(self, name: str) -> bool:
        return any(n == name for (n, _ls) in self.samples)


def scrape(url: str, token: str = "") -> Metrics:
    status, text = http_get(url, timeout=3.0, token=token)
    if status != 200:
        raise AssertionError(f"GET {url} -> {status}: {text[:200]}")
    return Metrics(text)


# --------------------------------------------------------------------------------------
# sipp
# --------------------------------------------------------------------------------------

@dataclass
class SippResult:
    rc: Optional[int]
    successful: int
    failed: int
    stats: Dict[str, str]
    errors: str
    out: str

    def summary(self) -> str:
        keys = [k for k, v in self.stats.items()
                if k.endswith("(C)") and k.startswith("Failed") and v not in ("0", "")]
        detail = ", ".join(f"{k}={self.stats[k]}" for k in keys)
        return (f"sipp rc={self.rc} successful={self.successful} failed={self.failed}"
                f" {detail}\n{self.errors[-3000:]}")


def read_sipp_stats(path: str) -> Dict[str, str]:
    """Last row of a sipp -trace_stat CSV (cumulative (C) columns) as a dict."""
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=";") if r]
    except FileNotFoundError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def _int(stats: Dict[str, str], key: str) -> int:
    try:
        return int(float(stats.get(key, "0") or 0))
    except ValueError:
        return 0


def _ms(value: str) -> Optional[float]:
    """sipp durations 'HH:MM:SS:uuuuuu' -> ms."""
    try:
        h, m, s, us = value.split(":")
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000.0 + int(us) / 1000.0
    except (ValueError, AttributeError):
        return None


def rtd_percentiles(stats: Dict[str, str], which: int = 1,
                    pcts: Iterable[float] = (50, 99)) -> Dict[float, Optional[float]]:
    """Percentiles (upper bucket bounds, ms) from ResponseTimeRepartition<which> columns."""
    prefix = f"ResponseTimeRepartition{which}_"
    buckets: List[Tuple[float, int]] = []
    for k, v in stats.items():
        if not k.startswith(prefix):
            continue
        bound = k[len(prefix):]
        try:
            if bound.startswith("<"):
                b = float(bound[1:])
            elif bound.startswith(">="):
                b = float("inf")
            else:
                continue
        except ValueError:
            continue
        buckets.append((b, _int(stats, k)))
    buckets.sort()
    total = sum(c for _b, c in buckets)
    out: Dict[float, Optional[float]] = {}
    for p in pcts:
        if total == 0:
            out[p] = None
            continue
        need = total * p / 100.0
        acc = 0
        for b, c in buckets:
            acc += c
            if acc >= need:
                out[p] = b
                break
    return out


class Sipp:
    """Builds and runs one sipp instance (built-in scenario or XML file).

    uac: Sipp(..., remote="127.0.0.1:5060", calls=N, rate=R).run() -> SippResult
    uas: Sipp(..., builtin="uas" or scenario=...).start(); ...; .result() / .stop()
    """

    def __init__(self, workdir: str, name: str, *, builtin: str = "", scenario: str = "",
                 remote: str = "", port: int = 0, transport: str = "u1",
                 calls: int = 0, rate: float = 0, rate_period_ms: int = 1000,
                 limit: int = 0, duration_ms: Optional[int] = None,
                 timeout_s: float = 0, timeout_error: bool = True,
                 recv_timeout_ms: int = 0, keys: Optional[Dict[str, str]] = None,
                 rsa: str = "", trace_msg: Optional[bool] = None, trace_rtt: bool = False,
                 stat_period_s: int = 1, max_retrans: Optional[int] = None,
                 abort_unexpected: bool = False,
                 extra: Sequence[str] = ()):
        if bool(builtin) == bool(scenario):
            raise ValueError("give exactly one of builtin or scenario")
        self.workdir = workdir
        self.name = name
        self.port = port or free_port()
        self.stat_path = os.path.join(workdir, f"{name}_stat.csv")
        self.err_path = os.path.join(workdir, f"{name}_errors.log")
        self.msg_path = os.path.join(workdir, f"{name}_messages.log")
        self.rtt_path = os.path.join(workdir, f"{name}_rtt.csv")
        self.timeout_s = timeout_s
        argv = [SIPP]
        argv += ["-sn", builtin] if builtin else ["-sf", scenario]
        if remote:
            argv.append(remote)
        argv += ["-i", HOST, "-p", str(self.port), "-t", transport, "-nostdin",
                 "-trace_stat", "-stf", self.stat_path, "-fd", str(stat_period_s),
                 "-trace_err", "-error_file", self.err_path,
                 "-cp", str(free_port()),  # sipp's control socket: keep it off 8888
                 "-max_recv_loops", "10000", "-deadcall_wait", "2000"]
        if not abort_unexpected:
            # Ignore unexpected messages (a 180 overtaken by its 200 on UDP) instead of
            # aborting the call; a missing expected message still fails it by timeout.
            argv += ["-default_behaviors", "all,-abortunexp"]
        if calls:
            argv += ["-m", str(calls)]
        if rate:
            argv += ["-r", str(rate), "-rp", str(rate_period_ms)]
        if limit:
            argv += ["-l", str(limit)]
        if duration_ms is not None:
            argv += ["-d", str(duration_ms)]
        if timeout_s:
            argv += ["-timeout", f"{int(timeout_s)}s"]
            if timeout_error:
                argv.append("-timeout_error")
        if recv_timeout_ms:
            argv += ["-recv_timeout", str(recv_timeout_ms)]
        if max_retrans is not None:
            argv += ["-max_retrans", str(max_retrans)]
        if rsa:
            argv += ["-rsa", rsa]
        if trace_msg is None:  # EVOSIP_ITEST_TRACE=1 logs every SIP message of every sipp
            trace_msg = os.environ.get("EVOSIP_ITEST_TRACE", "") == "1"
        if trace_msg:
            argv += ["-trace_msg", "-message_file", self.msg_path]
        if trace_rtt:
            argv += ["-trace_rtt", "-rtt_freq", "1"]
        for k, v in (keys or {}).items():
            argv += ["-key", k, str(v)]
        argv += list(extra)
        self.argv = argv
        self.proc: Optional[Process] = None

    # -- background (uas) ------------------------------------------------------------
    def start(self, cleanup: Optional[Cleanup] = None, wait: bool = True) -> "Sipp":
        self.proc = Process(self.name, self.argv, self.workdir)
        if cleanup is not None:
            cleanup.add(self.proc)
        if wait:
            wait_port(self.port, "tcp" if self.argv[self.argv.index("-t") + 1].startswith("t")
                      else "udp", timeout=10, proc=self.proc)
        return self

    def stop(self) -> Optional[int]:
        return self.proc.stop(timeout=3) if self.proc else None

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    def wait(self, timeout: float) -> SippResult:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.stop(timeout=2)
        return self.result()

    def _stats_time(self) -> float:
        cur = read_sipp_stats(self.stat_path).get("CurrentTime", "")
        try:
            return float(cur.split("\t")[-1])
        except ValueError:
            return 0.0

    def result(self) -> SippResult:
        """Final result; for a running instance (a uas) waits for a stats row written
        after this call (sipp dumps every -fd seconds), at most 3 s."""
        if self.proc is not None and self.proc.alive():
            asked = time.time()
            deadline = time.monotonic() + 3.0
            while self._stats_time() <= asked and time.monotonic() < deadline \
                    and self.proc.alive():
                time.sleep(0.1)
        stats = read_sipp_stats(self.stat_path)
        try:
            with open(self.err_path, "rb") as f:
                errors = f.read()[-20000:].decode("utf-8", "replace")
        except OSError:
            errors = ""
        out = self.proc.tail(3000) if self.proc else ""
        return SippResult(self.proc.returncode if self.proc else None,
                          _int(stats, "SuccessfulCall(C)"), _int(stats, "FailedCall(C)"),
                          stats, errors, out)

    def stats(self) -> Dict[str, str]:
        return read_sipp_stats(self.stat_path)

    def incoming_calls(self) -> int:
        return _int(self.result().stats, "IncomingCall(C)")

    # -- foreground (uac) ------------------------------------------------------------
    def run(self, cleanup: Optional[Cleanup] = None) -> SippResult:
        """Runs to completion (bounded by timeout_s + 15 s) and returns the result."""
        bound = (self.timeout_s or 60) + 15
        self.start(cleanup, wait=False)
        return self.wait(bound)


def sipp_ok(res: SippResult, expected_calls: int) -> Tuple[bool, str]:
    ok = res.rc == 0 and res.failed == 0 and res.successful == expected_calls
    return ok, res.summary()


# --------------------------------------------------------------------------------------
# Raw SIP messages
# --------------------------------------------------------------------------------------

@dataclass
class SipMessage:
    first_line: str
    headers: List[Tuple[str, str]]
    body: bytes
    raw: bytes
    source: Optional[Tuple[str, int]] = None

    COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
               "l": "content-length", "c": "content-type", "k": "supported",
               "s": "subject", "e": "content-encoding", "o": "event"}

    @classmethod
    def parse(cls, data: bytes, source=None) -> "SipMessage":
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = data.partition(b"\n\n")
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        headers: List[Tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:
                n, v = headers[-1]
                headers[-1] = (n, v + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return cls(lines[0], headers, body, data, source)

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first_line.split()[1]) if self.is_response else 0

    @property
    def method(self) -> str:
        return "" if self.is_response else self.first_line.split()[0]

    @property
    def ruri(self) -> str:
        return "" if self.is_response else self.first_line.split()[1]

    def _norm(self, name: str) -> str:
        n = name.lower()
        return self.COMPACT.get(n, n)

    def all(self, name: str) -> List[str]:
        """All values of a header, comma-separated values split (outside <> and quotes)."""
        want = self._norm(name)
        out: List[str] = []
        for n, v in self.headers:
            if self._norm(n) == want:
                out.extend(split_header_values(v) if want not in (
                    "call-id", "cseq", "content-length", "content-type", "subject", "date",
                    "user-agent", "server", "retry-after") else [v])
        return out

    def get(self, name: str) -> Optional[str]:
        vals = self.all(name)
        return vals[0] if vals else None

    def header_names(self) -> List[str]:
        return [n for n, _v in self.headers]

    @property
    def call_id(self) -> Optional[str]:
        return self.get("Call-ID")

    def __str__(self) -> str:
        return self.raw.decode("utf-8", "replace")


def split_header_values(value: str) -> List[str]:
    out, cur, depth, quoted = [], [], 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        if ch == "," and not quoted and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def via_params(via: str) -> Dict[str, Optional[str]]:
    params = {}
    for p in via.split(";")[1:]:
        k, eq, v = p.strip().partition("=")
        params[k.lower()] = v if eq else None
    return params


def new_branch() -> str:
    return "z9hG4bK-" + os.urandom(8).hex()


def new_call_id() -> str:
    return os.urandom(10).hex() + "@itest"


def build_request(method: str, ruri: str, *, via_host: str, via_port: int,
                  transport: str = "UDP", call_id: Optional[str] = None, cseq: int = 1,
                  branch: Optional[str] = None, from_uri: str = "sip:alice@example.com",
                  to_uri: Optional[str] = None, from_tag: Optional[str] = None,
                  to_tag: str = "", max_forwards: Optional[int] = 70,
                  rport: bool = True, extra_headers: Sequence[str] = (),
                  body: bytes = b"", content_length: Optional[str] = None,
                  omit: Sequence[str] = ()) -> bytes:
    """A hand-made request. `omit` drops headers by name; content_length overrides."""
    call_id = call_id or new_call_id()
    branch = branch or new_branch()
    from_tag = from_tag or os.urandom(4).hex()
    to_uri = to_uri or ruri
    via = f"SIP/2.0/{transport} {via_host}:{via_port};branch={branch}" + (";rport" if rport else "")
    headers = [
        ("Via", via),
        ("Max-Forwards", str(max_forwards) if max_forwards is not None else None),
        ("From", f"<{from_uri}>;tag={from_tag}"),
        ("To", f"<{to_uri}>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:alice@{via_host}:{via_port};transport={transport.lower()}>"),
    ]
    lines = [f"{method} {ruri} SIP/2.0"]
    skip = {o.lower() for o in omit}
    for n, v in headers:
        if v is None or n.lower() in skip:
            continue
        lines.append(f"{n}: {v}")
    lines.extend(extra_headers)
    if "content-length" not in skip:
        lines.append(f"Content-Length: {content_length if content_length is not None else len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build_response(req: SipMessage, code: int, reason: str, *, to_tag: str = "",
                   extra_headers: Sequence[str] = (), copy_record_route: bool = True,
                   contact: str = "") -> bytes:
    lines = [f"SIP/2.0 {code} {reason}"]
    for n, v in req.headers:
        ln = req._norm(n)
        if ln in ("via", "from", "call-id", "cseq") or (
                copy_record_route and ln == "record-route"):
            lines.append(f"{n}: {v}")
        elif ln == "to":
            if to_tag and ";tag=" not in v:
                v = f"{v};tag={to_tag}"
            lines.append(f"{n}: {v}")
    if contact:
        lines.append(f"Contact: {contact}")
    lines.extend(extra_headers)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SipClient:
    """A raw SIP endpoint on UDP or TCP for hand-made messages."""

    def __init__(self, transport: str, remote: Tuple[str, int], timeout: float = 2.0):
        self.transport = transport.upper()
        self.remote = remote
        self.timeout = timeout
        self._buf = b""
        self.log: List[SipMessage] = []  # every message received, in order
        if self.transport == "UDP":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((HOST, 0))
        else:
            self.sock = socket.create_connection(remote, timeout=timeout)
        self.sock.settimeout(timeout)
        self.local_port = self.sock.getsockname()[1]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SipClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, ruri: str, **kw) -> bytes:
        kw.setdefault("via_host", HOST)
        kw.setdefault("via_port", self.local_port)
        kw.setdefault("transport", self.transport)
        return build_request(method, ruri, **kw)

    def send(self, data: bytes) -> None:
        if self.transport == "UDP":
            self.sock.sendto(data, self.remote)
        else:
            self.sock.sendall(data)

    def recv(self, timeout: Optional[float] = None) -> Optional[SipMessage]:
        """Next message, or None on timeout / closed connection."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        if self.transport == "UDP":
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                try:
                    data, src = self.sock.recvfrom(70000)
                except socket.timeout:
                    return None
                if data.strip():  # skip keep-alives
                    msg = SipMessage.parse(data, src)
                    self.log.append(msg)
                    return msg
        while True:
            msg = self._frame()
            if msg is not None:
                self.log.append(msg)
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                return None
            if not chunk:
                self.closed_by_peer = True
                return None
            self._buf += chunk

    closed_by_peer = False

    def _frame(self) -> Optional[SipMessage]:
        self._buf = self._buf.lstrip(b"\r\n")
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buf[:end].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        clen = int(m.group(1)) if m else 0
        total = end + 4 + clen
        if len(self._buf) < total:
            return None
        data, self._buf = self._buf[:total], self._buf[total:]
        return SipMessage.parse(data, self.remote)

    def final_response(self, timeout: float = 3.0) -> Optional[SipMessage]:
        """Waits for the first response >= 200 (skips 1xx and stray requests)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self.recv(left)
            if m is None:
                return None
            if m.is_response and m.status >= 200:
                return m

    def transact(self, data: bytes, timeout: float = 3.0) -> Optional[SipMessage]:
        self.send(data)
        return self.final_response(timeout)


# --------------------------------------------------------------------------------------
# A scriptable fake router (records every request; answers or stays mute)
# --------------------------------------------------------------------------------------

class FakeRouter:
    """UDP SIP peer standing in for a router. Records every request it receives and
    answers like a stateless UAS: 200 OK (INVITE: with To-tag, Record-Route echoed,
    Contact) to the top Via (received/rport honoured), nothing to ACK. `mute=True`
    makes it record without answering (a router that stopped answering)."""

    def __init__(self, name: str, port: int = 0, mute: bool = False, host: str = HOST):
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.mute = mute
        self.requests: List[SipMessage] = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, self.port))
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"router-{name}", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data.strip():
                continue
            try:
                msg = self._parse(data, src)
            except Exception:  # noqa: BLE001 - record nothing for garbage
                continue
            if msg is None or msg.is_response:
                continue
            with self._lock:
                self.requests.append(msg)
            self._answer(msg, data, src)

    @staticmethod
    def _parse(data: bytes, src) -> Optional[SipMessage]:
        """The request to record, or None to ignore the datagram (subclasses may filter)."""
        return SipMessage.parse(data, src)

    def _answer(self, msg: SipMessage, data: bytes, src) -> None:
        """Answers a recorded request: 200 OK unless mute; never an ACK."""
        if self.mute or msg.method == "ACK":
            return
        resp = build_response(msg, 200, "OK", to_tag=f"r{self.name}",
                              contact=f"<sip:{self.host}:{self.port}>",
                              extra_headers=[f"X-Router: {self.name}"])
        self.sock.sendto(resp, self._reply_address(msg, src))

    @staticmethod
    def _reply_address(msg: SipMessage, src) -> Tuple[str, int]:
        via = msg.get("Via") or ""
        m = re.match(r"SIP/2\.0/\S+\s+([^;:\s]+)(?::(\d+))?", via)
        if not m:
            return src
        params = via_params(via)
        host = params.get("received") or m.group(1)
        port = params.get("rport") or m.group(2) or "5060"
        return (host, int(port))

    def received(self, method: Optional[str] = None) -> List[SipMessage]:
        with self._lock:
            return [m for m in self.requests if method is None or m.method == method]

    def call_ids(self) -> set:
        return {m.call_id for m in self.received()}

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# --------------------------------------------------------------------------------------
# The proxy under test
# --------------------------------------------------------------------------------------

@dataclass
class ProxyHandle:
    kind: str
    sip_port: int
    proc: Process
    control_url: str = ""
    token: str = ""
    config_path: str = ""
    transports: Tuple[str, ...] = ("udp", "tcp")
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def addr(self) -> Tuple[str, int]:
        return (HOST, self.sip_port)

    @property
    def hostport(self) -> str:
        return f"{HOST}:{self.sip_port}"

    def rpc(self, method: str, params=None):
        return rpc(self.control_url + "/rpc", method, params, token=self.token)

    def metrics(self) -> Metrics:
        return scrape(self.control_url + "/metrics", token=self.token)

    def alive(self) -> bool:
        return self.proc.alive()


def edge_config(sip_port: int, control_port: int, routers: Sequence[str],
                transports: Sequence[str] = ("udp", "tcp"), overrides: Optional[dict] = None
                ) -> dict:
    cfg = {
        "sip": {"listen": [f"{t}:{HOST}:{sip_port}" for t in transports], "advertise": ""},
        "control": {"listen": f"{HOST}:{control_port}", "token": ""},
        "workers": 2,
        "log": {"level": "info", "format": "text"},
        "edge": {"routers": list(routers), "router_timeout_ms": 500,
                 "rate_limit": {"requests_per_second": 0}},
    }
    return deep_merge(cfg, overrides or {})


def start_evosip_edge(workdir: str, cleanup: Cleanup, routers: Sequence[str], *,
                      transports: Sequence[str] = ("udp", "tcp"),
                      overrides: Optional[dict] = None, env: Optional[Dict[str, str]] = None,
                      ready_timeout: float = 15.0) -> ProxyHandle:
    binary = require_evosip()
    sip_port, control_port = free_port(), free_port()
    cfg = edge_config(sip_port, control_port, routers, transports, overrides)
    path = write_yaml(os.path.join(workdir, "edge.yaml"), cfg)
    # The tests' clients all sit on loopback and many send refused credentials on purpose: exempt
    # loopback from the edge's authentication-failure ban. Given by environment variable, which
    # an edge that has no such key ignores (a key in the file would stop it).
    env = {"EVOSIP_EDGE_AUTH_BAN_EXEMPT": "127.0.0.0/8,::1/128", **(env or {})}
    proc = cleanup.add(Process("evosip-edge", [binary, "edge", "--config", path], workdir, env))
    control_url = f"http://{HOST}:{control_port}"
    wait_http_ok(control_url + "/readyz", timeout=ready_timeout, proc=proc)
    for t in transports:
        wait_port(sip_port, t, timeout=5, proc=proc)
    return ProxyHandle("evosip", sip_port, proc, control_url, cfg["control"]["token"], path,
                       tuple(transports))


def kamailio_standin_cfg(routers: Sequence[str]) -> str:
    """The stand-in cfg with the router list inlined: Call-ID hash over the set."""
    with open(os.path.join(KAMAILIO_DIR, "standin.cfg")) as f:
        template = f.read()
    lines = [f"\t$var(h) = $(ci{{s.corehash,{len(routers)}}});"]
    for i, r in enumerate(routers):
        lines.append(f'\tif ($var(h) == {i}) {{ $du = "{r}"; }}')
    return template.replace("\t#@PICK_ROUTER@#", "\n".join(lines))


def start_kamailio_standin(workdir: str, cleanup: Cleanup, routers: Sequence[str], *,
                           transports: Sequence[str] = ("udp", "tcp")) -> ProxyHandle:
    sip_port = free_port()
    cfg_path = os.path.join(workdir, "kamailio.cfg")
    with open(cfg_path, "w") as f:
        f.write(kamailio_standin_cfg(routers))
    argv = [KAMAILIO, "-f", cfg_path, "-DD", "-E", "-n", "2", "-m", "32", "-M", "8",
            "-Y", workdir, "-w", workdir]
    for t in transports:
        argv += ["-l", f"{t}:{HOST}:{sip_port}"]
    proc = cleanup.add(Process("kamailio", argv, workdir))
    for t in transports:
        wait_port(sip_port, t, timeout=10, proc=proc)
    handle = ProxyHandle("kamailio", sip_port, proc, config_path=cfg_path,
                         transports=tuple(transports))
    # ready = answers OPTIONS addressed to itself
    def answers() -> bool:
        with SipClient("UDP", handle.addr, timeout=0.3) as c:
            r = c.transact(c.request("OPTIONS", f"sip:{handle.hostport}"), timeout=0.3)
            return r is not None and r.status == 200
    wait_until(answers, 10, "kamailio answering OPTIONS", proc=proc)
    return handle


def start_proxy(workdir: str, cleanup: Cleanup, routers: Sequence[str], **kw) -> ProxyHandle:
    """Starts the proxy under test (evosip edge, or the kamailio stand-in)."""
    kind = proxy_kind()
    if kind == "evosip":
        return start_evosip_edge(workdir, cleanup, routers, **kw)
    kw.pop("overrides", None)
    kw.pop("env", None)
    return start_kamailio_standin(workdir, cleanup, routers, **kw)


# --------------------------------------------------------------------------------------
# Base test case
# --------------------------------------------------------------------------------------

def test_failed(tc: unittest.TestCase) -> bool:
    """Whether the running test tc has failed or errored so far (from its tearDown or a
    cleanup)."""
    outcome = getattr(tc, "_outcome", None)
    if outcome is None:
        return False
    result = getattr(outcome, "result", None)
    errs = getattr(result, "errors", []) + getattr(result, "failures", [])
    if any(t is tc for t, _ in errs):
        return True
    return hasattr(outcome, "success") and not outcome.success


class SharedWorkdir:
    """Mixin for a test class whose tests share one work directory (made in setUpClass): the
    class removes it at the end unless one of its tests failed, and then says where it is."""

    _a_test_failed = False

    def tearDown(self) -> None:
        if test_failed(self):
            type(self)._a_test_failed = True
        super().tearDown()

    @classmethod
    def release_workdir(cls, path: str) -> None:
        if cls._a_test_failed:
            print(f"\n[artefacts kept in {path}]")
        else:
            shutil.rmtree(path, ignore_errors=True)


class ProxyTestCase(unittest.TestCase):
    """Per-test temp dir and cleanup; subclasses start what they need in setUp."""

    def setUp(self) -> None:
        self.kind = proxy_kind()
        self.cleanup = Cleanup()
        self.addCleanup(self.cleanup.stop_all)
        self.tmp = make_tmpdir(f"evosip-{self.id().split('.')[-1]}-")
        self.cleanup.dirs.append(self.tmp)
        self._t0 = time.monotonic()

    def tearDown(self) -> None:
        # Keep artefacts of failed tests for inspection.
        if test_failed(self):
            self.cleanup.dirs.remove(self.tmp)
            print(f"\n[artefacts kept in {self.tmp}]")

    def router(self, name: str, **kw) -> FakeRouter:
        r = FakeRouter(name, **kw)
        self.cleanup.callbacks.append(r.close)
        return r

    def sipp(self, name: str, **kw) -> Sipp:
        return Sipp(self.tmp, name, **kw)

    def uas(self, name: str, scen: str, keys: Optional[Dict[str, str]] = None, **kw) -> Sipp:
        keys = dict(keys or {})
        keys.setdefault("router_name", name)
        kw.setdefault("timeout_s", 120)
        kw.setdefault("timeout_error", False)
        return self.sipp(name, scenario=scenario(scen), keys=keys, **kw).start(self.cleanup)

    def uac(self, name: str, proxy: ProxyHandle, scen: str, calls: int, rate: float,
            transport: str = "u1", **kw) -> Sipp:
        kw.setdefault("timeout_s", 40)
        kw.setdefault("recv_timeout_ms", 6000)
        kw.setdefault("duration_ms", 20)
        kw.setdefault("limit", 200)
        return self.sipp(name, scenario=scenario(scen), remote=proxy.hostport,
                         transport=transport, calls=calls, rate=rate, **kw)

    def assertSippOk(self, res: SippResult, calls: int) -> None:
        ok, summary = sipp_ok(res, calls)
        self.assertTrue(ok, f"expected {calls} successful calls and 0 failed: {summary}")

    def assertAlive(self, proxy: ProxyHandle) -> None:
        self.assertTrue(proxy.alive(), f"{proxy.kind} died (rc={proxy.proc.poll()}):\n"
                        f"{proxy.proc.tail()}")


# --------------------------------------------------------------------------------------
# PostgreSQL started by a test, and a fake control-RPC peer (added for the api tests)
# --------------------------------------------------------------------------------------

PG_BIN = os.environ.get("EVOSIP_PG_BIN", "/usr/lib/postgresql/15/bin")


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (run as user postgres when we are root).
    Raises SkipTest only when the PostgreSQL binaries are missing."""

    def __init__(self) -> None:
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            raise unittest.SkipTest(
                f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql-15, or "
                "set EVOSIP_PG_BIN)")
        self.dir = tempfile.mkdtemp(prefix="evosip-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self._run(["initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync"], 120)
        self.start()

    def _run(self, argv: List[str], timeout: float) -> None:
        cmd = [os.path.join(PG_BIN, argv[0])] + argv[1:]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=timeout, cwd=self.dir)
        if res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n"
                                 f"{res.stdout.decode('utf-8', 'replace')[-3000:]}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def start(self) -> None:
        self._run(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                   "-o", f"-c listen_addresses={HOST} -p {self.port} -k {self.dir} -c fsync=off",
                   "-w", "-t", "60", "start"], 90)

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"], 90)

    def close(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - cleanup goes on
            pass
        if os.environ.get("EVOSIP_ITEST_KEEP", "") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class FakeRpcPeer:
    """An HTTP JSON-RPC 2.0 listener on POST /rpc standing in for a role's control server.
    Records every call as (method, params, authorization header) and answers {"result": {}}."""

    def __init__(self) -> None:
        import http.server

        peer = self
        self.calls: List[Tuple[str, object, str]] = []
        self._lock = threading.Lock()
        self._event = threading.Condition(self._lock)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {}
                with peer._event:
                    peer.calls.append((doc.get("method", ""), doc.get("params"),
                                       self.headers.get("Authorization", "")))
                    peer._event.notify_all()
                reply = json.dumps({"jsonrpc": "2.0", "id": doc.get("id"),
                                    "result": {"invalidated": 1}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def wait_for(self, pred: Callable[[Tuple[str, object, str]], bool], timeout: float = 5.0):
        """The first recorded call matching pred, waiting at most timeout; None otherwise."""
        deadline = time.monotonic() + timeout
        with self._event:
            while True:
                for call in self.calls:
                    if pred(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._event.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------------------
# The routing layer: digest helper, router/api/redis/platform starters, sipp relay
# (added for the router tests; test_router_*.py)
# --------------------------------------------------------------------------------------

ROUTER_DOMAIN = "evosip.local"
ROUTER_NONCE_SECRET = "itest-nonce-secret-0123456789abcdef"
API_TOKEN = "itest-api-token"
API_INTERNAL_TOKEN = "itest-api-internal-token"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _digest_hash(algorithm: str, text: str) -> str:
    import hashlib
    alg = (algorithm or "MD5").upper()
    if alg == "MD5":
        return hashlib.md5(text.encode()).hexdigest()
    if alg == "SHA-256":
        return hashlib.sha256(text.encode()).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def digest_response(algorithm: str, username: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, nc: str = "00000001", cnonce: str = "",
                    qop: Optional[str] = "auth") -> str:
    """RFC 2617 / RFC 7616 request-digest (qop=auth, or RFC 2069 when qop is None)."""
    ha1 = _digest_hash(algorithm, f"{username}:{realm}:{password}")
    ha2 = _digest_hash(algorithm, f"{method}:{uri}")
    if qop:
        return _digest_hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _digest_hash(algorithm, f"{ha1}:{nonce}:{ha2}")


def parse_digest(value: str) -> Dict[str, str]:
    """'Digest realm="x", nonce="y", qop="auth"' -> {'scheme': 'Digest', 'realm': 'x', ...}
    (parameter names lower-cased, quotes removed)."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    out = {"scheme": scheme}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,]+)', rest):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def digest_challenges(msg: SipMessage) -> List[Dict[str, str]]:
    """Every WWW-Authenticate / Proxy-Authenticate challenge of a response, in order
    (header fields are not split on commas: a challenge's parameters contain commas)."""
    out = []
    for n, v in msg.headers:
        if n.lower() in ("www-authenticate", "proxy-authenticate"):
            d = parse_digest(v)
            d["header"] = n
            out.append(d)
    return out


def pick_challenge(msg: SipMessage, algorithm: str = "MD5") -> Optional[Dict[str, str]]:
    want = algorithm.upper()
    for ch in digest_challenges(msg):
        if (ch.get("algorithm") or "MD5").upper() == want:
            return ch
    return None


def digest_authorization(challenge: Dict[str, str], username: str, password: str, method: str,
                         uri: str, nc: int = 1, cnonce: Optional[str] = None,
                         algorithm: Optional[str] = None, response: Optional[str] = None,
                         realm: Optional[str] = None) -> str:
    """The value of an Authorization / Proxy-Authorization header answering `challenge`.
    `response` overrides the computed digest (wrong-password tests); realm defaults to the
    challenge's."""
    alg = algorithm or challenge.get("algorithm") or "MD5"
    realm = realm if realm is not None else challenge.get("realm", "")
    nonce = challenge["nonce"]
    cnonce = cnonce or os.urandom(8).hex()
    ncs = f"{nc:08x}"
    resp = response or digest_response(alg, username, realm, password, method, uri, nonce,
                                       ncs, cnonce, "auth")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{resp}"', f"algorithm={alg}", "qop=auth", f"nc={ncs}",
             f'cnonce="{cnonce}"']
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)


def credentials_header_name(status: int) -> str:
    return "Authorization" if status == 401 else "Proxy-Authorization"


class RawRegistration:
    """A REGISTER dialog of a raw SipClient (one Call-ID, increasing CSeq), for tests that
    look at every step of digest authentication."""

    def __init__(self, client: SipClient, user: str, domain: str = ROUTER_DOMAIN,
                 ruri: Optional[str] = None, contact: Optional[str] = None):
        self.c = client
        self.user = user
        self.domain = domain
        self.ruri = ruri or f"sip:{domain}"
        self.contact = contact or (f"<sip:{user}@{HOST}:{client.local_port};"
                                   f"transport={client.transport.lower()}>")
        self.call_id = new_call_id()
        self.from_tag = os.urandom(4).hex()
        self.cseq = 0

    def send(self, expires: Optional[int] = 3600, authorization: Optional[str] = None,
             contact: Optional[str] = None, extra: Sequence[str] = (),
             timeout: float = 4.0) -> Optional[SipMessage]:
        self.cseq += 1
        headers = [f"Contact: {contact or self.contact}"]
        if expires is not None:
            headers.append(f"Expires: {expires}")
        if authorization:
            headers.append(f"Authorization: {authorization}")
        headers.extend(extra)
        aor = f"sip:{self.user}@{self.domain}"
        req = self.c.request("REGISTER", self.ruri, call_id=self.call_id, cseq=self.cseq,
                             from_uri=aor, to_uri=aor, from_tag=self.from_tag,
                             omit=["Contact"], extra_headers=headers)
        return self.c.transact(req, timeout=timeout)

    def register(self, password: str, expires: Optional[int] = 3600,
                 algorithm: str = "SHA-256", contact: Optional[str] = None,
                 extra: Sequence[str] = ()) -> Tuple[Optional[SipMessage], Optional[SipMessage]]:
        """REGISTER, expect a challenge, answer it. Returns (challenge response, final)."""
        first = self.send(expires, contact=contact, extra=extra)
        if first is None or first.status not in (401, 407):
            return first, None
        ch = pick_challenge(first, algorithm)
        if ch is None:
            return first, None
        auth = digest_authorization(ch, self.user, password, "REGISTER", self.ruri)
        return first, self.send(expires, authorization=auth, contact=contact, extra=extra)


# -- which binary, which roles -----------------------------------------------------------

_roles_cache: Dict[str, set] = {}


def evosip_roles(binary: str) -> set:
    """Subcommands listed by `evosip --help`."""
    if binary not in _roles_cache:
        res = subprocess.run([binary, "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=20)
        text = res.stdout.decode("utf-8", "replace")
        parts = re.split(r"(?i)subcommands:", text, maxsplit=1)
        sub = parts[1] if len(parts) == 2 else text
        _roles_cache[binary] = {m.group(1) for m in re.finditer(r"(?m)^\s{2,}([a-z][a-z-]*)\s",
                                                                sub)}
    return _roles_cache[binary]


def require_role(role: str) -> str:
    """EVOSIP_BIN when it has the `role` subcommand; SkipTest (saying why) when it does not
    (the role is not written yet), or when EVOSIP_BIN is unset."""
    binary = os.environ.get("EVOSIP_BIN", "")
    if not binary:
        raise unittest.SkipTest(f"EVOSIP_BIN is not set: the `{role}` tests need the real "
                                "evosip binary (build it, then EVOSIP_BIN=/path/to/evosip)")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise AssertionError(f"EVOSIP_BIN={binary!r} is not an executable file")
    if role not in evosip_roles(binary):
        raise unittest.SkipTest(f"`evosip {role}` is not a subcommand of {binary} yet "
                                f"(`evosip --help` lists {sorted(evosip_roles(binary))})")
    return binary


def require_router_platform() -> str:
    """Everything a router test needs: the router, edge and api roles in EVOSIP_BIN."""
    binary = require_role("router")
    for role in ("edge", "api"):
        if role not in evosip_roles(binary):
            raise AssertionError(f"{binary} has `router` but not `{role}`")
    return binary


# -- redis ---------------------------------------------------------------------------------

class Redis:
    """A real redis-server on 127.0.0.1 (TOOLING.md command), daemonized with a pidfile and
    stopped by `redis-cli shutdown nosave`, then by its PID. restart() keeps the port."""

    def __init__(self, workdir: str, port: int = 0):
        if not os.path.exists(REDIS_SERVER):
            raise unittest.SkipTest("redis-server is not installed (apt-get install redis-server)")
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.pidfile = os.path.join(self.dir, "redis.pid")
        self.start()

    def cli(self, *args: str, timeout: float = 3.0) -> Tuple[int, str]:
        res = subprocess.run([REDIS_CLI, "-h", HOST, "-p", str(self.port)] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        return res.returncode, res.stdout.decode("utf-8", "replace").strip()

    def ping(self) -> bool:
        try:
            rc, out = self.cli("ping", timeout=1.0)
        except subprocess.TimeoutExpired:
            return False
        return rc == 0 and out == "PONG"

    def start(self) -> None:
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass
        subprocess.run([REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--dir", self.dir,
                        "--save", "", "--appendonly", "no", "--daemonize", "yes",
                        "--pidfile", self.pidfile,
                        "--logfile", os.path.join(self.dir, "redis.log")],
                       check=True, timeout=10, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_until(self.ping, 10, f"redis-server on port {self.port}")

    def pid(self) -> Optional[int]:
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        try:
            self.cli("shutdown", "nosave", timeout=3)
        except subprocess.TimeoutExpired:
            pass
        if pid is None:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def keys(self, pattern: str = "*") -> List[str]:
        rc, out = self.cli("--scan", "--pattern", pattern)
        return [k for k in out.splitlines() if k] if rc == 0 else []


def start_redis(workdir: str, cleanup: Cleanup) -> Redis:
    r = Redis(workdir)
    cleanup.callbacks.append(r.stop)
    return r


# -- api -------------------------------------------------------------------------------------

class ApiHandle:
    """A running `evosip api` (SQLite in the workdir) with a keep-alive REST connection."""

    def __init__(self, proc: Process, port: int, control_port: int, config_path: str,
                 token: str = API_TOKEN, internal_token: str = API_INTERNAL_TOKEN):
        self.proc = proc
        self.port = port
        self.control_port = control_port
        self.config_path = config_path
        self.token = token
        self.internal_token = internal_token
        self.control_url = f"http://{HOST}:{control_port}"
        self._conn = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def request(self, method: str, path: str, body=None, token: Optional[str] = None,
                timeout: float = 10.0) -> Tuple[int, object]:
        import http.client
        token = self.token if token is None else token
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                res = self._conn.getresponse()
                text = res.read().decode("utf-8", "replace")
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise
                continue
            try:
                doc = json.loads(text) if text else None
            except ValueError:
                doc = text
            return res.status, doc
        raise AssertionError("unreachable")

    def create_domain(self, name: str) -> None:
        status, doc = self.request("POST", "/v1/domains", {"name": name})
        if status not in (201, 409):
            raise AssertionError(f"POST /v1/domains {name} -> {status} {doc}")

    def create_subscriber(self, domain: str, user: str, password: str) -> None:
        status, doc = self.request("POST", "/v1/subscribers",
                                   {"domain": domain, "username": user, "password": password})
        if status != 201:
            raise AssertionError(f"POST /v1/subscribers {user}@{domain} -> {status} {doc}")

    def set_password(self, domain: str, user: str, password: str) -> None:
        status, doc = self.request("PATCH", f"/v1/subscribers/{domain}/{user}",
                                   {"password": password})
        if status != 200:
            raise AssertionError(f"PATCH /v1/subscribers/{domain}/{user} -> {status} {doc}")

    def credentials(self, domain: str, user: str) -> Tuple[int, object]:
        return self.request("GET", f"/internal/v1/credentials/{domain}/{user}",
                            token=self.internal_token)

    def alive(self) -> bool:
        return self.proc.alive()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def start_api(workdir: str, cleanup: Cleanup, routers: Sequence[str] = (), *,
              name: str = "evosip-api", port: int = 0, database: str = "",
              ready_timeout: float = 20.0) -> ApiHandle:
    """`evosip api` with SQLite in workdir; routers = control addresses (host:port) that get
    auth.invalidate. Same port may be given again to restart it on the same address."""
    binary = require_role("api")
    port = port or free_port()
    control_port = free_port()
    cfg = {
        "api": {"listen": f"{HOST}:{port}",
                "database": database or f"sqlite://{os.path.join(workdir, 'evosip.db')}",
                "token": API_TOKEN, "internal_token": API_INTERNAL_TOKEN,
                "routers": list(routers), "router_timeout_ms": 1000},
        "control": {"listen": f"{HOST}:{control_port}"},
        "log": {"level": "info"},
    }
    path = write_yaml(os.path.join(workdir, f"{name}.yaml"), cfg)
    proc = cleanup.add(Process(name, [binary, "api", "--config", path], workdir))
    api = ApiHandle(proc, port, control_port, path)
    cleanup.callbacks.append(api.close)
    wait_http_ok(api.control_url + "/readyz", timeout=ready_timeout, proc=proc)
    wait_port(port, "tcp", timeout=5, proc=proc)
    return api


def create_subscribers(api: ApiHandle, users: Sequence[Tuple[str, str]],
                       domain: str = ROUTER_DOMAIN) -> None:
    """Creates the domain (409 tolerated) and every (user, password) through the REST API."""
    api.create_domain(domain)
    for user, password in users:
        api.create_subscriber(domain, user, password)


def make_users(n: int, prefix: str = "user", start: int = 0) -> List[Tuple[str, str]]:
    return [(f"{prefix}{i:04d}", f"pw-{prefix}{i:04d}-Secret") for i in range(start, start + n)]


def write_auth_csv(path: str, users: Sequence[Tuple[str, str]]) -> str:
    """A sipp injection file: field0 = user, field1 = the whole [authentication ...] keyword.
    (sipp 3.6.1 cannot nest [field1] inside [authentication ...]: the keyword ends at the
    first ']'; a field that holds the complete keyword is expanded, then processed.)"""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for user, password in users:
            if ";" in user + password or "]" in password or " " in password:
                raise ValueError(f"user/password unusable in a sipp CSV: {user!r}")
            f.write(f"{user};[authentication username={user} password={password}]\n")
    return path


# -- router ----------------------------------------------------------------------------------

def router_config(sip_port: int, control_port: int, api_address: str, *,
                  apps: Sequence[str] = (), store: str = "memory", redis_port: int = 0,
                  overrides: Optional[dict] = None) -> dict:
    cfg = {
        "sip": {"listen": [f"udp:{HOST}:{sip_port}"], "advertise": ""},
        "control": {"listen": f"{HOST}:{control_port}", "token": ""},
        "workers": 2,
        "log": {"level": "info", "format": "text"},
        "router": {
            "domain": ROUTER_DOMAIN,
            "aliases": [HOST],
            "api": api_address,
            "api_token": API_INTERNAL_TOKEN,
            "credential_ttl_s": 300,
            "nonce_secret": ROUTER_NONCE_SECRET,
            "nonce_lifetime_s": 300,
            "expires": {"default": 3600, "min": 60, "max": 7200},
            "apps": list(apps),
            "dialplan": {
                "100": {"action": "Playback", "sound": "welcome", "sound_locale": "en"},
                "*97": {"action": "Voicemail", "mailbox": "from-user"},
            },
            "record_route": False,
        },
        "store": {"backend": store, "redis": {"host": HOST, "port": redis_port or 6379}},
    }
    return deep_merge(cfg, overrides or {})


def start_router(workdir: str, cleanup: Cleanup, api_address: str, *, name: str = "router",
                 apps: Sequence[str] = (), store: str = "memory", redis_port: int = 0,
                 sip_port: int = 0, control_port: int = 0, overrides: Optional[dict] = None,
                 ready_timeout: float = 15.0) -> ProxyHandle:
    """`evosip router`; the config is written as JSON (valid YAML) so that dialplan keys such
    as "*97" stay strings, not YAML aliases."""
    binary = require_role("router")
    sip_port = sip_port or free_port()
    control_port = control_port or free_port()
    cfg = router_config(sip_port, control_port, api_address, apps=apps, store=store,
                        redis_port=redis_port, overrides=overrides)
    # An override of sip.listen may name the router's own port as "{sip_port}".
    cfg["sip"]["listen"] = [a.replace("{sip_port}", str(sip_port)) for a in cfg["sip"]["listen"]]
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    proc = cleanup.add(Process(f"evosip-{name}", [binary, "router", "--config", path],
                               workdir))
    control_url = f"http://{HOST}:{control_port}"
    wait_http_ok(control_url + "/readyz", timeout=ready_timeout, proc=proc)
    wait_port(sip_port, "udp", timeout=5, proc=proc)
    return ProxyHandle("router", sip_port, proc, control_url, "", path, ("udp",),
                       {"name": name})


@dataclass
class Platform:
    """edge -> router(s) -> edge, with the api serving credentials."""
    api: ApiHandle
    routers: List[ProxyHandle]
    edge: ProxyHandle
    redis: Optional[Redis] = None
    app_ports: List[int] = field(default_factory=list)

    @property
    def router(self) -> ProxyHandle:
        return self.routers[0]


def start_platform(workdir: str, cleanup: Cleanup, *, routers: int = 1,
                   store: str = "memory", redis: Optional[Redis] = None,
                   app_ports: Sequence[int] = (), router_overrides: Optional[dict] = None,
                   edge_routers: Optional[Sequence[int]] = None,
                   edge_overrides: Optional[dict] = None) -> Platform:
    """api (SQLite) + `routers` routers (memory store, or redis when given) + one edge.
    The api invalidates on every router; `edge_routers` (indexes) limits the routers the
    edge forwards to (default all). apps: SIP URIs of the app set from app_ports."""
    require_router_platform()
    sip_ports = [free_port() for _ in range(routers)]
    control_ports = [free_port() for _ in range(routers)]
    api = start_api(workdir, cleanup, [f"{HOST}:{p}" for p in control_ports])
    apps = [f"sip:{HOST}:{p}" for p in app_ports]
    handles = []
    for i in range(routers):
        handles.append(start_router(
            workdir, cleanup, api.address, name=f"router{i}", apps=apps,
            store="redis" if redis is not None else store,
            redis_port=redis.port if redis is not None else 0, sip_port=sip_ports[i],
            control_port=control_ports[i], overrides=router_overrides))
    picked = range(routers) if edge_routers is None else edge_routers
    edge = start_evosip_edge(workdir, cleanup, [f"sip:{HOST}:{sip_ports[i]}" for i in picked],
                             transports=("udp",), overrides=edge_overrides)
    return Platform(api, handles, edge, redis, list(app_ports))


# -- sipp and SHA-256 ------------------------------------------------------------------------

def _is_md5(header_value: str) -> bool:
    alg = parse_digest(header_value).get("algorithm", "MD5")
    return alg.upper() == "MD5"


def md5_only_challenges(data: bytes) -> bytes:
    """Drops the non-MD5 WWW-/Proxy-Authenticate fields of a 401/407 when an MD5 one is
    present; any other message is returned unchanged."""
    if not re.match(rb"SIP/2\.0 40[17] ", data):
        return data
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    chal = [ln for ln in lines[1:]
            if re.match(rb"(?i)(www|proxy)-authenticate\s*:", ln)]
    if not any(_is_md5(ln.split(b":", 1)[1].decode("utf-8", "replace")) for ln in chal):
        return data
    kept = [lines[0]] + [ln for ln in lines[1:] if ln not in chal or
                         _is_md5(ln.split(b":", 1)[1].decode("utf-8", "replace"))]
    return b"\r\n".join(kept) + sep + body


class Md5OnlyRelay:
    """A UDP relay between one sipp and the edge that makes sipp an RFC 8760-compliant
    MD5-only client.

    sipp 3.6.1 only computes MD5 and takes the first challenge of a 401/407: when the first
    one is SHA-256 (RFC 8760 order; the router offers MD5 first by default, see
    router.auth_algorithms, so this matters when that order is changed) it aborts with
    "createAuthHeader: authentication must use MD5 or AKAv1-MD5". A compliant MD5-only UA
    skips challenges it cannot answer; this relay does that for sipp by removing the
    non-MD5 challenges (only when an MD5 one is present) and relays everything else
    unchanged. sipp sends to relay.port; whatever reaches the relay's outer socket goes
    back to the last sipp address seen. Raw-client tests check the SHA-256 challenges."""

    def __init__(self, target: Tuple[str, int], port: int = 0):
        self.target = target
        self.port = port or free_port()
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((HOST, self.port))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((HOST, 0))
        self.client: Optional[Tuple[str, int]] = None
        self.filtered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="md5-relay", daemon=True)
        self._thread.start()

    @property
    def hostport(self) -> str:
        return f"{HOST}:{self.port}"

    def _run(self) -> None:
        import select
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data, src = s.recvfrom(70000)
                except OSError:
                    continue
                try:
                    if s is self.front:
                        self.client = src
                        self.back.sendto(data, self.target)
                    elif self.client is not None:
                        out = md5_only_challenges(data)
                        if out is not data:
                            self.filtered += 1
                        self.front.sendto(out, self.client)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.front.close()
        self.back.close()


def binding_contacts(lookup_result) -> List[str]:
    """The contact URIs of a location.lookup result."""
    return [b.get("contact", "") for b in (lookup_result or {}).get("bindings", [])]


def ack_for(client: SipClient, invite: bytes, final: SipMessage) -> None:
    """Hop-by-hop ACK of a non-2xx final response to a raw INVITE (same branch)."""
    req = SipMessage.parse(invite)
    lines = [f"ACK {req.ruri} SIP/2.0", f"Via: {req.get('Via')}", "Max-Forwards: 70",
             f"From: {req.get('From')}", f"To: {final.get('To')}", f"Call-ID: {req.call_id}",
             f"CSeq: {req.get('CSeq').split()[0]} ACK", "Content-Length: 0"]
    client.send(("\r\n".join(lines) + "\r\n\r\n").encode())


def raw_invite(client: SipClient, ruri: str, *, caller: str = "", password: str = "",
               from_domain: str = ROUTER_DOMAIN, algorithm: str = "MD5",
               timeout: float = 5.0) -> Tuple[Optional[SipMessage], Optional[SipMessage]]:
    """INVITE (out of dialog) from caller@from_domain; when challenged (401/407) and a
    password is given, answers the challenge once. Non-2xx finals are ACKed; a 2xx is
    answered with ACK + BYE so no dialog is left behind. Returns (first final, last final)."""
    call_id = new_call_id()
    from_tag = os.urandom(4).hex()
    from_uri = f"sip:{caller or 'anonymous'}@{from_domain}"
    sdp = (f"v=0\r\no=raw 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
           f"m=audio 40010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()

    def send(cseq: int, extra: Sequence[str]) -> Tuple[bytes, Optional[SipMessage]]:
        req = client.request("INVITE", ruri, call_id=call_id, cseq=cseq, from_uri=from_uri,
                             from_tag=from_tag, body=sdp, omit=["Contact"],
                             extra_headers=[f"Contact: <sip:{caller or 'anonymous'}@{HOST}:"
                                            f"{client.local_port}>",
                                            "Content-Type: application/sdp"] + list(extra))
        return req, client.transact(req, timeout=timeout)

    def finish(req: bytes, resp: Optional[SipMessage]) -> None:
        if resp is None:
            return
        if resp.status >= 300:
            ack_for(client, req, resp)
            return
        to = resp.get("To") or ""
        routes = [f"Route: {r}" for r in reversed(resp.all("Record-Route"))]
        target = re.search(r"<([^>]+)>", resp.get("Contact") or "")
        target_uri = target.group(1) if target else ruri
        invite_cseq = int(resp.get("CSeq").split()[0])
        for method, cseq in (("ACK", invite_cseq), ("BYE", invite_cseq + 1)):
            r = client.request(method, target_uri, call_id=call_id, cseq=cseq, from_uri=from_uri,
                               from_tag=from_tag, to_uri=ruri,
                               to_tag=to.split("tag=", 1)[1] if "tag=" in to else "",
                               extra_headers=routes)
            client.send(r) if method == "ACK" else client.transact(r, timeout=timeout)

    req, first = send(1, ())
    finish(req, first)
    if first is None or first.status not in (401, 407) or not password:
        return first, first
    ch = pick_challenge(first, algorithm)
    if ch is None:
        return first, None
    auth = digest_authorization(ch, caller, password, "INVITE", ruri)
    req2, final = send(2, [f"{credentials_header_name(first.status)}: {auth}"])
    finish(req2, final)
    return first, final


class RouterTestCase(ProxyTestCase):
    """Base of the router tests: skips (saying why) until `evosip router` exists, then
    gives platform/sipp helpers. sipp authenticates through Md5OnlyRelay (see there)."""

    def setUp(self) -> None:
        require_router_platform()
        super().setUp()

    def platform(self, **kw) -> Platform:
        return start_platform(self.tmp, self.cleanup, **kw)

    def relay(self, target: Tuple[str, int]) -> Md5OnlyRelay:
        r = Md5OnlyRelay(target)
        self.cleanup.callbacks.append(r.close)
        return r

    def sipp_register(self, target: Tuple[str, int], users: Sequence[Tuple[str, str]],
                      name: str, port: int = 0, rate: float = 100) -> SippResult:
        relay = self.relay(target)
        csv_path = write_auth_csv(os.path.join(self.tmp, f"{name}.csv"), users)
        uac = self.sipp(name, scenario=scenario("router_uac_register.xml"),
                        remote=relay.hostport, port=port, calls=len(users), rate=rate,
                        limit=100, timeout_s=40, recv_timeout_ms=5000,
                        keys={"domain": ROUTER_DOMAIN},
                        extra=["-inf", csv_path, "-auth_uri", ROUTER_DOMAIN])
        return uac.run(self.cleanup)

    def registered_uas(self, target: Tuple[str, int], user: Tuple[str, str],
                       scen: str = "router_uas_callee.xml") -> Sipp:
        """Registers user from a fresh port (sipp, with auth), then runs the UAS scenario on
        that port: the binding's Contact is the UAS."""
        port = free_port()
        res = self.sipp_register(target, [user], f"reg_{user[0]}", port=port)
        self.assertSippOk(res, 1)
        wait_until(lambda: not port_bound(port, "udp"), 5, f"sipp leaving port {port}")
        return self.sipp(f"uas_{user[0]}", scenario=scenario(scen), port=port,
                         keys={"router_name": user[0]}, timeout_s=120,
                         timeout_error=False).start(self.cleanup)

    def caller(self, target: Tuple[str, int], user: Tuple[str, str], callee: str,
               calls: int = 1, rate: float = 10, duration_ms: int = 20,
               name: str = "", port: int = 0, trace_msg: Optional[bool] = None) -> Sipp:
        """A sipp caller (router_uac_call_auth.xml) for user -> callee@domain; .run() it."""
        relay = self.relay(target)
        name = name or f"call_{user[0]}_{callee}"
        csv_path = write_auth_csv(os.path.join(self.tmp, f"{name}.csv"), [user] * calls)
        return self.sipp(name, scenario=scenario("router_uac_call_auth.xml"),
                         remote=relay.hostport, port=port, calls=calls, rate=rate,
                         limit=50, duration_ms=duration_ms, timeout_s=40,
                         recv_timeout_ms=6000, trace_msg=trace_msg,
                         keys={"domain": ROUTER_DOMAIN, "callee": callee},
                         extra=["-inf", csv_path, "-auth_uri", f"{callee}@{ROUTER_DOMAIN}"])

    def lookup(self, router: ProxyHandle, user: str, domain: str = ROUTER_DOMAIN) -> list:
        return router.rpc("location.lookup", {"aor": f"{user}@{domain}"}).get("bindings", [])
