"""The container image's root filesystem (deploy/image/build-rootfs.sh) is complete: the binary
runs from it alone, as the image's non-root user, and every role starts there with the image's
own configuration, answers /healthz and /readyz, and stops on SIGTERM. The filesystem stays
small (< 80 MB). Runs the binary under chroot (needs root, as CI has); `make image` packs the
same filesystem with podman/buildah."""

import json
import os
import shutil
import subprocess
import unittest
import urllib.request

from harness import HOST, Process, free_port, http_get, make_tmpdir, require_evosip, wait_http_ok

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_ROOTFS = os.path.join(REPO, "deploy", "image", "build-rootfs.sh")
BUILD_IMAGE = os.path.join(REPO, "deploy", "image", "build-image.sh")
CONTAINERFILE = os.path.join(REPO, "deploy", "image", "Containerfile")
MAX_BYTES = 80 * 1000 * 1000
UID = 10001


def tree_bytes(root):
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


class ImageRootfs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bin = require_evosip()
        if os.geteuid() != 0:
            raise unittest.SkipTest("chroot needs root (CI runs as root)")
        cls.tmp = make_tmpdir("evosip-image-")
        cls.rootfs = os.path.join(cls.tmp, "rootfs")
        # The build folder holds the prompts (BUILD/sounds) beside the binary.
        build_dir = os.environ.get("EVOSIP_BUILD_DIR") or os.path.dirname(os.path.abspath(cls.bin))
        out = subprocess.run([BUILD_ROOTFS, build_dir, cls.rootfs], capture_output=True,
                             text=True, timeout=120, env=dict(os.environ, EVOSIP_BIN=cls.bin))
        if out.returncode != 0:
            raise AssertionError(f"build-rootfs.sh failed: {out.stdout}\n{out.stderr}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def chroot_argv(self, *args):
        return ["chroot", f"--userspec={UID}:{UID}", self.rootfs, "/usr/bin/evosip", *args]

    def test_version_runs_from_the_filesystem_alone(self):
        expected = subprocess.run([self.bin, "--version"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        out = subprocess.run(self.chroot_argv("--version"), capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), expected)

    def test_small_and_non_root(self):
        size = tree_bytes(self.rootfs)
        print(f"\nimage root filesystem: {size / 1e6:.1f} MB")
        self.assertLess(size, MAX_BYTES)
        with open(os.path.join(self.rootfs, "etc", "passwd")) as f:
            self.assertIn(f"evosip:x:{UID}:{UID}:", f.read())
        with open(CONTAINERFILE) as f:
            text = f.read()
        self.assertIn("FROM scratch", text)
        self.assertIn(f"USER {UID}:{UID}", text)
        sounds = os.path.join(self.rootfs, "usr", "share", "evosip", "sounds", "default", "en")
        for name in ("welcome", "menu", "invalid", "voicemail-greeting", "goodbye", "beep"):
            self.assertTrue(os.path.isfile(os.path.join(sounds, f"{name}.wav")), name)
        self.assertTrue(os.path.isfile(
            os.path.join(self.rootfs, "etc", "ssl", "certs", "ca-certificates.crt")))

    def start_role(self, role, env):
        control = free_port()
        env = dict(env, EVOSIP_CONTROL_LISTEN=f"{HOST}:{control}")
        proc = Process(f"image-{role}", self.chroot_argv(role, "--config",
                                                         f"/etc/evosip/{role}.yaml"),
                       self.tmp, env=env)
        self.addCleanup(proc.stop)
        wait_http_ok(f"http://{HOST}:{control}/healthz", timeout=10, proc=proc)
        wait_http_ok(f"http://{HOST}:{control}/readyz", timeout=10, proc=proc)
        return proc

    def stop_role(self, proc):
        rc = proc.stop(timeout=10)
        self.assertEqual(rc, 0, proc.tail())

    def test_every_role_starts_with_the_image_config(self):
        for role in ("edge", "router", "app", "media"):
            with self.subTest(role=role):
                port = free_port()
                if role == "media":
                    env = {"EVOSIP_MEDIA_NG_LISTEN": f"{HOST}:{port}"}
                else:
                    env = {"EVOSIP_SIP_LISTEN": f"udp:{HOST}:{port}"}
                self.stop_role(self.start_role(role, env))

    def test_api_writes_its_database_as_the_image_user(self):
        port = free_port()
        proc = self.start_role("api", {"EVOSIP_API_LISTEN": f"{HOST}:{port}"})
        req = urllib.request.Request(f"http://{HOST}:{port}/v1/domains", method="POST",
                                     data=json.dumps({"name": "image.test"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            self.assertEqual(resp.status, 201)
        status, body = http_get(f"http://{HOST}:{port}/v1/domains/image.test")
        self.assertEqual(status, 200, body)
        db = os.path.join(self.rootfs, "var", "lib", "evosip", "evosip.db")
        self.assertEqual(os.stat(db).st_uid, UID)
        self.stop_role(proc)

    def test_oci_image_builds_offline(self):
        podman = shutil.which("podman")
        if not podman:
            self.skipTest("podman is not installed (make image installs it)")
        # A build folder of links: build-image.sh writes its image/ folder there.
        build = os.path.join(self.tmp, "build")
        os.makedirs(build)
        os.symlink(os.path.abspath(self.bin), os.path.join(build, "evosip"))
        os.symlink(os.path.join(self.rootfs, "usr", "share", "evosip", "sounds"),
                   os.path.join(build, "sounds"))
        tag = f"localhost/evosip-test:{os.getpid()}"
        self.addCleanup(subprocess.run, [podman, "rmi", "-f", tag], capture_output=True,
                        timeout=60)
        out = subprocess.run([BUILD_IMAGE, build, tag], capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, EVOSIP_BIN=self.bin))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        archive = os.path.join(build, "image", f"evosip-{os.getpid()}.tar")
        self.assertTrue(os.path.isfile(archive), out.stdout)
        inspect = subprocess.run([podman, "image", "inspect", tag], capture_output=True,
                                 text=True, timeout=60)
        self.assertEqual(inspect.returncode, 0, inspect.stderr)
        image = json.loads(inspect.stdout)[0]
        self.assertEqual(image["Config"]["User"], f"{UID}:{UID}")
        self.assertEqual(image["Config"]["Entrypoint"], ["/usr/bin/evosip"])
        # `kubectl exec POD -- evosip ctl ...` finds the binary.
        self.assertIn("PATH=/usr/bin", image["Config"]["Env"])
        self.assertEqual(len(image["RootFS"]["Layers"]), 1)  # FROM scratch: one layer, ours
        print(f"\nimage {tag}: {image['Size'] / 1e6:.1f} MB, archive "
              f"{os.path.getsize(archive) / 1e6:.1f} MB")
        self.assertLess(image["Size"], MAX_BYTES)


if __name__ == "__main__":
    unittest.main()
