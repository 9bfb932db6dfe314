"""Calls through edge -> router -> edge between registered sipp user agents:
alice calls bob (0 failed); callee not registered -> 480; unknown user -> 404; foreign
domain from an unauthenticated source -> 403; service number 100 -> the app set with
X-Evosip-Action: Playback / X-Evosip-Sound: welcome, and no X-Evosip-* back to the caller;
a Request-URI whose transport cannot reach its host (`;transport=tcp` to a closed TCP port,
`sips:` without TLS in this build) -> 500 at once, and nothing of it over UDP.
Skips until `evosip router` exists."""

import os
import socket
import threading
import time
import unittest

from harness import (HOST, ROUTER_DOMAIN, FakeRouter, RouterTestCase, SipClient, SipMessage,
                     ack_for, build_response, create_subscribers, credentials_header_name,
                     digest_authorization, free_port, make_users, pick_challenge, raw_invite,
                     scenario, via_params, wait_until)

CALLS = 5


class RouterCalls(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.app_port = free_port()
        self.p = self.platform(app_ports=[self.app_port])
        self.alice, self.bob, self.carol = make_users(3, prefix="call")
        create_subscribers(self.p.api, [self.alice, self.bob, self.carol])

    def client(self) -> SipClient:
        c = SipClient("UDP", self.p.edge.addr, timeout=5)
        self.addCleanup(c.close)
        return c

    def test_alice_calls_bob(self):
        bob = self.registered_uas(self.p.edge.addr, self.bob)
        self.assertEqual(len(self.lookup(self.p.router, self.bob[0])), 1)
        caller = self.caller(self.p.edge.addr, self.alice, self.bob[0], calls=CALLS, rate=5)
        res = caller.run(self.cleanup)
        self.assertSippOk(res, CALLS)
        uas = bob.result()
        self.assertEqual((uas.successful, uas.failed), (CALLS, 0), uas.summary())
        wait_until(lambda: self.p.router.rpc("dialog.list").get("dialogs", [None]) == [], 5,
                   "dialog records removed after BYE")
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_dialogs_active"), 0)
        self.assertAlive(self.p.router)
        self.assertAlive(self.p.edge)

    def test_callee_not_registered_480(self):
        _first, final = raw_invite(self.client(), f"sip:{self.carol[0]}@{ROUTER_DOMAIN}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 480, str(final))

    def test_first_invite_challenged_407(self):
        first, _final = raw_invite(self.client(), f"sip:{self.carol[0]}@{ROUTER_DOMAIN}",
                                   caller=self.alice[0])
        self.assertEqual(first.status, 407, str(first))
        self.assertTrue(first.all("Proxy-Authenticate"), str(first))

    def test_unknown_user_404(self):
        _first, final = raw_invite(self.client(), f"sip:nobody-here@{ROUTER_DOMAIN}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 404, str(final))

    def test_alias_host_counts_as_domain(self):
        # a tester that dials sip:user@127.0.0.1:EDGE_PORT reaches the local domain
        _first, final = raw_invite(self.client(), f"sip:nobody-here@{self.p.edge.hostport}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 404, str(final))

    def test_foreign_domain_unauthenticated_403(self):
        for from_domain in ("foreign.example", ROUTER_DOMAIN):
            with self.subTest(from_domain=from_domain):
                first, _ = raw_invite(self.client(), "sip:someone@elsewhere.example",
                                      caller="mallory", from_domain=from_domain)
                self.assertIsNotNone(first, "no answer")
                if from_domain == ROUTER_DOMAIN:
                    # claims to be local: challenged; never relayed without credentials
                    self.assertIn(first.status, (403, 407), str(first))
                else:
                    self.assertEqual(first.status, 403, f"open relay?\n{first}")

    def test_request_uri_transport_parameter_is_honoured_never_udp_instead(self):
        # RFC 3263 4.1: the Request-URI's transport parameter (sips: TLS) chooses the
        # transport. `;transport=tcp` makes the router connect over TCP, where nothing listens
        # here: the branch fails at once as 503, which goes upstream as 500 (RFC 3261 16.7).
        # This build has no TLS: a sips: branch fails the same way. 127.0.0.1 is an alias of
        # the domain: the UAS is elsewhere.
        uas = FakeRouter("udp-only", host="127.0.0.2")
        self.addCleanup(uas.close)
        m = self.p.router.metrics()
        before = {reason: m.get("evosip_sip_transport_errors_total", transport="tcp",
                                reason=reason) or 0
                  for reason in ("connect_failed", "no_connection")}
        for ruri in (f"sip:x@{uas.host}:{uas.port};transport=tcp",
                     f"sip:x@{uas.host}:{uas.port};lr;transport=TCP;maddr={uas.host}",
                     f"sips:x@{uas.host}:{uas.port}"):
            with self.subTest(ruri=ruri):
                started = time.monotonic()
                _first, final = raw_invite(self.client(), ruri, caller=self.alice[0],
                                           password=self.alice[1])
                self.assertIsNotNone(final, "no final answer")
                self.assertEqual(final.status, 500, str(final))
                self.assertLess(time.monotonic() - started, 3.0, "answered late")
        self.assertEqual(uas.received("INVITE"), [], "sent over UDP instead")
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_sip_transport_errors_total", transport="tcp",
                               reason="connect_failed"), before["connect_failed"] + 2)
        self.assertEqual(m.get("evosip_sip_transport_errors_total", transport="tcp",
                               reason="no_connection"), before["no_connection"] + 1)
        # Without the parameter the same address is reached over UDP.
        _first, final = raw_invite(self.client(), f"sip:x@{uas.host}:{uas.port}",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 200, str(final))
        self.assertEqual(len(uas.received("INVITE")), 1)
        self.assertAlive(self.p.router)

    def test_service_number_100_reaches_app(self):
        app = self.sipp("app", scenario=scenario("router_uas_app.xml"), port=self.app_port,
                        keys={"router_name": "app"}, timeout_s=60, timeout_error=False,
                        trace_msg=True).start(self.cleanup)
        caller = self.caller(self.p.edge.addr, self.alice, "100", calls=2, rate=5,
                             trace_msg=True)
        res = caller.run(self.cleanup)
        self.assertSippOk(res, 2)
        # The app counts a call when its BYE exchange ends, which may be just after the
        # caller's run returns: wait for it (bounded).
        wait_until(lambda: app.result().successful >= 2, 5, "the app to count both calls")
        a = app.result()
        self.assertEqual((a.successful, a.failed), (2, 0), a.summary())
        with open(app.msg_path, encoding="utf-8", errors="replace") as f:
            app_log = f.read()
        self.assertRegex(app_log, r"(?im)^X-Evosip-Action:\s*Playback\s*$")
        self.assertRegex(app_log, r"(?im)^X-Evosip-Sound:\s*welcome\s*$")
        with open(caller.msg_path, encoding="utf-8", errors="replace") as f:
            caller_log = f.read()
        self.assertNotRegex(caller_log, r"(?im)^X-Evosip-", "X-Evosip-* reached the caller")

    def test_answers_come_back_to_the_worker_that_sent_the_request(self):
        """The router forwards from its worker's egress port (named in its Via), the edge from
        the egress port its Call-ID hashes to; answers to the egress port and, from a peer that
        ignores the Via, to the router's listen port both reach the caller."""
        app = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        app.bind((HOST, self.app_port))
        app.settimeout(10)
        self.addCleanup(app.close)
        result = {}
        client = self.client()

        def call():
            first, final = raw_invite(client, f"sip:100@{ROUTER_DOMAIN}", caller=self.alice[0],
                                      password=self.alice[1], timeout=10)
            result.update(first=first, final=final)

        caller = threading.Thread(target=call)
        caller.start()
        self.addCleanup(caller.join, 15)
        data, src = app.recvfrom(70000)
        invite = SipMessage.parse(data, src)
        self.assertEqual(invite.method, "INVITE", str(invite))
        vias = [v for h in invite.all("Via") for v in h.split(",")]
        router_via, edge_via = vias[0].strip(), vias[1].strip()
        router_port = int(router_via.split(";")[0].rsplit(":", 1)[1])
        edge_port = int(edge_via.split(";")[0].rsplit(":", 1)[1])
        self.assertEqual(router_port, src[1], "the Via names the port the INVITE left from")
        self.assertNotEqual(router_port, self.p.router.sip_port, "not the listen port")
        self.assertNotEqual(edge_port, self.p.edge.sip_port,
                            "the edge forwards from an egress port, not its listen port")
        self.assertIn("branch", via_params(router_via))
        # Provisionals to the router's listen port, each from another source port (the
        # SO_REUSEPORT hash picks any worker): handed to the worker that holds the call.
        others = []
        for code, reason in ((180, "Ringing"), (181, "Forwarded"), (182, "Queued"),
                             (183, "Progress")):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            others.append(s)
            s.sendto(build_response(invite, code, reason, to_tag="app1"),
                     (HOST, self.p.router.sip_port))
        for s in others:
            s.close()
        time.sleep(0.3)
        app.sendto(build_response(invite, 486, "Busy Here", to_tag="app1"), src)
        ack, _ = app.recvfrom(70000)  # the router's hop-by-hop ACK, to the egress port
        self.assertTrue(ack.startswith(b"ACK "), ack[:200])
        caller.join(15)
        self.assertIsNotNone(result.get("final"), "no final answer")
        self.assertEqual(result["final"].status, 486, str(result["final"]))
        statuses = [m.status for m in client.log if m.is_response]
        for code in (180, 181, 182, 183):
            self.assertIn(code, statuses, f"{code} lost on its way to the caller: {statuses}")
        self.assertAlive(self.p.router)

    def test_cancel_from_another_source_port_finds_its_invite(self):
        """A CANCEL that reaches the router over another flow than its INVITE (here: three
        other source ports, straight to the router) still cancels it: 200 to the CANCEL,
        the CANCEL forwarded once, 487 to the INVITE."""
        app = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        app.bind((HOST, self.app_port))
        app.settimeout(5)
        self.addCleanup(app.close)
        c = SipClient("UDP", (HOST, self.p.router.sip_port), timeout=5)
        self.addCleanup(c.close)
        ruri = f"sip:100@{ROUTER_DOMAIN}"
        common = dict(call_id=f"cancel-{os.getpid()}-{time.monotonic_ns()}",
                      from_uri=f"sip:{self.alice[0]}@{ROUTER_DOMAIN}", from_tag="c1")
        first = c.request("INVITE", ruri, cseq=1, **common)
        challenge = c.transact(first)
        self.assertIsNotNone(challenge)
        self.assertEqual(challenge.status, 407, str(challenge))
        ack_for(c, first, challenge)
        auth = digest_authorization(pick_challenge(challenge), self.alice[0], self.alice[1],
                                    "INVITE", ruri)
        invite = c.request("INVITE", ruri, cseq=2, rport=False, **common,
                           extra_headers=[f"{credentials_header_name(407)}: {auth}"])
        c.send(invite)
        data, src = app.recvfrom(70000)
        forwarded = SipMessage.parse(data, src)
        self.assertEqual(forwarded.method, "INVITE")
        app.sendto(build_response(forwarded, 180, "Ringing", to_tag="app2"), src)

        def statuses():
            return [(m.status, (m.get("CSeq") or "").split()[-1]) for m in c.log
                    if m.is_response]

        # The caller cancels once it rings. (Sent earlier, the CANCEL may overtake the 180 in
        # the router; its 487 then rightly keeps the 180 from going upstream after it.)
        deadline = time.monotonic() + 5
        while (180, "INVITE") not in statuses() and time.monotonic() < deadline:
            c.recv(0.5)
        self.assertIn((180, "INVITE"), statuses(), statuses())
        # CANCEL: the INVITE's Request-URI, Call-ID, From, CSeq number and top Via.
        req = SipMessage.parse(invite)
        cancel = "\r\n".join([f"CANCEL {ruri} SIP/2.0", f"Via: {req.get('Via')}",
                               "Max-Forwards: 70", f"From: {req.get('From')}",
                               f"To: {req.get('To')}", f"Call-ID: {req.get('Call-ID')}",
                               "CSeq: 2 CANCEL", "Content-Length: 0", "", ""]).encode()
        for _ in range(3):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind((HOST, 0))
                other.sendto(cancel, (HOST, self.p.router.sip_port))
        data, src = app.recvfrom(70000)
        fwd_cancel = SipMessage.parse(data, src)
        self.assertEqual(fwd_cancel.method, "CANCEL", str(fwd_cancel))
        app.sendto(build_response(fwd_cancel, 200, "OK", to_tag="app2"), src)
        app.sendto(build_response(forwarded, 487, "Request Terminated", to_tag="app2"), src)
        deadline = time.monotonic() + 5
        while (487, "INVITE") not in statuses() and time.monotonic() < deadline:
            c.recv(0.5)
        self.assertIn((200, "CANCEL"), statuses(), statuses())
        self.assertIn((487, "INVITE"), statuses(), statuses())
        ack_for(c, invite, next(m for m in c.log if m.is_response and m.status == 487))
        self.assertNotIn((481, "CANCEL"), statuses(), statuses())
        app.settimeout(0.5)
        extra = []
        try:
            while True:
                d, _ = app.recvfrom(70000)
                extra.append(d.split(b" ", 1)[0])
        except socket.timeout:
            pass
        self.assertNotIn(b"CANCEL", extra, "the CANCEL was forwarded more than once")


if __name__ == "__main__":
    unittest.main()
