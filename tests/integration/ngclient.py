"""A small client of rtpengine's ng control protocol (bencode over UDP), stdlib only, for the
`evosip media` tests: encode/decode bencode, send "<cookie> <dict>", wait for the reply with the
same cookie."""

from __future__ import annotations

import os
import socket
from typing import Any, Optional, Tuple


def bencode(value: Any) -> bytes:
    if isinstance(value, bool):
        return bencode(int(value))
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value)}")


def bdecode(data: bytes) -> Any:
    """Decodes one value; byte strings come back as str (UTF-8, replacement on errors)."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes at {end}")
    return value


def _decode(data: bytes, i: int) -> Tuple[Any, int]:
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            v, i = _decode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        d = {}
        while data[i:i + 1] != b"e":
            k, i = _decode(data, i)
            v, i = _decode(data, i)
            d[k] = v
        return d, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        s = data[colon + 1:colon + 1 + n]
        if len(s) != n:
            raise ValueError("short string")
        return s.decode("utf-8", "replace"), colon + 1 + n
    raise ValueError(f"bad bencode at {i}: {data[i:i + 10]!r}")


class NgClient:
    """One UDP socket talking to an ng server. request() returns the reply dict."""

    def __init__(self, address: Tuple[str, int], timeout: float = 3.0, bind: str = "127.0.0.1"):
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "NgClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def new_cookie() -> str:
        return os.urandom(6).hex()

    def send_raw(self, datagram: bytes) -> None:
        self.sock.sendto(datagram, self.address)

    def recv_raw(self, timeout: Optional[float] = None) -> Optional[bytes]:
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
            return data
        except socket.timeout:
            return None
        finally:
            self.sock.settimeout(old)

    def request_raw(self, cookie: str, body: bytes, timeout: Optional[float] = None) -> bytes:
        """Sends "<cookie> <body>" and returns the raw reply with that cookie."""
        self.send_raw(cookie.encode() + b" " + body)
        while True:
            data = self.recv_raw(timeout)
            if data is None:
                raise TimeoutError(f"no ng reply to cookie {cookie}")
            if data.split(b" ", 1)[0] == cookie.encode():
                return data

    def request(self, command: str, cookie: Optional[str] = None, **keys) -> dict:
        body = {"command": command}
        for k, v in keys.items():
            body[k.replace("_", "-")] = v
        raw = self.request_raw(cookie or self.new_cookie(), bencode(body))
        return bdecode(raw.split(b" ", 1)[1])
