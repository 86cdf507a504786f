"""A real rsyslogd from Debian, for the tests: its own config, work directory and
imuxsock socket, forwarding to logpipe with a snippet from config/rsyslog/ as it is.
Never the system's rsyslog, never /dev/log."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SNIPPETS = Path(__file__).resolve().parents[2] / "config" / "rsyslog"


class Rsyslogd:
    def __init__(self, workdir: Path, snippet: str, env: dict[str, str], action: str = "") -> None:
        """``snippet``: a file of config/rsyslog/, included as it is; or ``action``: an
        action() of the test's own (``snippet`` then empty)."""
        self.workdir = workdir
        self.socket = workdir / "log.sock"
        self.config = workdir / "rsyslog.conf"
        self.log_path = workdir / "rsyslogd.log"
        (workdir / "work").mkdir(parents=True, exist_ok=True)
        # imuxsock's rate limit is off: the tests send bursts on purpose.
        self.config.write_text(
            f'global(workDirectory="{workdir / "work"}" maxMessageSize="64k")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{self.socket}" RateLimit.Interval="0")\n'
            + (f'include(file="{SNIPPETS / snippet}")\n' if snippet else action + "\n")
        )
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(self.config), "-i", str(self.workdir / "pid")],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rsyslogd did not start:\n{self.log_text()}")
            time.sleep(0.1)

    def log(self, tag: str, lines: Iterator[str] | list[str]) -> None:
        """Lines into rsyslog's socket with util-linux logger, one message each."""
        subprocess.run(
            ["logger", "-u", str(self.socket), "-t", tag],
            input="".join(f"{line}\n" for line in lines).encode(),
            check=True,
            timeout=120,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
