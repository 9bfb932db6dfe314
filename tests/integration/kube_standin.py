"""A Kubernetes API server stand-in that speaks the wire protocol the controller uses: HTTPS with
a certificate made at start by the `openssl` command, bearer-token authentication, lists of
discovery.k8s.io/v1 EndpointSlices by label selector with resourceVersion and continue pages,
chunked watch streams of ADDED/MODIFIED/DELETED/BOOKMARK events, 410 Gone (as a Status answer
or as an ERROR event) for a version older than the compaction point, dropped connections, an
outage, and coordination.k8s.io/v1 Leases with optimistic concurrency (409 on a stale
resourceVersion)."""

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

SLICES = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
SERVICE_LABEL = "kubernetes.io/service-name"


def make_certificate(workdir: str, host: str) -> tuple:
    """A self-signed P-256 certificate for `host` (an IP address): (cert, key) file paths."""
    cert, key = os.path.join(workdir, "kube.crt"), os.path.join(workdir, "kube.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=kube-apiserver",
                    "-addext", f"subjectAltName=IP:{host}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return cert, key


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def endpoint(ip: str, ready: bool = True, serving: Optional[bool] = None,
             terminating: bool = False) -> dict:
    return {"addresses": [ip], "conditions": {
        "ready": ready, "serving": ready if serving is None else serving,
        "terminating": terminating}}


class KubeStandin:
    def __init__(self, workdir: str, namespace: str = "evosip", token: str = "kube-token",
                 host: str = "127.0.0.1", page_size: int = 2):
        self.namespace, self.token, self.host = namespace, token, host
        self.page_size = page_size
        self.cert, self.key = make_certificate(workdir, host)
        self.cond = threading.Condition()
        self.rv = 1000
        self.slices: Dict[str, dict] = {}
        self.events: List[tuple] = []  # (rv, service, type, object)
        self.compacted = 0  # watches from a version below this get 410
        self.gone_as_event = False
        self.down = False
        self.drops = 0  # bumped to cut every open watch stream
        self.leases: Dict[str, dict] = {}
        self.lease_writes: List[tuple] = []  # (method, holder)
        self.requests: List[str] = []
        self.unauthorized = 0
        self.server = ThreadingHTTPServer((host, 0), _make_handler(self))
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> "KubeStandin":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.down = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- the cluster's state ----------------------------------------------------------------

    def put_slice(self, name: str, service: str, endpoints: List[dict],
                  ports: Dict[str, int]) -> int:
        with self.cond:
            self.rv += 1
            kind = "MODIFIED" if name in self.slices else "ADDED"
            obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": name, "namespace": self.namespace,
                                "resourceVersion": str(self.rv),
                                "labels": {SERVICE_LABEL: service}},
                   "addressType": "IPv4",
                   "ports": [{"name": n, "port": p, "protocol": "UDP" if n != "control"
                              else "TCP"} for n, p in ports.items()],
                   "endpoints": endpoints}
            self.slices[name] = obj
            self.events.append((self.rv, service, kind, obj))
            self.cond.notify_all()
            return self.rv

    def delete_slice(self, name: str) -> None:
        with self.cond:
            obj = self.slices.pop(name)
            self.rv += 1
            gone = json.loads(json.dumps(obj))
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self.events.append((self.rv, obj["metadata"]["labels"][SERVICE_LABEL], "DELETED",
                                gone))
            self.cond.notify_all()

    def compact(self, as_event: bool = False) -> None:
        """Every version up to now is gone: a watch from one of them gets 410."""
        with self.cond:
            self.compacted = self.rv + 1
            self.gone_as_event = as_event
            self.events.clear()
            self.drops += 1
            self.cond.notify_all()

    def drop_watches(self) -> None:
        with self.cond:
            self.drops += 1
            self.cond.notify_all()

    def set_down(self, down: bool) -> None:
        with self.cond:
            self.down = down
            self.drops += 1
            self.cond.notify_all()

    def count(self, prefix: str) -> int:
        with self.cond:
            return sum(1 for r in self.requests if r.startswith(prefix))


def _make_handler(kube: KubeStandin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _admit(self) -> bool:
            if kube.down:
                self.close_connection = True
                self.connection.close()
                return False
            with kube.cond:
                kube.requests.append(f"{self.command} {self.path}")
            if self.headers.get("Authorization") != f"Bearer {kube.token}":
                kube.unauthorized += 1
                self._send(401, status(401, "Unauthorized", "Unauthorized"))
                return False
            return True

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self) -> None:
            if not self._admit():
                return
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            if url.path == SLICES.format(ns=kube.namespace):
                service = q.get("labelSelector", "").partition("=")[2]
                if q.get("watch") in ("1", "true"):
                    return self._watch(service, q)
                return self._list(service, q)
            if url.path.startswith(LEASES.format(ns=kube.namespace) + "/"):
                name = url.path.rsplit("/", 1)[1]
                with kube.cond:
                    lease = kube.leases.get(name)
                if lease is None:
                    return self._send(404, status(404, "NotFound", f"leases \"{name}\" not found"))
                return self._send(200, lease)
            self._send(404, status(404, "NotFound", "not found"))

        def _list(self, service: str, q: dict) -> None:
            offset = int(q.get("continue", "0:0").split(":")[1]) if q.get("continue") else 0
            limit = min(int(q.get("limit", "500")), kube.page_size)
            with kube.cond:
                items = sorted((s for s in kube.slices.values()
                                if s["metadata"]["labels"][SERVICE_LABEL] == service),
                               key=lambda s: s["metadata"]["name"])
                rv = kube.rv
            page = items[offset:offset + limit]
            more = offset + limit < len(items)
            meta = {"resourceVersion": str(rv)}
            if more:
                meta["continue"] = f"{rv}:{offset + limit}"
            self._send(200, {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                             "metadata": meta, "items": page})

        def _chunk(self, doc: dict) -> None:
            data = json.dumps(doc).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _watch(self, service: str, q: dict) -> None:
            since = int(q.get("resourceVersion") or "0")
            if since < kube.compacted and not kube.gone_as_event:
                return self._send(410, status(410, "Expired", "too old resource version"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if since < kube.compacted:
                self._chunk({"type": "ERROR", "object": status(410, "Expired",
                                                               "too old resource version")})
                self.wfile.write(b"0\r\n\r\n")
                return
            try:
                self._stream(service, since,
                             time.monotonic() + int(q.get("timeoutSeconds", "60")))
            except OSError:
                self.close_connection = True  # the client went away

        def _stream(self, service: str, since: int, until: float) -> None:
            drops = kube.drops
            next_bookmark = time.monotonic() + 1.0
            while time.monotonic() < until:
                with kube.cond:
                    pending = [e for e in kube.events if e[0] > since and e[1] == service]
                    if not pending:
                        kube.cond.wait(0.2)
                    cut = kube.drops != drops or kube.down
                    rv = kube.rv
                if cut:
                    self.close_connection = True
                    self.connection.shutdown(2)  # dropped: no final chunk
                    return
                for erv, _svc, kind, obj in pending:
                    self._chunk({"type": kind, "object": obj})
                    since = erv
                if time.monotonic() >= next_bookmark:
                    self._chunk({"type": "BOOKMARK", "object": {
                        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                        "metadata": {"resourceVersion": str(rv)}}})
                    since = max(since, rv)
                    next_bookmark = time.monotonic() + 1.0
            self.wfile.write(b"0\r\n\r\n")

        def do_POST(self) -> None:
            if not self._admit():
                return
            doc = self._body()
            name = doc.get("metadata", {}).get("name", "")
            with kube.cond:
                if name in kube.leases:
                    return self._send(409, status(409, "AlreadyExists", "exists"))
                kube.rv += 1
                doc["metadata"]["resourceVersion"] = str(kube.rv)
                kube.leases[name] = doc
                kube.lease_writes.append(("POST", doc["spec"].get("holderIdentity")))
            self._send(201, doc)

        def do_PUT(self) -> None:
            if not self._admit():
                return
            doc = self._body()
            name = self.path.rsplit("/", 1)[1]
            with kube.cond:
                old = kube.leases.get(name)
                if old is None:
                    return self._send(404, status(404, "NotFound", "not found"))
                if doc.get("metadata", {}).get("resourceVersion") != \
                        old["metadata"]["resourceVersion"]:
                    return self._send(409, status(409, "Conflict", "the object has been "
                                                  "modified"))
                kube.rv += 1
                doc["metadata"]["resourceVersion"] = str(kube.rv)
                kube.leases[name] = doc
                kube.lease_writes.append(("PUT", doc["spec"].get("holderIdentity")))
            self._send(200, doc)

    return Handler
