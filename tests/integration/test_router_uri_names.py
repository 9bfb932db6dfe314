"""Calls to host names (RFC 3263 client side): an authenticated subscriber's INVITE whose
Request-URI names a host reaches the address the name server gives (SRV `_sip._udp` for a name
without a port, A/AAAA with one) and follows a changed answer once its TTL has run out; a name
without an address gets 478, a name server that does not answer 503 with Retry-After; a CANCEL
ends an INVITE waiting for its lookup with 487 and nothing goes on; a flood of calls to random
names stays bounded (parked requests, cached names, memory) and leaves the peer set's names
resolving. The name servers are DNS stand-ins (dns_standin.py), on 127.0.0.1 and on ::1."""

from __future__ import annotations

import os
import threading
import time
import unittest
from typing import Dict, List, Optional, Tuple

import harness as h
from dns_standin import DnsStandin


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class UriNamesBase(h.RouterTestCase):
    def start_dns(self, host: str = h.HOST) -> DnsStandin:
        dns = DnsStandin(host)
        self.cleanup.callbacks.append(dns.close)
        return dns

    def start(self, dns: DnsStandin, **dns_keys) -> h.Platform:
        keys = {"servers": [dns.address], "min_ttl_s": 1, "max_ttl_s": 30, "timeout_s": 1,
                "attempts": 1}
        keys.update(dns_keys)
        self.p = self.platform(router_overrides={"dns": keys})
        self.alice, = h.make_users(1, prefix="names")
        h.create_subscribers(self.p.api, [self.alice])
        return self.p

    def client(self) -> h.SipClient:
        c = h.SipClient("UDP", self.p.edge.addr, timeout=5)
        self.addCleanup(c.close)
        return c

    def call(self, ruri: str, timeout: float = 6.0) -> Optional[h.SipMessage]:
        _first, final = h.raw_invite(self.client(), ruri, caller=self.alice[0],
                                     password=self.alice[1], timeout=timeout)
        return final

    def fake_uas(self, name: str) -> h.FakeRouter:
        uas = h.FakeRouter(name)
        self.cleanup.callbacks.append(uas.close)
        return uas


class TestCallsToHostNames(UriNamesBase):
    def test_srv_name_reaches_the_sipp_uas_and_the_call_completes(self) -> None:
        dns = self.start_dns()
        uas_port = h.free_port()
        uas = self.sipp("gw", scenario=h.scenario("router_uas_callee.xml"), port=uas_port,
                        keys={"router_name": "gw"}, timeout_s=30,
                        timeout_error=False).start(self.cleanup)
        dns.set("host1.gw.test", "A", [h.HOST], ttl=30)
        dns.set("_sip._udp.gw.test", "SRV", [(10, 0, uas_port, "host1.gw.test")], ttl=30)
        self.start(dns)
        final = self.call("sip:x@gw.test")
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 200, str(final))
        h.wait_until(lambda: uas.result().successful >= 1, 10, "the UAS to count the call")
        self.assertEqual(uas.result().failed, 0, uas.result().summary())
        self.assertGreaterEqual(dns.asked("_sip._udp.gw.test", "SRV"), 1)
        # Known now: the next call uses the cache (no second SRV query within the TTL).
        asked = dns.asked("_sip._udp.gw.test", "SRV")
        final = self.call("sip:y@gw.test")
        self.assertEqual(final.status, 200, str(final))
        self.assertEqual(dns.asked("_sip._udp.gw.test", "SRV"), asked)
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_dns_next_hops_total", result="found"), 1)
        self.assertEqual(m.get("evosip_router_dns_next_hops_total", result="cached"), 1)
        self.assertAlive(self.p.router)

    def test_a_name_with_a_port_follows_a_changed_answer_after_its_ttl(self) -> None:
        dns = self.start_dns()
        one, two = self.fake_uas("one"), self.fake_uas("two")
        # A/AAAA only for a name with a port; the port is the URI's.
        dns.set("a.gw.test", "A", [h.HOST], ttl=1)
        dns.set("_sip._udp.b.gw.test", "SRV", [(10, 0, one.port, "a.gw.test")], ttl=1)
        self.start(dns)
        final = self.call(f"sip:x@a.gw.test:{two.port}")
        self.assertEqual(final.status, 200, str(final))
        self.assertEqual(final.get("X-Router"), "two")
        self.assertEqual(dns.asked("_sip._udp.a.gw.test", "SRV"), 0)
        final = self.call("sip:x@b.gw.test")
        self.assertEqual(final.get("X-Router"), "one", str(final))
        changed = time.monotonic()
        dns.set("_sip._udp.b.gw.test", "SRV", [(10, 0, two.port, "a.gw.test")], ttl=1)

        def to_two() -> bool:
            resp = self.call("sip:x@b.gw.test")
            return resp is not None and resp.get("X-Router") == "two"
        h.wait_until(to_two, 8, "calls following the changed SRV answer", interval=0.3)
        self.assertLess(time.monotonic() - changed, 5.0, "the answer was used past its TTL")

    def test_a_name_without_address_gets_478(self) -> None:
        dns = self.start_dns()
        self.start(dns)
        final = self.call("sip:x@nowhere.gw.test")
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 478, str(final))
        self.assertGreaterEqual(dns.asked("nowhere.gw.test", "A"), 1)
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_dns_next_hops_total", result="no_address"), 1)

    def test_a_silent_name_server_gets_503_with_retry_after_within_the_deadline(self) -> None:
        dns = self.start_dns()
        dns.silent = True
        # Each lookup may take 3 s; the request waits at most 1.5 s.
        self.start(dns, timeout_s=3, wait_ms=1500)
        started = time.monotonic()
        final = self.call("sip:x@silent.gw.test", timeout=8)
        elapsed = time.monotonic() - started
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 503, str(final))
        self.assertIsNotNone(final.get("Retry-After"), str(final))
        self.assertLess(elapsed, 4.0, "answered long after dns.wait_ms")
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_dns_next_hops_total", result="timeout"), 1)

    def test_cancel_of_a_parked_invite_gets_487_and_nothing_goes_on(self) -> None:
        dns = self.start_dns()
        uas = self.fake_uas("late")
        dns.set("late.gw.test", "A", [h.HOST], ttl=30)
        dns.delay = 1.5  # the answer comes 1.5 s after the question
        self.start(dns, timeout_s=3, wait_ms=5000)
        c = self.client()
        ruri = f"sip:x@late.gw.test:{uas.port}"
        first, _ = h.raw_invite(c, ruri, caller=self.alice[0], timeout=3)
        self.assertEqual(first.status, 407, str(first))
        ch = h.pick_challenge(first)
        call_id, from_tag = h.new_call_id(), os.urandom(4).hex()
        from_uri = f"sip:{self.alice[0]}@{h.ROUTER_DOMAIN}"
        auth = h.digest_authorization(ch, self.alice[0], self.alice[1], "INVITE", ruri)
        invite = c.request("INVITE", ruri, call_id=call_id, from_uri=from_uri,
                           from_tag=from_tag, extra_headers=[f"Proxy-Authorization: {auth}"])
        c.send(invite)
        trying = c.recv(timeout=3)
        self.assertIsNotNone(trying, "no 100 Trying")
        self.assertEqual(trying.status, 100, str(trying))
        time.sleep(0.3)
        via = h.SipMessage.parse(invite).get("Via")
        cancel = "\r\n".join([
            f"CANCEL {ruri} SIP/2.0", f"Via: {via}", "Max-Forwards: 70",
            f"From: <{from_uri}>;tag={from_tag}", f"To: <{ruri}>", f"Call-ID: {call_id}",
            "CSeq: 1 CANCEL", "Content-Length: 0"]) + "\r\n\r\n"
        c.send(cancel.encode())
        answers: Dict[str, int] = {}
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and len(answers) < 2:
            r = c.recv(timeout=0.5)
            if r is not None and r.is_response and r.status >= 200:
                answers[r.get("CSeq").split()[1]] = r.status
                if r.get("CSeq").split()[1] == "INVITE":
                    h.ack_for(c, invite, r)
        self.assertEqual(answers, {"CANCEL": 200, "INVITE": 487})
        # The lookup ends after the CANCEL: the INVITE never reaches the UAS.
        time.sleep(2.5)
        self.assertEqual(uas.received("INVITE"), [])
        self.assertGreaterEqual(dns.asked("late.gw.test", "A"), 1)
        m = self.p.router.metrics()
        self.assertEqual(m.get("evosip_router_dns_parked"), 0)
        self.assertEqual(m.get("evosip_router_dns_next_hops_total", result="cancelled"), 1)


class NamedContactUas(h.FakeRouter):
    """A UAS whose 2xx names its Contact by host name: the dialog's remote target is a name."""

    def __init__(self, name: str, contact_host: str):
        self.contact_host = contact_host
        super().__init__(name)

    def _answer(self, msg: h.SipMessage, data: bytes, src) -> None:
        if msg.method == "ACK":
            return
        resp = h.build_response(msg, 200, "OK", to_tag=f"r{self.name}",
                                contact=f"<sip:{self.contact_host}:{self.port}>",
                                extra_headers=[f"X-Router: {self.name}"])
        self.sock.sendto(resp, self._reply_address(msg, src))


class TestInDialogToHostNames(UriNamesBase):
    def test_ack_and_bye_reach_a_remote_target_named_by_host(self) -> None:
        dns = self.start_dns()
        uas = NamedContactUas("named", "contact.gw.test")
        self.cleanup.callbacks.append(uas.close)
        dns.set("invite.gw.test", "A", [h.HOST], ttl=30)
        dns.set("contact.gw.test", "A", [h.HOST], ttl=30)
        self.start(dns)
        final = self.call(f"sip:x@invite.gw.test:{uas.port}")
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 200, str(final))
        # The ACK and the BYE go to the Contact's name, looked up when they come.
        h.wait_until(lambda: [m.method for m in uas.received()] == ["INVITE", "ACK", "BYE"], 5,
                     "the ACK and the BYE at the UAS")
        self.assertGreaterEqual(dns.asked("contact.gw.test", "A"), 1)
        self.assertEqual(uas.received("BYE")[0].ruri, f"sip:contact.gw.test:{uas.port}")


@unittest.skipUnless(h.ipv6_loopback(), "no ::1 on this machine")
class TestIpv6NameServer(UriNamesBase):
    def test_dns_servers_takes_an_ipv6_name_server(self) -> None:
        dns = self.start_dns("::1")
        uas = self.fake_uas("v6")
        dns.set("v6.gw.test", "A", [h.HOST], ttl=30)
        self.start(dns)
        final = self.call(f"sip:x@v6.gw.test:{uas.port}")
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 200, str(final))
        self.assertEqual(final.get("X-Router"), "v6")
        self.assertGreaterEqual(dns.asked("v6.gw.test", "A"), 1)


class TestRandomNameFlood(UriNamesBase):
    BATCH = 200
    TOTAL = 2000

    def burst(self, c: h.SipClient, ruris: List[str]) -> Dict[str, h.SipMessage]:
        """INVITEs to every URI at once (each authenticated against its own challenge); their
        final answers by Call-ID."""
        from_uri = f"sip:{self.alice[0]}@{h.ROUTER_DOMAIN}"
        calls: Dict[str, Tuple[str, str, bytes]] = {}
        for ruri in ruris:
            cid, tag = h.new_call_id(), os.urandom(4).hex()
            req = c.request("INVITE", ruri, call_id=cid, from_uri=from_uri, from_tag=tag)
            calls[cid] = (ruri, tag, req)
            c.send(req)
        challenges = self.collect(c, calls, {407})
        self.assertEqual(len(challenges), len(calls), "challenges missing")
        for cid, resp in challenges.items():
            h.ack_for(c, calls[cid][2], resp)
        authed: Dict[str, Tuple[str, str, bytes]] = {}
        for cid, (ruri, tag, _req) in calls.items():
            auth = h.digest_authorization(h.pick_challenge(challenges[cid]), self.alice[0],
                                          self.alice[1], "INVITE", ruri)
            req = c.request("INVITE", ruri, call_id=cid, cseq=2, from_uri=from_uri,
                            from_tag=tag, extra_headers=[f"Proxy-Authorization: {auth}"])
            authed[cid] = (ruri, tag, req)
            c.send(req)
        finals = self.collect(c, authed, None)
        for cid, resp in finals.items():
            h.ack_for(c, authed[cid][2], resp)
        return finals

    @staticmethod
    def collect(c: h.SipClient, calls: dict, codes: Optional[set]) -> Dict[str, h.SipMessage]:
        """Final answers by Call-ID; a request still unanswered after a second is sent again
        (as a UAC retransmits over UDP: a burst may lose datagrams on loopback too)."""
        out: Dict[str, h.SipMessage] = {}
        deadline = time.monotonic() + 20
        resend_at = time.monotonic() + 1.0
        while len(out) < len(calls) and time.monotonic() < deadline:
            if time.monotonic() >= resend_at:
                for cid, (_ruri, _tag, req) in calls.items():
                    if cid not in out:
                        c.send(req)
                resend_at = time.monotonic() + 1.0
            r = c.recv(timeout=0.2)
            if r is None or not r.is_response or r.status < 200 or r.call_id not in calls:
                continue
            if codes is None or r.status in codes:
                out[r.call_id] = r
        return out

    def test_random_names_stay_bounded_and_peer_names_keep_resolving(self) -> None:
        dns = self.start_dns()
        app = self.fake_uas("app")
        uas = self.fake_uas("gw")
        dns.set("app.peers.test", "A", [h.HOST], ttl=1)
        dns.set("gw.peers.test", "A", [h.HOST], ttl=1)
        dns.set("_sip._udp.gw.peers.test", "SRV", [(10, 0, uas.port, "gw.peers.test")], ttl=1)
        keys = {"servers": [dns.address], "min_ttl_s": 1, "max_ttl_s": 30, "timeout_s": 1,
                "attempts": 1, "max_parked": 20, "max_lookups": 8, "max_cached": 100}
        self.p = self.platform(router_overrides={
            "dns": keys, "router": {"apps": [f"sip:app.peers.test:{app.port}"]}})
        self.alice, = h.make_users(1, prefix="flood")
        h.create_subscribers(self.p.api, [self.alice])
        c = self.client()
        pid = self.p.router.proc.pid
        # Warm up (first allocations), then measure.
        self.burst(c, [f"sip:x@warm{i}.flood.test" for i in range(self.BATCH)])
        rss_before = rss_kib(pid)
        codes: Dict[int, int] = {}
        peaks = {"parked": 0.0, "cached": 0.0, "looking_up": 0.0}
        stop = threading.Event()

        def sample() -> None:  # the gauges while the bursts are under way
            while not stop.is_set():
                m = self.p.router.metrics()
                peaks["parked"] = max(peaks["parked"], m.get("evosip_router_dns_parked"))
                for state in ("cached", "looking_up"):
                    peaks[state] = max(peaks[state], m.get("evosip_router_dns_names", state=state))
                stop.wait(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            for _ in range(0, self.TOTAL, self.BATCH):
                names = [f"sip:x@r{os.urandom(6).hex()}.flood.test" for _ in range(self.BATCH)]
                finals = self.burst(c, names)
                self.assertEqual(len(finals), len(names), "requests left without a final answer")
                for r in finals.values():
                    codes[r.status] = codes.get(r.status, 0) + 1
                    if r.status == 503:
                        self.assertIsNotNone(r.get("Retry-After"), str(r))
        finally:
            stop.set()
            sampler.join(timeout=5)
        m = self.p.router.metrics()
        busy = m.get("evosip_router_dns_next_hops_total", result="busy")
        print(f"\nflood: answers {codes}, peaks {peaks}, busy {busy}, "
              f"looked up {len(dns.queries)} queries")
        self.assertGreater(busy, 0, "the bounds were never reached")
        self.assertGreater(peaks["parked"], 0, "no request ever waited")
        self.assertLessEqual(peaks["parked"], 20 * 2)  # dns.max_parked per worker, 2 workers
        self.assertLessEqual(peaks["cached"], 100)
        self.assertLessEqual(peaks["looking_up"], 8)
        self.assertEqual(set(codes) - {478, 503}, set(), codes)
        self.assertGreater(codes.get(478, 0), 0, codes)
        grown = rss_kib(pid) - rss_before
        self.assertLess(grown, 20 * 1024, f"the router grew {grown} KiB over the flood")
        # Nothing left waiting, and the peer set's name still resolves (its own cache).
        h.wait_until(lambda: self.p.router.metrics().get("evosip_router_dns_parked") == 0, 5,
                     "parked requests drained")
        listed = self.p.router.rpc("dispatcher.list")
        self.assertEqual([a["address"] for a in listed["apps"]], [f"{h.HOST}:{app.port}"],
                         listed)
        self.assertEqual(listed["names"]["apps"][0]["error"], "", listed)
        final = self.call("sip:x@gw.peers.test")
        self.assertIsNotNone(final, "no final answer after the flood")
        self.assertEqual(final.status, 200, str(final))
        self.assertEqual(final.get("X-Router"), "gw")
        self.assertAlive(self.p.router)


if __name__ == "__main__":
    unittest.main()
