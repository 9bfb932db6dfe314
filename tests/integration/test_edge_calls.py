"""uac -> edge -> uas calls over UDP and TCP (client side), edge -> router over UDP.

Checks: 0 failed calls; the router sees Record-Route ;lr and the client's Via with
received/rport (uas_check_rr.xml); the client's responses carry received/rport
(uac_call.xml); OPTIONS addressed to the edge itself is answered 200; a caller's CANCEL sent
over another flow than its INVITE (another source port) still cancels the call.
"""

import os
import re
import threading
import time
import unittest

from harness import (HOST, FakeRouter, ProxyTestCase, SipClient, build_response, new_branch,
                     new_call_id, require_evosip, start_evosip_edge, start_proxy, via_params)

CALLS = 60
RATE = 30


class EdgeCalls(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.uas_ = self.uas("router", "uas_check_rr.xml")
        self.proxy = start_proxy(self.tmp, self.cleanup, [f"sip:{HOST}:{self.uas_.port}"])

    def _calls(self, transport):
        uac = self.uac(f"uac_{transport}", self.proxy, "uac_call.xml", CALLS, RATE,
                       transport=transport)
        res = uac.run(self.cleanup)
        self.assertSippOk(res, CALLS)
        uas = self.uas_.result()
        self.assertEqual(uas.failed, 0, uas.summary())
        self.assertEqual(uas.stats.get("FailedRegexpDoesntMatch(C)", "0"), "0", uas.summary())
        self.assertEqual(uas.stats.get("FailedRegexpShouldntMatch(C)", "0"), "0", uas.summary())
        self.assertAlive(self.proxy)

    def test_calls_over_udp(self):
        self._calls("u1")

    def test_calls_over_tcp_client_side(self):
        self._calls("t1")

    def test_response_via_has_received_and_rport_raw(self):
        for transport in ("UDP", "TCP"):
            with self.subTest(transport=transport), \
                    SipClient(transport, self.proxy.addr) as c:
                # OPTIONS addressed to the edge itself (no user part): answered by the edge
                req = c.request("OPTIONS", f"sip:{self.proxy.hostport}")
                resp = c.transact(req, timeout=3)
                self.assertIsNotNone(resp, "no answer to OPTIONS addressed to the edge")
                self.assertEqual(resp.status, 200, str(resp))
                via = via_params(resp.get("Via"))
                self.assertEqual(via.get("received"), HOST, str(resp))
                self.assertEqual(via.get("rport"), str(c.local_port), str(resp))


class RingingRouter(FakeRouter):
    """A router's INVITE server transactions as it matches a CANCEL (RFC 3261 9.2, 17.2.3): an
    INVITE gets 100 and 180 and waits; a CANCEL with the branch and sent-by of a waiting INVITE's
    top Via gets 200, and the INVITE 487; any other CANCEL gets 481."""

    def __init__(self, name: str):
        self.waiting = {}
        self.tx_lock = threading.Lock()
        super().__init__(name)

    @staticmethod
    def _transaction(msg):
        via = msg.get("Via") or ""
        m = re.match(r"SIP/2\.0/\S+\s+([^;\s]+)", via)
        return (via_params(via).get("branch"), m.group(1) if m else "")

    def _answer(self, msg, data, src):
        to = self._reply_address(msg, src)
        if msg.method == "INVITE":
            with self.tx_lock:
                self.waiting[self._transaction(msg)] = (msg, to)
            self.sock.sendto(build_response(msg, 100, "Trying"), to)
            self.sock.sendto(build_response(msg, 180, "Ringing", to_tag="r1"), to)
        elif msg.method == "CANCEL":
            with self.tx_lock:
                invite = self.waiting.pop(self._transaction(msg), None)
            if invite is None:
                self.sock.sendto(build_response(msg, 481, "Call/Transaction Does Not Exist"), to)
                return
            self.sock.sendto(build_response(msg, 200, "OK"), to)
            self.sock.sendto(build_response(invite[0], 487, "Request Terminated", to_tag="r1"),
                             invite[1])
        else:
            super()._answer(msg, data, src)


class EdgeCancelOverAnotherFlow(ProxyTestCase):
    CALLS = 12

    def _response(self, client, method, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = client.recv(deadline - time.monotonic())
            if m is not None and m.is_response and m.get("CSeq").split()[1] == method:
                return m
        return None

    def test_a_cancel_from_another_source_port_cancels_the_call(self):
        """A phone that sends its CANCEL from another socket than its INVITE (a new socket, a NAT
        that rebound): SO_REUSEPORT gives the two to different workers of the edge (4 here) for
        most calls, and the CANCEL must still reach the router from the INVITE's egress socket,
        with the INVITE's Via, or the router answers 481 and the call rings on."""
        require_evosip()
        router = RingingRouter("A")
        self.cleanup.callbacks.append(router.close)
        proxy = start_evosip_edge(self.tmp, self.cleanup, [router.uri], transports=("udp",),
                                  overrides={"workers": 4})
        for i in range(self.CALLS):
            with self.subTest(call=i), SipClient("UDP", proxy.addr) as inviter, \
                    SipClient("UDP", proxy.addr) as canceller:
                call_id, branch, tag = new_call_id(), new_branch(), os.urandom(4).hex()
                inviter.send(inviter.request("INVITE", "sip:bob@example.com", call_id=call_id,
                                             branch=branch, from_tag=tag))
                ringing = self._response(inviter, "INVITE")
                self.assertIsNotNone(ringing, "no 100 Trying for the INVITE")
                # The INVITE's Via (RFC 3261 9.1), from the other socket.
                canceller.send(canceller.request("CANCEL", "sip:bob@example.com", call_id=call_id,
                                                 branch=branch, from_tag=tag,
                                                 via_port=inviter.local_port))
                cancelled = self._response(canceller, "CANCEL")
                self.assertIsNotNone(cancelled, "no answer to the CANCEL")
                self.assertEqual(cancelled.status, 200, str(cancelled))
                final = inviter.final_response(3.0)
                self.assertIsNotNone(final, "no final answer to the INVITE")
                self.assertEqual(final.status, 487, str(final))
        invites = {m.call_id: m for m in router.received("INVITE")}
        cancels = router.received("CANCEL")
        self.assertEqual(len(cancels), self.CALLS)
        for cancel in cancels:
            self.assertEqual(cancel.all("Via")[0], invites[cancel.call_id].all("Via")[0])
        # Some CANCELs reached another worker than their INVITE (each with odds 3 in 4) and
        # were handed to the INVITE's.
        self.assertGreater(proxy.metrics().get("evosip_edge_handoffs_total"), 0)
        self.assertAlive(proxy)


if __name__ == "__main__":
    unittest.main()
