"""The router anchors media in a relay over the ng protocol:
raw SIP phones alice and bob (this test's sockets) call through edge -> router -> edge, with
router.media.mode always. The INVITE's SDP offer and the 200's answer must reach the other phone
rewritten to the relay's address and ports, RTP must flow both ways through the relay, and the
BYE must delete the relay's session. Run against `evosip media` and (interop 2) against the
real rtpengine daemon. A router killed mid-call: the BYE through the other router (dialogs in
Redis) still deletes the session. A failed call (486) deletes it too.

The phones use raw SIP so each step (offer, answer, BYE retransmission) is asserted on the wire.
"""

from __future__ import annotations

import os
import re
import threading
import time
import unittest
from typing import List, Optional, Tuple

import harness as h
import test_media_kamailio as km

PACKETS = 40


def sdp_for(port: int, session: str) -> bytes:
    return (f"v=0\r\no={session} 1 1 IN IP4 {h.HOST}\r\ns=-\r\nc=IN IP4 {h.HOST}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n").encode()


def sdp_media(body: bytes) -> Tuple[str, int]:
    text = body.decode("utf-8", "replace")
    c = re.search(r"(?m)^c=IN IP4 (\S+)", text)
    m = re.search(r"(?m)^m=audio (\d+) ", text)
    if not c or not m:
        raise AssertionError(f"no c=/m=audio in the SDP:\n{text}")
    return c.group(1), int(m.group(1))


class Phone:
    """A raw SIP UA on UDP (via the edge) with an RTP endpoint."""

    def __init__(self, test: "RouterMediaMixin", edge: Tuple[str, int], user: str, pw: str):
        self.user, self.pw = user, pw
        self.sip = h.SipClient("UDP", edge, timeout=4)
        test.addCleanup(self.sip.close)
        self.rtp = test.endpoint(user)
        self.uri = f"sip:{user}@{h.ROUTER_DOMAIN}"
        self.contact = f"<sip:{user}@{h.HOST}:{self.sip.local_port}>"

    def register(self) -> None:
        _first, final = h.RawRegistration(self.sip, self.user).register(self.pw, algorithm="MD5")
        assert final is not None and final.status == 200, f"REGISTER of {self.user}: {final}"

    def next_request(self, method: str, timeout: float = 5) -> h.SipMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.sip.recv(deadline - time.monotonic())
            if m is not None and not m.is_response and m.method == method:
                return m
        raise AssertionError(f"{self.user}: no {method} arrived")

    def reply(self, req: h.SipMessage, code: int, reason: str, to_tag: str,
              body: bytes = b"") -> None:
        extra = [] if not body else ["Content-Type: application/sdp"]
        data = h.build_response(req, code, reason, to_tag=to_tag, contact=self.contact,
                                extra_headers=extra)
        if body:
            data = data.replace(b"Content-Length: 0\r\n\r\n",
                                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.sip.sock.sendto(data, req.source)


class Call:
    """alice's side of one INVITE dialog (authenticated)."""

    def __init__(self, caller: Phone, callee_uri: str):
        self.c = caller
        self.ruri = callee_uri
        self.call_id = h.new_call_id()
        self.from_tag = os.urandom(4).hex()
        self.cseq = 0
        self.to_tag = ""
        self.routes: List[str] = []
        self.target = callee_uri

    def _request(self, method: str, extra=(), body: bytes = b"", in_dialog=False) -> bytes:
        headers = [f"Contact: {self.c.contact}"] + list(extra)
        if body:
            headers.append("Content-Type: application/sdp")
        if in_dialog:
            headers += [f"Route: {r}" for r in self.routes]
        return self.c.sip.request(method, self.target if in_dialog else self.ruri,
                                  call_id=self.call_id, cseq=self.cseq, from_uri=self.c.uri,
                                  from_tag=self.from_tag, to_uri=self.ruri, to_tag=self.to_tag,
                                  body=body, omit=["Contact"], extra_headers=headers)

    def invite(self) -> None:
        """INVITE, answer the 407, leave the authenticated INVITE in flight."""
        body = sdp_for(self.c.rtp.port, "alice")
        self.cseq += 1
        req = self._request("INVITE", body=body)
        first = self.c.sip.transact(req, timeout=5)
        assert first is not None and first.status == 407, f"first INVITE: {first}"
        h.ack_for(self.c.sip, req, first)  # the same branch: it ends the 407's retransmissions
        ch = h.pick_challenge(first, "MD5")
        auth = h.digest_authorization(ch, self.c.user, self.c.pw, "INVITE", self.ruri)
        self.cseq += 1
        self.c.sip.send(self._request("INVITE", [f"Proxy-Authorization: {auth}"], body=body))

    def final(self, timeout: float = 8) -> h.SipMessage:
        resp = self.c.sip.final_response(timeout)
        assert resp is not None, "no final response to the INVITE"
        if 200 <= resp.status < 300:
            self.to_tag = resp.get("To").split("tag=", 1)[1].split(";")[0]
            self.routes = list(reversed(resp.all("Record-Route")))
            m = re.search(r"<([^>]+)>", resp.get("Contact") or "")
            self.target = m.group(1) if m else self.ruri
            self.c.sip.send(self._request("ACK", in_dialog=True))
        return resp

    def bye(self, callee: Phone, timeout: float = 15) -> h.SipMessage:
        """BYE, retransmitted every 500 ms (RFC 3261 Timer E) until a final arrives; the
        callee answers every BYE it gets."""
        self.cseq += 1
        req = self._request("BYE", in_dialog=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.c.sip.send(req)
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                m = callee.sip.recv(0.05)
                if m is not None and not m.is_response and m.method == "BYE":
                    callee.reply(m, 200, "OK", to_tag="")
                r = self.c.sip.recv(0.05)
                if (r is not None and r.is_response and r.status >= 200
                        and r.get("CSeq").endswith("BYE")):
                    return r
        raise AssertionError("no final response to the BYE")


class RouterMediaMixin:
    start_relay = None  # type: ignore[assignment]

    def setUp(self) -> None:
        super().setUp()
        self.relay = type(self).start_relay(self.tmp, self.cleanup)

    def endpoint(self, name: str) -> km.RtpEndpoint:
        ep = km.RtpEndpoint(name, h.free_port())
        self.cleanup.callbacks.append(ep.close)
        return ep

    def media_platform(self, **kw) -> h.Platform:
        over = {"router": {"media": {"mode": "always", "relays": [self.relay.sock],
                                     "timeout_ms": 500}}}
        return self.platform(router_overrides=over, **kw)

    def phones(self, p: h.Platform) -> Tuple[Phone, Phone]:
        users = h.make_users(2, prefix="media")
        h.create_subscribers(p.api, users)
        alice = Phone(self, p.edge.addr, *users[0])
        bob = Phone(self, p.edge.addr, *users[1])
        bob.register()
        return alice, bob

    def assert_relay(self, addr: Tuple[str, int], phone_port: int, what: str) -> None:
        lo, hi = self.relay.ports
        self.assertEqual(addr[0], h.HOST, f"{what}: c= is not the relay's address")
        self.assertNotEqual(addr[1], phone_port, f"{what}: the phone's port was not replaced")
        self.assertTrue(lo <= addr[1] <= hi, f"{what}: port {addr[1]} not in {lo}-{hi}")

    def establish(self, alice: Phone, bob: Phone) -> Tuple[Call, Tuple[str, int], Tuple[str, int]]:
        """alice calls bob; returns the call and the relay addresses alice and bob send to."""
        call = Call(alice, bob.uri)
        call.invite()
        invite = bob.next_request("INVITE")
        to_alice_side = sdp_media(invite.body)  # where bob sends
        self.assert_relay(to_alice_side, alice.rtp.port, "offer at bob")
        tag = os.urandom(4).hex()
        bob.reply(invite, 180, "Ringing", tag)
        bob.reply(invite, 200, "OK", tag, sdp_for(bob.rtp.port, "bob"))
        resp = call.final()
        self.assertEqual(resp.status, 200, str(resp))
        to_bob_side = sdp_media(resp.body)  # where alice sends
        self.assert_relay(to_bob_side, bob.rtp.port, "answer at alice")
        self.assertNotEqual(to_bob_side, to_alice_side, "both legs got the same relay port")
        self.assertNotIn("X-Evosip", resp.raw.decode("utf-8", "replace"))
        return call, to_bob_side, to_alice_side

    def assert_rtp_both_ways(self, alice: Phone, bob: Phone, to_bob_side, to_alice_side) -> None:
        t = threading.Thread(target=bob.rtp.send_stream, args=(to_alice_side, PACKETS))
        t.start()
        alice.rtp.send_stream(to_bob_side, PACKETS)
        t.join(timeout=10)
        h.wait_until(lambda: len(bob.rtp.from_peer(alice.rtp)) >= PACKETS - 1
                     and len(alice.rtp.from_peer(bob.rtp)) >= PACKETS - 1, 3,
                     "RTP of each phone arriving at the other through the relay")
        self.assertEqual({s for s, _ in bob.rtp.from_peer(alice.rtp)}, {to_alice_side},
                         "bob must receive from the relay port his SDP named")
        self.assertEqual({s for s, _ in alice.rtp.from_peer(bob.rtp)}, {to_bob_side},
                         "alice must receive from the relay port her SDP named")

    def wait_deleted(self, call_id: str) -> None:
        h.wait_until(lambda: call_id not in self.relay.call_ids(), 5,
                     f"{self.relay.kind} deleting call {call_id}", proc=self.relay.proc)

    def test_call_through_relay_and_bye_deletes_it(self) -> None:
        p = self.media_platform()
        alice, bob = self.phones(p)
        call, to_bob_side, to_alice_side = self.establish(alice, bob)
        self.assertIn(call.call_id, self.relay.call_ids())
        dialog = p.router.rpc("dialog.get", {"call_id": call.call_id})
        self.assertIn(self.relay.sock, str(dialog), "the dialog record must name the relay")
        self.assert_rtp_both_ways(alice, bob, to_bob_side, to_alice_side)
        self.assertEqual(call.bye(bob).status, 200)
        self.wait_deleted(call.call_id)
        m = p.router.metrics()
        got = {lbl.get("command"): v for lbl, v in m.series("evosip_router_media_commands_total")
               if lbl.get("result") == "ok"}
        self.assertGreaterEqual(got.get("offer", 0), 1, got)
        self.assertGreaterEqual(got.get("answer", 0), 1, got)
        h.wait_until(lambda: any(
            lbl.get("command") == "delete" and v >= 1 for lbl, v in
            p.router.metrics().series("evosip_router_media_commands_total")), 3,
            "the router counting the delete")

    def test_busy_callee_deletes_the_session(self) -> None:
        p = self.media_platform()
        alice, bob = self.phones(p)
        call = Call(alice, bob.uri)
        call.invite()
        invite = bob.next_request("INVITE")
        self.assert_relay(sdp_media(invite.body), alice.rtp.port, "offer at bob")
        self.assertIn(call.call_id, self.relay.call_ids(), "the offer created no session")
        bob.reply(invite, 486, "Busy Here", os.urandom(4).hex())
        self.assertEqual(call.final().status, 486)
        self.wait_deleted(call.call_id)


class RouterKilledMixin:
    def test_router_killed_mid_call_bye_through_other_router_deletes(self) -> None:
        redis = h.start_redis(self.tmp, self.cleanup)
        p = self.media_platform(routers=2, redis=redis)
        alice, bob = self.phones(p)
        call, to_bob_side, to_alice_side = self.establish(alice, bob)
        self.assert_rtp_both_ways(alice, bob, to_bob_side, to_alice_side)
        owner = None
        for r in p.routers:
            m = r.metrics()
            if any(lbl.get("command") == "offer" and v >= 1
                   for lbl, v in m.series("evosip_router_media_commands_total")):
                owner = r
        self.assertIsNotNone(owner, "no router sent the offer")
        owner.proc.stop()
        self.assertEqual(call.bye(bob, timeout=20).status, 200)
        self.wait_deleted(call.call_id)


class TestRouterEvosipMedia(RouterKilledMixin, RouterMediaMixin, h.RouterTestCase):
    start_relay = staticmethod(km.start_evosip_media)


class TestRouterRtpengine(RouterMediaMixin, h.RouterTestCase):
    """Interop 2: `evosip router` drives the real rtpengine (userspace)."""
    start_relay = staticmethod(km.start_rtpengine)


if __name__ == "__main__":
    unittest.main()
