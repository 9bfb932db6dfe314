"""IPv6: uac -> edge -> uas calls over UDP and TCP on [::1] (RFC 5118 addresses in Via,
Record-Route and the router set)."""

import os
import time
import unittest

from harness import (HOST, SIPP, Cleanup, Process, free_port, ipv6_loopback, make_tmpdir,
                     read_sipp_stats, require_evosip, rpc, wait_http_ok, write_yaml)


SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
# The built-in "-sn uac" ignores Record-Route (its BYE names no route the platform made and is
# refused 481): this one follows the route set.
UAC = os.path.join(SCENARIOS, "uac_call_routes.xml")


def start_edge(case: unittest.TestCase, prefix: str, listen, router: str) -> None:
    """Starts `evosip edge` for a test case (stopped by its cleanup) with the given listen
    addresses and one router; sets case.tmp, case.cleanup, case.edge, case.control."""
    binary = require_evosip()
    case.cleanup = Cleanup()
    case.addCleanup(case.cleanup.stop_all)
    case.tmp = make_tmpdir(prefix)
    case.cleanup.dirs.append(case.tmp)
    control_port = free_port()
    cfg = {
        "sip": {"listen": listen},
        "control": {"listen": f"{HOST}:{control_port}"},
        "workers": 2,
        # The calls come from loopback at 30/s: over the default per-source rate limit.
        "edge": {"routers": [router],
                 "rate_limit": {"exempt": ["::1/128", "127.0.0.0/8"]}},
    }
    path = write_yaml(os.path.join(case.tmp, "edge.yaml"), cfg)
    case.edge = case.cleanup.add(Process("evosip-edge", [binary, "edge", "--config", path],
                                         case.tmp))
    case.control = f"http://{HOST}:{control_port}"
    wait_http_ok(case.control + "/readyz", timeout=15, proc=case.edge)


@unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback on this machine")
class EdgeIpv6(unittest.TestCase):
    def setUp(self):
        self.router_port, self.sip_port = free_port(), free_port()
        start_edge(self, "evosip-ipv6-",
                   [f"udp:[::1]:{self.sip_port}", f"tcp:[::1]:{self.sip_port}"],
                   f"sip:[::1]:{self.router_port}")
        self.uas = self.cleanup.add(Process("uas", [
            SIPP, "-sf", os.path.join(SCENARIOS, "uas_router.xml"), "-key", "router_name", "v6",
            "-i", "::1", "-p", str(self.router_port), "-nostdin",
            "-cp", str(free_port())], self.tmp))

    def _calls(self, transport: str, calls: int = 30):
        stat = os.path.join(self.tmp, f"uac_{transport}.csv")
        uac = self.cleanup.add(Process(f"uac_{transport}", [
            SIPP, "-sf", UAC, f"[::1]:{self.sip_port}", "-i", "::1", "-p", str(free_port()),
            "-t", transport, "-m", str(calls), "-r", "30", "-nostdin", "-timeout", "30s",
            "-timeout_error", "-trace_stat", "-stf", stat, "-fd", "1",
            "-cp", str(free_port())], self.tmp))
        rc = uac.wait(45)
        stats = read_sipp_stats(stat)
        self.assertEqual(rc, 0, uac.tail())
        self.assertEqual(stats.get("SuccessfulCall(C)"), str(calls), stats)
        self.assertEqual(stats.get("FailedCall(C)"), "0", stats)

    def test_calls_over_udp_and_tcp(self):
        self._calls("u1")
        self._calls("t1")
        routers = rpc(self.control + "/rpc", "dispatcher.list")["routers"]
        self.assertEqual(routers[0]["address"], f"[::1]:{self.router_port}")
        self.assertEqual(routers[0]["state"], "up")
        self.assertEqual(routers[0]["timeouts"], 0)
        # INVITE, ACK, BYE of 60 calls went to the router
        self.assertEqual(routers[0]["forwarded"], 180)


@unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback on this machine")
class EdgeIpv6CallerIpv4Router(unittest.TestCase):
    """A dual-stack edge: callers on IPv6, the router on IPv4. The router must be able to reach
    the edge at the address its Record-Route gives it (scenarios/uas_v4_router_rr.xml checks the
    two entries), and the calls complete both ways through it."""

    def setUp(self):
        self.router_port, self.sip_port = free_port(), free_port()
        start_edge(self, "evosip-ipv6-v4router-",
                   [f"udp:{HOST}:{self.sip_port}", f"udp:[::1]:{self.sip_port}"],
                   f"sip:{HOST}:{self.router_port}")
        scenario = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios",
                                "uas_v4_router_rr.xml")
        self.uas_stat = os.path.join(self.tmp, "uas.csv")
        self.uas = self.cleanup.add(Process("uas", [
            SIPP, "-sf", scenario, "-i", HOST, "-p", str(self.router_port), "-nostdin",
            "-trace_stat", "-stf", self.uas_stat, "-fd", "1", "-cp", str(free_port())],
            self.tmp))

    def test_router_gets_a_record_route_of_its_family(self):
        calls = 10
        stat = os.path.join(self.tmp, "uac.csv")
        uac = self.cleanup.add(Process("uac", [
            SIPP, "-sf", UAC, f"[::1]:{self.sip_port}", "-i", "::1", "-p", str(free_port()),
            "-m", str(calls), "-r", "20", "-nostdin", "-timeout", "30s", "-timeout_error",
            "-trace_stat", "-stf", stat, "-fd", "1", "-cp", str(free_port())], self.tmp))
        rc = uac.wait(45)
        stats = read_sipp_stats(stat)
        self.assertEqual(rc, 0, uac.tail())
        self.assertEqual(stats.get("SuccessfulCall(C)"), str(calls), stats)
        # The router's side: every INVITE carried both entries (a failed regexp fails the call).
        time.sleep(1.5)  # the uas writes its statistics every second (-fd 1)
        uas = read_sipp_stats(self.uas_stat)
        self.assertEqual(uas.get("SuccessfulCall(C)"), str(calls), uas)
        self.assertEqual(uas.get("FailedRegexpDoesntMatch(C)", "0"), "0", uas)


if __name__ == "__main__":
    unittest.main()
