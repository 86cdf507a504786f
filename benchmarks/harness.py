"""What every benchmark scenario shares: the counting sink, a logpipe process, /proc figures."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sink_count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_count", timeout=5) as resp:
        return json.load(resp)["count"]


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("benchmark: timed out")


class Rig:
    """A counting sink and a logpipe process configured by ``inputs_toml``."""

    def __init__(
        self,
        work: Path,
        inputs_toml: str,
        service_toml: str = "",
        queue_toml: str = 'when_full = "block"',
        workers: int = 1,
    ) -> None:
        self.port, admin = free_port(), free_port()
        self.sink_url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{admin}"
        self.workers = workers
        config = work / "bench.toml"
        config.write_text(
            f'[service]\ndata_dir = "{work}/data"\nworkers = {workers}\n{service_toml}\n'
            f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
            f"{inputs_toml}\n"
            f"[queue]\n{queue_toml}\n"
            f'[elasticsearch]\nhosts = ["{self.sink_url}"]\nflush_interval = "100ms"\n'
        )
        self.sink = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "bulk_sink.py"), str(self.port)]
        )
        wait_for(lambda: sink_count(self.sink_url) >= 0, 20)
        # One worker: `logpipe worker`, the pipeline in one process, whose CPU is what is
        # measured. Several: `logpipe run`, and the CPU of its workers (the supervisor
        # only waits).
        command = "worker" if workers == 1 else "run"
        self.lp = subprocess.Popen(
            [sys.executable, "-m", "logpipe", command, "-c", str(config), "--log-level", "warning"]
        )
        if workers > 1:
            wait_for(lambda: len(self.pids()) == workers, 30)

    def pids(self) -> list[int]:
        """The processes that do the work: the worker, or the supervisor's workers."""
        if self.workers == 1:
            return [self.lp.pid]
        path = Path(f"/proc/{self.lp.pid}/task/{self.lp.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def delivered(self) -> int:
        return sink_count(self.sink_url)

    def close(self) -> None:
        self.lp.terminate()
        self.lp.wait(30)
        self.sink.terminate()
        self.sink.wait(10)


def append_result(path: Path, record: dict[str, Any]) -> None:
    """One JSON line per benchmark run, appended to ``benchmarks/results/<name>.jsonl``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def dgram_qlen(value: int) -> Iterator[int]:
    """Run with net.unix.max_dgram_qlen = ``value`` (systemd hosts have 512; the kernel's
    old default is 10), for logpipe and rsyslog alike, and put it back afterwards.
    Yields the value in force (the old one where it cannot be set)."""
    path = Path("/proc/sys/net/unix/max_dgram_qlen")
    old = int(path.read_text())
    try:
        path.write_text(str(value))
    except OSError:
        yield old
        return
    try:
        yield value
    finally:
        path.write_text(str(old))
