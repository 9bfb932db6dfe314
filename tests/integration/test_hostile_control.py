"""The control plane and the provisioning api, tried as an outsider who reaches their ports:
closed by default beyond loopback, no HA1 without the internal token, health probes that a
connection flood cannot block, a read deadline against slowloris, and instance.undrain."""

import os
import socket
import subprocess
import time
import unittest

from harness import (API_INTERNAL_TOKEN, API_TOKEN, HOST, ROUTER_DOMAIN, Process,
                     ProxyTestCase, RawRegistration, RouterTestCase, SipClient,
                     create_subscribers, edge_config, free_port, http_get, make_users,
                     raw_invite, require_role, rpc, rpc_raw, wait_http_ok, write_yaml)

NOT_LOOPBACK = "0.0.0.0"  # binds every address, loopback included: reachable from outside


def role_config(role: str, tmp: str, control: dict) -> dict:
    """A configuration each role starts with, its control section replaced."""
    if role == "edge":
        cfg = edge_config(free_port(), free_port(), [f"sip:{HOST}:{free_port()}"])
    elif role == "router":
        cfg = {"sip": {"listen": [f"udp:{HOST}:{free_port()}"]},
               "router": {"domain": ROUTER_DOMAIN, "api": f"{HOST}:{free_port()}",
                          "api_token": API_INTERNAL_TOKEN}}
    elif role == "media":
        base = 20000 + (free_port() % 2000) * 10
        cfg = {"media": {"ng_listen": f"{HOST}:{free_port()}", "address": HOST,
                         "port_min": base, "port_max": base + 99}}
    elif role == "app":
        base = 30000 + (free_port() % 4) * 600
        cfg = {"sip": {"listen": [f"udp:{HOST}:{free_port()}"]},
               "app": {"voicemail_dir": os.path.join(tmp, "vm"), "rtp_address": HOST,
                       "rtp_port_min": base, "rtp_port_max": base + 599}}
    else:
        cfg = {"api": {"listen": f"{HOST}:{free_port()}",
                       "database": f"sqlite://{os.path.join(tmp, 'evosip.db')}"}}
    cfg["control"] = control
    cfg["workers"] = 1
    return cfg


def run_role(role: str, tmp: str, cfg: dict, timeout: float = 15) -> subprocess.CompletedProcess:
    path = write_yaml(os.path.join(tmp, f"{role}.yaml"), cfg)
    return subprocess.run([require_role(role), role, "--config", path], cwd=tmp,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


class ClosedByDefault(ProxyTestCase):
    ROLES = ("edge", "router", "media", "app", "api")

    def test_a_control_listener_beyond_loopback_without_token_does_not_start(self):
        for role in self.ROLES:
            with self.subTest(role=role):
                port = free_port()
                cfg = role_config(role, self.tmp, {"listen": f"{NOT_LOOPBACK}:{port}"})
                try:
                    res = run_role(role, self.tmp, cfg, timeout=5)
                except subprocess.TimeoutExpired:
                    self.fail(f"{role} started with an open control port on "
                              f"{NOT_LOOPBACK}:{port}")
                self.assertEqual(res.returncode, 2, res.stderr)
                err = res.stderr.decode()
                self.assertIn("control.token is required when control.listen is not loopback",
                              err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                # With a token it starts, and its control port answers only with that token.
                token = f"control-token-{role}"
                cfg = role_config(role, self.tmp,
                                  {"listen": f"{NOT_LOOPBACK}:{port}", "token": token})
                path = write_yaml(os.path.join(self.tmp, f"{role}-ok.yaml"), cfg)
                proc = self.cleanup.add(Process(f"{role}-ok", [require_role(role), role,
                                                               "--config", path], self.tmp))
                url = f"http://{HOST}:{port}"
                wait_http_ok(url + "/readyz", timeout=15, proc=proc)
                self.assertEqual(rpc_raw(url + "/rpc", "rpc.methods")[0], 401)
                self.assertEqual(rpc_raw(url + "/rpc", "rpc.methods", token="wrong")[0], 401)
                self.assertIn("rpc.methods", rpc(url + "/rpc", "rpc.methods", token=token))
                self.assertEqual(http_get(url + "/metrics")[0], 401)
                proc.stop()

    def test_the_api_beyond_loopback_without_its_token_does_not_start(self):
        cfg = role_config("api", self.tmp, {"listen": f"{HOST}:{free_port()}"})
        cfg["api"]["listen"] = f"{NOT_LOOPBACK}:{free_port()}"
        try:
            res = run_role("api", self.tmp, cfg, timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("the api started with an open provisioning API beyond loopback")
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn(b"api.token is required when api.listen is not loopback", res.stderr)


class CredentialsNeedTheInternalToken(ProxyTestCase):
    def start_api(self, name: str, api: dict):
        port, ctl = free_port(), free_port()
        cfg = {"api": dict({"listen": f"{HOST}:{port}",
                            "database": f"sqlite://{os.path.join(self.tmp, name + '.db')}"},
                           **api),
               "control": {"listen": f"{HOST}:{ctl}"}}
        path = write_yaml(os.path.join(self.tmp, f"{name}.yaml"), cfg)
        proc = self.cleanup.add(Process(name, [require_role("api"), "api", "--config", path],
                                        self.tmp))
        wait_http_ok(f"http://{HOST}:{ctl}/readyz", timeout=20, proc=proc)
        base = f"http://{HOST}:{port}"
        self.provision(base, api.get("token", ""))
        return base

    def provision(self, base: str, token: str) -> None:
        import json
        import urllib.request
        for path, body in (("/v1/domains", {"name": "victim.example"}),
                           ("/v1/subscribers", {"domain": "victim.example",
                                                "username": "alice",
                                                "password": "alice-secret"})):
            req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            with urllib.request.urlopen(req, timeout=5) as r:
                self.assertEqual(r.status, 201)

    CREDENTIALS = "/internal/v1/credentials/victim.example/alice"

    def test_the_credentials_need_the_internal_token(self):
        # No internal token: no credentials for anyone, whatever is sent.
        for name, api in (("open-api", {}), ("public-token-only", {"token": API_TOKEN})):
            with self.subTest(api=name):
                base = self.start_api(name, api)
                for sent in ("", API_TOKEN, "guess"):
                    status, body = http_get(base + self.CREDENTIALS, token=sent)
                    self.assertEqual(status, 403, f"{name}, token {sent!r}: {body}")
                    self.assertNotIn("ha1", body)
        # With one: only that token gets them, a wrong one learns nothing.
        base = self.start_api("internal", {"token": API_TOKEN,
                                           "internal_token": API_INTERNAL_TOKEN})
        status, body = http_get(base + self.CREDENTIALS, token=API_INTERNAL_TOKEN)
        self.assertEqual(status, 200, body)
        self.assertIn("ha1_md5", body)
        for sent in ("", API_TOKEN, API_INTERNAL_TOKEN + "x", API_INTERNAL_TOKEN[:-1]):
            status, body = http_get(base + self.CREDENTIALS, token=sent)
            self.assertEqual(status, 401, f"token {sent!r}: {body}")
            self.assertNotIn("ha1", body)
            self.assertNotIn(API_INTERNAL_TOKEN, body)


class ControlPortUnderAttack(ProxyTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.control_port = free_port()
        cfg = edge_config(free_port(), self.control_port, [f"sip:{HOST}:{free_port()}"])
        path = write_yaml(os.path.join(self.tmp, "edge.yaml"), cfg)
        self.proc = self.cleanup.add(Process("evosip-edge", [require_role("edge"), "edge",
                                                               "--config", path], self.tmp))
        self.url = f"http://{HOST}:{self.control_port}"
        wait_http_ok(self.url + "/readyz", timeout=15, proc=self.proc)
        self.sockets = []
        self.addCleanup(self.close_sockets)

    def close_sockets(self) -> None:
        for s in self.sockets:
            s.close()

    def connect(self) -> socket.socket:
        s = socket.create_connection((HOST, self.control_port), timeout=5)
        self.sockets.append(s)
        return s

    def timed_get(self, path: str):
        t0 = time.monotonic()
        try:
            status, _ = http_get(self.url + path, timeout=1.0)
        except OSError as e:
            status = f"no answer: {e}"
        return status, time.monotonic() - t0

    def test_idle_connections_do_not_block_the_probes(self):
        for _ in range(300):
            self.connect()
        for path in ("/healthz", "/readyz", "/healthz"):
            status, took = self.timed_get(path)
            self.assertEqual(status, 200, f"{path} with 300 idle connections open")
            self.assertLess(took, 1.0, path)
        # The RPC answers too: an idle connection made room for it.
        self.assertIn("rpc.methods", rpc(self.url + "/rpc", "rpc.methods", timeout=2))
        self.assertTrue(self.proc.alive())

    def test_a_slowloris_connection_is_closed_after_the_deadline(self):
        s = self.connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: evosip\r\n")
        t0 = time.monotonic()
        closed_after = None
        while time.monotonic() - t0 < 20:
            try:
                s.sendall(b"X-Slow: 1\r\n")
                s.settimeout(1.0)
                if s.recv(4096) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                closed_after = time.monotonic() - t0
                break
        self.assertIsNotNone(closed_after, "a request trickling in was held open 20 s")
        self.assertLess(closed_after, 13, "closed, but long after the 10 s deadline")
        self.assertGreater(closed_after, 8, "closed before the deadline")
        status, took = self.timed_get("/healthz")
        self.assertEqual(status, 200)


class Undrain(RouterTestCase):
    def test_router_drain_then_undrain_accepts_new_work_again(self):
        p = self.platform()
        alice, bob = make_users(2, prefix="undrain")
        create_subscribers(p.api, [alice, bob])
        self.assertTrue(p.router.rpc("instance.drain").get("draining"))
        self.assertEqual(http_get(p.router.control_url + "/readyz")[0], 503)
        with SipClient("UDP", p.edge.addr, timeout=4) as c:
            first, reg = RawRegistration(c, alice[0]).register(alice[1])
            self.assertEqual((reg or first).status, 503, f"REGISTER while draining:\n{reg}")
        res = p.router.rpc("instance.undrain")
        self.assertEqual(res.get("draining"), False, res)
        self.assertEqual(http_get(p.router.control_url + "/readyz")[0], 200)
        with SipClient("UDP", p.edge.addr, timeout=4) as c:
            first, reg = RawRegistration(c, alice[0]).register(alice[1])
            self.assertEqual((reg or first).status, 200, f"REGISTER after undrain:\n{reg}")
            first, final = raw_invite(c, f"sip:{bob[0]}@{ROUTER_DOMAIN}", caller=alice[0],
                                      password=alice[1])
            self.assertIsNotNone(first, "no answer to an INVITE after undrain")
            self.assertNotEqual((final or first).status, 503,
                                f"INVITE after undrain:\n{final or first}")
        self.assertAlive(p.router)

    def test_media_and_app_drain_then_undrain_restore_readiness(self):
        for role in ("media", "app"):
            with self.subTest(role=role):
                port = free_port()
                cfg = role_config(role, self.tmp, {"listen": f"{HOST}:{port}"})
                path = write_yaml(os.path.join(self.tmp, f"{role}.yaml"), cfg)
                proc = self.cleanup.add(Process(role, [require_role(role), role, "--config",
                                                       path], self.tmp))
                url = f"http://{HOST}:{port}"
                wait_http_ok(url + "/readyz", timeout=15, proc=proc)
                self.assertTrue(rpc(url + "/rpc", "instance.drain").get("draining"))
                self.assertEqual(http_get(url + "/readyz")[0], 503)
                self.assertEqual(rpc(url + "/rpc", "instance.undrain").get("draining"), False)
                self.assertEqual(http_get(url + "/readyz")[0], 200)
                proc.stop()


if __name__ == "__main__":
    unittest.main()
