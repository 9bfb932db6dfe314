"""A DNS server stand-in for the tests: answers A, AAAA, SRV and CNAME queries over UDP from a
table the test sets and changes at run time, with the TTLs it gives. A name with no record at all
is NXDOMAIN; a name with records of other types gets an empty NOERROR answer (NODATA). SRV answers
carry the A/AAAA records of their targets in the additional section, as name servers do.

    dns = DnsStandin()                        # 127.0.0.1, a free UDP port (DnsStandin("::1"))
    dns.set("router.test", "A", ["127.0.0.1"], ttl=1)
    dns.set("_sip._udp.routers.test", "SRV", [(10, 5, 5070, "router.test")], ttl=1)
    ... dns.address -> "127.0.0.1:PORT" for dns.servers
    dns.close()
"""

import ipaddress
import socket
import struct
import threading
from typing import Dict, List, Tuple

TYPES = {"A": 1, "CNAME": 5, "AAAA": 28, "SRV": 33}
TYPE_NAMES = {v: k for k, v in TYPES.items()}


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def decode_name(data: bytes, at: int) -> Tuple[str, int]:
    labels = []
    while True:
        n = data[at]
        if n == 0:
            return ".".join(labels), at + 1
        if n & 0xC0:
            raise ValueError("compressed names in a query are not expected")
        labels.append(data[at + 1:at + 1 + n].decode())
        at += 1 + n


def encode_rdata(rtype: str, value) -> bytes:
    if rtype == "A":
        return ipaddress.IPv4Address(value).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(value).packed
    if rtype == "CNAME":
        return encode_name(value)
    if rtype == "SRV":
        priority, weight, port, target = value
        return struct.pack("!HHH", priority, weight, port) + encode_name(target)
    raise ValueError(rtype)


def encode_record(name: str, rtype: str, ttl: int, value) -> bytes:
    rdata = encode_rdata(rtype, value)
    return encode_name(name) + struct.pack("!HHIH", TYPES[rtype], 1, ttl, len(rdata)) + rdata


def encode_response(qid: int, qname: str, qtype: int, rcode: int,
                    answers: List[bytes], additional: List[bytes]) -> bytes:
    flags = 0x8000 | 0x0400 | 0x0100 | 0x0080 | rcode  # QR, AA, RD, RA
    header = struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, len(additional))
    question = encode_name(qname) + struct.pack("!HH", qtype, 1)
    return header + question + b"".join(answers) + b"".join(additional)


class DnsStandin:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host, self.port = self.sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._records: Dict[Tuple[str, str], Tuple[int, list]] = {}
        self.queries: List[Tuple[str, str]] = []
        self.silent = False  # True: answers nothing (a server that is down)
        self.delay = 0.0  # seconds before each answer (a slow server)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dns-standin", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def set(self, name: str, rtype: str, values: list, ttl: int = 1) -> None:
        with self._lock:
            if values:
                self._records[(name.lower().strip("."), rtype)] = (ttl, list(values))
            else:
                self._records.pop((name.lower().strip("."), rtype), None)

    def asked(self, name: str, rtype: str) -> int:
        with self._lock:
            return sum(1 for q in self.queries if q == (name.lower(), rtype))

    def _answer(self, data: bytes) -> bytes:
        qid, _flags, qd = struct.unpack("!HHH", data[:6])
        if qd != 1:
            raise ValueError("one question expected")
        qname, at = decode_name(data, 12)
        qtype, _qclass = struct.unpack("!HH", data[at:at + 4])
        key = qname.lower()
        tname = TYPE_NAMES.get(qtype, str(qtype))
        with self._lock:
            self.queries.append((key, tname))
            exists = any(n == key for n, _ in self._records)
            answers, additional = [], []
            if (key, tname) in self._records:
                ttl, values = self._records[(key, tname)]
                for v in values:
                    answers.append(encode_record(key, tname, ttl, v))
                if tname == "SRV":
                    for _p, _w, _port, target in values:
                        for at_type in ("A", "AAAA"):
                            if (target, at_type) in self._records:
                                t_ttl, addrs = self._records[(target, at_type)]
                                additional += [encode_record(target, at_type, t_ttl, a)
                                               for a in addrs]
            elif (key, "CNAME") in self._records:
                ttl, (canonical,) = self._records[(key, "CNAME")]
                answers.append(encode_record(key, "CNAME", ttl, canonical))
                if (canonical, tname) in self._records:
                    c_ttl, values = self._records[(canonical, tname)]
                    answers += [encode_record(canonical, tname, c_ttl, v) for v in values]
        return encode_response(qid, qname, qtype, 0 if exists else 3, answers, additional)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if self.silent:
                continue
            try:
                reply = self._answer(data)
            except Exception:  # noqa: BLE001 - a query the stand-in does not parse: no answer
                continue
            if self.delay > 0:
                timer = threading.Timer(self.delay, self._send_late, (reply, src))
                timer.daemon = True
                timer.start()
            else:
                self.sock.sendto(reply, src)

    def _send_late(self, reply: bytes, src) -> None:
        try:
            self.sock.sendto(reply, src)
        except OSError:
            pass  # closed meanwhile

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
