"""The edge on the open internet: each attack sent on the wire as an outsider would, against the
real binary, asserting what a victim host, a legitimate caller and the routers see.

- a preloaded Route cannot divert a request to a host of the sender's choosing;
- a client's Path never reaches the registrar;
- a control character in a header gets 400 and is never forwarded;
- Max-Forwards is capped (a client cannot buy a long loop);
- a To-tagged request without our Record-Route gets 481, nothing is forwarded;
- a made-up response carrying our Via is not relayed to the host named below it;
- one request the only router leaves unanswered, or 20,000 garbage requests, cannot make the
  edge answer 503 to the callers that follow;
- repeated authentication failures ban the source address, and only it;
- the per-source rate limit is on by default;
- TCP: connections per source address are capped, a message trickled byte by byte is cut;
- a reply to a (spoofable) UDP source is never much larger than the request.

Most cases run with the edge's defaults, so that they test what an operator gets out of the box.
"""

import os
import random
import re
import select
import socket
import time
import unittest

from harness import (HOST, FakeRouter, Process, ProxyHandle, ProxyTestCase, SipClient,
                     SipMessage, build_request, build_response, edge_config, free_port,
                     new_call_id, require_evosip, wait_http_ok, wait_port, write_yaml)

OTHER_HOST = "127.0.0.2"  # a second source address on the loopback network


def loopback_alias_usable() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((OTHER_HOST, 0))
        return True
    except OSError:
        return False


class ScriptedRouter(FakeRouter):
    """A FakeRouter whose answer to each request is decided by `decide(msg)`: None stays mute,
    else (code, reason, extra header lines). Requests carrying a Route are, if `follow_route`,
    also sent on to the top Route's host:port, as a router that trusts the route set would."""

    def __init__(self, name, decide=None, follow_route=False):
        self.decide = decide or (lambda msg: (200, "OK", []))
        self.follow_route = follow_route
        super().__init__(name)

    def _answer(self, msg, data, src) -> None:
        route = msg.get("Route")
        if self.follow_route and route:
            m = re.search(r"sip:(?:[^@>;]*@)?([0-9.]+)(?::(\d+))?", route)
            if m:
                self.sock.sendto(data, (m.group(1), int(m.group(2) or 5060)))
        if msg.method == "ACK":
            return
        verdict = self.decide(msg)
        if verdict is None:
            return
        code, reason, extra = verdict
        resp = build_response(msg, code, reason, to_tag=f"r{self.name}",
                              contact=f"<sip:{HOST}:{self.port}>", extra_headers=extra)
        self.sock.sendto(resp, self._reply_address(msg, src))

    @staticmethod
    def _parse(data, src):
        msg = SipMessage.parse(data, src)
        return msg if msg.first_line else None


class SipClientFrom(SipClient):
    """A SipClient whose socket has the given local address (another loopback address)."""

    def __init__(self, transport, remote, local_host, timeout=2.0):
        self.transport = transport.upper()
        self.remote = remote
        self.timeout = timeout
        self._buf = b""
        self.log = []
        if self.transport == "UDP":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((local_host, 0))
        else:
            self.sock = socket.create_connection(remote, timeout=timeout,
                                                 source_address=(local_host, 0))
        self.sock.settimeout(timeout)
        self.local_port = self.sock.getsockname()[1]
        self.local_host = local_host

    def request(self, method, ruri, **kw):
        kw.setdefault("via_host", self.local_host)
        return super().request(method, ruri, **kw)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A request with a few random edits: bytes flipped, cut, duplicated, tokens inserted."""
    tokens = [b"\r\n", b";tag=x", b",", b"<", b">", b"\x00", b"sip:", b"@", b";lr", b":",
              b"Route: <sip:127.0.0.1:9;lr>\r\n", b"Max-Forwards: 0\r\n", b"\r\n\r\n"]
    s = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        op = rng.random()
        pos = rng.randint(0, len(s))
        if op < 0.3 and len(s) > 1:
            del s[pos:pos + rng.randint(1, 12)]
        elif op < 0.6:
            s[pos:pos] = rng.choice(tokens)
        elif op < 0.85 and len(s) > 1:
            s[rng.randrange(len(s))] = rng.randrange(256)
        else:
            a = rng.randint(0, len(s))
            s[pos:pos] = s[a:a + rng.randint(1, 30)]
    return bytes(s)


class HostileEdge(ProxyTestCase):
    def setUp(self):
        super().setUp()
        require_evosip()

    # ---- helpers --------------------------------------------------------------------------

    def edge(self, routers, overrides=None, default_rate_limit=False):
        """The real edge in front of `routers`, with the harness's test settings (its rate
        limit off: these tests send fast from loopback) or, with default_rate_limit, the
        edge's own default for it."""
        sip_port, control_port = free_port(), free_port()
        cfg = edge_config(sip_port, control_port, [r.uri for r in routers],
                          overrides=overrides)
        if default_rate_limit:
            del cfg["edge"]["rate_limit"]
        path = write_yaml(os.path.join(self.tmp, "edge.yaml"), cfg)
        proc = self.cleanup.add(Process("evosip-edge",
                                        [require_evosip(), "edge", "--config", path], self.tmp))
        control_url = f"http://{HOST}:{control_port}"
        wait_http_ok(control_url + "/readyz", timeout=15, proc=proc)
        for t in ("udp", "tcp"):
            wait_port(sip_port, t, timeout=5, proc=proc)
        return ProxyHandle("evosip", sip_port, proc, control_url, "", path, ("udp", "tcp"))

    def quiet_for(self, router, seconds, method=None):
        """Asserts the router receives nothing (of `method`) for `seconds`."""
        time.sleep(seconds)
        return router.received(method)

    # ---- routing ----------------------------------------------------------------------------

    def test_preloaded_route_reaches_no_victim(self):
        victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        victim.bind((HOST, 0))
        self.cleanup.callbacks.append(victim.close)
        vport = victim.getsockname()[1]
        router = self.router_following_routes()
        proxy = self.edge([router])
        routes = [f"Route: <sip:{HOST}:{vport};lr>",
                  f"Route: <sip:{proxy.hostport};lr>, <sip:toll@{HOST}:{vport};lr>"]
        with SipClient("UDP", proxy.addr) as c:
            for route in routes:
                resp = c.transact(c.request("INVITE", "sip:+4930123456@evosip.local",
                                            extra_headers=[route]), timeout=3)
                self.assertIsNotNone(resp, f"no answer to an INVITE with {route}")
        victim.settimeout(1.5)
        try:
            data, _ = victim.recvfrom(70000)
            self.fail(f"the victim received:\n{data.decode('utf-8', 'replace')}")
        except socket.timeout:
            pass
        invites = router.received("INVITE")
        self.assertEqual(len(invites), 2, "the INVITEs go to a router as usual")
        for inv in invites:
            for r in inv.all("Route"):
                self.assertNotIn(str(vport), r, f"the router got the client's Route:\n{inv}")

    def test_a_forged_response_is_not_reflected_to_a_victim(self):
        victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        victim.bind((HOST, 0))
        self.cleanup.callbacks.append(victim.close)
        vport = victim.getsockname()[1]
        router = self.router("R")
        proxy = self.edge([router])
        forged = (f"SIP/2.0 200 OK\r\n"
                  f"Via: SIP/2.0/UDP {proxy.hostport};branch=z9hG4bK-e{'0' * 24}\r\n"
                  f"Via: SIP/2.0/UDP {HOST}:{vport};branch=z9hG4bKvictim\r\n"
                  "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: reflect\r\n"
                  "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
        with SipClient("UDP", proxy.addr) as c:
            for _ in range(5):
                c.send(forged)
        victim.settimeout(1.0)
        try:
            data, _ = victim.recvfrom(70000)
            self.fail(f"the edge reflected a made-up response to the victim:\n{data!r}")
        except socket.timeout:
            pass

    def router_following_routes(self):
        r = ScriptedRouter("R", follow_route=True)
        self.cleanup.callbacks.append(r.close)
        return r

    def scripted_router(self, decide):
        r = ScriptedRouter("R", decide=decide)
        self.cleanup.callbacks.append(r.close)
        return r

    def test_client_path_never_reaches_the_registrar(self):
        router = self.router("R")
        proxy = self.edge([router])
        with SipClient("UDP", proxy.addr) as c:
            req = c.request("REGISTER", "sip:evosip.local", to_uri="sip:alice@evosip.local",
                            from_uri="sip:alice@evosip.local",
                            extra_headers=["Path: <sip:203.0.113.66:5060;lr>",
                                           "Path: <sip:victim@127.0.0.1:9;lr>"])
            self.assertIsNotNone(c.transact(req, timeout=3))
        regs = router.received("REGISTER")
        self.assertEqual(len(regs), 1)
        paths = regs[0].all("Path")
        self.assertEqual(len(paths), 1, f"the registrar got the client's Path:\n{regs[0]}")
        self.assertIn(f"@{proxy.hostport};lr", paths[0])

    def test_control_character_in_a_header_gets_400_and_is_not_forwarded(self):
        router = self.router("R")
        proxy = self.edge([router])
        with SipClient("UDP", proxy.addr) as c:
            for value in (b"a\x00b", b"a\rInjected: 1", b"\x1b[2Jcleared"):
                req = c.request("INVITE", "sip:bob@evosip.local")
                req = req.replace(b"\r\nContent-Length", b"\r\nSubject: " + value +
                                  b"\r\nContent-Length", 1)
                resp = c.transact(req, timeout=3)
                self.assertIsNotNone(resp, f"no answer for a Subject {value!r}")
                self.assertEqual(resp.status, 400, str(resp))
        self.assertEqual(self.quiet_for(router, 0.5), [], "the router saw the request")

    def test_max_forwards_is_capped(self):
        router = self.router("R")
        proxy = self.edge([router])
        with SipClient("UDP", proxy.addr) as c:
            resp = c.transact(c.request("INVITE", "sip:bob@evosip.local", max_forwards=255))
            self.assertIsNotNone(resp)
        got = router.received("INVITE")
        self.assertEqual(len(got), 1)
        mf = int(got[0].get("Max-Forwards"))
        self.assertLessEqual(mf, 20, str(got[0]))
        self.assertGreaterEqual(mf, 1)

    def test_stray_in_dialog_request_gets_481_and_nothing_is_forwarded(self):
        router = self.router("R")
        proxy = self.edge([router])
        with SipClient("UDP", proxy.addr) as c:
            for method, extra in (("BYE", []), ("INVITE", []),
                                  ("BYE", [f"Route: <sip:{router.uri[4:]};lr>"]),
                                  ("MESSAGE", [f"Route: <sip:{proxy.hostport};lr>"])):
                req = c.request(method, f"sip:bob@{router.uri[4:]}", to_tag="made-up",
                                extra_headers=extra, max_forwards=255)
                resp = c.transact(req, timeout=3)
                self.assertIsNotNone(resp, f"no answer to a stray {method} {extra}")
                self.assertIn(resp.status, (404, 481), str(resp))
        self.assertEqual(self.quiet_for(router, 0.5), [], "a stray request reached the router")

    # ---- failure semantics ---------------------------------------------------------------

    def _calls_all_reach_the_router(self, proxy, router, n):
        """n INVITEs from one client, one after the other: every one answered by the router."""
        statuses = {}
        with SipClient("UDP", proxy.addr) as c:
            for i in range(n):
                resp = c.transact(c.request("INVITE", "sip:bob@evosip.local",
                                            call_id=f"good-{i}-{new_call_id()}"), timeout=3)
                code = resp.status if resp else None
                statuses[code] = statuses.get(code, 0) + 1
        self.assertEqual(statuses, {200: n}, f"answers to {n} calls: {statuses}")

    def test_one_request_the_only_router_ignores_leaves_other_callers_unharmed(self):
        router = self.scripted_router(
            lambda m: None if (m.call_id or "").startswith("stray-") else (200, "OK", []))
        proxy = self.edge([router])
        with SipClient("UDP", proxy.addr) as c:
            c.send(c.request("MESSAGE", "sip:bob@evosip.local", call_id="stray-" + new_call_id()))
            time.sleep(1.5)  # the router timeout (500 ms) passed, and a probe's too
        self._calls_all_reach_the_router(proxy, router, 500)
        m = proxy.metrics()
        self.assertGreaterEqual(m.get("evosip_edge_router_probes_total"), 1, m.text[:2000])
        self.assertEqual(m.get("evosip_edge_router_probe_failures_total"), 0)
        self.assertEqual(proxy.rpc("dispatcher.list")["routers"][0]["state"], "up")

    def test_twenty_thousand_garbage_requests_then_calls_succeed(self):
        # The router answers this test's calls and OPTIONS addressed to itself (a liveness
        # probe), and ignores everything else, as a router ignores garbage it cannot answer.
        def decide(m):
            own = m.method == "OPTIONS" and m.ruri == f"sip:{HOST}:{router.port}"
            return (200, "OK", []) if own or (m.call_id or "").startswith("good-") else None
        router = self.scripted_router(decide)
        proxy = self.edge([router])
        rng = random.Random(11)
        bases = []
        for method, kw in (("INVITE", {}), ("BYE", {"to_tag": "t"}), ("OPTIONS", {}),
                           ("REGISTER", {}), ("ACK", {"to_tag": "t"}), ("MESSAGE", {})):
            bases.append(build_request(method, "sip:bob@evosip.local", via_host=HOST,
                                       via_port=5999, body=b"x" * rng.randint(0, 40), **kw))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        self.cleanup.callbacks.append(sock.close)
        sent = 0
        for i in range(20000):
            try:
                sock.sendto(mutate(rng.choice(bases), rng), proxy.addr)
                sent += 1
            except (BlockingIOError, OSError):
                pass
            if i % 200 == 199:
                time.sleep(0.01)  # bounded pace: the flood is the input, not the socket buffer
                try:
                    while sock.recv(70000):  # drain the edge's answers
                        pass
                except (BlockingIOError, OSError):
                    pass
        self.assertGreater(sent, 19000)
        time.sleep(1.5)  # the ignored requests time out, their probes come back
        self.assertTrue(proxy.alive(), proxy.proc.tail())
        self._calls_all_reach_the_router(proxy, router, 500)
        self.assertAlive(proxy)

    # ---- floods and bans --------------------------------------------------------------

    @unittest.skipUnless(loopback_alias_usable(), f"cannot bind {OTHER_HOST}")
    def test_repeated_authentication_failures_ban_that_source_only(self):
        def decide(m):
            # Wrong credentials get a fresh challenge (not stale), as the router answers them.
            return (401, "Unauthorized",
                    ['WWW-Authenticate: Digest realm="evosip.local", nonce="abc", qop="auth"'])
        router = self.scripted_router(decide)
        proxy = self.edge([router])
        creds = ('Authorization: Digest username="alice", realm="evosip.local", nonce="abc", '
                 'uri="sip:evosip.local", response="00000000000000000000000000000000"')

        def register(client, with_creds):
            req = client.request("REGISTER", "sip:evosip.local", to_uri="sip:alice@evosip.local",
                                 from_uri="sip:alice@evosip.local",
                                 extra_headers=[creds] if with_creds else [])
            return client.transact(req, timeout=1.0)

        with SipClient("UDP", proxy.addr) as c:
            # First challenges are the normal start of digest: they never count.
            for i in range(15):
                resp = register(c, False)
                self.assertIsNotNone(resp, f"challenge {i}")
                self.assertEqual(resp.status, 401)
            # Refused credentials: the default is 10 within 60 s.
            for i in range(10):
                resp = register(c, True)
                self.assertIsNotNone(resp, f"failure {i} was not answered")
                self.assertEqual(resp.status, 401)
            time.sleep(0.2)
            seen = len(router.received("REGISTER"))
            for _ in range(3):
                self.assertIsNone(register(c, False), "a banned source is still answered")
        with SipClient("UDP", proxy.addr) as c:  # another port of the same address
            self.assertIsNone(register(c, False))
        self.assertEqual(len(router.received("REGISTER")), seen, "requests of a banned source "
                         "reached the router")
        with SipClientFrom("UDP", proxy.addr, OTHER_HOST) as other:
            resp = register(other, False)
            self.assertIsNotNone(resp, f"{OTHER_HOST} is not banned but was not answered")
            self.assertEqual(resp.status, 401)
        m = proxy.metrics()
        self.assertEqual(m.get("evosip_edge_bans_total"), 1, m.text[:2000])
        self.assertGreaterEqual(m.get("evosip_edge_drops_total", reason="banned"), 4)

    @unittest.skipUnless(loopback_alias_usable(), f"cannot bind {OTHER_HOST}")
    def test_rate_limit_is_on_by_default(self):
        router = self.router("R")
        proxy = self.edge([router], default_rate_limit=True)
        flood = 300
        with SipClient("UDP", proxy.addr) as c:
            t0 = time.monotonic()
            for i in range(flood):
                c.send(c.request("OPTIONS", "sip:bob@evosip.local", call_id=f"flood-{i}"))
            elapsed = time.monotonic() - t0
        time.sleep(1.0)
        got = len(router.received("OPTIONS"))
        # burst 90 + 30/s: far fewer than the flood, and the first ones do pass.
        self.assertGreaterEqual(got, 30, "the burst was refused")
        self.assertLess(got, 90 + 30 * (elapsed + 1.0) + 20, f"{got} of {flood} went through")
        with SipClientFrom("UDP", proxy.addr, OTHER_HOST) as other:
            resp = other.transact(other.request("OPTIONS", "sip:bob@evosip.local"), timeout=3)
            self.assertIsNotNone(resp, "another source is refused too")
            self.assertEqual(resp.status, 200)
        m = proxy.metrics()
        self.assertGreater(m.get("evosip_edge_drops_total", reason="rate_limit"), 100, m.text[:2000])

    # ---- TCP -------------------------------------------------------------------------

    @unittest.skipUnless(loopback_alias_usable(), f"cannot bind {OTHER_HOST}")
    def test_tcp_connections_per_source_address_are_capped(self):
        router = self.router("R")
        proxy = self.edge([router])
        conns = []
        try:
            for _ in range(40):
                conns.append(socket.create_connection(proxy.addr, timeout=2))
            time.sleep(0.5)
            closed = 0
            for s in conns:
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    try:
                        closed += 1 if s.recv(1) == b"" else 0
                    except OSError:
                        closed += 1
            self.assertGreaterEqual(closed, 8, f"only {closed} of 40 connections from one "
                                    "address were refused (default cap 32)")
            # The first connections still work, and so does another address.
            with SipClientFrom("TCP", proxy.addr, OTHER_HOST) as other:
                resp = other.transact(other.request("OPTIONS", f"sip:{proxy.hostport}"))
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 200)
        finally:
            for s in conns:
                s.close()
        m = proxy.metrics()
        self.assertGreaterEqual(
            m.get("evosip_sip_transport_errors_total", transport="tcp", reason="per_ip_limit"), 8)

    def test_a_message_trickled_byte_by_byte_is_cut(self):
        router = self.router("R")
        proxy = self.edge([router])
        req = build_request("INVITE", "sip:bob@evosip.local", via_host=HOST, via_port=5999,
                            transport="TCP")
        s = socket.create_connection(proxy.addr, timeout=2)
        self.cleanup.callbacks.append(s.close)
        t0 = time.monotonic()
        closed_at = None
        for i in range(16):  # one byte a second: never idle, never complete
            try:
                s.sendall(req[i:i + 1])
            except OSError:
                closed_at = time.monotonic()
                break
            r, _, _ = select.select([s], [], [], 1.0)
            if r:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data == b"":
                    closed_at = time.monotonic()
                    break
        self.assertIsNotNone(closed_at, "a connection trickling one message for 16 s is open")
        self.assertGreater(closed_at - t0, 8.0, "closed before the default 10 s deadline")
        m = proxy.metrics()
        self.assertEqual(
            m.get("evosip_sip_transport_errors_total", transport="tcp", reason="message_timeout"),
            1)
        self.assertEqual(router.received(), [])

    # ---- amplification ----------------------------------------------------------------

    def test_a_reply_to_a_udp_source_is_not_much_larger_than_the_request(self):
        router = self.router("R")
        proxy = self.edge([router])
        with SipClient("UDP", proxy.addr) as c:
            small = (f"OPTIONS sip:{proxy.hostport} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP {HOST}:{c.local_port};branch=z9hG4bKamp;rport\r\n"
                     "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: amp\r\n"
                     "CSeq: 1 OPTIONS\r\n\r\n").encode()
            resp = c.transact(small, timeout=3)
            self.assertIsNotNone(resp)
            self.assertLessEqual(len(resp.raw), len(small) + 64,
                                 f"{len(small)} bytes in, {len(resp.raw)} out:\n{resp}")


if __name__ == "__main__":
    unittest.main()
