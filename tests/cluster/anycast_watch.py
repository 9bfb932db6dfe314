#!/usr/bin/env python3
"""Keeps an anycast address on this host's loopback only while the local edge is ready.

Runs beside an edge (in its network namespace here; as a sidecar next to FRR in a pod): every
`--interval` seconds it asks the edge's `/readyz`. When the edge answers 200 the address is on
`lo`, so OSPF announces it; when the edge answers anything else (draining) or nothing (crashed,
hung) `--fails` times in a row, the address is removed and OSPF withdraws the route, so the
core router sends new flows to the other edges.

    anycast_watch.py --url http://127.0.0.1:8060/readyz --address 10.99.0.1/32 [--interval 0.1]
"""

import argparse
import subprocess
import sys
import time
import urllib.error
import urllib.request


def ready(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def set_address(address: str, present: bool) -> None:
    verb = "add" if present else "del"
    subprocess.run(["ip", "addr", verb, address, "dev", "lo"], capture_output=True, timeout=5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the edge's /readyz URL")
    ap.add_argument("--address", required=True, help="anycast address with prefix, on lo")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between checks")
    ap.add_argument("--fails", type=int, default=2, help="failed checks before withdrawing")
    args = ap.parse_args()
    announced = None
    misses = 0
    while True:
        ok = ready(args.url, timeout=max(args.interval, 0.05))
        misses = 0 if ok else misses + 1
        if ok:
            want = True
        elif misses >= args.fails or announced is None:
            want = False
        else:
            want = announced
        if want != announced:
            set_address(args.address, want)
            print(f"{time.time():.3f} {'announce' if want else 'withdraw'} {args.address}",
                  flush=True)
            announced = want
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
