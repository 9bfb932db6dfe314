"""A role whose SIP, ng, api or control address is already taken says which address and exits
non-zero (a pod restarting on a busy port must not die silently of a signal)."""

import os
import socket
import subprocess
import unittest

from harness import HOST, ProxyTestCase, require_evosip, write_yaml


class PortTaken(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.bin = require_evosip()
        # One UDP port and one TCP listener held by this test for the whole case.
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((HOST, 0))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind((HOST, 0))
        self.tcp.listen(1)
        self.addCleanup(self.udp.close)
        self.addCleanup(self.tcp.close)
        self.busy_udp = f"{HOST}:{self.udp.getsockname()[1]}"
        self.busy_tcp = f"{HOST}:{self.tcp.getsockname()[1]}"

    def run_role(self, role, cfg):
        path = write_yaml(os.path.join(self.tmp, f"{role}.yaml"), cfg)
        try:
            p = subprocess.run([self.bin, role, "--config", path], capture_output=True,
                               timeout=10)
        except subprocess.TimeoutExpired:
            self.fail(f"evosip {role} kept running although its address is taken")
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def assertRefused(self, role, cfg, address):
        rc, err = self.run_role(role, cfg)
        self.assertGreater(rc, 0, f"{role}: exit status {rc} (negative = killed by a signal); "
                                  f"stderr: {err}")
        self.assertIn(address, err, f"{role}: stderr does not name {address}: {err}")
        self.assertIn("in use", err.lower(), f"{role}: stderr does not say why: {err}")

    def test_sip_address_taken(self):
        free_ctl = f"{HOST}:0"
        for role in ("edge", "router", "app"):
            with self.subTest(role=role):
                cfg = {"sip": {"listen": [f"udp:{self.busy_udp}"]},
                       "control": {"listen": free_ctl}}
                self.assertRefused(role, cfg, self.busy_udp)

    def test_control_address_taken(self):
        for role in ("edge", "router", "app"):
            with self.subTest(role=role):
                cfg = {"sip": {"listen": [f"udp:{HOST}:0"]},
                       "control": {"listen": self.busy_tcp}}
                self.assertRefused(role, cfg, self.busy_tcp)
        with self.subTest(role="media"):
            self.assertRefused("media", {"media": {"ng_listen": f"{HOST}:0"},
                                         "control": {"listen": self.busy_tcp}}, self.busy_tcp)

    def test_ng_and_api_address_taken(self):
        with self.subTest(role="media"):
            self.assertRefused("media", {"media": {"ng_listen": self.busy_udp},
                                         "control": {"listen": f"{HOST}:0"}}, self.busy_udp)
        with self.subTest(role="api"):
            db = os.path.join(self.tmp, "api.db")
            self.assertRefused("api", {"api": {"listen": self.busy_tcp,
                                               "database": f"sqlite://{db}"},
                                       "control": {"listen": f"{HOST}:0"}}, self.busy_tcp)


if __name__ == "__main__":
    unittest.main()
