#!/usr/bin/env python3
"""Keeps on this host's loopback the service addresses the local media relay serves.

Runs beside a relay (in its network namespace here; as a sidecar next to FRR in a pod): every
`--interval` seconds it asks the relay's `instance.status` for `served` (its own address, and
those of dead peers it took over: media.takeover). Those addresses are on `lo`, so OSPF announces
them; when the relay answers nothing (crashed, hung) `--fails` times in a row, every address is
removed and OSPF withdraws the routes, so packets for them reach the relay that took them over.

    media_watch.py --url http://10.77.1.31:8062/rpc --token T --prefix 10.98.0. [--interval 0.1]
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request


def served(url: str, token: str, timeout: float):
    """The addresses the relay serves, or None when it does not answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "instance.status"}).encode()
    req = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            doc = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    result = doc.get("result") if isinstance(doc, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("served"), list):
        return None
    return {s.get("address") for s in result["served"] if isinstance(s, dict)}


def set_address(address: str, present: bool) -> None:
    verb = "add" if present else "del"
    subprocess.run(["ip", "addr", verb, f"{address}/32", "dev", "lo"], capture_output=True,
                   timeout=5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the relay's control /rpc URL")
    ap.add_argument("--token", default="", help="control.token of the relay")
    ap.add_argument("--prefix", required=True,
                    help="only addresses starting with this are managed (service addresses)")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between checks")
    ap.add_argument("--fails", type=int, default=2, help="failed checks before withdrawing")
    args = ap.parse_args()
    announced = set()
    misses = 0
    while True:
        now = served(args.url, args.token, timeout=max(args.interval, 0.2))
        misses = 0 if now is not None else misses + 1
        if now is None:
            want = set() if misses >= args.fails else announced
        else:
            want = {a for a in now if isinstance(a, str) and a.startswith(args.prefix)}
        for a in sorted(want - announced):
            set_address(a, True)
            print(f"{time.time():.3f} announce {a}", flush=True)
        for a in sorted(announced - want):
            set_address(a, False)
            print(f"{time.time():.3f} withdraw {a}", flush=True)
        announced = want
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
