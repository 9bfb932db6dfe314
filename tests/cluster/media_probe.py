"""RTP through a relay of the namespace cluster, echoed by the callee: each packet a caller sends
to the relay crosses it both ways and comes back to the same socket (the callee runs sipp with
`-mp 40004 -rtp_echo`). Used by test_media_failover.py and chaos.py to measure media gaps."""

from __future__ import annotations

import os
import socket
import sys
from typing import List, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import netlab  # noqa: E402
from ngclient import NgClient  # noqa: E402
from test_media_takeover import Stream  # noqa: E402


def caller_port(cluster, relay: str, call_id: str) -> int:
    """The relay port the caller sends to: the local port of the leg whose endpoint is the
    caller's address (ng query from a router's namespace, which ng_allow lets in)."""
    lab = cluster.lab
    caller_ip = lab.hosts["c1"].p2p_ip
    address = cluster.instances[relay].config["media"]["address"]

    def query():
        with NgClient((address, 2223), bind=lab.hosts["r1"].data_ip) as ng:
            return ng.request("query", call_id=call_id)
    q = netlab.in_netns(lab.hosts["r1"].ns, query)
    for tag in q["tags"].values():
        stream = tag["medias"][0]["streams"][0]
        if stream.get("endpoint", {}).get("address") == caller_ip:
            return stream["local port"]
    raise AssertionError(f"no caller leg in {q}")


def echo_streams(cluster, relay: str, call_ids: Sequence[str]) -> List[Stream]:
    """Per call, RTP every 20 ms from c1 to the relay's caller-facing port; the receiving
    socket is the sending one (the callee echoes). Close each stream when done."""
    lab = cluster.lab
    address = cluster.instances[relay].config["media"]["address"]
    caller_ip = lab.hosts["c1"].p2p_ip
    streams = []
    for call_id in call_ids:
        port = caller_port(cluster, relay, call_id)

        def bind():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((caller_ip, 0))
            return s
        sock = netlab.in_netns(lab.hosts["c1"].ns, bind)
        stream = Stream(sock, (address, port), sock)
        stream.socket = sock
        streams.append(stream)
    return streams


def close(streams: Sequence[Stream]) -> None:
    for s in streams:
        s.close()
        s.socket.close()
