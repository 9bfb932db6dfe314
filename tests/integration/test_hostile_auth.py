"""Authentication before resources, tried as an outsider on the public SIP port (edge ->
router, credentials from the api):

- forged nonces cost no credential fetch from the api (router metrics), expired ones neither
  and are answered stale=true; nor do unauthenticated INVITEs to unknown users, who look like
  offline subscribers (480, no enumeration);
- qop-less (RFC 2069, replayable) answers are challenged again, never accepted;
- an MD5 answer is refused when only SHA-256 is configured;
- the 407 to an INVITE over UDP is sent exactly once (no retransmissions towards a source
  that may be spoofed) and is not much larger than the INVITE;
- service numbers: an unauthenticated caller of another domain gets 403 and no app receives
  anything; a voicemail deposit into a mailbox that is no subscriber gets 404; an entry
  marked `public: true` is reachable without authentication, the others are not.

Each check fails against a router that looks credentials up before checking the nonce,
accepts RFC 2069 answers and any algorithm, retransmits its challenges and routes anyone to
the services."""

import os
import socket
import time
import unittest
from typing import List, Optional

from harness import (HOST, ROUTER_DOMAIN, RawRegistration, RouterTestCase, SipClient,
                     SipMessage, build_request, build_response, create_subscribers, credentials_header_name,
                     digest_authorization, digest_challenges, digest_response, free_port,
                     make_users, new_call_id, pick_challenge)


def api_fetches(router) -> float:
    return sum(v for _labels, v in router.metrics().series("evosip_router_api_fetches_total"))


def failures(router, reason: str) -> float:
    return sum(v for labels, v in router.metrics().series("evosip_router_auth_failures_total")
               if labels.get("reason") == reason)


def sdp() -> bytes:
    return (f"v=0\r\no=x 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio 40020 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()


class FakeApp:
    """The app set: one UDP socket that records what the router forwards and answers 486."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))

    def received(self, wait: float) -> List[SipMessage]:
        out = []
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(70000)
            except socket.timeout:
                return out
            msg = SipMessage.parse(data, src)
            out.append(msg)
            if not msg.is_response and msg.method == "INVITE":
                self.sock.sendto(build_response(msg, 486, "Busy Here", to_tag="app"), src)

    def close(self) -> None:
        self.sock.close()


class HostileAuth(RouterTestCase):
    def start(self, **router) -> None:
        self.app_port = free_port()
        self.app = FakeApp(self.app_port)
        self.addCleanup(self.app.close)
        self.p = self.platform(app_ports=[self.app_port], router_overrides={"router": router})
        self.alice, self.bob = make_users(2, prefix="hostile")
        create_subscribers(self.p.api, [self.alice, self.bob])

    def client(self) -> SipClient:
        c = SipClient("UDP", self.p.edge.addr, timeout=4)
        self.addCleanup(c.close)
        return c

    def invite(self, c: SipClient, ruri: str, from_user: str, from_domain: str,
               extra=(), cseq: int = 1, call_id: Optional[str] = None) -> bytes:
        return c.request("INVITE", ruri, call_id=call_id or new_call_id(), cseq=cseq,
                         from_uri=f"sip:{from_user}@{from_domain}", body=sdp(),
                         extra_headers=["Content-Type: application/sdp"] + list(extra))

    def call(self, ruri: str, from_user: str, from_domain: str = ROUTER_DOMAIN,
             password: str = "", to_app: bool = False) -> Optional[SipMessage]:
        """An INVITE; with a password the 407 is answered once. Returns the last final, or
        None at once when the call is expected to reach the app (read it there)."""
        c = self.client()
        call_id = new_call_id()
        first = self.invite(c, ruri, from_user, from_domain, call_id=call_id)
        if to_app and not password:
            c.send(first)
            return None
        final = c.transact(first, 5)
        if final is None or final.status != 407 or not password:
            return final
        ch = pick_challenge(final, "MD5")
        auth = digest_authorization(ch, from_user, password, "INVITE", ruri)
        second = self.invite(c, ruri, from_user, from_domain, cseq=2, call_id=call_id,
                             extra=[f"{credentials_header_name(407)}: {auth}"])
        if to_app:
            c.send(second)
            return None
        return c.transact(second, 5)

    def app_invites(self, wait: float = 3.0) -> List[SipMessage]:
        return [m for m in self.app.received(wait) if not m.is_response and m.method == "INVITE"]

    def assertNoAppTraffic(self, what: str) -> None:
        got = self.app.received(1.0)
        self.assertEqual([], [str(m).split("\r\n", 1)[0] for m in got],
                         f"{what} reached the app")

    # -- the nonce before the credentials ----------------------------------------------------

    def test_forged_nonce_costs_no_credential_fetch(self):
        self.start()
        before = api_fetches(self.p.router)
        users = [u for u, _ in make_users(10, prefix="hostile")] + \
                [f"nosuch{i}" for i in range(10)]
        forged = {"realm": ROUTER_DOMAIN, "nonce": "A" * 43, "algorithm": "MD5"}
        for user in users:
            reg = RawRegistration(self.client(), user)
            auth = digest_authorization(forged, user, "whatever", "REGISTER", reg.ruri)
            resp = reg.send(authorization=auth)
            self.assertIsNotNone(resp, f"no answer for {user}")
            self.assertEqual(resp.status, 401, str(resp))
            self.assertTrue(digest_challenges(resp), f"a fresh challenge is expected:\n{resp}")
        self.assertEqual(api_fetches(self.p.router) - before, 0,
                         "forged nonces made the router fetch credentials from the api")
        self.assertGreaterEqual(failures(self.p.router, "bad-nonce"), len(users))
        # A real answer still works and costs one fetch.
        user, pw = self.alice
        self.assertEqual(RawRegistration(self.client(), user).register(pw)[1].status, 200)
        self.assertEqual(api_fetches(self.p.router) - before, 1)

    def test_expired_nonce_is_stale_without_fetch(self):
        self.start(nonce_lifetime_s=1)
        user, _pw = self.bob  # never fetched
        reg = RawRegistration(self.client(), user)
        first = reg.send()
        self.assertEqual(first.status, 401, str(first))
        time.sleep(1.5)
        before = api_fetches(self.p.router)
        ch = pick_challenge(first, "SHA-256")
        resp = reg.send(authorization=digest_authorization(ch, user, "a-guess", "REGISTER",
                                                           reg.ruri))
        self.assertEqual(resp.status, 401, str(resp))
        self.assertTrue(any(c.get("stale", "").lower() == "true"
                            for c in digest_challenges(resp)), str(resp))
        self.assertEqual(api_fetches(self.p.router) - before, 0,
                         "an expired nonce made the router fetch credentials")

    def test_outsider_learns_no_subscribers_and_costs_no_fetch(self):
        self.start()
        before = api_fetches(self.p.router)
        statuses = []
        for callee in [self.bob[0]] + [f"guess{i}" for i in range(10)]:
            final = self.call(f"sip:{callee}@{ROUTER_DOMAIN}", "mallory", "foreign.example")
            self.assertIsNotNone(final, f"no answer for {callee}")
            statuses.append(final.status)
        self.assertEqual(set(statuses), {480}, "an offline subscriber and nobody must look alike")
        self.assertEqual(api_fetches(self.p.router) - before, 0,
                         "unauthenticated INVITEs made the router fetch credentials")
        # A subscriber who authenticated still tells them apart.
        final = self.call(f"sip:guess99@{ROUTER_DOMAIN}", self.alice[0], password=self.alice[1])
        self.assertEqual(final.status, 404, str(final))

    # -- qop and algorithms ------------------------------------------------------------------

    def test_qop_less_answer_is_refused(self):
        self.start()
        user, pw = self.alice
        reg = RawRegistration(self.client(), user)
        first = reg.send()
        self.assertEqual(first.status, 401, str(first))
        ch = pick_challenge(first, "MD5")
        resp = digest_response("MD5", user, ROUTER_DOMAIN, pw, "REGISTER", reg.ruri,
                               ch["nonce"], qop=None)
        rfc2069 = (f'Digest username="{user}", realm="{ROUTER_DOMAIN}", nonce="{ch["nonce"]}", '
                   f'uri="{reg.ruri}", response="{resp}", algorithm=MD5')
        final = reg.send(authorization=rfc2069)
        self.assertIsNotNone(final)
        self.assertEqual(final.status, 401, f"a qop-less answer was accepted:\n{final}")
        self.assertTrue(digest_challenges(final), str(final))
        self.assertEqual(self.lookup(self.p.router, user), [])
        self.assertGreaterEqual(failures(self.p.router, "qop"), 1)

    def test_md5_refused_when_only_sha256_configured(self):
        self.start(auth_algorithms=["SHA-256"])
        user, pw = self.alice
        reg = RawRegistration(self.client(), user)
        first = reg.send()
        self.assertEqual(first.status, 401, str(first))
        self.assertEqual([(c.get("algorithm") or "MD5").upper() for c in digest_challenges(first)],
                         ["SHA-256"], str(first))
        ch = dict(pick_challenge(first, "SHA-256"))
        md5 = reg.send(authorization=digest_authorization(ch, user, pw, "REGISTER", reg.ruri,
                                                          algorithm="MD5"))
        self.assertEqual(md5.status, 401, f"an MD5 answer was accepted:\n{md5}")
        self.assertEqual(self.lookup(self.p.router, user), [])
        self.assertGreaterEqual(failures(self.p.router, "algorithm"), 1)
        sha = reg.send(authorization=digest_authorization(ch, user, pw, "REGISTER", reg.ruri,
                                                          nc=2))
        self.assertEqual(sha.status, 200, str(sha))

    # -- the challenge is sent once ------------------------------------------------------

    def test_challenge_to_invite_over_udp_sent_once_and_small(self):
        self.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
            invite = build_request("INVITE", f"sip:{self.bob[0]}@{ROUTER_DOMAIN}",
                                   via_host=HOST, via_port=port,
                                   from_uri=f"sip:{self.alice[0]}@{ROUTER_DOMAIN}", body=sdp(),
                                   extra_headers=["Content-Type: application/sdp"])
            s.sendto(invite, self.p.edge.addr)
            got = []
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data, _ = s.recvfrom(70000)
                except socket.timeout:
                    break
                got.append(data)
        finals = [d for d in got if d.startswith(b"SIP/2.0 407")]
        self.assertEqual(len(finals), 1,
                         f"{len(finals)} copies of the 407 for one INVITE never ACKed: "
                         f"{[d.split(b' ', 2)[1] for d in got]}")
        self.assertLessEqual(len(finals[0]), len(invite) * 1.25,
                             f"407 of {len(finals[0])} bytes to a {len(invite)}-byte INVITE:\n"
                             f"{finals[0].decode(errors='replace')}")
        # The router answers in the same pass, so no 100 Trying goes out before the 407.
        self.assertEqual([d.split(b" ", 2)[1] for d in got], [b"407"],
                         "only the 407 goes back to an unverified source")

    # -- services need an authenticated subscriber ----------------------------------------

    def test_outsider_cannot_reach_service_numbers(self):
        self.start()
        for number in ("100", "*97"):
            with self.subTest(number=number):
                final = self.call(f"sip:{number}@{ROUTER_DOMAIN}", self.alice[0],
                                  "foreign.example")
                self.assertIsNotNone(final, "no answer")
                self.assertEqual(final.status, 403, str(final))
                self.assertNoAppTraffic(f"an unauthenticated INVITE to {number}")
        # Claiming to be local without credentials: challenged, nothing reaches the app.
        final = self.call(f"sip:100@{ROUTER_DOMAIN}", self.alice[0])
        self.assertEqual(final.status, 407, str(final))
        self.assertNoAppTraffic("an unauthenticated local INVITE to 100")
        m = self.p.router.metrics()
        self.assertGreaterEqual(
            sum(v for labels, v in m.series("evosip_router_service_refused_total")
                if labels.get("reason") == "unauthenticated"), 2)
        # The subscriber who authenticates gets through.
        self.call(f"sip:100@{ROUTER_DOMAIN}", self.alice[0], password=self.alice[1],
                  to_app=True)
        self.assertEqual(len(self.app_invites()), 1, "the authenticated call did not reach the app")

    def test_voicemail_only_into_subscribers_mailboxes(self):
        self.start(dialplan={
            "*97": {"action": "Voicemail", "mailbox": "from-user", "public": True},
            "*96": {"action": "Voicemail", "mailbox": "ghost"},
        })
        # A public voicemail entry: anyone may call it, but only into an existing mailbox.
        for user in ("ghost", "newbox123", "..%2f..%2fetc"):
            with self.subTest(mailbox=user):
                final = self.call(f"sip:*97@{ROUTER_DOMAIN}", user, "foreign.example")
                self.assertIsNotNone(final, "no answer")
                self.assertEqual(final.status, 404, str(final))
                self.assertNoAppTraffic(f"a deposit into mailbox {user!r}")
        # A fixed mailbox that is no subscriber: 404 even for an authenticated caller.
        final = self.call(f"sip:*96@{ROUTER_DOMAIN}", self.alice[0], password=self.alice[1])
        self.assertIsNotNone(final, "no answer")
        self.assertEqual(final.status, 404, str(final))
        self.assertNoAppTraffic("a deposit into a mailbox that is no subscriber")
        # An existing subscriber's mailbox: through, with that mailbox.
        self.call(f"sip:*97@{ROUTER_DOMAIN}", self.bob[0], "foreign.example", to_app=True)
        got = self.app_invites()
        self.assertEqual(len(got), 1, "the deposit into bob's mailbox did not reach the app")
        self.assertEqual(got[0].get("X-Evosip-Mailbox"), self.bob[0], str(got[0]))

    def test_public_entry_reachable_unauthenticated_others_not(self):
        self.start(dialplan={"200": {"action": "Playback", "sound": "welcome", "public": True}})
        self.call(f"sip:200@{ROUTER_DOMAIN}", "anyone", "foreign.example", to_app=True)
        got = self.app_invites()
        self.assertEqual(len(got), 1, "the public entry did not reach the app")
        self.assertEqual(got[0].get("X-Evosip-Action"), "Playback", str(got[0]))
        self.assertIsNone(got[0].get("X-Evosip-Public"), "`public` is the router's key")
        final = self.call(f"sip:100@{ROUTER_DOMAIN}", "anyone", "foreign.example")
        self.assertEqual(final.status, 403, str(final))
        self.assertNoAppTraffic("an unauthenticated INVITE to a non-public entry")


if __name__ == "__main__":
    unittest.main()
