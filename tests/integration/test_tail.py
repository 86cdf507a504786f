"""``logpipe tail``: a container's line on the terminal within 2 s of being written, and
the filters and --json against what Elasticsearch holds."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from logpipe.tail import LOOKBACK_SECONDS
from tests.containers.podman import IMAGE, Podman
from tests.integration.conftest import ES, Logpipe, wait_for_count

pytestmark = pytest.mark.integration


@dataclass
class Following:
    """A running ``logpipe tail``: each stdout line with the moment it was read."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[tuple[float, str]]
    stderr_path: Path

    def said(self) -> str:
        """What it wrote on stderr so far."""
        return self.stderr_path.read_text()


@contextmanager
def _following(lp: Logpipe, *args: str) -> Iterator[Following]:
    """``logpipe tail -c <lp's config> ARGS``, stopped on leaving; stderr goes to a file,
    so that a long run cannot fill a pipe nobody reads."""
    stderr_path = lp.config_path.with_name("tail.stderr")
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logpipe", "tail", "-c", str(lp.config_path), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield Following(proc, lines, stderr_path)
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
        if said := stderr_path.read_text():  # shown with a failure's captured output
            print(f"--- logpipe tail's stderr ---\n{said}")


def _wait_line(lines: queue.Queue[tuple[float, str]], needle: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line with {needle!r} in {timeout} s")
        try:
            at, line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if needle in line:
            return at


def test_tail_shows_a_containers_line_within_two_seconds(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    lp = logpipe_factory(
        **{"inputs.docker": {"type": "docker", "mode": "api", "socket": podman.socket_path}}
    )
    podman.run("--name", "tail-me", IMAGE, "sh", "-c", "echo ready; exec sleep 600")
    podman.run("--name", "tail-other", IMAGE, "sh", "-c", "echo other ready; exec sleep 600")
    wait_for_count(es, lp.data_stream, 2, 60)
    with _following(lp, "--container", "tail-me", "-n", "5") as tail:
        lines = tail.lines
        _wait_line(lines, "tail-me: ready", 20)  # the backlog, then following
        time.sleep(1)
        delays = []
        for n in range(3):
            token = f"token-{n}-{time.time_ns()}"
            written = time.monotonic()
            # Written to the container's stdout (its PID 1's), as the app would.
            podman.cli("exec", "tail-me", "sh", "-c", f"echo {token} > /proc/1/fd/1")
            delays.append(_wait_line(lines, token, 10) - written)
        print("tail delays, s:", [round(d, 2) for d in delays])
        assert max(delays) < 2.0
        # Only that container: the other one's lines never showed.
        podman.cli("exec", "tail-other", "sh", "-c", "echo not-this-one > /proc/1/fd/1")
        wait_for_count(es, lp.data_stream, 6, 30)
        time.sleep(1)
        shown = []
        while not lines.empty():
            shown.append(lines.get()[1])
        assert not [line for line in shown if "not-this-one" in line or "other" in line]
    podman.cli("rm", "-f", "tail-me", "tail-other")


def test_tail_filters_and_json(logpipe_factory, es: ES) -> None:
    lp = logpipe_factory()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for pri, text in ((11, "disk on fire"), (12, "disk almost full"), (14, "disk fine"),
                          (15, "disk debug"), (14, "network fine")):  # fmt: skip
            s.sendto(f"<{pri}>Nov 30 10:00:00 tailapp[9]: {text}".encode(), lp.socket_path)
    wait_for_count(es, lp.data_stream, 5, 30)
    time.sleep(1)

    def tail(*args: str) -> list[str]:
        result = lp.cli("tail", "-c", str(lp.config_path), "--no-follow", "-n", "100", *args)
        return result.stdout.splitlines()

    warnings = [json.loads(line) for line in tail("--severity", "warning", "--json")]
    assert [d["message"] for d in warnings] == ["disk on fire", "disk almost full"]
    assert all(d["process.name"] == "tailapp" and d["_id"] for d in warnings)
    assert [line.split(": ", 1)[1] for line in tail("disk", "fine")] == ["disk fine"]
    assert len(tail()) == 5 and len(tail("-n", "2")) == 2
    plain = tail("network")
    assert len(plain) == 1 and "tailapp[info]: network fine" in plain[0]
    assert tail("--host", "no-such-host") == []
    bad = lp.cli("tail", "-c", str(lp.config_path), "--severity", "loud", check=False)
    assert bad.returncode == 2 and "--severity" in bad.stderr


def test_tail_keeps_up_when_the_window_holds_more_than_a_page(logpipe_factory, es: ES) -> None:
    """More lines in the follow window than one search returns (1,000): the newest keep
    coming out, rather than the tail sticking at the window's start."""
    lp = logpipe_factory()
    with _following(lp, "-n", "0") as tail:
        time.sleep(2)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for n in range(2500):
                s.sendto(f"<14>Nov 30 10:00:00 pageapp[9]: page line {n}".encode(), lp.socket_path)
        wait_for_count(es, lp.data_stream, 2500, 60)
        _wait_line(tail.lines, "page line 2499", 20)


def test_tail_shows_what_was_received_while_elasticsearch_was_away(logpipe_factory, es: ES) -> None:
    """Frozen longer than the follow lookback (30 s): the lines received meanwhile are
    indexed late, with an old event.created, and the tail still shows each once."""
    lp = logpipe_factory(elasticsearch={"timeout": "3s", "retry_max_backoff": "1s"})
    shown: list[str] = []
    with _following(lp, "-n", "0") as tail:
        lines = tail.lines
        time.sleep(2)
        es.node.pause()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                for n in range(20):
                    s.sendto(f"<14>Nov 30 10:00:00 away[9]: away line {n}".encode(), lp.socket_path)
            time.sleep(LOOKBACK_SECONDS + 5)
        finally:
            es.node.resume()
        deadline = time.monotonic() + 30
        while len(shown) < 20 and time.monotonic() < deadline:
            try:
                shown.append(lines.get(timeout=1)[1])
            except queue.Empty:
                pass
        time.sleep(2)  # nothing twice
        while not lines.empty():
            shown.append(lines.get()[1])
    numbers = sorted(int(line.rsplit(" ", 1)[1]) for line in shown if "away line" in line)
    assert numbers == list(range(20)), shown
    said = tail.said()
    assert "retrying" in said and "Elasticsearch is back" in said, said


def test_tail_waits_while_elasticsearch_cannot_search(logpipe_factory, es: ES) -> None:
    """A shard not started yet (a new index, a node restarting) makes every search answer
    503; the tail waits that out, as it does an unreachable cluster, instead of ending."""
    prefix = "logpipe-tailwait"
    lp = logpipe_factory(elasticsearch={"index": f"{prefix}-%Y.%m.%d"})
    stuck = f"{prefix}-2026.11.01"  # its primary may live on no node: never started
    status, _ = es.request(
        "PUT",
        f"/{stuck}?wait_for_active_shards=0",
        {"settings": {"number_of_replicas": 0, "index.routing.allocation.require._name": "none"}},
    )
    assert status == 200
    try:
        status, answer = es.request("GET", f"/{prefix}-*/_search?ignore_unavailable=true")
        assert status == 503, answer  # what the tail meets
        with _following(lp, "-n", "0") as tail:
            time.sleep(3)
            assert tail.proc.poll() is None, "the tail ended"
            # Today's index then answers; the stuck one still fails its shard (partial
            # results).
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(b"<14>Nov 30 10:00:00 waiter[9]: shown after the wait", lp.socket_path)
            _wait_line(tail.lines, "shown after the wait", 30)
            assert tail.proc.poll() is None
    finally:
        es.request("DELETE", f"/{stuck}")
    said = tail.said()
    assert "503" in said and "retrying" in said and "Elasticsearch is back" in said, said
