"""Start-up configuration of `evosip edge`: unknown keys and bad values stop it with one
line naming the key; EVOSIP_* env overrides; RPC bearer token; clean SIGTERM."""

import os
import signal
import subprocess
import unittest

from harness import (HOST, Process, ProxyTestCase, SipClient, edge_config, free_port,
                     port_bound, require_evosip, rpc_raw, start_evosip_edge, wait_http_ok,
                     wait_port, write_yaml)


class EdgeConfig(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.bin = require_evosip()

    def _run_bad(self, overrides, env=None):
        cfg = edge_config(free_port(), free_port(), [f"sip:{HOST}:{free_port()}"],
                          overrides=overrides)
        path = write_yaml(os.path.join(self.tmp, "bad.yaml"), cfg)
        return self._run_cfg(path, env)

    def _run_cfg(self, path, env=None):
        full_env = dict(os.environ, **(env or {}))
        try:
            p = subprocess.run([self.bin, "edge", "--config", path], env=full_env,
                               capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("evosip edge kept running with a bad config (should exit at start-up)")
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def assertNamesKey(self, rc, stderr, key):
        self.assertNotEqual(rc, 0, f"bad config accepted; stderr: {stderr}")
        lines = [l for l in stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, f"expected one line on stderr, got:\n{stderr}")
        self.assertIn(key, lines[0], f"stderr does not name {key!r}: {lines[0]}")

    def test_unknown_keys(self):
        for overrides, key in (({"edge": {"routerz": ["sip:127.0.0.1:5070"]}}, "routerz"),
                               ({"bogus_top": 1}, "bogus_top"),
                               ({"sip": {"lissen": []}}, "lissen")):
            with self.subTest(key=key):
                self.assertNamesKey(*self._run_bad(overrides), key)

    def test_bad_values(self):
        for overrides, key in (({"workers": "many"}, "workers"),
                               ({"edge": {"router_timeout_ms": "soon"}}, "router_timeout_ms"),
                               ({"edge": {"routers": ["not a sip uri"]}}, "routers"),
                               ({"sip": {"listen": ["carrier-pigeon:127.0.0.1:1"]}}, "listen"),
                               ({"log": {"format": "xml"}}, "format"),
                               ({"edge": {"rate_limit": {"requests_per_second": -3}}},
                                "requests_per_second"),
                               ({"edge": {"rate_limit": {"exempt": ["10.0.0.1/8"]}}},
                                "rate_limit.exempt"),
                               ({"edge": {"auth_ban": {"exempt": ["not-a-network"]}}},
                                "auth_ban.exempt"),
                               ({"edge": {"auth_ban": {"window_s": 0}}}, "window_s"),
                               ({"edge": {"max_forwards": 0}}, "max_forwards"),
                               ({"sip": {"tcp": {"max_connections_per_ip": -1}}},
                                "max_connections_per_ip"),
                               ({"sip": {"tcp": {"message_timeout_s": 0}}},
                                "message_timeout_s"),
                               ({"edge": {"egress_addresses": ["edge.example"]}},
                                "egress_addresses"),
                               ({"edge": {"egress_addresses": ["10.0.0.1", "10.0.0.2"]}},
                                "egress_addresses"),
                               ({"sip": {"free_bind": "sometimes"}}, "free_bind")):
            with self.subTest(key=key):
                self.assertNamesKey(*self._run_bad(overrides), key)

    def test_bad_env_value_names_key(self):
        cfg = edge_config(free_port(), free_port(), [f"sip:{HOST}:{free_port()}"])
        path = write_yaml(os.path.join(self.tmp, "ok.yaml"), cfg)
        self.assertNamesKey(*self._run_cfg(path, {"EVOSIP_WORKERS": "lots"}), "workers")

    def test_env_overrides(self):
        r1, r2 = f"sip:{HOST}:{free_port()}", f"sip:{HOST}:{free_port()}"
        env_port = free_port()
        # started by hand: start_evosip_edge would wait on the file's SIP port
        file_port, control_port = free_port(), free_port()
        cfg = edge_config(file_port, control_port, [r1])
        path = write_yaml(os.path.join(self.tmp, "edge.yaml"), cfg)
        proc = self.cleanup.add(Process("edge-env", [self.bin, "edge", "--config", path],
                                        self.tmp, env={
            "EVOSIP_SIP_LISTEN": f"udp:{HOST}:{env_port},tcp:{HOST}:{env_port}",
            "EVOSIP_EDGE_ROUTERS": f"{r2}",
        }))
        wait_http_ok(f"http://{HOST}:{control_port}/readyz", timeout=15, proc=proc)
        wait_port(env_port, "udp", proc=proc)
        wait_port(env_port, "tcp", proc=proc)
        self.assertFalse(port_bound(file_port, "udp"), "file's sip.listen should be overridden")
        with SipClient("UDP", (HOST, env_port)) as c:
            resp = c.transact(c.request("OPTIONS", f"sip:{HOST}:{env_port}"))
            self.assertIsNotNone(resp)
            self.assertEqual(resp.status, 200)
        status, body = rpc_raw(f"http://{HOST}:{control_port}/rpc", "dispatcher.list")
        self.assertEqual(status, 200, body)
        self.assertIn(r2, body)
        self.assertNotIn(r1, body)
        self.assertEqual(proc.stop(timeout=5), 0, "SIGTERM should exit 0")

    def test_rpc_token(self):
        proxy = start_evosip_edge(self.tmp, self.cleanup, [f"sip:{HOST}:{free_port()}"],
                                  overrides={"control": {"token": "s3cret-token"}})
        url = proxy.control_url + "/rpc"
        self.assertEqual(rpc_raw(url, "dispatcher.list")[0], 401)
        self.assertEqual(rpc_raw(url, "dispatcher.list", token="wrong")[0], 401)
        status, body = rpc_raw(url, "dispatcher.list", token="s3cret-token")
        self.assertEqual(status, 200, body)
        self.assertIn('"result"', body)

    def test_sigterm_exits_zero(self):
        proxy = start_evosip_edge(self.tmp, self.cleanup, [f"sip:{HOST}:{free_port()}"])
        proxy.proc.send_signal(signal.SIGTERM)
        try:
            rc = proxy.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("evosip edge did not stop within 5 s of SIGTERM")
        self.assertEqual(rc, 0, proxy.proc.tail())


if __name__ == "__main__":
    unittest.main()
