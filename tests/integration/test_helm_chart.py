"""The Helm chart (deploy/helm/evosip) validated offline: `helm lint --strict`, `helm template`
with the default values and every examples/*.yaml, each rendered object against the Kubernetes
schemas with unknown fields refused, NetworkAttachmentDefinitions by their CNI shape, the
references between objects and the drain timing (deploy/helm/test/validate.sh). Broken charts
fail it. Then every role's rendered ConfigMap, with the environment its Deployment sets, starts
the real binary on 127.0.0.1 and turns ready: every rendered key is one the role knows. The
edges' FRR configuration parses (vtysh -C), and its announcer puts the anycast address on the
loopback of a network namespace exactly while the edge's /readyz answers 200."""

import json
import os
import re
import shutil
import subprocess
import unittest

from harness import (HOST, Cleanup, Process, free_port, http_get, make_tmpdir, require_evosip,
                     start_redis, wait_http_ok, wait_until)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(REPO, "deploy", "helm", "evosip")
VALIDATE = os.path.join(REPO, "deploy", "helm", "test", "validate.sh")
SECRETS_MOUNT = "/run/secrets/evosip/"
SECRET_KEYS = ("control_token", "nonce_secret", "flow_secret", "api_token", "api_internal_token",
               "redis_password")


def run_validate(chart, render_dir=None):
    env = dict(os.environ)
    if render_dir:
        env["EVOSIP_RENDER_DIR"] = render_dir
    return subprocess.run([VALIDATE, chart], capture_output=True, text=True, timeout=300, env=env)


class HelmChart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tmpdir("evosip-helm-")
        cls.rendered = os.path.join(cls.tmp, "rendered")
        cls.result = run_validate(CHART, cls.rendered)
        if cls.result.returncode == 2:
            raise AssertionError(cls.result.stderr)  # tools missing: `make deps` installs them

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_chart_and_examples_are_valid(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout + self.result.stderr)
        names = sorted(f[:-5] for f in os.listdir(self.rendered) if f.endswith(".yaml"))
        examples = sorted(f[:-5] for f in os.listdir(os.path.join(CHART, "examples")))
        self.assertEqual(names, sorted(["default"] + examples))
        print("\n" + self.result.stdout.strip())

    def broken_copy(self, name, template, old, new):
        """validate.sh on a copy of the chart (default values only: one broken render is
        enough, and each takes seconds) with `old` replaced by `new` in one file."""
        copy = os.path.join(self.tmp, name)
        shutil.copytree(CHART, copy, ignore=shutil.ignore_patterns("examples"))
        os.makedirs(os.path.join(copy, "examples"))
        path = os.path.join(copy, template)
        text = ""
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            self.assertIn(old, text, f"{template} no longer holds what the test breaks")
        with open(path, "w") as f:
            f.write(text.replace(old, new, 1) if old else new)
        return run_validate(copy)

    def assertBroken(self, result, message):
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(message, result.stderr)

    def test_unknown_field_fails(self):
        self.assertBroken(
            self.broken_copy("typo", "templates/deployments.yaml", "readinessProbe:",
                             "readinesProbe:"),
            "unknown field .spec.template.spec.containers[0].readinesProbe")

    def test_wrong_type_fails(self):
        self.assertBroken(
            self.broken_copy("type", "templates/hpa.yaml", "minReplicas: {{ $a.minReplicas }}",
                             "minReplicas: {{ $a.minReplicas | quote }}"),
            "spec/minReplicas must be integer")

    def test_grace_period_shorter_than_drain_fails(self):
        self.assertBroken(
            self.broken_copy("grace", "templates/_helpers.tpl",
                             "add .Values.drain.preStopSleepSeconds .Values.drain.timeoutSeconds "
                             ".Values.drain.extraGraceSeconds", ".Values.drain.timeoutSeconds"),
            "terminationGracePeriodSeconds 30 does not exceed preStop 5 s + drain 30 s")

    def test_bad_network_attachment_fails(self):
        self.assertBroken(
            self.broken_copy("nad", "templates/networkattachment.yaml", '"master" $n.master',
                             '"master" ""'),
            "spec.config.master must name an interface")

    def test_values_outside_the_schema_fail(self):
        self.assertBroken(
            self.broken_copy("values", "examples/typo.yaml", "", "edge:\n  replicaz: 3\n"),
            "FAIL typo: helm lint --strict")


def frr_configmaps(rendered):
    """(values name, ConfigMap data) of every rendered FRR ConfigMap."""
    out = []
    for name in sorted(f[:-5] for f in os.listdir(rendered) if f.endswith(".json")):
        with open(os.path.join(rendered, f"{name}.json")) as f:
            for o in json.load(f):
                if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-frr"):
                    out.append((name, o["data"]))
    return out


READYZ_SERVER = """
import http.server, sys
port, status_file = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(status_file) as f:
            code = int(f.read().strip())
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


class EdgeAnycast(unittest.TestCase):
    """The FRR container's configuration and announcer, rendered from examples with edge.frr."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tmpdir("evosip-helm-frr-")
        cls.rendered = os.path.join(cls.tmp, "rendered")
        result = run_validate(CHART, cls.rendered)
        if result.returncode != 0:
            raise AssertionError(result.stdout + result.stderr)
        cls.frr = frr_configmaps(cls.rendered)
        if not cls.frr:
            raise AssertionError("no example renders edge.frr")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_frr_configuration_parses(self):
        vtysh = shutil.which("vtysh")
        if not vtysh:
            self.skipTest("vtysh (Debian frr) is not installed")
        protocols = set()
        for name, data in self.frr:
            path = os.path.join(self.tmp, f"{name}-frr.conf")
            with open(path, "w") as f:
                f.write(data["frr.conf"])
            out = subprocess.run([vtysh, "-C", "-f", path], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 0, f"{name}: {out.stdout}{out.stderr}")
            protocols |= {p for p in ("bgp", "ospf") if f"router {p}" in data["frr.conf"]}
        self.assertEqual(protocols, {"bgp", "ospf"})

    def lo_has(self, ns, address):
        out = subprocess.run(["ip", "-n", ns, "-o", "addr", "show", "dev", "lo"],
                             capture_output=True, text=True, timeout=5)
        return f" {address}/32 " in out.stdout

    def test_anycast_address_follows_readiness(self):
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root (CI runs as root)")
        name, data = self.frr[0]
        address = re.search(r"^addr=([0-9.]+)/32$", data["announce.sh"], re.M).group(1)
        port = int(re.search(r"^ready=http://127.0.0.1:(\d+)/readyz$", data["announce.sh"],
                             re.M).group(1))
        ns = f"evosip-frr-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns], timeout=10)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
        cleanup = Cleanup()
        self.addCleanup(cleanup.stop_all)
        status = os.path.join(self.tmp, "status")
        server = os.path.join(self.tmp, "readyz.py")
        announce = os.path.join(self.tmp, "announce.sh")
        with open(server, "w") as f:
            f.write(READYZ_SERVER)
        with open(announce, "w") as f:
            f.write(data["announce.sh"])
        with open(status, "w") as f:
            f.write("503")
        cleanup.add(Process("readyz", ["ip", "netns", "exec", ns, "python3", server, str(port),
                                       status], self.tmp))
        # FRR itself is the image's; here a process that lives as long as it would.
        frr = cleanup.add(Process("announce", ["ip", "netns", "exec", ns, "sh", announce],
                                  self.tmp, env={"FRR_START": "sleep 600"}))

        def set_ready(code, present, what):
            with open(status, "w") as f:
                f.write(str(code))
            wait_until(lambda: self.lo_has(ns, address) == present, 5, what)

        set_ready(503, False, "no anycast address while the edge is not ready")
        set_ready(200, True, "the anycast address once the edge is ready")
        set_ready(503, False, "the address withdrawn when the edge stops being ready")
        set_ready(200, True, "the address back when the edge is ready again")
        self.assertEqual(frr.stop(timeout=5), 0, frr.tail())
        self.assertFalse(self.lo_has(ns, address), "the address outlived SIGTERM")


class RenderedConfigs(unittest.TestCase):
    """Each rendered ConfigMap started by the real role, with its Deployment's environment."""

    @classmethod
    def setUpClass(cls):
        cls.bin = require_evosip()
        cls.tmp = make_tmpdir("evosip-helm-configs-")
        cls.rendered = os.path.join(cls.tmp, "rendered")
        result = run_validate(CHART, cls.rendered)
        if result.returncode != 0:
            raise AssertionError(result.stdout + result.stderr)
        cls.secrets = os.path.join(cls.tmp, "secrets")
        os.makedirs(cls.secrets)
        for key in SECRET_KEYS:
            with open(os.path.join(cls.secrets, key), "w") as f:
                f.write(f"{key}-0123456789abcdef\n")
        with open(os.path.join(cls.secrets, "database_url"), "w") as f:
            f.write(f"sqlite://{cls.tmp}/api.db\n")
        cls.sounds = os.path.join(os.path.dirname(os.path.abspath(cls.bin)), "sounds")
        if not os.path.isdir(cls.sounds):
            cls.sounds = os.path.join(REPO, "build", "sounds")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.cleanup = Cleanup()
        self.addCleanup(self.cleanup.stop_all)

    def has_role(self, role):
        out = subprocess.run([self.bin, "--help"], capture_output=True, text=True, timeout=10)
        return re.search(rf"^\s+{role}\s", out.stdout, re.MULTILINE) is not None

    def objects(self, name):
        with open(os.path.join(self.rendered, f"{name}.json")) as f:
            return json.load(f)

    def pod_env(self, deployment):
        """The literal environment the Deployment gives its evosip container, as on a pod."""
        env = {}
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            if c["name"] != "evosip":
                continue
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = re.sub(r"\$\(POD_IP\)", HOST, e["value"])
        return env

    def local_addresses(self, role, redis):
        """Loopback ports instead of the pod's wildcard addresses, and the test's own folders."""
        port = free_port()
        env = {"EVOSIP_CONTROL_LISTEN": f"{HOST}:{free_port()}"}
        if role == "edge":
            env["EVOSIP_SIP_LISTEN"] = f"udp:{HOST}:{port},tcp:{HOST}:{port}"
        elif role in ("router", "app"):
            env["EVOSIP_SIP_LISTEN"] = f"udp:{HOST}:{port}"
        elif role == "media":
            env["EVOSIP_MEDIA_NG_LISTEN"] = f"{HOST}:{port}"
        elif role == "api":
            env["EVOSIP_API_LISTEN"] = f"{HOST}:{port}"
        if role == "controller":
            # No cluster here: an API address that refuses connections (the controller is ready
            # and retries), the namespace given, the system's trust store.
            env["EVOSIP_CONTROLLER_KUBERNETES_API"] = f"https://{HOST}:{free_port()}"
            env["EVOSIP_CONTROLLER_KUBERNETES_NAMESPACE"] = "evosip"
            env["EVOSIP_CONTROLLER_KUBERNETES_CA_FILE"] = ""
        if role == "router":
            env["EVOSIP_STORE_REDIS_HOST"] = HOST
            env["EVOSIP_STORE_REDIS_PORT"] = str(redis.port)
        if role == "app":
            env["EVOSIP_APP_SOUNDS_DIR"] = self.sounds
            voicemail = os.path.join(self.tmp, "voicemail")
            os.makedirs(voicemail, exist_ok=True)
            env["EVOSIP_APP_VOICEMAIL_DIR"] = voicemail
        return env

    def start_config(self, values_name, role, text, pod_env, redis):
        path = os.path.join(self.tmp, f"{values_name}-{role}.yaml")
        with open(path, "w") as f:
            f.write(text.replace(SECRETS_MOUNT, self.secrets + "/"))
        env = dict(pod_env, **self.local_addresses(role, redis))
        proc = self.cleanup.add(Process(f"{values_name}-{role}", [self.bin, role, "--config", path],
                                        self.tmp, env=env))
        control = env["EVOSIP_CONTROL_LISTEN"]
        try:
            wait_http_ok(f"http://{control}/readyz", timeout=15, proc=proc)
        except Exception as e:  # the role exited or never turned ready: show why
            self.fail(f"{values_name}: {role} did not start with its rendered config: {e}\n"
                      f"{proc.tail()}")
        status, _ = http_get(f"http://{control}/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(proc.stop(timeout=10), 0, proc.tail())

    def test_a_key_the_role_does_not_know_is_refused(self):
        edge = next(o for o in self.objects("default") if o["kind"] == "ConfigMap"
                    and o["metadata"]["labels"]["app.kubernetes.io/component"] == "edge")
        text = edge["data"]["edge.yaml"].replace("\nedge:\n", "\nedge:\n  rooters: []\n", 1)
        path = os.path.join(self.tmp, "typo-edge.yaml")
        with open(path, "w") as f:
            f.write(text.replace(SECRETS_MOUNT, self.secrets + "/"))
        env = dict(os.environ, **self.local_addresses("edge", None))
        out = subprocess.run([self.bin, "edge", "--config", path], capture_output=True,
                             text=True, timeout=15, env=env)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("unknown configuration key 'edge.rooters'", out.stderr)

    def test_every_rendered_config_starts_its_role(self):
        redis = start_redis(self.tmp, self.cleanup)
        password = "redis_password-0123456789abcdef"
        self.assertEqual(redis.cli("config", "set", "requirepass", password)[0], 0)
        started = 0
        for name in sorted(f[:-5] for f in os.listdir(self.rendered) if f.endswith(".yaml")):
            objects = self.objects(name)
            deployments = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o
                           for o in objects if o["kind"] == "Deployment"}
            for cm in (o for o in objects if o["kind"] == "ConfigMap"
                       and o["metadata"]["labels"].get("app.kubernetes.io/component") in deployments):
                role = cm["metadata"]["labels"]["app.kubernetes.io/component"]
                key = f"{role}.yaml"
                if key not in cm.get("data", {}):
                    continue
                with self.subTest(values=name, role=role):
                    if not self.has_role(role):
                        self.skipTest(f"this evosip has no `{role}` role")
                    self.start_config(name, role, cm["data"][key],
                                      self.pod_env(deployments[role]), redis)
                    started += 1
        # default, minimal, production, controller: five roles each at least
        self.assertGreaterEqual(started, 20)


if __name__ == "__main__":
    unittest.main()
