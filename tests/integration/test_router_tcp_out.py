"""The router opens TCP connections to next hops reachable only over TCP (connect on send):
calls through edge -> router to a sipp UAS that listens on TCP only, named by a Request-URI
with `;transport=tcp`: 200, ACK and BYE, one connection reused for every call; the next hop's
own BYE back over the router's connection reaches the caller; a next hop that
never accepts fails at sip.tcp.connect_timeout_ms (500 upstream, not a Timer B wait); a flood of Request-URIs
naming many addresses stays within sip.tcp.max_outbound_connections.
Skips until `evosip router` exists."""

import os
import re
import socket
import subprocess
import threading
import time
import unittest

from harness import (ROUTER_DOMAIN, RouterTestCase, SipClient, SipMessage, ack_for,
                     build_response, create_subscribers, credentials_header_name,
                     digest_authorization, free_port, make_users, pick_challenge, raw_invite,
                     scenario, wait_until, write_auth_csv)

CALLS = 4


def established_to(ip: str, port: int) -> int:
    """TCP connections established to ip:port on this host (the UAS's side of them)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if f"{ip}:{port}" in line.split()[2:3])


class BusyGateways:
    """TCP listeners on many loopback addresses (one port): each accepts, answers every
    INVITE with 486 over the same connection, and keeps the connection open."""

    def __init__(self, addresses):
        self.port = free_port()
        self.listeners = []
        for a in addresses:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, self.port))
            s.listen(64)
            self.listeners.append(s)
        self.accepted = 0
        self.peak = 0
        self.conns = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="busy-gateways", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select
        buffers = {}
        while not self._stop.is_set():
            ready, _, _ = select.select(self.listeners + self.conns, [], [], 0.05)
            for s in ready:
                if s in self.listeners:
                    c, _ = s.accept()
                    with self._lock:
                        self.conns.append(c)
                        self.accepted += 1
                        self.peak = max(self.peak, len(self.conns))
                    buffers[c] = b""
                    continue
                data = s.recv(65536)
                if not data:
                    with self._lock:
                        self.conns.remove(s)
                    s.close()
                    continue
                buffers[s] += data
                while b"\r\n\r\n" in buffers[s]:
                    head, _, rest = buffers[s].partition(b"\r\n\r\n")
                    buffers[s] = rest  # the router's INVITEs and ACKs here have no body
                    msg = SipMessage.parse(head + b"\r\n\r\n")
                    if msg.first_line.startswith("INVITE"):
                        s.sendall(build_response(msg, 486, "Busy Here", to_tag="gw"))

    def open(self) -> int:
        with self._lock:
            return len(self.conns)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for s in self.listeners + self.conns:
            s.close()


class HangingUpGateway:
    """A TCP-only next hop: answers an INVITE 200 (Record-Route echoed), and once the ACK
    came sends its BYE back over the same connection (the router's), along the route set."""

    def __init__(self, host: str):
        self.listener = socket.socket()
        self.listener.bind((host, 0))
        self.listener.listen(4)
        self.host, self.port = self.listener.getsockname()
        self.got = []  # first lines received, in order
        self.record_routes = []  # of the INVITE
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._thread.start()

    def _bye(self, invite: SipMessage) -> bytes:
        caller = re.search(r"<([^>]+)>", invite.get("Contact")).group(1)
        lines = [f"BYE {caller} SIP/2.0",
                 f"Via: SIP/2.0/TCP {self.host}:{self.port};branch=z9hG4bKgwbye1;rport",
                 *[f"Route: {r}" for r in invite.all("Record-Route")],
                 "Max-Forwards: 70", f"From: {invite.get('To')};tag=gw",
                 f"To: {invite.get('From')}", f"Call-ID: {invite.call_id}", "CSeq: 1 BYE",
                 "Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _run(self) -> None:
        self.listener.settimeout(0.1)
        conn = None
        while conn is None and not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
                self.accepted += 1
            except socket.timeout:
                continue
        if conn is None:
            return
        conn.settimeout(0.1)
        buf, invite = b"", None
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
            while b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                msg = SipMessage.parse(head + b"\r\n\r\n")
                length = int(msg.get("Content-Length") or 0)
                if len(rest) < length:
                    break
                buf = rest[length:]
                self.got.append(msg.first_line)
                if msg.first_line.startswith("INVITE"):
                    invite = msg
                    self.record_routes = invite.all("Record-Route")
                    conn.sendall(build_response(
                        msg, 200, "OK", to_tag="gw",
                        contact=f"<sip:gw@{self.host}:{self.port};transport=tcp>"))
                elif msg.first_line.startswith("ACK") and invite is not None:
                    conn.sendall(self._bye(invite))
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.listener.close()


class RouterTcpOut(RouterTestCase):
    def start_platform(self, tcp: dict, listen_tcp: bool = False):
        sip = {"tcp": tcp}
        if listen_tcp:
            sip["listen"] = ["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]
        self.p = self.platform(router_overrides={"workers": 1, "sip": sip,
                                                 "router": {"record_route": True}})
        self.alice, = make_users(1, prefix="tcpout")
        create_subscribers(self.p.api, [self.alice])

    def client(self) -> SipClient:
        c = SipClient("UDP", self.p.edge.addr, timeout=5)
        self.addCleanup(c.close)
        return c

    def metric(self, name: str, **labels) -> float:
        return self.p.router.metrics().get(name, **labels) or 0

    def test_calls_to_a_tcp_only_uas_reuse_one_connection(self):
        self.start_platform({})
        # 127.0.0.1 is an alias of the domain: the UAS is elsewhere.
        uas = self.sipp("uas_tcp", scenario=scenario("router_uas_callee.xml"), transport="t1",
                        keys={"router_name": "gw"},
                        extra=["-i", "127.0.0.2"], timeout_s=120,
                        timeout_error=False, trace_msg=True).start(self.cleanup)
        ruri = f"sip:gw@127.0.0.2:{uas.port};transport=tcp"
        csv_path = write_auth_csv(os.path.join(self.tmp, "caller.csv"), [self.alice] * CALLS)
        caller = self.sipp("caller", scenario=scenario("router_uac_call_auth_ruri.xml"),
                           remote=self.relay(self.p.edge.addr).hostport, calls=CALLS, rate=5,
                           limit=10, duration_ms=20, timeout_s=40, recv_timeout_ms=6000,
                           keys={"domain": ROUTER_DOMAIN, "ruri": ruri},
                           extra=["-inf", csv_path, "-auth_uri", ruri[len("sip:"):]])
        self.assertSippOk(caller.run(self.cleanup), CALLS)
        # The UAS got every INVITE, ACK and BYE over one connection, the router's.
        wait_until(lambda: uas.result().successful >= CALLS, 10, "the UAS to count the calls")
        r = uas.result()
        self.assertEqual((r.successful, r.failed), (CALLS, 0), r.summary())
        self.assertEqual(established_to("127.0.0.2", uas.port), 1)
        self.assertEqual(self.metric("evosip_sip_tcp_connected_total"), 1)
        self.assertEqual(self.metric("evosip_sip_tcp_outbound_connections"), 1)
        self.assertEqual(self.metric("evosip_sip_transport_errors_total", transport="tcp",
                                     reason="connect_failed"), 0)
        self.assertAlive(self.p.router)

    def test_the_next_hop_sends_its_bye_back_over_the_connection(self):
        # The router listens on TCP too: the INVITE to the gateway is Record-Routed twice
        # (RFC 5658), its TCP entry on top, and the gateway's BYE along them passes both.
        self.start_platform({}, listen_tcp=True)
        gw = HangingUpGateway("127.0.0.2")
        self.addCleanup(gw.close)
        ruri = f"sip:gw@127.0.0.2:{gw.port};transport=tcp"
        c = self.client()
        call_id, tag = f"hangup-{os.urandom(4).hex()}", os.urandom(4).hex()
        from_uri = f"sip:{self.alice[0]}@{ROUTER_DOMAIN}"

        def invite(cseq, extra):
            req = c.request("INVITE", ruri, call_id=call_id, cseq=cseq, from_uri=from_uri,
                            from_tag=tag, omit=["Contact"],
                            extra_headers=[f"Contact: <sip:{self.alice[0]}@127.0.0.1:"
                                           f"{c.local_port}>"] + extra)
            return req, c.transact(req, timeout=5)

        req, challenge = invite(1, [])
        self.assertEqual(challenge.status, 407, str(challenge))
        ack_for(c, req, challenge)
        auth = digest_authorization(pick_challenge(challenge, "MD5"), self.alice[0],
                                    self.alice[1], "INVITE", ruri)
        _req, ok = invite(2, [f"{credentials_header_name(407)}: {auth}"])
        self.assertEqual(ok.status, 200, str(ok))
        routes = [f"Route: {r}" for r in reversed(ok.all("Record-Route"))]
        c.send(c.request("ACK", re.search(r"<([^>]+)>", ok.get("Contact")).group(1),
                         call_id=call_id, cseq=2, from_uri=from_uri, from_tag=tag, to_uri=ruri,
                         to_tag="gw", extra_headers=routes))
        # The gateway's BYE came over the router's connection, through the router and the edge.
        bye = c.recv(timeout=5)
        while bye is not None and bye.first_line.startswith("SIP/2.0"):
            bye = c.recv(timeout=5)
        self.assertIsNotNone(bye, "the gateway's BYE never reached the caller")
        self.assertTrue(bye.first_line.startswith("BYE "), bye.first_line)
        self.assertEqual(bye.call_id, call_id)
        c.send(build_response(bye, 200, "OK"))
        wait_until(lambda: "SIP/2.0 200 OK" in gw.got[2:], 5,
                   "the 200 to the BYE back at the gateway")
        self.assertEqual(gw.got[:2], [f"INVITE {ruri} SIP/2.0",
                                      f"ACK sip:gw@127.0.0.2:{gw.port};transport=tcp SIP/2.0"])
        self.assertEqual(gw.accepted, 1)
        router = f"127.0.0.1:{self.p.router.sip_port}"
        self.assertEqual(gw.record_routes[:2], [f"<sip:{router};transport=tcp;lr>",
                                                f"<sip:{router};lr>"])
        self.assertEqual(self.metric("evosip_sip_tcp_connected_total"), 1)
        wait_until(lambda: self.p.router.rpc("dialog.list").get("dialogs", [None]) == [], 5,
                   "the dialog record removed by the BYE")

    def test_a_next_hop_that_never_accepts_fails_at_the_connect_timeout(self):
        # A closed port is refused at once (test_router_calls); this one drops the SYNs (its
        # accept queue is full), so only sip.tcp.connect_timeout_ms ends the wait, long before
        # Timer B (32 s).
        self.start_platform({"connect_timeout_ms": 500})
        full = socket.socket()
        full.bind(("127.0.0.2", 0))
        full.listen(0)
        self.addCleanup(full.close)
        fillers = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(full.getsockname())
            fillers.append(f)
            self.addCleanup(f.close)
        time.sleep(0.1)  # the fillers' handshakes fill the queue
        started = time.monotonic()
        _first, final = raw_invite(self.client(),
                                   f"sip:gw@127.0.0.2:{full.getsockname()[1]};transport=tcp",
                                   caller=self.alice[0], password=self.alice[1])
        took = time.monotonic() - started
        self.assertIsNotNone(final, "no final answer")
        self.assertEqual(final.status, 500, str(final))
        self.assertGreaterEqual(took, 0.4)
        self.assertLess(took, 3.0, "a Timer B wait?")
        self.assertEqual(self.metric("evosip_sip_transport_errors_total", transport="tcp",
                                     reason="connect_failed"), 1)
        self.assertEqual(self.metric("evosip_sip_tcp_outbound_connections"), 0)

    def test_a_flood_of_addresses_stays_within_the_connection_bound(self):
        bound = 3
        self.start_platform({"max_outbound_connections": bound})
        addresses = [f"127.0.9.{i}" for i in range(1, 21)]
        gws = BusyGateways(addresses)
        self.addCleanup(gws.close)
        answers = {}
        peak_gauge = 0
        for a in addresses:
            _first, final = raw_invite(self.client(), f"sip:gw@{a}:{gws.port};transport=tcp",
                                       caller=self.alice[0], password=self.alice[1])
            self.assertIsNotNone(final, f"no final answer for {a}")
            answers[final.status] = answers.get(final.status, 0) + 1
            peak_gauge = max(peak_gauge, self.metric("evosip_sip_tcp_outbound_connections"))
        # The first `bound` addresses got their gateway's 486; the rest a 500 at once.
        self.assertEqual(answers, {486: bound, 500: len(addresses) - bound}, answers)
        self.assertEqual(gws.accepted, bound)
        self.assertLessEqual(gws.peak, bound)
        self.assertLessEqual(peak_gauge, bound)
        self.assertEqual(self.metric("evosip_sip_transport_errors_total", transport="tcp",
                                     reason="outbound_limit"), len(addresses) - bound)
        # A gateway the router already holds a connection to is still reached.
        _first, final = raw_invite(self.client(), f"sip:gw@{addresses[0]}:{gws.port};transport=tcp",
                                   caller=self.alice[0], password=self.alice[1])
        self.assertEqual(final.status, 486, str(final))
        self.assertAlive(self.p.router)


if __name__ == "__main__":
    unittest.main()
