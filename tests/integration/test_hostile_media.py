"""`evosip media` attacked as an outsider would, on the wire: ng commands from a source that is no
proxy of ours, a reply-cache replay with someone else's cookie (amplification), more calls than
the relay should hold, an offer with 32 m= lines, guessable ports, and RTP injected into a call
before and after the phone's address is learned (strict source, SIP source address).

Only loopback exists here: 127.0.0.2 plays the outside host, and the relay is told (through the
environment, so that a relay without the key still starts) to take ng commands from 127.0.0.1
only. Each test asserts what the attacker, a legitimate proxy or a phone sees.
"""

import socket
import unittest

from harness import HOST, scrape
from ngclient import bencode
from test_media_ng import MediaTestCase, Phone, make_sdp, media_ports, rtp_packet

OUTSIDER = "127.0.0.2"


def udp_socket(ip: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.settimeout(1.0)
    return s


def recv(sock: socket.socket, timeout: float):
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(65536)[0]
    except socket.timeout:
        return None


class HostileMedia(MediaTestCase):
    def start_media(self, ports: int = 400, workers: int = 1, env=None, **media_over):
        # The relay's own session limit (max_sessions left to its default).
        media_over.setdefault("max_sessions", None)
        return super().start_media(ports=ports, workers=workers, env=env, **media_over)

    def offer(self, call_id: str, port: int, m_lines: int = 1, **extra) -> dict:
        sdp = make_sdp(port)
        for i in range(1, m_lines):
            sdp += f"m=audio {port + 2 * i} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        return self.ng.request("offer", call_id=call_id, from_tag="caller", sdp=sdp,
                               replace=["origin", "session-connection"], ICE="remove", **extra)

    def test_ng_from_a_source_outside_ng_allow_gets_no_reply(self):
        self.start_media(env={"EVOSIP_MEDIA_NG_ALLOW": "127.0.0.1/32"})
        outsider = udp_socket(OUTSIDER)
        self.addCleanup(outsider.close)
        for cookie, body in ((b"p1", {"command": "ping"}),
                             (b"o1", {"command": "offer", "call-id": "outside",
                                      "from-tag": "x", "sdp": make_sdp(4000)}),
                             (b"g1", None)):
            datagram = cookie + b" " + (bencode(body) if body else b"not bencode")
            outsider.sendto(datagram, (HOST, self.ng_port))
            self.assertIsNone(recv(outsider, 0.7),
                              f"the relay answered {datagram[:20]!r} from {OUTSIDER}")
        # Nothing was created for it, and the proxy on 127.0.0.1 is served as before.
        self.assertEqual(self.ng.request("ping"), {"result": "pong"})
        self.assertEqual(self.ng.request("query", call_id="outside")["result"], "error")
        m = scrape(self.control_url + "/metrics")
        self.assertEqual(m.get("evosip_media_ng_refused_total"), 3)

    def test_replayed_cookie_from_another_port_gets_no_cached_reply(self):
        self.start_media()
        # A proxy's offer whose reply is large (about 2 KB of SDP).
        attrs = "".join(f"a=fmtp:{96 + i} mode-set=0,1,2,3,4,5,6,7;padding={'x' * 40}\r\n"
                        for i in range(25))
        body = bencode({"command": "offer", "call-id": "big", "from-tag": "caller",
                        "sdp": make_sdp(4000, extra=attrs)})
        reply = self.ng.request_raw("secret-cookie", body)
        self.assertGreater(len(reply), 1500)
        # The proxy's own retransmission still gets the cached reply.
        self.assertEqual(self.ng.request_raw("secret-cookie", body), reply)
        # An attacker who learned (or guessed) the cookie sends 16 bytes from another port.
        attacker = udp_socket(HOST)
        self.addCleanup(attacker.close)
        attacker.sendto(b"secret-cookie de", (HOST, self.ng_port))
        got = recv(attacker, 1.0)
        self.assertTrue(got != reply, f"the cached {len(reply)}-byte reply went to another source")
        self.assertTrue(got is None or len(got) < 200, got)

    def test_more_calls_than_max_sessions_get_an_error_while_a_call_relays(self):
        # 40 ports = 20 pairs; a call may take 2 legs x 4 m= lines = 8 pairs: the default
        # max_sessions is 2, so the relay refuses the third call before its ports run out.
        self.start_media(ports=40)
        a, b = self.phone(), self.phone()
        o = self.offer("legit", a.port)
        self.assertEqual(o["result"], "ok", o)
        an = self.ng.request("answer", call_id="legit", from_tag="caller", to_tag="callee",
                             sdp=make_sdp(b.port))
        self.assertEqual(an["result"], "ok", an)
        toward_a, toward_b = media_ports(an["sdp"]), media_ports(o["sdp"])
        errors = []
        for i in range(10):  # an attacker's INVITEs, each with as many streams as allowed
            r = self.offer(f"flood-{i}", 6000 + 10 * i, m_lines=4)
            if r["result"] != "ok":
                errors.append(r.get("error-reason"))
        self.assertEqual(len(errors), 9, errors)
        self.assertEqual(set(errors), {"Parallel session limit reached"}, errors)
        # The established call still relays both ways.
        for seq, (src, port, dst) in enumerate(((a, toward_a[1], b), (b, toward_b[1], a))):
            src.rtp.sendto(rtp_packet(seq), (HOST, port))
            self.assertEqual(Phone.recv(dst.rtp)[0], rtp_packet(seq))

    def test_offer_with_32_m_lines_is_refused(self):
        self.start_media()
        r = self.offer("wide", 4000, m_lines=32)
        self.assertEqual(r["result"], "error", "an offer with 32 m= lines was accepted")
        self.assertIn("Too many media streams", r.get("error-reason", ""))
        self.assertEqual(self.ng.request("query", call_id="wide")["result"], "error")
        self.assertEqual(self.offer("narrow", 4000, m_lines=2)["result"], "ok")

    def test_ports_are_not_sequential(self):
        self.start_media(ports=400)
        ports = []
        for i in range(12):
            r = self.offer(f"p{i}", 4000)
            self.assertEqual(r["result"], "ok", r)
            ports.append(media_ports(r["sdp"])[1])
        steps = [b - a for a, b in zip(ports, ports[1:])]
        common = max(set(steps), key=steps.count)
        # Round robin gives one step (4: two pairs a call) every time; random pairs repeat a
        # step by chance only.
        self.assertLess(steps.count(common), 5, f"predictable ports {ports}")
        self.assertEqual(len(set(ports)), len(ports))
        for p in ports:
            self.assertTrue(self.port_min <= p < self.port_min + 400 and p % 2 == 0, p)

    def test_strict_source_keeps_injected_packets_out_before_and_after_the_latch(self):
        self.start_media()
        a, b = self.phone(), self.phone()
        # a is behind a NAT: its SDP has a private address, the proxy sends its SIP source
        # (received from) and asks for strict source, with the spellings rtpengine accepts.
        sdp_a = make_sdp(a.port, address="10.99.0.7")
        o = self.ng.request("offer", call_id="strict", from_tag="caller", sdp=sdp_a,
                            flags=["SIP source address", "strict source"],
                            replace=["origin", "session-connection"],
                            **{"received from": ["IP4", HOST]})
        self.assertEqual(o["result"], "ok", o)
        an = self.ng.request("answer", call_id="strict", from_tag="caller", to_tag="callee",
                             sdp=make_sdp(b.port), flags=["SIP-source-address", "strict-source"],
                             **{"received-from": ["IP4", HOST]})
        self.assertEqual(an["result"], "ok", an)
        toward_a, toward_b = media_ports(an["sdp"])[1], media_ports(o["sdp"])[1]
        # The injector on another host sends to a's relay port before a does.
        injector = udp_socket(OUTSIDER)
        self.addCleanup(injector.close)
        injector.sendto(rtp_packet(1), (HOST, toward_a))
        self.assertIsNone(Phone.recv(b.rtp, 0.4)[0], "injected packet reached the callee")
        # b's media goes to a's SIP source address, not to the injector that sent first.
        b.rtp.sendto(rtp_packet(2), (HOST, toward_b))
        self.assertEqual(Phone.recv(a.rtp, 1.0)[0], rtp_packet(2), "a did not get b's media")
        self.assertIsNone(recv(injector, 0.3), "the injector took over a's media")
        # a's real packets (from its NAT's port) latch and flow.
        nat = udp_socket(HOST)
        self.addCleanup(nat.close)
        nat.sendto(rtp_packet(3), (HOST, toward_a))
        self.assertEqual(Phone.recv(b.rtp, 1.0)[0], rtp_packet(3))
        # After the latch, another port of the same host is dropped too, and so is the injector.
        a.rtp.sendto(rtp_packet(4), (HOST, toward_a))
        injector.sendto(rtp_packet(5), (HOST, toward_a))
        self.assertIsNone(Phone.recv(b.rtp, 0.4)[0], "a packet from another source got through")
        b.rtp.sendto(rtp_packet(6), (HOST, toward_b))
        self.assertEqual(recv(nat, 1.0), rtp_packet(6))
        m = scrape(self.control_url + "/metrics")
        self.assertEqual(m.get("evosip_media_drops_total", reason="strict_source"), 3)


if __name__ == "__main__":
    unittest.main()
