"""What the edge's workers wait in (sip.io): io_uring or epoll, chosen at start, logged and
exported; calls over UDP and TCP go through either way, and io_uring that cannot start is a
start-up error rather than a silent fallback.

Checks per mode: the ready line names it, evosip_worker_io{mode} is 1, uac -> edge -> uas calls
over UDP and over TCP complete with 0 failed, the edge counts every UDP message it received and
sent, and an OPTIONS addressed to the edge is answered.
"""

import os
import unittest

from harness import (HOST, ProxyTestCase, SipClient, require_evosip, start_evosip_edge,
                     wait_until)

CALLS = 40
RATE = 40


def io_uring_usable() -> bool:
    """io_uring not switched off on this kernel (kernel.io_uring_disabled) nor refused to this
    process (a seccomp profile): io_uring_setup is tried once."""
    path = "/proc/sys/kernel/io_uring_disabled"
    if os.path.exists(path):
        with open(path) as f:
            if f.read().strip() != "0":
                return False
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(425, 4, params)  # io_uring_setup (x86_64 and aarch64)
    if fd < 0:
        return False
    os.close(fd)
    return True


class EdgeIo(ProxyTestCase):
    def setUp(self):
        super().setUp()
        require_evosip()

    def _edge(self, mode):
        self.uas_ = self.uas("router", "uas_check_rr.xml")
        # The same mode in the environment, which wins over the file: a run with EVOSIP_SIP_IO
        # set for the whole suite does not change what this test checks.
        return start_evosip_edge(self.tmp, self.cleanup, [f"sip:{HOST}:{self.uas_.port}"],
                                 overrides={"sip": {"io": mode}}, env={"EVOSIP_SIP_IO": mode})

    def _check(self, mode):
        edge = self._edge(mode)
        wait_until(lambda: f" io {mode} " in edge.proc.tail(), 5,
                   f"the ready line naming {mode}", proc=edge.proc)
        m = edge.metrics()
        self.assertEqual(m.get("evosip_worker_io", mode=mode), 1.0)
        other = "epoll" if mode == "io_uring" else "io_uring"
        self.assertEqual(m.get("evosip_worker_io", mode=other), 0.0)
        for transport in ("u1", "t1"):
            uac = self.uac(f"uac_{mode}_{transport}", edge, "uac_call.xml", CALLS, RATE,
                           transport=transport)
            self.assertSippOk(uac.run(self.cleanup), CALLS)
        with SipClient("UDP", edge.addr) as c:
            resp = c.transact(c.request("OPTIONS", f"sip:{edge.hostport}"), timeout=3)
            self.assertIsNotNone(resp, "no answer to OPTIONS addressed to the edge")
            self.assertEqual(resp.status, 200, str(resp))
        # Over UDP: the UDP caller's INVITE, ACK and BYE, and the router's (uas) responses to
        # the calls of both callers (180, 200 and the 200 to BYE).
        m = edge.metrics()
        received = m.get("evosip_sip_received_total", transport="udp")
        self.assertGreaterEqual(received, CALLS * 3 + 2 * CALLS * 3,
                                m.series("evosip_sip_received_total"))
        self.assertGreater(m.get("evosip_sip_sent_total", transport="udp"), 0)
        self.assertEqual(m.get("evosip_sip_transport_errors_total", transport="udp"), 0.0)
        self.assertAlive(edge)

    def test_io_uring(self):
        if not io_uring_usable():
            self.skipTest("io_uring disabled on this kernel")
        self._check("io_uring")

    def test_epoll(self):
        self._check("epoll")

    def test_unknown_mode_is_a_startup_error(self):
        with self.assertRaises(Exception) as ctx:
            self._edge("kqueue")
        self.assertIn("sip.io", str(ctx.exception) + self.cleanup.procs[-1].tail())


if __name__ == "__main__":
    unittest.main()
