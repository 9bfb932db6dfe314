"""Bad input never stops the edge: a bounded stream of malformed messages over UDP and
TCP while a sipp call run goes on (0 failed calls); 483/482/400 where a reply is
possible."""

import os
import socket
import threading
import time
import unittest

from harness import (HOST, ProxyTestCase, SipClient, build_request, http_get, new_call_id,
                     require_evosip, start_proxy)

RUN_CALLS = 150
RUN_RATE = 25


def malformed_messages(port: int):
    """(name, bytes) pairs; each is sent over UDP and TCP."""
    def req(**kw):
        kw.setdefault("via_host", HOST)
        kw.setdefault("via_port", port)
        return build_request("INVITE", "sip:bob@example.com", **kw)
    good = req()
    return [
        ("garbage", os.urandom(300)),
        ("text garbage", b"hello world\r\n\r\n"),
        ("empty lines", b"\r\n\r\n\r\n\r\n"),
        ("truncated", good[: len(good) // 2]),
        ("no request line", good.split(b"\r\n", 1)[1]),
        ("bad version", good.replace(b"SIP/2.0\r\n", b"SIP/7.1\r\n", 1)),
        ("no Call-ID", req(omit=["Call-ID"])),
        ("no CSeq", req(omit=["CSeq"])),
        ("no From", req(omit=["From"])),
        ("no Via", req(omit=["Via"])),
        ("bad CSeq", req(extra_headers=[]).replace(b"CSeq: 1 INVITE", b"CSeq: x BYE")),
        ("Content-Length not a number", req(content_length="abc")),
        ("Content-Length negative", req(content_length="-5")),
        ("Content-Length too big (UDP)", req(body=b"v=0\r\n", content_length="4000")),
        ("huge header", req(extra_headers=["X-Big: " + "a" * 20000])),
        ("many headers", req(extra_headers=[f"X-H{i}: {i}" for i in range(2000)])),
        ("NUL bytes", good.replace(b"Max-Forwards", b"Max-\x00Forwards")),
        ("bad URI", good.replace(b"sip:bob@example.com", b"sip:@@@:::", 1)),
        ("Max-Forwards 0", req(max_forwards=0)),
        ("Max-Forwards garbage", req().replace(b"Max-Forwards: 70", b"Max-Forwards: -1x")),
        ("response garbage", b"SIP/2.0 999999 What\r\nVia: nope\r\n\r\n"),
        ("stray response", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
                           b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\n"
                           b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"),
    ]


class EdgeMalformed(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.uas_ = self.uas("router", "uas_router.xml")
        self.proxy = start_proxy(self.tmp, self.cleanup, [f"sip:{HOST}:{self.uas_.port}"])

    def test_malformed_stream_while_calls_go_on(self):
        uac = self.uac("uac", self.proxy, "uac_call.xml", RUN_CALLS, RUN_RATE, timeout_s=40)
        uac.start(self.cleanup, wait=False)
        sent = 0
        deadline = time.monotonic() + 20
        msgs = malformed_messages(1)
        for rnd in range(3):  # bounded: 3 rounds x every message x UDP+TCP
            if time.monotonic() > deadline:
                break
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((HOST, 0))
            for name, data in msgs:
                try:
                    udp.sendto(data[:65000], self.proxy.addr)
                    sent += 1
                except OSError:
                    pass
                time.sleep(0.01)
            udp.close()
            if "tcp" in self.proxy.transports:
                for name, data in msgs:
                    try:
                        with socket.create_connection(self.proxy.addr, timeout=2) as t:
                            t.sendall(data)
                            if rnd == 2:
                                t.shutdown(socket.SHUT_WR)  # half-close mid-message
                            t.settimeout(0.2)
                            try:
                                t.recv(65536)
                            except (socket.timeout, OSError):
                                pass
                        sent += 1
                    except OSError:
                        pass
            self.assertAlive(self.proxy)
        res = uac.wait(60)
        self.assertGreater(sent, 50)
        self.assertSippOk(res, RUN_CALLS)
        self.assertAlive(self.proxy)
        # still serving new requests
        with SipClient("UDP", self.proxy.addr) as c:
            resp = c.transact(c.request("OPTIONS", f"sip:{self.proxy.hostport}"), timeout=3)
            self.assertIsNotNone(resp, "edge stopped answering after the malformed stream")
            self.assertEqual(resp.status, 200)
        if self.proxy.kind == "evosip":
            self.assertEqual(http_get(self.proxy.control_url + "/healthz")[0], 200)
            m = self.proxy.metrics()
            self.assertGreater(m.get("evosip_edge_drops_total"), 0,
                               "malformed input should be counted as drops")

    def test_max_forwards_zero_gets_483(self):
        for transport in self.proxy.transports:
            with self.subTest(transport=transport), \
                    SipClient(transport.upper(), self.proxy.addr) as c:
                resp = c.transact(c.request("INVITE", "sip:bob@example.com", max_forwards=0))
                self.assertIsNotNone(resp, "no answer to Max-Forwards: 0")
                self.assertEqual(resp.status, 483, str(resp))
        self.assertEqual(self.uas_.incoming_calls(), 0, "Max-Forwards 0 must not be forwarded")

    def test_bad_requests_get_400_or_482(self):
        require_evosip()
        for transport in self.proxy.transports:
            with self.subTest(transport=transport), \
                    SipClient(transport.upper(), self.proxy.addr) as c:
                cases = [
                    ("missing Call-ID", c.request("INVITE", "sip:bob@example.com",
                                                  omit=["Call-ID"]), 400),
                    ("missing CSeq", c.request("INVITE", "sip:bob@example.com",
                                               omit=["CSeq"]), 400),
                    ("Via loop", c.request("INVITE", "sip:bob@example.com", extra_headers=[
                        f"Via: SIP/2.0/UDP {self.proxy.hostport};branch=z9hG4bKloop1"]), 482),
                    # last: on TCP the edge may close a mis-framed connection after the 400
                    ("bad Content-Length", c.request("INVITE", "sip:bob@example.com",
                                                     content_length="abc"), 400),
                ]
                for name, data, code in cases:
                    resp = c.transact(data, timeout=3)
                    self.assertIsNotNone(resp, f"{name}: no answer")
                    self.assertEqual(resp.status, code, f"{name}:\n{resp}")
        self.assertAlive(self.proxy)

    def test_oversized_tcp_message(self):
        require_evosip()
        with SipClient("TCP", self.proxy.addr, timeout=3) as c:
            big = c.request("MESSAGE", "sip:bob@example.com", body=b"x" * 200000)
            try:
                c.send(big)
            except OSError:
                pass  # closed by the edge while sending: acceptable
            resp = c.final_response(timeout=3)
            if resp is not None:  # else: dropped / connection closed, also acceptable
                self.assertIn(resp.status, (400, 413), str(resp))
        self.assertAlive(self.proxy)
        self.assertEqual(http_get(self.proxy.control_url + "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
