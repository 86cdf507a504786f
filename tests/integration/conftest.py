"""Fixtures for tests against the real thing: Elasticsearch, the logpipe process, clients.

One Elasticsearch node per test session (the pinned integ-test-zip, fetched by
scripts/es_local.py). Each test gets its own data streams, so tests never see
each other's documents, and its own logpipe process started as an operator would:
``logpipe setup -c FILE`` then ``logpipe run -c FILE``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from es_local import ElasticsearchNode, cache_dir  # noqa: E402  (scripts/es_local.py)

from tests.containers.podman import Podman  # noqa: E402

ES_VERSION = os.environ.get("LOGPIPE_ES_VERSION", "8.19.7")
# LOGPIPE_TEST_LOG_LEVEL=debug: the logpipe processes the tests start log at that level.
LOG_LEVEL = (
    ["--log-level", os.environ["LOGPIPE_TEST_LOG_LEVEL"]]
    if os.environ.get("LOGPIPE_TEST_LOG_LEVEL")
    else []
)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_for_count(
    es: ES, index: str, expected: int, timeout: float, query: dict[str, Any] | None = None
) -> int:
    """Wait until ``index`` holds at least ``expected`` matching documents; fail with the count."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = es.count(index, query)
        if count >= expected:
            return count
        time.sleep(0.3)
    where = f"matching {query}, {es.count(index)} in all" if query else "in all"
    raise AssertionError(
        f"timed out after {timeout}s: {count} of {expected} documents in {index} ({where})"
    )


def assert_numbered_lines(es: ES, index: str, query: dict[str, Any], count: int) -> None:
    """Lines ``"<word> N"`` for every N in 1..count are in ``index``, each once."""
    wait_for_count(es, index, count, 30, query)
    hits = es.all_hits(index, query, source=["message"])
    numbers = sorted(int(h["_source"]["message"].split()[1]) for h in hits)
    assert numbers == list(range(1, count + 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ES:
    """A thin HTTP helper over the session's node (urllib: no client magic in assertions)."""

    def __init__(self, node: ElasticsearchNode) -> None:
        self.node = node
        self.url = node.url

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def refresh(self, index: str) -> None:
        self.request("POST", f"/{index}/_refresh")

    def count(self, index: str, query: dict[str, Any] | None = None) -> int:
        self.refresh(index)
        status, body = self.request(
            "POST", f"/{index}/_count", {"query": query or {"match_all": {}}}
        )
        return body["count"] if status == 200 else -1

    def search(
        self,
        index: str,
        query: dict[str, Any] | None = None,
        size: int = 10000,
        sort: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        self.refresh(index)
        body: dict[str, Any] = {"query": query or {"match_all": {}}, "size": size}
        if sort:
            body["sort"] = sort
        status, result = self.request("POST", f"/{index}/_search", body)
        assert status == 200, result
        return result["hits"]["hits"]

    def all_ids(self, index: str, query: dict[str, Any] | None = None) -> list[str]:
        """Every _id in an index, duplicates included (scroll; no 10k cap)."""
        return [h["_id"] for h in self.all_hits(index, query, source=False)]

    def all_hits(
        self,
        index: str,
        query: dict[str, Any] | None = None,
        source: bool | list[str] = True,
        seq_no: bool = False,
    ) -> list[dict[str, Any]]:
        """Every hit of a query, duplicates included (scroll; no 10k cap).

        ``seq_no``: each hit carries ``_seq_no``, the order its shard indexed it in."""
        self.refresh(index)
        body = {
            "query": query or {"match_all": {}},
            "size": 5000,
            "_source": source,
            "sort": ["_doc"],
            "seq_no_primary_term": seq_no,
        }
        status, result = self.request("POST", f"/{index}/_search?scroll=1m", body)
        assert status == 200, result
        hits: list[dict[str, Any]] = []
        while result["hits"]["hits"]:
            hits.extend(result["hits"]["hits"])
            status, result = self.request(
                "POST", "/_search/scroll", {"scroll": "1m", "scroll_id": result["_scroll_id"]}
            )
            assert status == 200, result
        self.request("DELETE", "/_search/scroll", {"scroll_id": result["_scroll_id"]})
        return hits


@pytest.fixture(scope="session")
def es_node() -> Iterator[ElasticsearchNode]:
    # Not under pytest's tmp dir: that is private to root, and Elasticsearch runs as
    # an unprivileged user that must reach its own directory.
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="test-node-", dir=root))
    # A small request limit, so that a test can make the real cluster answer 413
    # (ordinary batches in the other tests stay well below it).
    node = ElasticsearchNode(workdir, ES_VERSION, extra_settings={"http.max_content_length": "2mb"})
    node.start()
    yield node
    node.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    service = Podman(tmp_path_factory.mktemp("podman"))
    service.start()
    yield service
    service.stop()


@pytest.fixture()
def es(es_node: ElasticsearchNode) -> Iterator[ES]:
    if es_node.proc is None:  # a previous test stopped it and failed before restarting
        es_node.start()
    es_node.resume()
    yield ES(es_node)
    es_node.resume()
    if es_node.proc is None:
        es_node.start()


class Logpipe:
    """A ``logpipe run`` process with its own config, sockets, data streams and log."""

    def __init__(self, workdir: Path, es_url: str, name: str, overrides: dict[str, Any]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(workdir / "run" / "dev-log")
        self.admin_port = free_port()
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.data_stream = f"logs-logpipe-{name}"
        self.dlq_data_stream = f"logs-logpipe.dlq-{name}"
        self.config_path = workdir / "logpipe.toml"
        self.log_path = workdir / "logpipe.log"
        sections: dict[str, dict[str, Any]] = {
            "service": {
                "node_name": "test-node",
                "data_dir": str(workdir / "data"),
                "shutdown_timeout": "20s",
            },
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "inputs.devlog": {"type": "devlog", "path": self.socket_path},
            "queue": {},
            "elasticsearch": {
                "hosts": [es_url],
                "data_stream": self.data_stream,
                "dlq_data_stream": self.dlq_data_stream,
                "flush_interval": "200ms",
                "retry_max_backoff": "2s",
                "timeout": "5s",
            },
        }
        for key, table in overrides.items():
            sections.setdefault(key, {}).update(table)
        self.config_path.write_text(_toml(sections))
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "logpipe", *args], capture_output=True, text=True, timeout=120
        )
        if check:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    def setup(self) -> None:
        self.cli("setup", "-c", str(self.config_path))

    def start(self, wait_ready: bool = True, prefix: Sequence[str] = (), **popen: Any) -> None:
        """Start ``logpipe run``; ``prefix`` runs it under another program (systemd's);
        ``popen``: more arguments for subprocess.Popen (env, preexec_fn...)."""
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "logpipe",
                "run",
                "-c",
                str(self.config_path),
                *LOG_LEVEL,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **popen,
        )
        out.close()
        wait_for(
            lambda: os.path.exists(self.socket_path) and self.get("/healthz")[0] == 200,
            30,
            "logpipe to bind its socket and admin port",
        )
        if wait_ready:
            wait_for(lambda: self.get("/readyz")[0] == 200, 30, "logpipe /readyz")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.admin}{path}", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {'name{labels}': value}, summed per full sample line."""
        status, body = self.get("/metrics")
        assert status == 200
        samples: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line.startswith("logpipe_"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            if all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += value
        return total

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def worker_pids(self) -> list[int]:
        """The supervisor's children: its worker processes."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
            return [int(pid) for pid in fh.read().split()]

    def kill(self) -> int:
        """SIGKILL the supervisor and its workers at once: a crash, nothing drains."""
        assert self.proc is not None
        workers = self.worker_pids()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        code = self.proc.wait(30)
        self.proc = None
        wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in workers), 30, "workers")
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


@pytest.fixture()
def logpipe_factory(
    es: ES, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Logpipe]]:
    started: list[Logpipe] = []

    def make(start: bool = True, **overrides: Any) -> Logpipe:
        name = request.node.name.lower().replace("_", "-").replace("[", "-").strip("]")
        if len(name) > 40:  # cut, and kept apart from its parametrized siblings
            name = name[:33] + "-" + hashlib.blake2b(name.encode(), digest_size=3).hexdigest()
        lp = Logpipe(tmp_path / f"lp{len(started)}", es.url, f"{name}{len(started)}", overrides)
        started.append(lp)
        if start:
            lp.setup()
            lp.start()
        return lp

    yield make
    for lp in started:
        code = lp.stop()
        if getattr(getattr(request.node, "rep_call", None), "failed", False):
            print(f"--- logpipe log ({lp.log_path}) ---\n{lp.log_text()[-5000:]}")
        assert code == 0, f"logpipe exited {code}:\n{lp.log_text()[-3000:]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
