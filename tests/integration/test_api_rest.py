"""The `api` role over the wire: the real `evosip api` binary, the same REST suite on SQLite
and on a real PostgreSQL started by the test, a fake router that receives auth.invalidate."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import unittest
from typing import Optional, Tuple

from harness import (HOST, Cleanup, FakeRpcPeer, Postgres, Process, free_port, make_tmpdir,
                     rpc, scrape, wait_http_ok, wait_until, write_yaml)

TOKEN = "api-token-for-tests"
INTERNAL = "internal-token-for-tests"
ROUTER_TOKEN = "router-token-for-tests"
PASSWORD_MARKER = "Pw-NeverInLogs-7d1"


def evosip_bin() -> str:
    binary = os.environ.get("EVOSIP_BIN", "")
    if not binary:
        raise unittest.SkipTest("EVOSIP_BIN is not set: build evosip and run with "
                                "EVOSIP_BIN=/path/to/evosip")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise AssertionError(f"EVOSIP_BIN={binary!r} is not an executable file")
    return binary


class Api:
    """A running `evosip api` and a keep-alive HTTP connection to it."""

    def __init__(self, workdir: str, cleanup: Cleanup, database: str, routers=()):
        self.port, self.control_port = free_port(), free_port()
        cfg = {
            "api": {"listen": f"{HOST}:{self.port}", "database": database, "token": TOKEN,
                    "internal_token": INTERNAL, "routers": list(routers),
                    "router_token": ROUTER_TOKEN, "router_timeout_ms": 1000},
            "control": {"listen": f"{HOST}:{self.control_port}"},
            "log": {"level": "debug"},
        }
        path = write_yaml(os.path.join(workdir, "api.yaml"), cfg)
        self.proc = cleanup.add(Process("evosip-api", [evosip_bin(), "api", "--config", path],
                                        workdir))
        self.control_url = f"http://{HOST}:{self.control_port}"
        wait_http_ok(self.control_url + "/readyz", timeout=20, proc=self.proc)
        self.conn: Optional[http.client.HTTPConnection] = None

    def request(self, method: str, path: str, body=None, token: Optional[str] = TOKEN,
                raw: Optional[bytes] = None) -> Tuple[int, object, dict]:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
            headers = {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            data = raw if raw is not None else (json.dumps(body).encode()
                                                if body is not None else None)
            if data is not None:
                headers["Content-Type"] = "application/json"
            try:
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                text = res.read().decode("utf-8")
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
                continue
            doc = json.loads(text) if text and "json" in (res.getheader("Content-Type") or "") \
                else text
            return res.status, doc, {k.lower(): v for k, v in res.getheaders()}
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class ApiSuite:
    """The API behaviour both databases must show. Subclasses provide database_url()."""

    api: Api
    router: FakeRpcPeer
    cleanup: Cleanup

    @classmethod
    def database_url(cls, workdir: str) -> str:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        evosip_bin()
        cls.cleanup = Cleanup()
        try:
            cls.tmp = make_tmpdir("evosip-api-")
            cls.cleanup.dirs.append(cls.tmp)
            cls.router = FakeRpcPeer()
            cls.cleanup.callbacks.append(cls.router.close)
            cls.api = Api(cls.tmp, cls.cleanup, cls.database_url(cls.tmp),
                          routers=[cls.router.address])
            cls.cleanup.callbacks.append(cls.api.close)
        except BaseException:
            cls.cleanup.stop_all()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.cleanup.stop_all()

    def call(self, method, path, body=None, **kw):
        return self.api.request(method, path, body, **kw)

    def domain(self, name: str) -> None:
        status, doc, _ = self.call("POST", "/v1/domains", {"name": name})
        self.assertEqual(status, 201, doc)

    def subscriber(self, domain: str, user: str, password: str = "secret-1") -> None:
        status, doc, _ = self.call("POST", "/v1/subscribers",
                                   {"domain": domain, "username": user, "password": password})
        self.assertEqual(status, 201, doc)

    def credentials(self, domain: str, user: str):
        status, doc, _ = self.call("GET", f"/internal/v1/credentials/{domain}/{user}",
                                   token=INTERNAL)
        self.assertEqual(status, 200, doc)
        return doc

    # ----------------------------------------------------------------------------------

    def test_domains_create_list_delete(self):
        status, doc, headers = self.call("POST", "/v1/domains", {"name": "Dom.Example"})
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["name"], "dom.example")
        self.assertEqual(headers["location"], "/v1/domains/dom.example")
        status, doc, _ = self.call("POST", "/v1/domains", {"name": "dom.example"})
        self.assertEqual((status, doc["field"]), (409, "name"))
        status, doc, _ = self.call("GET", "/v1/domains?per_page=1000")
        self.assertEqual(status, 200)
        self.assertIn("dom.example", [d["name"] for d in doc["items"]])
        self.assertEqual(self.call("GET", "/v1/domains/dom.example")[0], 200)
        self.subscriber("dom.example", "keeper")
        status, doc, _ = self.call("DELETE", "/v1/domains/dom.example")
        self.assertEqual(status, 409, doc)
        self.assertEqual(self.call("DELETE", "/v1/subscribers/dom.example/keeper")[0], 204)
        self.assertEqual(self.call("DELETE", "/v1/domains/dom.example")[0], 204)
        self.assertEqual(self.call("DELETE", "/v1/domains/dom.example")[0], 404)

    def test_validation_errors_name_the_field(self):
        self.domain("valid.example")
        cases = [
            ({"domain": "valid.example", "username": "has space", "password": "secret-1"},
             "username"),
            ({"domain": "valid.example", "username": "x" * 65, "password": "secret-1"},
             "username"),
            ({"domain": "valid.example", "username": "bob", "password": "abc"}, "password"),
            ({"domain": "valid.example", "username": "bob"}, "password"),
            ({"domain": "not a domain", "username": "bob", "password": "secret-1"}, "domain"),
            ({"domain": "valid.example", "username": "bob", "password": "secret-1", "x": 1},
             "x"),
        ]
        for body, field in cases:
            status, doc, headers = self.call("POST", "/v1/subscribers", body)
            self.assertEqual(status, 400, (body, doc))
            self.assertEqual(doc["field"], field, doc)
            self.assertIn("application/json", headers["content-type"])
        status, doc, _ = self.call("POST", "/v1/domains", {"name": "-bad"})
        self.assertEqual((status, doc["field"]), (400, "name"))
        self.assertEqual(self.call("GET", "/v1/subscribers?per_page=0")[1]["field"], "per_page")
        self.assertEqual(self.call("GET", "/v1/subscribers?page=x")[1]["field"], "page")

    def test_bad_json_wrong_method_and_unknown_paths(self):
        for raw in (b"{", b"[]", b"not json", b""):
            status, doc, _ = self.call("POST", "/v1/domains", raw=raw)
            self.assertEqual(status, 400, (raw, doc))
            self.assertIn("error", doc)
        status, doc, headers = self.call("PUT", "/v1/subscribers")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, POST")
        self.assertEqual(self.call("POST", "/v1/domains/x.example")[0], 405)
        self.assertEqual(self.call("GET", "/v1/nothing")[0], 404)
        self.assertEqual(self.call("GET", "/v1/subscribers/a.example")[0], 404)

    def test_not_found_and_conflicts(self):
        status, doc, _ = self.call("POST", "/v1/subscribers", {
            "domain": "missing.example", "username": "alice", "password": "secret-1"})
        self.assertEqual((status, doc["field"]), (404, "domain"))
        self.assertEqual(self.call("GET", "/v1/subscribers?domain=missing.example")[0], 404)
        self.assertEqual(self.call("GET", "/v1/subscribers/missing.example/alice")[0], 404)
        self.assertEqual(self.call("PATCH", "/v1/subscribers/missing.example/alice",
                                   {"password": "secret-2"})[0], 404)
        self.assertEqual(self.call("DELETE", "/v1/subscribers/missing.example/alice")[0], 404)
        self.assertEqual(self.call("GET", "/internal/v1/credentials/missing.example/alice",
                                   token=INTERNAL)[0], 404)
        self.domain("conflict.example")
        self.subscriber("conflict.example", "alice")
        status, doc, _ = self.call("POST", "/v1/subscribers", {
            "domain": "conflict.example", "username": "alice", "password": "other-pw"})
        self.assertEqual((status, doc["field"]), (409, "username"))

    def test_tokens(self):
        status, _, headers = self.call("GET", "/v1/domains", token=None)
        self.assertEqual(status, 401)
        self.assertIn("Bearer", headers["www-authenticate"])
        self.assertEqual(self.call("GET", "/v1/domains", token="wrong")[0], 401)
        self.assertEqual(self.call("POST", "/v1/domains", {"name": "t.example"}, token=None)[0],
                         401)
        self.domain("tok.example")
        self.subscriber("tok.example", "alice")
        path = "/internal/v1/credentials/tok.example/alice"
        self.assertEqual(self.call("GET", path, token=None)[0], 401)
        self.assertEqual(self.call("GET", path, token=TOKEN)[0], 401)
        self.assertEqual(self.call("GET", path, token=INTERNAL)[0], 200)
        self.assertEqual(self.call("GET", "/openapi.json", token=None)[0], 200)

    def test_thousand_subscribers_and_paging(self):
        self.domain("big.example")
        names = [f"user{i:04d}" for i in range(1000)]
        for name in names:
            self.subscriber("big.example", name, f"pw-{name}")
        seen = []
        for page in range(1, 11):
            status, doc, _ = self.call(
                "GET", f"/v1/subscribers?domain=big.example&page={page}&per_page=100")
            self.assertEqual(status, 200, doc)
            self.assertEqual((doc["total"], doc["page"], doc["per_page"]), (1000, page, 100))
            self.assertEqual(len(doc["items"]), 100)
            seen += [s["username"] for s in doc["items"]]
            for item in doc["items"]:
                self.assertEqual(sorted(item), ["created_at", "domain", "updated_at",
                                                "username"])
        self.assertEqual(seen, names)
        status, doc, _ = self.call("GET", "/v1/subscribers?domain=big.example&page=11&per_page=100")
        self.assertEqual((status, doc["items"], doc["total"]), (200, [], 1000))
        status, doc, _ = self.call("GET", "/v1/subscribers?domain=big.example&per_page=1000")
        self.assertEqual([s["username"] for s in doc["items"]], names)
        # Credentials of one of them are the HA1 values of its password.
        creds = self.credentials("big.example", "user0777")
        self.assertEqual(creds["ha1_md5"], md5_ha1("user0777", "big.example", "pw-user0777"))
        self.assertEqual(creds["ha1_sha256"],
                         sha256_ha1("user0777", "big.example", "pw-user0777"))

    def test_password_change_changes_ha1_and_invalidates_routers(self):
        self.domain("inv.example")
        self.subscriber("inv.example", "alice", "first-pw")
        before = self.credentials("inv.example", "alice")
        status, doc, _ = self.call("PATCH", "/v1/subscribers/inv.example/alice",
                                   {"password": PASSWORD_MARKER})
        self.assertEqual(status, 200, doc)
        self.assertNotIn(PASSWORD_MARKER, json.dumps(doc))
        after = self.credentials("inv.example", "alice")
        self.assertNotEqual(before, after)
        self.assertEqual(after["ha1_md5"], md5_ha1("alice", "inv.example", PASSWORD_MARKER))
        self.assertEqual(after["ha1_sha256"], sha256_ha1("alice", "inv.example", PASSWORD_MARKER))

        call = self.router.wait_for(lambda c: c[0] == "auth.invalidate" and c[1] == {
            "domain": "inv.example", "user": "alice"}, timeout=5)
        self.assertIsNotNone(call, f"no auth.invalidate reached the router: {self.router.calls}")
        self.assertEqual(call[2], f"Bearer {ROUTER_TOKEN}")

        # The router set is replaced over the control RPC: the next change reaches the new one.
        second = FakeRpcPeer()
        self.addCleanup(second.close)
        result = rpc(self.api.control_url + "/rpc", "dispatcher.set",
                     {"set": "routers", "targets": [second.address]})
        self.assertEqual(result, {"set": "routers", "targets": 1})
        listed = rpc(self.api.control_url + "/rpc", "dispatcher.list")
        self.assertEqual([r["address"] for r in listed["routers"]], [second.address])
        self.assertEqual(self.call("DELETE", "/v1/subscribers/inv.example/alice")[0], 204)
        self.assertIsNotNone(second.wait_for(lambda c: c[1] == {
            "domain": "inv.example", "user": "alice"}, timeout=5))
        with self.assertRaises(Exception):
            rpc(self.api.control_url + "/rpc", "dispatcher.set",
                {"set": "routers", "targets": ["no-port"]})
        rpc(self.api.control_url + "/rpc", "dispatcher.set",
            {"set": "routers", "targets": [self.router.address]})

        metrics = scrape(self.api.control_url + "/metrics")
        self.assertGreaterEqual(metrics.get("evosip_api_invalidations_sent_total"), 2)
        self.assertGreaterEqual(metrics.get(
            "evosip_api_requests_total", route="/v1/subscribers/{domain}/{username}",
            method="PATCH", status="200"), 1)
        self.assertGreater(metrics.get("evosip_api_db_latency_seconds_count",
                                         operation="update_subscriber"), 0)

    def test_unreachable_router_is_counted_not_fatal(self):
        dead = f"{HOST}:{free_port()}"
        rpc(self.api.control_url + "/rpc", "dispatcher.set",
            {"set": "routers", "targets": [dead, self.router.address]})
        try:
            self.domain("dead.example")
            self.subscriber("dead.example", "bob")
            self.assertEqual(self.call("PATCH", "/v1/subscribers/dead.example/bob",
                                       {"password": "another-pw"})[0], 200)
            wait_until(lambda: scrape(self.api.control_url + "/metrics").get(
                "evosip_api_invalidations_failed_total") >= 1, 5, "a failed invalidation")
            self.assertIsNotNone(self.router.wait_for(lambda c: c[1] == {
                "domain": "dead.example", "user": "bob"}, timeout=5))
        finally:
            rpc(self.api.control_url + "/rpc", "dispatcher.set",
                {"set": "routers", "targets": [self.router.address]})

    def test_openapi_document_is_the_one_in_docs(self):
        status, doc, _ = self.call("GET", "/openapi.json", token=None)
        self.assertEqual(status, 200)
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "api",
                               "openapi.json")) as f:
            self.assertEqual(doc, json.load(f))

    def test_passwords_never_reach_the_log(self):
        self.domain("log.example")
        self.subscriber("log.example", "carol", PASSWORD_MARKER + "-create")
        self.call("PATCH", "/v1/subscribers/log.example/carol",
                  {"password": PASSWORD_MARKER + "-patch"})
        self.call("POST", "/v1/subscribers", {"domain": "log.example", "username": "carol",
                                              "password": PASSWORD_MARKER + "-dup"})
        log = self.api.proc.stderr_text()
        self.assertIn("carol", log)  # the log does talk about the subscriber
        self.assertNotIn(PASSWORD_MARKER, log)


def md5_ha1(user: str, realm: str, password: str) -> str:
    import hashlib
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def sha256_ha1(user: str, realm: str, password: str) -> str:
    import hashlib
    return hashlib.sha256(f"{user}:{realm}:{password}".encode()).hexdigest()


class SqliteApiTest(ApiSuite, unittest.TestCase):
    @classmethod
    def database_url(cls, workdir: str) -> str:
        cls.db_path = os.path.join(workdir, "evosip.db")
        return f"sqlite://{cls.db_path}"

    def test_database_file_holds_no_password(self):
        self.domain("file.example")
        self.subscriber("file.example", "dave", PASSWORD_MARKER)
        data = b""
        for name in os.listdir(self.tmp):
            if name.startswith("evosip.db"):
                with open(os.path.join(self.tmp, name), "rb") as f:
                    data += f.read()
        self.assertIn(md5_ha1("dave", "file.example", PASSWORD_MARKER).encode(), data)
        self.assertNotIn(PASSWORD_MARKER.encode(), data)


class PostgresApiTest(ApiSuite, unittest.TestCase):
    pg: Postgres

    @classmethod
    def database_url(cls, workdir: str) -> str:
        cls.pg = Postgres()
        cls.cleanup.callbacks.insert(0, cls.pg.close)  # stopped after the api
        return cls.pg.url

    def test_database_holds_no_password(self):
        self.domain("pgfile.example")
        self.subscriber("pgfile.example", "dave", PASSWORD_MARKER)
        from harness import PG_BIN
        psql = [os.path.join(PG_BIN, "psql"), "-h", HOST, "-p", str(self.pg.port), "-U",
                "postgres", "-At", "-c",
                "SELECT * FROM subscribers WHERE domain = 'pgfile.example'"]
        if os.geteuid() == 0:
            psql = ["runuser", "-u", "postgres", "--"] + psql
        dump = subprocess.run(psql, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=30).stdout.decode()
        self.assertIn(md5_ha1("dave", "pgfile.example", PASSWORD_MARKER), dump)
        self.assertNotIn(PASSWORD_MARKER, dump)

    def test_zz_recovers_after_postgres_restart(self):
        self.domain("before-restart.example")
        self.pg.stop()
        try:
            status, doc, _ = self.call("GET", "/v1/domains/before-restart.example")
            self.assertEqual(status, 503, doc)
        finally:
            self.pg.start()

        def works() -> bool:
            return self.call("GET", "/v1/domains/before-restart.example")[0] == 200
        wait_until(works, 20, "the API answering again after PostgreSQL restarted",
                   interval=0.2, proc=self.api.proc)
        self.domain("after-restart.example")


class ApiCommandLineTest(unittest.TestCase):
    def test_help_lists_the_api_role_and_sip_keys_are_rejected(self):
        binary = evosip_bin()
        out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, timeout=10).stdout
        self.assertIn(b"api", out)
        tmp = make_tmpdir("evosip-api-cli-")
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        path = write_yaml(os.path.join(tmp, "api.yaml"), {
            "api": {"database": f"sqlite://{tmp}/x.db"},
            "sip": {"listen": ["udp:127.0.0.1:5060"]}})
        res = subprocess.run([binary, "api", "--config", path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn(b"sip", res.stderr)


if __name__ == "__main__":
    unittest.main()
