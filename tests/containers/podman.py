"""Real containers for the tests: podman from Debian behind its Docker-compatible API.

There is no registry here, so the test image is made with ``podman import`` from a tar
of a rootfs holding busybox-static and its applet links. ``podman system service``
serves the Docker Engine API on a unix socket; the ``docker`` CLI (or podman's own,
which takes the same arguments for what the tests do) drives it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
IMAGE = "localhost/logpipe-busybox:test"
TEST_LABEL = "logpipe.test=1"
# One test run at a time uses the machine's podman: container names are fixed, and the
# API-mode tests see every container podman runs. The lock is the kernel's, so a run
# that is killed releases it; its containers stay behind, and the next run removes them.
LOCK_PATH = os.path.join(tempfile.gettempdir(), "logpipe-tests-podman.lock")
LOCK_WAIT_S = 45 * 60


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(HERE / "containers.conf")}


def ensure_image() -> None:
    env = podman_env()
    if subprocess.run(["podman", "image", "exists", IMAGE], env=env).returncode == 0:
        return
    busybox = "/bin/busybox"  # Debian's busybox-static: no libraries needed in the image
    applets = subprocess.run(
        [busybox, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for d in ("bin", "dev", "etc", "proc", "sys", "tmp"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            tar.add(busybox, arcname="bin/busybox")
            for name in applets:
                if name == "busybox":
                    continue
                link = tarfile.TarInfo(f"bin/{name}")
                link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
                tar.addfile(link)
        subprocess.run(
            ["podman", "import", "-q", str(tar_path), IMAGE],
            env=env,
            check=True,
            capture_output=True,
        )


class Podman:
    """The API service on ``socket_path`` and a CLI bound to it."""

    def __init__(self, workdir: Path) -> None:
        self.socket_path = str(workdir / "podman.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: TextIO | None = None
        self.log_path = workdir / "podman-service.log"

    def start(self) -> None:
        self._take_the_lock()
        removed = self.remove_test_containers()
        if removed:
            print(f"podman: removed {removed} test container(s) an earlier, killed run left")
        ensure_image()
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket_path}"],
            env=podman_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket_path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"podman service did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def _take_the_lock(self) -> None:
        self._lock = open(LOCK_PATH, "w")
        deadline = time.monotonic() + LOCK_WAIT_S
        said = False
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another test run held {LOCK_PATH} for {LOCK_WAIT_S} s"
                    ) from None
            if not said:
                print(f"podman: another test run holds {LOCK_PATH}; waiting", file=sys.stderr)
                said = True
            time.sleep(1)

    def remove_test_containers(self) -> int:
        """Remove every container with the test label; only the test's own: a developer's
        machine may run others. Returns how many there were."""
        ids = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={TEST_LABEL}"],
            env=podman_env(),
            capture_output=True,
            text=True,
        ).stdout.split()
        if ids:
            subprocess.run(["podman", "rm", "-f", *ids], env=podman_env(), capture_output=True)
        return len(ids)

    def stop(self) -> None:
        self.remove_test_containers()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
        if self._lock is not None:
            self._lock.close()  # releases the lock

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against the API socket (podman's CLI where docker is absent)."""
        docker = shutil.which("docker")
        if docker and args[:2] != ("rm", "-f"):
            cmd = [docker, *args]
            env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket_path}"}
        else:
            cmd = ["podman", *args]
            env = podman_env()
        result = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout, input=input)
        out = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {out.stderr}")
        return out

    def run(self, *args: str, detach: bool = True, stdin: bytes | None = None) -> str:
        """``docker run`` a test container; returns its id (detached) or its output.

        ``stdin``: bytes fed to the container's standard input (runs attached).
        """
        flags = ["-i"] if stdin is not None else ["-d"] if detach else []
        out = self.cli("run", *flags, "--label", TEST_LABEL, *args, input=stdin)
        return out.stdout.strip()


RM_LINES = 500


def run_rm_burst(podman: Podman, prefix: str, count: int = 3) -> list[str]:
    """``docker run --rm`` ``count`` containers in a row, each writing RM_LINES numbered
    lines and exiting at once; returns their names. Several, because one lucky run would
    prove little: podman can remove such a container before its events are delivered."""
    names = [f"{prefix}-{n}" for n in range(count)]
    for name in names:
        podman.run(
            "--rm",
            "--name",
            name,
            IMAGE,
            "sh",
            "-c",
            f'i=1; while [ $i -le {RM_LINES} ]; do echo "bye $i"; i=$((i+1)); done',
            detach=False,
        )
    return names
