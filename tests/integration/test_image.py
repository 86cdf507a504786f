"""logpipe's own image (``Containerfile``): built, then run non-root with a read-only
root file system, and a line sent to its socket lands in Elasticsearch.

There is no registry here to pull the default base (``python:3.12-slim``) from, so the
test builds on Debian 12 made by debootstrap from Debian's mirror (python3 and its venv
module), imported once as a local image and kept in the cache beside Elasticsearch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.podman import Podman, podman_env
from tests.integration.conftest import ES, ROOT, cache_dir, free_port, wait_for

# A cold cache debootstraps Debian (about 1.5 min here) before the build (about 1 min).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

BASE = "localhost/logpipe-base:bookworm"
TAG = "localhost/logpipe:test"
UID = 10001
CA_BUNDLE = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"


def _podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result


def _debian_mirror() -> str:
    """The machine's own Debian mirror (apt's sources), else deb.debian.org."""
    for source in Path("/etc/apt/sources.list.d").glob("*.sources"):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _ensure_base() -> None:
    if _podman("image", "exists", BASE, check=False).returncode == 0:
        return
    tarball = cache_dir() / "debian-bookworm-python3.tar"
    if not tarball.exists():
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir()))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
                 "bookworm", str(rootfs), _debian_mirror()],
                check=True, capture_output=True, timeout=1200,
            )  # fmt: skip
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(rootfs / cache, ignore_errors=True)
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    _podman("import", str(tarball), BASE)


@pytest.fixture(scope="module")
def image(podman: Podman) -> Iterator[str]:
    # `podman` for its lock: one test run at a time builds, tags and runs on this machine.
    cache_dir().mkdir(parents=True, exist_ok=True)
    _ensure_base()
    # --network host and the machine's CA bundle: the build's pip reaches PyPI the way
    # this machine does (through a TLS-inspecting proxy here).
    _podman(
        "build", "--network", "host", "--build-arg", f"BASE={BASE}",
        "--secret", f"id=ca-certificates,src={CA_BUNDLE}",
        "-f", str(ROOT / "Containerfile"), "-t", TAG, str(ROOT), timeout=1200,
    )  # fmt: skip
    yield TAG
    _podman("rmi", "-f", TAG, check=False)


def test_the_image_runs_non_root_read_only_and_ships(image: str, es: ES, tmp_path: Path) -> None:
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"image size: {size / 2**20:.0f} MiB (on debootstrapped Debian 12)")
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    for d in (run_dir, data_dir):
        d.mkdir()
        os.chown(d, UID, UID)  # the image's user, as an operator would
    admin = f"127.0.0.1:{free_port()}"
    stream = "logs-logpipe-image"
    (tmp_path / "logpipe.toml").write_text(
        "[admin]\n"
        f'listen = "{admin}"\n'
        "[inputs.devlog]\n"
        'type = "devlog"\n'
        'path = "/run/logpipe/dev-log"\n'
        "[elasticsearch]\n"
        f'hosts = ["{es.url}"]\n'
        f'data_stream = "{stream}"\n'
        'dlq_data_stream = "logs-logpipe.dlq-image"\n'
        'flush_interval = "200ms"\n'
    )
    mounts = [
        "-v", f"{run_dir}:/run/logpipe", "-v", f"{data_dir}:/var/lib/logpipe",
        "-v", f"{tmp_path / 'logpipe.toml'}:/etc/logpipe/logpipe.toml:ro",
    ]  # fmt: skip
    setup = _podman("run", "--rm", "--network", "host", *mounts, image, "setup",
                    "-c", "/etc/logpipe/logpipe.toml")  # fmt: skip
    assert "installed" in setup.stdout
    name = f"logpipe-image-{os.getpid()}"
    _podman("run", "-d", "--name", name, "--read-only", "--network", "host", *mounts, image)
    try:
        socket_path = run_dir / "dev-log"
        try:
            wait_for(socket_path.exists, 30, "the image's /dev/log socket")
        except AssertionError as exc:
            logs = _podman("logs", name, check=False)
            raise AssertionError(f"{exc}\n{logs.stdout}{logs.stderr}") from None
        assert _podman("exec", name, "id", "-u").stdout.strip() == str(UID)
        denied = _podman("exec", name, "touch", "/opt/logpipe/x", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        top = _podman("top", name, "user", "args").stdout.splitlines()[1:]
        assert top and all("logpipe" in row and row.split()[0] != "root" for row in top), top
        subprocess.run(
            ["logger", "-u", str(socket_path), "-t", "fromhost", "hello from the image test"],
            check=True,
        )
        wait_for(lambda: es.count(stream) == 1, 20, "the line in Elasticsearch")
        [hit] = es.search(stream)
        assert hit["_source"]["message"] == "hello from the image test"
        assert hit["_source"]["process.name"] == "fromhost"
    finally:
        _podman("stop", "-t", "20", name, check=False)
        logs = _podman("logs", name, check=False)
        _podman("rm", "-f", name, check=False)
    assert "Stopped cleanly" in logs.stderr + logs.stdout, logs.stderr[-2000:]
