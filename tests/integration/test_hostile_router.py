"""The router as an attacker meets it (security): requests sent straight to `evosip router` the
way a hostile peer behind any edge could shape them, and what a victim host, a legitimate peer
and the router's own memory see.

- made-up To tags (INVITE, MESSAGE, BYE) naming a victim in the Request-URI or a Route: 481,
  the victim receives nothing; an ACK without To tag to the victim: nothing reaches it;
- a To-tagged BYE for the router itself with Max-Forwards 255: one answer, a handful of router
  messages, no memory growth; OPTIONS to the router's own address: 200 (edges probe with it);
- a stray BYE (no dialog, nobody at the Request-URI) is answered, never left to time out;
- the 11th contact of an AoR is refused and nothing is stored;
- X-Evosip-* headers that did not come from the router never reach the app;
- a flood of INVITEs that never complete is bounded by router.max_transaction_bytes, and the
  memory goes back to the system once they expired.
"""

import os
import socket
import time
import unittest
from unittest import mock

from harness import (HOST, ROUTER_DOMAIN, RawRegistration, RouterTestCase, SipClient,
                     SipMessage, create_subscribers, credentials_header_name,
                     digest_authorization, make_users, new_call_id, pick_challenge, wait_until)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Victim:
    """A UDP socket on 127.0.0.1 that counts whatever reaches it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def received(self, wait: float = 1.0) -> list:
        time.sleep(wait)
        out = []
        while True:
            try:
                out.append(self.sock.recv(70000))
            except BlockingIOError:
                return out

    def close(self):
        self.sock.close()


class HostileRouter(RouterTestCase):
    def setUp(self):
        super().setUp()
        self.app = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.app.bind((HOST, 0))
        self.addCleanup(self.app.close)
        self.app_port = self.app.getsockname()[1]
        self.p = self.platform(app_ports=[self.app_port])
        self.victim = Victim()
        self.addCleanup(self.victim.close)
        self.router_pid = self.p.router.proc.popen.pid

    def client(self, timeout: float = 3.0) -> SipClient:
        c = SipClient("UDP", self.p.router.addr, timeout=timeout)
        self.addCleanup(c.close)
        return c

    def in_dialog(self, c: SipClient, method: str, ruri: str, *, routes=(), to_tag="made-up",
                  max_forwards=70, extra=()):
        req = c.request(method, ruri, from_uri=f"sip:mallory@{ROUTER_DOMAIN}",
                        to_uri=f"sip:bob@{ROUTER_DOMAIN}", to_tag=to_tag,
                        max_forwards=max_forwards,
                        extra_headers=[f"Route: {r}" for r in routes] + list(extra))
        if method == "ACK":
            c.send(req)
            return None
        return c.transact(req, timeout=3)

    def test_made_up_to_tags_get_481_and_never_reach_the_victim(self):
        c = self.client()
        victim = f"sip:victim@{HOST}:{self.victim.port}"
        for method in ("INVITE", "MESSAGE", "BYE"):
            for ruri, routes in ((victim, ()),
                                 (f"sip:bob@{ROUTER_DOMAIN}", (f"<{victim};lr>",))):
                with self.subTest(method=method, route=bool(routes)):
                    final = self.in_dialog(c, method, ruri, routes=routes)
                    self.assertIsNotNone(final, f"no answer to a made-up {method}")
                    self.assertEqual(final.status, 481, str(final))
        got = self.victim.received()
        self.assertEqual(got, [], f"relayed to the victim: {got[:1]}")

    def test_ack_without_to_tag_is_not_relayed(self):
        c = self.client()
        for i in range(5):
            self.in_dialog(c, "ACK", f"sip:victim@{HOST}:{self.victim.port}", to_tag="")
            self.in_dialog(c, "ACK", f"sip:bob@{ROUTER_DOMAIN}", to_tag="",
                           routes=(f"<sip:{HOST}:{self.victim.port};lr>",))
        got = self.victim.received()
        self.assertEqual(got, [], f"ACK relayed to the victim: {got[:1]}")
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_rejected_total", reason="ack_dropped"), 10)

    def test_bye_to_the_router_itself_is_answered_not_amplified(self):
        c = self.client()
        before_rx = self.p.router.metrics().get("evosip_sip_received_total")
        before_rss = rss_kb(self.router_pid)
        packets = 60
        answers = []
        for _ in range(packets):
            final = self.in_dialog(c, "BYE", f"sip:{HOST}:{self.p.router.sip_port}",
                                   max_forwards=255)
            answers.append(final.status if final else None)
        time.sleep(1.0)
        received = self.p.router.metrics().get("evosip_sip_received_total") - before_rx
        grown_mb = (rss_kb(self.router_pid) - before_rss) / 1024
        self.assertLessEqual(received, 2 * packets,
                             f"{received:.0f} router messages for {packets} packets: a loop")
        self.assertLess(grown_mb, 16, f"the router grew {grown_mb:.0f} MB")
        self.assertTrue(all(a in (404, 482, 483) for a in answers), answers)
        self.assertAlive(self.p.router)

    def test_options_to_the_router_is_200_even_with_max_forwards_0(self):
        c = self.client()
        for mf in (70, 0):
            with self.subTest(max_forwards=mf):
                r = c.transact(c.request("OPTIONS", f"sip:{HOST}:{self.p.router.sip_port}",
                                         max_forwards=mf), timeout=3)
                self.assertIsNotNone(r, "no answer to the probe")
                self.assertEqual(r.status, 200, str(r))

    def test_stray_bye_gets_an_answer(self):
        c = self.client()
        # Nobody at the Request-URI: forwarded, it would wait 32 s and end without an answer.
        final = self.in_dialog(c, "BYE", f"sip:bob@{HOST}:{self.victim.port}", to_tag="gone")
        self.assertIsNotNone(final, "a stray BYE was left unanswered (the edge reads that as "
                                    "the router being down)")
        self.assertEqual(final.status, 481, str(final))
        self.assertEqual(self.victim.received(0.2), [])

    def test_eleventh_contact_is_refused(self):
        (user,) = make_users(1, prefix="many")
        create_subscribers(self.p.api, [user])
        c = SipClient("UDP", self.p.edge.addr, timeout=4)
        self.addCleanup(c.close)
        contacts = ", ".join(f"<sip:{user[0]}@{HOST}:{self.victim.port};n={i}>" for i in range(11))
        _first, final = RawRegistration(c, user[0]).register(user[1], contact=contacts,
                                                             algorithm="MD5")
        self.assertIsNotNone(final, "no answer")
        self.assertEqual(final.status, 403, str(final))
        self.assertEqual(self.lookup(self.p.router, user[0]), [], "nothing stored")
        # Ten are fine, and so is refreshing them.
        ten = ", ".join(f"<sip:{user[0]}@{HOST}:{self.victim.port};n={i}>" for i in range(10))
        reg = RawRegistration(c, user[0])
        for _ in range(2):
            _first, final = reg.register(user[1], contact=ten, algorithm="MD5")
            self.assertEqual(final.status if final else None, 200, str(final))
        self.assertEqual(len(self.lookup(self.p.router, user[0])), 10)

    def test_x_evosip_headers_from_outside_do_not_reach_the_app(self):
        (alice,) = make_users(1, prefix="xev")
        create_subscribers(self.p.api, [alice])
        c = self.client()
        self.app.settimeout(5)
        call_id = new_call_id()
        forged = ["X-Evosip-Action: Voicemail", "X-Evosip-Mailbox: victim",
                  "x-evosip-sound: /etc/passwd"]
        ruri = f"sip:100@{ROUTER_DOMAIN}"

        def invite(cseq, extra):
            return c.request("INVITE", ruri, call_id=call_id, cseq=cseq, from_tag="xev1",
                             from_uri=f"sip:{alice[0]}@{ROUTER_DOMAIN}",
                             extra_headers=forged + extra)

        first = c.transact(invite(1, []), timeout=3)
        self.assertIsNotNone(first, "no challenge")
        self.assertIn(first.status, (401, 407), str(first))
        auth = digest_authorization(pick_challenge(first, "MD5"), alice[0], alice[1], "INVITE",
                                    ruri)
        c.send(invite(2, [f"{credentials_header_name(first.status)}: {auth}"]))
        data, _src = self.app.recvfrom(70000)
        invite_at_app = SipMessage.parse(data)
        private = [(n, v) for n, v in invite_at_app.headers
                   if n.lower().startswith("x-evosip-")]
        self.assertIn(("X-Evosip-Action", "Playback"), private, str(invite_at_app))
        self.assertNotIn("victim", str(private))
        self.assertNotIn("Voicemail", str(private))
        self.assertNotIn("/etc/passwd", str(private))


class HostileRouterFlood(RouterTestCase):
    """INVITEs that never complete (to a user nobody is, their 404 never ACKed: each holds a
    transaction for Timer H, 32 s)."""

    CAP = 8 << 20  # bytes of transactions per worker

    def test_never_completed_invites_are_bounded_and_memory_comes_back(self):
        with mock.patch.dict(os.environ,
                             {"EVOSIP_ROUTER_MAX_TRANSACTION_BYTES": str(self.CAP)}):
            p = self.platform()
        pid = p.router.proc.popen.pid
        # Warm up the path (credential lookup of the unknown user, allocator arenas).
        with SipClient("UDP", p.router.addr, timeout=3) as c:
            c.transact(c.request("INVITE", f"sip:nobody-flood@{ROUTER_DOMAIN}",
                                 from_uri="sip:x@foreign.test"), timeout=3)
        time.sleep(0.5)
        start = rss_kb(pid)
        socks = []
        for _ in range(16):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            socks.append(s)
            self.addCleanup(s.close)
        payload = "x" * 400  # a long Subject: ~1 KB per INVITE
        total = 60000
        for i in range(total):
            s = socks[i % len(socks)]
            port = s.getsockname()[1]
            msg = (f"INVITE sip:nobody-flood@{ROUTER_DOMAIN} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK-flood{i};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:x@foreign.test>;tag=f{i}\r\n"
                   f"To: <sip:nobody-flood@{ROUTER_DOMAIN}>\r\nCall-ID: flood-{i}@test\r\n"
                   f"CSeq: 1 INVITE\r\nSubject: {payload}\r\nContent-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), p.router.addr)
            if i % 500 == 499:
                time.sleep(0.05)  # ~10,000/s: what the router can take in on this machine
        time.sleep(2)
        peak = rss_kb(pid)
        grown_mb = (peak - start) / 1024
        m = p.router.metrics()
        print(f"\nflood: rss {start // 1024} -> {peak // 1024} MB, transaction bytes "
              f"{m.get('evosip_router_transaction_bytes') / 1e6:.1f} MB, refused "
              f"{m.get('evosip_router_rejected_total', reason='transaction_memory'):.0f}")
        self.assertLess(grown_mb, 48, f"{total} never-completed INVITEs grew the router by "
                                      f"{grown_mb:.0f} MB")
        self.assertGreater(m.get("evosip_router_rejected_total", reason="transaction_memory"),
                           0, "the cap never refused anything: the test shows nothing")
        # Timer H (32 s) ends them all; the worker then gives the memory back.
        wait_until(lambda: p.router.metrics().get("evosip_router_transactions",
                                                  kind="server") == 0,
                   60, "the flood's transactions to expire", interval=1.0)
        time.sleep(7)  # a trim runs at most every 5 s, at a tick after the table shrank
        after = rss_kb(pid)
        print(f"flood: rss after expiry {after // 1024} MB")
        self.assertLess((after - start) / 1024, 12,
                        f"memory kept after the flood: {start // 1024} -> {peak // 1024} -> "
                        f"{after // 1024} MB")
        self.assertAlive(p.router)


if __name__ == "__main__":
    unittest.main()
