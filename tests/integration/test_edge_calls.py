"""uac -> edge -> uas calls over UDP and TCP (client side), edge -> router over UDP.

Checks: 0 failed calls; the router sees Record-Route ;lr and the client's Via with
received/rport (uas_check_rr.xml); the client's responses carry received/rport
(uac_call.xml); OPTIONS addressed to the edge itself is answered 200; a caller's CANCEL sent
over another flow than its INVITE (another source port) still cancels the call; the ACK of a
non-2xx final over another flow than its INVITE stops the router resending the final response.
"""

import os
import re
import threading
import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, FakeRouter, ProxyTestCase, RawRegistration,
                     RouterTestCase, SipClient, build_response, create_subscribers, make_users,
                     new_branch, new_call_id, raw_invite, require_evosip, start_evosip_edge,
                     start_proxy, via_params)

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


class TwoFlowPhone(SipClient):
    """A phone that sends its ACKs from another socket than its INVITEs (a new socket, a NAT that
    rebound), with the INVITE's Via (RFC 3261 17.1.1.3)."""

    def __init__(self, remote):
        super().__init__("UDP", remote)
        self.acks = SipClient("UDP", remote)

    def send(self, data: bytes) -> None:
        if data.startswith(b"ACK "):
            self.acks.send(data)
        else:
            super().send(data)

    def close(self) -> None:
        self.acks.close()
        super().close()


class EdgeAckOverAnotherFlow(RouterTestCase):
    CALLS = 16
    LISTEN_S = 2.5  # Timer G resends at 0.5 s, 1.5 s (T1 = 0.5 s): two within this

    def _busy_callee(self, phone: SipClient):
        """Answers every INVITE 486 (its ACK from the router is ignored)."""
        stop = threading.Event()

        def run():
            while not stop.is_set():
                m = phone.recv(0.2)
                if m is not None and m.method == "INVITE":
                    phone.sock.sendto(build_response(m, 486, "Busy Here", to_tag="busy"),
                                      m.source)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(lambda: (stop.set(), t.join(2)))

    def test_an_ack_from_another_source_port_stops_the_final_response(self):
        """INVITE -> 407 (the router's own answer) -> ACK, INVITE with credentials -> 486 (the
        callee's) -> ACK, each ACK from another socket than its INVITE: SO_REUSEPORT gives the two
        to different workers of the edge (4 here) for most calls, and the ACK must still reach the
        router from the INVITE's egress socket with the INVITE's Via, or the router's INVITE
        transaction does not match it and resends its final response until Timer H."""
        p = self.platform(edge_overrides={"workers": 4})
        alice, bob = make_users(2, prefix="ackflow")
        create_subscribers(p.api, [alice, bob])
        callee = SipClient("UDP", p.edge.addr, timeout=5)
        self.addCleanup(callee.close)
        _challenge, registered = RawRegistration(callee, bob[0]).register(bob[1])
        self.assertIsNotNone(registered, "bob not registered")
        self.assertEqual(registered.status, 200, str(registered))
        self._busy_callee(callee)
        phones = []
        for i in range(self.CALLS):
            phone = TwoFlowPhone(p.edge.addr)
            self.addCleanup(phone.close)
            phones.append(phone)
            first, final = raw_invite(phone, f"sip:{bob[0]}@{ROUTER_DOMAIN}", caller=alice[0],
                                      password=alice[1])
            self.assertIsNotNone(first, f"call {i}: no answer to the INVITE")
            self.assertEqual(first.status, 407, str(first))
            self.assertIsNotNone(final, f"call {i}: no answer to the INVITE with credentials")
            self.assertEqual(final.status, 486, f"call {i}: a resent 407 (its ACK not matched)?"
                                                f" {final}")
        time.sleep(self.LISTEN_S)
        resent = {}
        for i, phone in enumerate(phones):
            while True:
                m = phone.recv(0.05)
                if m is None:
                    break
                if m.is_response and m.status >= 300:
                    resent.setdefault(i, []).append(m.status)
        self.assertEqual(resent, {}, "final responses resent after their ACK, by call")
        m = p.edge.metrics()
        # Some ACKs reached another worker than their INVITE (each with odds 3 in 4) and were
        # handed to the INVITE's.
        self.assertGreater(m.get("evosip_edge_handoffs_total"), 0)
        self.assertAlive(p.edge)
        self.assertAlive(p.router)


if __name__ == "__main__":
    unittest.main()
