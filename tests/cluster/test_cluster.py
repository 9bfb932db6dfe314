"""The platform as several hosts (network namespaces): anycast edges, routers on Redis, relays,
apps, api. What a caller sees when instances die, drain or restart.

    sudo EVOSIP_BIN=$PWD/build/evosip python3 -m unittest -v tests/cluster/test_cluster.py

Skipped when namespaces cannot be made (not root) or FRR is not installed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import netlab  # noqa: E402
from harness import SharedWorkdir  # noqa: E402
from cluster import bring_up, callers_and_callee, place_calls  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.environ.get("EVOSIP_BIN", os.path.join(ROOT, "build", "evosip"))


@unittest.skipUnless(netlab.can_make_namespaces(), "needs root and ip netns")
@unittest.skipUnless(netlab.frr_available(), "needs FRR (apt-get install frr)")
class ClusterTest(SharedWorkdir, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab, cls.cluster = bring_up(BINARY, "evosip-cluster-")
        cls.work = cls.lab.workdir
        try:
            cls.uas, cls.csv = callers_and_callee(cls.cluster, 50, "cluster")
        except BaseException:
            cls.lab.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lab.destroy()
        cls.release_workdir(cls.work)

    def calls(self, name, n, rate, duration_ms=1000, timeout=60):
        return place_calls(self.cluster, name, self.csv, n, rate, duration_ms, timeout)

    def test_1_calls_through_anycast(self):
        totals = self.calls("smoke", 20, 10).wait(60)
        self.assertEqual(totals.get("SuccessfulCall"), 20, totals)
        self.assertEqual(totals.get("FailedCall"), 0, totals)

    def test_2_edge_killed_route_withdrawn_calls_go_on(self):
        paths = self.lab.anycast_paths()
        self.assertEqual(len(paths), 2)
        run = self.calls("edge-kill", 100, 20, duration_ms=2000)
        time.sleep(2)
        t0 = time.monotonic()
        self.cluster.signal("e1", signal.SIGKILL)
        netlab.wait_until(lambda: len(self.lab.anycast_paths()) == 1, 5, "withdrawal")
        converged = time.monotonic() - t0
        totals = run.wait(90)
        print(f"\nanycast convergence after SIGKILL of an edge: {converged:.3f} s; "
              f"calls: {totals}", file=sys.stderr)
        self.assertLess(converged, 1.0)
        self.cluster.start("e1")
        netlab.wait_until(lambda: len(self.lab.anycast_paths()) == 2, 5, "re-announce")
        # In-dialog requests of calls set up through the dead edge reach the caller through the
        # other one (flow tokens signed with the shared secret), so established calls complete.
        # A call whose INVITE transaction was on the dead edge at that instant loses its
        # responses (their Via names the dead edge): at 20 calls/s, one or two.
        self.assertEqual(totals.get("SuccessfulCall", 0) + totals.get("FailedCall", 0), 100)
        self.assertLessEqual(totals.get("FailedCall"), 2, totals)

    # Known failure: a router that drained and exited (SIGTERM: 2 s without a transaction) still
    # had established dialogs; the edges keep picking it for their BYEs until its probe fails,
    # and about 10 of 100 BYEs are then answered 503 by the edge instead of moving to the other
    # router. Passes once the edge moves those in-dialog requests to a live router.
    def test_3_router_sigterm_drains_without_a_failed_call(self):
        run = self.calls("router-term", 100, 20, duration_ms=3000)
        time.sleep(2)
        self.cluster.signal("r1", signal.SIGTERM)
        totals = run.wait(90)
        code = self.cluster.instances["r1"].proc.wait(timeout=60)
        print(f"\nrouter SIGTERM under 20 calls/s: {totals.get('FailedCall')} failed, "
              f"exit {code}", file=sys.stderr)
        self.cluster.start("r1")
        self.assertEqual(code, 0)
        self.assertEqual(totals.get("SuccessfulCall"), 100, totals)

    def test_4_router_killed_established_calls_end(self):
        run = self.calls("router-kill", 100, 20, duration_ms=3000)
        time.sleep(2.5)
        self.cluster.signal("r2", signal.SIGKILL)
        totals = run.wait(120)
        self.cluster.start("r2")
        print(f"\nrouter SIGKILL under 20 calls/s: {totals}", file=sys.stderr)
        # Established calls keep their dialog in Redis: their BYE goes through the other router.
        # Only calls whose INVITE transaction was on the dead router may fail.
        self.assertEqual(totals.get("SuccessfulCall", 0) + totals.get("FailedCall", 0), 100)
        self.assertLessEqual(totals.get("FailedCall"), 3, totals)

    def test_5_edge_cut_off_from_routers_withdraws_and_returns(self):
        # e1 loses the data network (routers, Redis) but not its link to the callers: its
        # routers go silent, it turns unready and its anycast route is withdrawn, so new calls
        # reach e2; healed, its probes are answered and it announces again.
        paths = self.lab.anycast_paths()
        self.assertEqual(len(paths), 2)
        run = self.calls("edge-cut", 100, 20, duration_ms=2000)
        time.sleep(1.5)
        t0 = time.monotonic()
        self.lab.cut("e1")
        try:
            netlab.wait_until(lambda: len(self.lab.anycast_paths()) == 1, 10,
                              "the cut edge's withdrawal")
            withdrawn = time.monotonic() - t0
        finally:
            time.sleep(1)
            self.lab.heal("e1")
        t1 = time.monotonic()
        netlab.wait_until(lambda: len(self.lab.anycast_paths()) == 2, 10, "re-announce")
        back = time.monotonic() - t1
        totals = run.wait(90)
        print(f"\nedge cut from the routers: withdrawn after {withdrawn:.2f} s, back "
              f"{back:.2f} s after the heal; calls: {totals.get('SuccessfulCall')} ok, "
              f"{totals.get('FailedCall')} failed", file=sys.stderr)
        self.assertLess(withdrawn, 4.0)
        self.assertLess(back, 3.0)
        # Calls placed through e1 between the cut and the withdrawal fail (about 2 s of e1's
        # half of 20 calls/s); established ones and later ones complete.
        self.assertEqual(totals.get("SuccessfulCall", 0) + totals.get("FailedCall", 0), 100)
        self.assertLessEqual(totals.get("FailedCall"), 40, totals)


if __name__ == "__main__":
    unittest.main()
