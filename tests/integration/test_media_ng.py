"""`evosip media` as an rtpengine drop-in: the ng control protocol (bencode over UDP) and the
RTP/RTCP relay it drives, on the wire. Two fake endpoints (UDP sockets) exchange RTP and RTCP
through the ports the relay advertised; latching, strict-source, counters, idle timeout,
max_sessions, malformed datagrams, drain/readyz and metrics."""

import os
import socket
import subprocess
import time
import unittest

from harness import (HOST, Process, ProxyTestCase, free_port, http_get, require_role, rpc,
                     scrape, wait_http_ok, wait_until, write_yaml)
from ngclient import NgClient, bdecode, bencode


def make_sdp(port: int, address: str = HOST, rtcp: bool = False, extra: str = "") -> str:
    lines = ["v=0", f"o=- 1545997027 1 IN IP4 {address}", "s=tester", f"c=IN IP4 {address}",
             "t=0 0", f"m=audio {port} RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000",
             "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
             "a=sendrecv"]
    if rtcp:
        lines.append(f"a=rtcp:{port + 1}")
    return "\r\n".join(lines) + "\r\n" + extra


def media_ports(sdp: str):
    """(c= address, m= port, a=rtcp port) of the first audio section of a rewritten SDP."""
    addr, port, rtcp = None, None, None
    for line in sdp.split("\r\n"):
        if line.startswith("c=IN IP4 ") and addr is None:
            addr = line.split()[-1]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
        elif line.startswith("a=rtcp:"):
            rtcp = int(line[len("a=rtcp:"):].split()[0])
    return addr, port, rtcp


def rtp_packet(seq: int, ssrc: int = 0x1234, size: int = 160) -> bytes:
    header = bytes([0x80, 0x00]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + \
        ssrc.to_bytes(4, "big")
    return header + bytes([seq % 256]) * size


class Phone:
    """A fake endpoint: an RTP and an RTCP socket on consecutive ports."""

    def __init__(self):
        for _ in range(50):
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind((HOST, 0))
            port = rtp.getsockname()[1]
            if port % 2:
                rtp.close()
                continue
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind((HOST, port + 1))
            except OSError:
                rtp.close()
                rtcp.close()
                continue
            self.rtp, self.rtcp, self.port = rtp, rtcp, port
            for s in (rtp, rtcp):
                s.settimeout(2.0)
            return
        raise RuntimeError("no even/odd port pair")

    def close(self):
        self.rtp.close()
        self.rtcp.close()

    @staticmethod
    def recv(sock: socket.socket, timeout: float = 2.0):
        sock.settimeout(timeout)
        try:
            return sock.recvfrom(4096)
        except socket.timeout:
            return None, None


class MediaTestCase(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.bin = require_role("media")
        self.phones = []

    def tearDown(self):
        for p in self.phones:
            p.close()
        super().tearDown()

    def phone(self) -> Phone:
        p = Phone()
        self.phones.append(p)
        return p

    def start_media(self, ports: int = 200, workers: int = 2, env=None, **media_over):
        """A relay with `ports` RTP ports; media_over sets media.* keys (None leaves a key out,
        so the relay's own default applies)."""
        self.ng_port = free_port()
        self.control_port = free_port()
        # A port range of our own, well away from the ephemeral range the test sockets use.
        self.port_min = 20000 + (free_port() % 100) * 400
        media = {"ng_listen": f"{HOST}:{self.ng_port}", "address": HOST,
                 "port_min": self.port_min, "port_max": self.port_min + ports - 1,
                 "timeout_s": 60, "max_sessions": 0}
        media.update(media_over)
        media = {k: v for k, v in media.items() if v is not None}
        cfg = {"media": media, "control": {"listen": f"{HOST}:{self.control_port}"},
               "workers": workers, "log": {"level": "info"}}
        path = write_yaml(os.path.join(self.tmp, "media.yaml"), cfg)
        self.proc = self.cleanup.add(Process("media", [self.bin, "media", "--config", path],
                                             self.tmp, env=env))
        self.control_url = f"http://{HOST}:{self.control_port}"
        wait_http_ok(self.control_url + "/readyz", timeout=15, proc=self.proc)
        self.ng = NgClient((HOST, self.ng_port))
        self.cleanup.callbacks.append(self.ng.close)
        return self.proc

    def call(self, a: Phone, b: Phone, call_id=None, offer_flags=(), answer_flags=(), **extra):
        """offer from a (from-tag), answer from b (to-tag); returns (relay ports toward a,
        relay ports toward b) as (address, rtp, rtcp)."""
        call_id = call_id or os.urandom(6).hex()
        self.call_id = call_id
        offer = self.ng.request("offer", call_id=call_id, from_tag="tag-a",
                                sdp=make_sdp(a.port), flags=list(offer_flags),
                                replace=["origin", "session-connection"], ICE="remove",
                                **{"received-from": ["IP4", HOST]}, **extra)
        self.assertEqual(offer.get("result"), "ok", offer)
        answer = self.ng.request("answer", call_id=call_id, from_tag="tag-a", to_tag="tag-b",
                                 sdp=make_sdp(b.port), flags=list(answer_flags),
                                 replace=["origin", "session-connection"], ICE="remove",
                                 **{"received-from": ["IP4", HOST]})
        self.assertEqual(answer.get("result"), "ok", answer)
        toward_b = media_ports(offer["sdp"])   # b sends here
        toward_a = media_ports(answer["sdp"])  # a sends here
        return toward_a, toward_b

    def assertRelays(self, src: socket.socket, dst_port: int, dst: socket.socket, seq: int):
        data = rtp_packet(seq)
        src.sendto(data, (HOST, dst_port))
        got, _ = Phone.recv(dst)
        self.assertEqual(got, data, f"packet {seq} sent to relay port {dst_port} did not arrive")


class MediaNg(MediaTestCase):
    def test_ping_offer_answer_relay_both_ways_and_delete(self):
        self.start_media()
        self.assertEqual(self.ng.request("ping"), {"result": "pong"})
        a, b = self.phone(), self.phone()
        toward_a, toward_b = self.call(a, b)
        self.assertEqual(toward_a[0], HOST)
        for ports in (toward_a, toward_b):
            self.assertTrue(self.port_min <= ports[1] <= self.port_min + 199, ports)
            self.assertEqual(ports[1] % 2, 0)
            self.assertEqual(ports[2], ports[1] + 1)
        self.assertNotEqual(toward_a[1], toward_b[1])
        for i in range(5):
            self.assertRelays(a.rtp, toward_a[1], b.rtp, i)       # a -> b RTP
            self.assertRelays(b.rtp, toward_b[1], a.rtp, 100 + i)  # b -> a RTP
        # RTCP both ways, from each phone's RTCP port to its peer's RTCP port.
        a.rtcp.sendto(b"\x81\xc9\x00\x01rtcp-a", (HOST, toward_a[2]))
        self.assertEqual(Phone.recv(b.rtcp)[0], b"\x81\xc9\x00\x01rtcp-a")
        b.rtcp.sendto(b"\x81\xc9\x00\x01rtcp-b", (HOST, toward_b[2]))
        self.assertEqual(Phone.recv(a.rtcp)[0], b"\x81\xc9\x00\x01rtcp-b")
        # The relay's packets come from its own advertised ports (symmetric RTP).
        a.rtp.sendto(rtp_packet(7), (HOST, toward_a[1]))
        _, src = Phone.recv(b.rtp)
        self.assertEqual(src, (HOST, toward_b[1]))

        q = self.ng.request("query", call_id=self.call_id)
        self.assertEqual(q["result"], "ok", q)
        self.assertEqual(set(q["tags"]), {"tag-a", "tag-b"})
        self.assertEqual(q["tags"]["tag-a"]["in dialogue with"], "tag-b")
        self.assertEqual(q["totals"]["RTP"]["packets"], 11)
        self.assertEqual(q["totals"]["RTCP"]["packets"], 2)
        stream_a = q["tags"]["tag-a"]["medias"][0]["streams"][0]
        self.assertEqual(stream_a["local port"], toward_a[1])
        self.assertEqual(stream_a["stats"]["packets"], 6)
        self.assertEqual(stream_a["endpoint"], {"family": "IPv4", "address": HOST,
                                                "port": a.port})
        self.assertIn("confirmed", stream_a["flags"])
        self.assertIn("last packet", stream_a)
        self.assertEqual(self.ng.request("list")["calls"], [self.call_id])

        d = self.ng.request("delete", call_id=self.call_id, from_tag="tag-a")
        self.assertEqual(d["result"], "ok", d)
        self.assertEqual(d["totals"]["RTP"]["packets"], 11)
        a.rtp.sendto(rtp_packet(50), (HOST, toward_a[1]))
        self.assertIsNone(Phone.recv(b.rtp, timeout=0.3)[0], "relayed after delete")
        self.assertEqual(self.ng.request("query", call_id=self.call_id),
                         {"result": "error", "error-reason": "Unknown call-id"})
        again = self.ng.request("delete", call_id=self.call_id, from_tag="tag-a")
        self.assertEqual(again["result"], "ok")
        self.assertIn("warning", again)
        fatal = self.ng.request("delete", call_id=self.call_id, from_tag="tag-a", flags=["fatal"])
        self.assertEqual(fatal["result"], "error")
        self.assertEqual(self.ng.request("list")["calls"], [])

    def test_retransmitted_and_repeated_offer_get_same_answer(self):
        self.start_media()
        a = self.phone()
        body = bencode({"command": "offer", "call-id": "retrans-1", "from-tag": "ft",
                        "sdp": make_sdp(a.port), "flags": ["trust-address"]})
        first = self.ng.request_raw("cookie-1", body)
        second = self.ng.request_raw("cookie-1", body)
        self.assertEqual(first, second)
        # A new cookie for the same offer (a re-sent INVITE handled again) reuses the ports.
        third = self.ng.request_raw("cookie-2", body)
        self.assertEqual(first.split(b" ", 1)[1], third.split(b" ", 1)[1])
        self.assertEqual(self.ng.request("statistics")["statistics"]["currentstatistics"]
                         ["sessionstotal"], 1)

    def test_nat_latching_from_other_source_port(self):
        self.start_media()
        a, b = self.phone(), self.phone()
        toward_a, toward_b = self.call(a, b)
        # a is behind a NAT: its packets come from another port than its SDP said.
        nat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        nat.bind((HOST, 0))
        nat.settimeout(2)
        self.addCleanup(nat.close)
        self.assertRelays(nat, toward_a[1], b.rtp, 1)
        # b's packets now go to the latched (NAT) address, not to a's SDP port.
        b.rtp.sendto(rtp_packet(2), (HOST, toward_b[1]))
        got = nat.recvfrom(4096)[0]
        self.assertEqual(got, rtp_packet(2))
        self.assertIsNone(Phone.recv(a.rtp, timeout=0.2)[0])
        q = self.ng.request("query", call_id=self.call_id)
        ep = q["tags"]["tag-a"]["medias"][0]["streams"][0]["endpoint"]
        self.assertEqual(ep["port"], nat.getsockname()[1])

    def test_strict_source_drops_other_sources(self):
        self.start_media()
        a, b = self.phone(), self.phone()
        toward_a, _ = self.call(a, b, offer_flags=["strict-source"])
        self.assertRelays(a.rtp, toward_a[1], b.rtp, 1)  # latches a's address
        intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        intruder.bind((HOST, 0))
        self.addCleanup(intruder.close)
        intruder.sendto(rtp_packet(2), (HOST, toward_a[1]))
        self.assertIsNone(Phone.recv(b.rtp, timeout=0.3)[0], "strict-source let it through")
        self.assertRelays(a.rtp, toward_a[1], b.rtp, 3)
        m = scrape(self.control_url + "/metrics")
        self.assertEqual(m.get("evosip_media_drops_total", reason="strict_source"), 1)
        # Without strict-source another source is relayed, and the latch stays on the first.
        c, d = self.phone(), self.phone()
        toward_c, toward_d = self.call(c, d, call_id="loose")
        self.assertRelays(c.rtp, toward_c[1], d.rtp, 4)
        self.assertRelays(intruder, toward_c[1], d.rtp, 5)
        self.assertRelays(d.rtp, toward_d[1], c.rtp, 6)

    def test_asymmetric_does_not_latch(self):
        self.start_media()
        a, b = self.phone(), self.phone()
        toward_a, toward_b = self.call(a, b, offer_flags=["asymmetric"])
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind((HOST, 0))
        self.addCleanup(other.close)
        self.assertRelays(other, toward_a[1], b.rtp, 1)
        # b -> a still goes to a's SDP address.
        self.assertRelays(b.rtp, toward_b[1], a.rtp, 2)

    def test_errors_and_malformed_datagrams(self):
        self.start_media()
        err = self.ng.request("answer", call_id="nope", from_tag="x", to_tag="y",
                              sdp=make_sdp(4000))
        self.assertEqual(err, {"result": "error", "error-reason": "Unknown call-id"})
        err = self.ng.request("offer", call_id="bad-sdp", from_tag="x", sdp="this is no sdp")
        self.assertEqual(err["result"], "error")
        self.assertIn("SDP", err["error-reason"])
        err = self.ng.request("offer", from_tag="x", sdp=make_sdp(4000))
        self.assertEqual(err["result"], "error")
        err = self.ng.request("offer", call_id="rec", from_tag="x", sdp=make_sdp(4000),
                              **{"record-call": "yes"})
        self.assertEqual(err["result"], "error")
        self.assertIn("record", err["error-reason"])
        err = self.ng.request("offer", call_id="srtp", from_tag="x", sdp=make_sdp(4000),
                              **{"transport-protocol": "RTP/SAVP"})
        self.assertEqual(err["result"], "error")
        self.assertIn("RTP/SAVP", err["error-reason"])
        err = self.ng.request("offer", call_id="tc", from_tag="x", sdp=make_sdp(4000),
                              flags=["codec-transcode-G722"])
        self.assertEqual(err["result"], "error")
        ok = self.ng.request("offer", call_id="harmless", from_tag="x", sdp=make_sdp(4000),
                             flags=["loop-protect", "port-latching", "no-rtcp-attribute",
                                    "some-future-flag"], label="caller",
                             **{"address-family": "IP4"})
        self.assertEqual(ok["result"], "ok", ok)
        self.assertIn("some-future-flag", ok.get("warning", ""))
        self.assertNotIn("a=rtcp:", ok["sdp"])
        self.assertEqual(self.ng.request("bogus"),
                         {"result": "error", "error-reason": "Unrecognized command"})
        # Malformed datagrams: bad bencode is answered with an error; no cookie is ignored.
        for junk in (b"c1 d7:command4:ping", b"c2 i42e", b"c3 d3:foo", b"c4 " + b"l" * 5000,
                     b"c5 d7:commandi3ee"):
            cookie = junk.split(b" ")[0].decode()
            reply = self.ng.request_raw(cookie, junk.split(b" ", 1)[1])
            self.assertEqual(bdecode(reply.split(b" ", 1)[1])["result"], "error", reply)
        for junk in (b"", b"nocookie", b"\x00\xff" * 100, os.urandom(1400)):
            self.ng.send_raw(junk)
        self.assertEqual(self.ng.request("ping"), {"result": "pong"})
        self.assertTrue(self.proc.alive())
        m = scrape(self.control_url + "/metrics")
        self.assertGreaterEqual(m.get("evosip_media_ng_commands_total", command="offer",
                                      result="error"), 5)
        self.assertEqual(m.get("evosip_media_ng_commands_total", command="offer", result="ok"), 1)
        self.assertGreaterEqual(m.get("evosip_media_ng_commands_total", command="ping",
                                      result="pong"), 1)

    def test_idle_timeout_deletes_silent_calls(self):
        self.start_media(timeout_s=2)
        a, b = self.phone(), self.phone()
        toward_a, _ = self.call(a, b, call_id="silent")
        self.call(self.phone(), self.phone(), call_id="talking")
        talker, listener = self.phones[-2], self.phones[-1]
        toward_talker = media_ports(self.ng.request(
            "answer", call_id="talking", from_tag="tag-a", to_tag="tag-b",
            sdp=make_sdp(listener.port))["sdp"])
        deadline = time.monotonic() + 8
        seq = 0
        while time.monotonic() < deadline:
            talker.rtp.sendto(rtp_packet(seq), (HOST, toward_talker[1]))
            seq += 1
            if self.ng.request("query", call_id="silent")["result"] == "error":
                break
            time.sleep(0.2)
        self.assertEqual(self.ng.request("query", call_id="silent")["result"], "error")
        self.assertEqual(self.ng.request("query", call_id="talking")["result"], "ok")
        self.assertEqual(self.ng.request("statistics")["statistics"]["totalstatistics"]
                         ["timeoutsessions"], 1)

    def test_max_sessions(self):
        self.start_media(max_sessions=2)
        for i in range(2):
            r = self.ng.request("offer", call_id=f"call-{i}", from_tag="x", sdp=make_sdp(4000))
            self.assertEqual(r["result"], "ok", r)
        r = self.ng.request("offer", call_id="call-2", from_tag="x", sdp=make_sdp(4000))
        self.assertEqual(r, {"result": "error", "error-reason": "Parallel session limit reached"})
        # Re-offers of existing calls still work; a delete makes room.
        self.assertEqual(self.ng.request("offer", call_id="call-0", from_tag="x",
                                         sdp=make_sdp(4000))["result"], "ok")
        self.assertEqual(self.ng.request("delete", call_id="call-0", from_tag="x")["result"], "ok")
        self.assertEqual(self.ng.request("offer", call_id="call-2", from_tag="x",
                                         sdp=make_sdp(4000))["result"], "ok")

    def test_drain_readyz_and_metrics(self):
        self.start_media()
        a, b = self.phone(), self.phone()
        toward_a, toward_b = self.call(a, b)
        self.assertRelays(a.rtp, toward_a[1], b.rtp, 1)
        self.assertEqual(http_get(self.control_url + "/readyz")[0], 200)
        result = rpc(self.control_url + "/rpc", "instance.drain")
        self.assertTrue(result["draining"])
        self.assertEqual(result["sessions"], 1)
        self.assertEqual(http_get(self.control_url + "/readyz")[0], 503)
        r = self.ng.request("offer", call_id="new-after-drain", from_tag="x", sdp=make_sdp(4000))
        self.assertEqual(r, {"result": "error", "error-reason": "draining"})
        self.assertRelays(b.rtp, toward_b[1], a.rtp, 2)  # the existing call keeps flowing
        listed = rpc(self.control_url + "/rpc", "media.list")
        self.assertEqual(listed["calls"], [self.call_id])
        m = scrape(self.control_url + "/metrics")
        self.assertEqual(m.get("evosip_media_sessions"), 1)
        self.assertEqual(m.get("evosip_media_streams"), 4)
        self.assertEqual(m.get("evosip_media_packets_relayed_total"), 2)
        self.assertEqual(m.get("evosip_media_bytes_relayed_total"), 2 * len(rtp_packet(0)))
        self.assertEqual(m.get("evosip_media_ng_commands_total", command="offer", result="error"),
                         1)
        self.assertTrue(m.has("evosip_media_drops_total"))
        # SIGTERM waits for the calls up (test_drain_signal): with none left it exits at once.
        self.assertEqual(self.ng.request("delete", call_id=self.call_id, from_tag="tag-a")["result"],
                         "ok")
        self.assertEqual(self.proc.stop(timeout=5), 0, "SIGTERM should exit 0")


class MediaConfig(MediaTestCase):
    def run_cfg(self, media, env=None, extra=None):
        cfg = {"media": media, "control": {"listen": f"{HOST}:{free_port()}"}, "workers": 2}
        cfg.update(extra or {})
        path = write_yaml(os.path.join(self.tmp, "bad.yaml"), cfg)
        p = subprocess.run([self.bin, "media", "--config", path], capture_output=True,
                           timeout=10, env=dict(os.environ, **(env or {})))
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def assertNamesKey(self, rc, stderr, key):
        self.assertEqual(rc, 2, f"bad config accepted; stderr: {stderr}")
        lines = [l for l in stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, stderr)
        self.assertIn(key, lines[0])

    def test_bad_config(self):
        good = {"ng_listen": f"{HOST}:{free_port()}", "address": HOST, "port_min": 30000,
                "port_max": 30100}
        for over, key in (({"portmin": 1}, "portmin"), ({"port_max": 20000}, "port_max"),
                          ({"address": "not-an-ip"}, "media.address"),
                          ({"address": "0.0.0.0"}, "media.address"),
                          ({"ng_listen": "nowhere"}, "ng_listen"),
                          ({"timeout_s": "soon"}, "timeout_s"),
                          ({"port_min": 30000, "port_max": 30001}, "port")):
            with self.subTest(key=key):
                self.assertNamesKey(*self.run_cfg(dict(good, **over)), key)
        self.assertNamesKey(*self.run_cfg(good, env={"EVOSIP_MEDIA_MAX_SESSIONS": "lots"}),
                            "max_sessions")

    def test_env_overrides_and_ipv6(self):
        ng_port, control_port = free_port(), free_port()
        cfg = {"media": {"ng_listen": f"{HOST}:{free_port()}", "address": HOST},
               "control": {"listen": f"{HOST}:{control_port}"}, "workers": 1}
        path = write_yaml(os.path.join(self.tmp, "media.yaml"), cfg)
        proc = self.cleanup.add(Process("media-env", [self.bin, "media", "--config", path],
                                        self.tmp, env={
                                            "EVOSIP_MEDIA_NG_LISTEN": f"[::1]:{ng_port}",
                                            "EVOSIP_MEDIA_ADDRESS": "::1",
                                            "EVOSIP_MEDIA_PORT_MIN": "31000",
                                            "EVOSIP_MEDIA_PORT_MAX": "31100"}))
        wait_http_ok(f"http://{HOST}:{control_port}/readyz", timeout=15, proc=proc)
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.settimeout(3)
        self.addCleanup(s.close)
        sdp = ("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
               "m=audio 4000 RTP/AVP 0\r\n")
        s.sendto(b"k1 " + bencode({"command": "offer", "call-id": "v6", "from-tag": "a",
                                   "sdp": sdp}), ("::1", ng_port))
        reply = bdecode(s.recvfrom(65536)[0].split(b" ", 1)[1])
        self.assertEqual(reply["result"], "ok", reply)
        self.assertIn("c=IN IP6 ::1", reply["sdp"])
        port = media_ports(reply["sdp"].replace("IP6", "IP4"))[1]
        self.assertTrue(31000 <= port <= 31100, reply["sdp"])


if __name__ == "__main__":
    unittest.main()
