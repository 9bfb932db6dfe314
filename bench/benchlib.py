"""Helpers shared by the bench/ scripts: CPU and memory of a process tree from /proc, and
sipp response-time statistics. Stdlib only."""

import os

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """pid and all its descendants (kamailio forks its workers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def memory_kb(pid):
    rss = pss = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def read_rtt(path):
    vals = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(";")
                if len(parts) >= 2:
                    try:
                        vals.append(float(parts[1]))
                    except ValueError:
                        pass
    except OSError:
        pass
    return vals


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fmt(v, f="{:.1f}"):
    if v is None:
        return "-"
    if v == 0 and f == "{:.1f}":
        return "<1"  # sipp measures response times in whole milliseconds
    return f.format(v)


# System calls counted per kind while a fixed load runs (SYSCALLS=1 in the bench scripts):
# `perf stat` on the syscall tracepoints of every thread of the proxy's processes. Counting
# in the kernel (no ptrace stop per call, unlike `strace -c`), so the proxy keeps its pace; the
# counted steps are still separate from the steps whose CPU is reported.
SYSCALL_KINDS = (
    "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg",
    "sendmmsg", "epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll", "select",
    "pselect6", "futex", "io_uring_enter", "timerfd_settime", "clock_nanosleep", "nanosleep",
    "sched_yield", "accept4", "close", "ioctl", "getsockopt", "setsockopt", "eventfd2", "mmap",
    "munmap", "madvise", "brk", "rt_sigprocmask", "rt_sigtimedwait")


def perf_usable():
    import shutil
    import subprocess
    if shutil.which("perf") is None:
        return False
    r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0


class SyscallCount:
    """with SyscallCount(pids, path) as c: ...run the load...; then c.counts: {kind: n} with
    "total" (every system call) and "other" (the total less the kinds listed)."""

    def __init__(self, pids, path):
        self.pids, self.path, self.counts, self.proc = list(pids), path, {}, None

    def __enter__(self):
        import subprocess
        events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{k}" for k in SYSCALL_KINDS]
        argv = ["perf", "stat", "-x,", "--no-big-num", "-o", self.path, "-e", ",".join(events),
                "-p", ",".join(str(p) for p in self.pids)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import time
        time.sleep(0.5)  # perf attaches to every thread before the load starts
        return self

    def __exit__(self, *exc):
        import signal
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        counts = {}
        with open(self.path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 3 or not parts[0].isdigit():
                    continue
                name = parts[2].split(":")[-1].replace("sys_enter_", "")
                counts[name] = counts.get(name, 0) + int(parts[0])
        total = counts.pop("sys_enter", 0)
        counts = {k: v for k, v in counts.items() if v > 0}
        counts["other"] = max(0, total - sum(counts.values()))
        counts["total"] = total
        self.counts = counts
        return False


def per_message(counts, messages, floor=0.005):
    """'total 1.27: sendmmsg 0.46, epoll_ctl 0.32, ...' (kinds of at least floor per message)."""
    if messages <= 0 or not counts:
        return "-"
    kinds = sorted(((v, k) for k, v in counts.items() if k != "total"), reverse=True)
    parts = [f"{k} {v / messages:.2f}" for v, k in kinds if v / messages >= floor]
    return f"total {counts['total'] / messages:.2f}: " + ", ".join(parts)


class Profile:
    """with Profile(pids, path): `perf record -g` of the processes while the load runs; then
    top(n): the n hottest symbols (self time, all threads) as 'pct symbol' lines."""

    def __init__(self, pids, path):
        self.pids, self.path, self.proc = list(pids), path, None

    def __enter__(self):
        import subprocess
        import time
        argv = ["perf", "record", "-g", "-F", "999", "-o", self.path, "-p",
                ",".join(str(p) for p in self.pids)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        import signal
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        return False

    def top(self, n=12):
        import subprocess
        r = subprocess.run(["perf", "report", "-i", self.path, "--no-children", "--sort",
                            "dso,symbol", "--stdio", "-q", "-g", "none"],
                           capture_output=True, text=True)
        # perf pads its columns to the longest symbol (C++ names run to hundreds of bytes)
        lines = [" ".join(ln.split()) for ln in r.stdout.splitlines() if ln.strip() and "%" in ln]
        return lines[:n]
