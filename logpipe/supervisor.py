"""The supervisor: binds every listening socket once and runs the pipeline in workers.

Why a second process: a socket that is re-created on restart breaks every container
that bind-mounted the old one (its /dev/log then names an inode nobody reads). The
supervisor binds each socket once (or takes it from systemd) and never closes one whose
address the config still names; workers inherit them (``logpipe.listen``).

- ``service.workers`` = N worker processes share every socket: the kernel gives each
  datagram, and each new connection, to one of them. Each has its own queue and
  shipper; slot 0 alone runs the inputs that must not run twice (docker, per-container
  sockets). With N > 1 the metrics are shared through prometheus-client's multiprocess
  mode (files in ``data_dir/metrics``), so /metrics on any worker shows the sum.
- A worker that dies is started again (1 s, doubling to 30 s while it keeps dying).
- SIGTERM / SIGINT: passed to the workers, which drain and exit; so does the supervisor.
- SIGHUP: the config is read again. A bad one is refused in one ERROR line and nothing
  changes. A good one: sockets whose key is unchanged are kept, new ones bound, removed
  ones closed; a new worker starts on the new config and, once it says it is reading,
  the old one is sent SIGTERM (it stops reading and drains). Until then both read the
  same sockets, and the kernel gives each datagram to one of them. With N workers the
  new generation replaces the old once all N say they are reading.
- SIGUSR2: the supervisor re-executes itself (whatever logpipe is installed now) with
  the same pid, handing its sockets and workers down; the new image starts a worker and
  retires the old ones as a reload does.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from logpipe import config as config_mod
from logpipe import listen, systemd
from logpipe.errors import ConfigError
from logpipe.metrics import MULTIPROC_ENV
from logpipe.pipeline import READY_FD_ENV, WORKER_SLOT_ENV

log = logging.getLogger(__name__)

ADOPT_ENV = "LOGPIPE_ADOPT_WORKERS"  # pids a re-executed supervisor takes over
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0  # a worker up this long resets the restart backoff
STOP_GRACE_SECONDS = 10.0  # beyond service.shutdown_timeout, before SIGKILL
TICK_SECONDS = 0.1
PR_SET_PDEATHSIG = 1


class Worker:
    """One worker process: started by us, or adopted across a re-exec (pid only)."""

    def __init__(self, pid: int, proc: subprocess.Popen[bytes] | None, ready_fd: int) -> None:
        self.pid = pid
        self.proc = proc
        self.ready_fd = ready_fd  # read end of the "ready" pipe; -1 once read or adopted
        self.ready = ready_fd < 0
        self.started = time.monotonic()
        self.exit_code: int | None = None

    def poll(self) -> int | None:
        """The exit code once it has exited (-N for signal N), else None."""
        if self.exit_code is not None:
            return self.exit_code
        if self.proc is not None:
            self.exit_code = self.proc.poll()
        else:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_code = 0  # reaped elsewhere: it is gone either way
                return self.exit_code
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
        if self.exit_code is not None:
            self._close_ready()
        return self.exit_code

    def check_ready(self) -> bool:
        if not self.ready and self.ready_fd >= 0:
            readable, _, _ = select.select([self.ready_fd], [], [], 0)
            if readable and os.read(self.ready_fd, 64):
                self.ready = True
                self._close_ready()
        return self.ready

    def signal(self, sig: signal.Signals) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _close_ready(self) -> None:
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1


class _Rollover:
    """A reload in progress: what to restore if the new worker never gets ready."""

    def __init__(
        self,
        old: list[Worker],
        settings: config_mod.Settings,
        sockets: dict[str, socket.socket],
        closing: dict[str, socket.socket],
    ) -> None:
        self.old = old
        self.settings = settings
        self.sockets = sockets
        self.closing = closing


class Supervisor:
    def __init__(self, settings: config_mod.Settings, argv: Sequence[str], log_level: str) -> None:
        self.settings = settings
        self.config_path = settings.file
        self.argv = list(argv)  # our own command line, for the re-exec
        self.log_level = log_level
        self.sockets: dict[str, socket.socket] = {}
        self.workers: list[Worker] = []  # the current generation, one per slot
        self.retiring: list[Worker] = []  # told to stop; reaped as they exit
        # to stop once the current worker is reading (adopted across a re-exec)
        self.retiring_on_ready: list[Worker] = []
        self._hup_pending = False
        self._usr2_pending = False
        self.rollover: _Rollover | None = None
        self._signals: list[signal.Signals] = []
        self._restart_delay = RESTART_FIRST_SECONDS
        self._restart_at: dict[int, float] = {}  # slot -> when to start it again
        self._ready_told: tuple[int, ...] = ()  # the workers systemd was told READY=1 for

    # -- sockets -------------------------------------------------------------------

    def bind_sockets(self) -> None:
        """Take what was handed down (re-exec, systemd); bind the rest. Raises OSError."""
        handed = listen.inherited()
        os.environ.pop(listen.ENV_FDS, None)
        wanted = listen.wanted_keys(self.settings)
        for key, fd in handed.items():
            sock = socket.socket(fileno=fd)
            if key in wanted:
                self.sockets[key] = sock
            else:
                sock.close()  # a re-exec onto a config that no longer names it
        for key, (kind, address) in wanted.items():
            if key not in self.sockets:
                self.sockets[key] = listen.bind(kind, address, self.settings)
        log.info(
            "Supervisor holds the listening sockets. inherited=%d bound=%d",
            len([k for k in handed if k in wanted]),
            len([k for k in wanted if k not in handed]),
        )
        if systemd.enabled():
            stored = systemd.store(self.sockets)
            log.info("Sockets handed to systemd's file-descriptor store. sockets=%d", stored)

    # -- workers -------------------------------------------------------------------

    def _spawn(self, slot: int) -> Worker:
        ready_r, ready_w = os.pipe()
        fds = {key: sock.fileno() for key, sock in self.sockets.items()}
        env = {
            **os.environ,
            listen.ENV_FDS: json.dumps(fds),
            READY_FD_ENV: str(ready_w),
            WORKER_SLOT_ENV: str(slot),
        }
        env.pop(systemd.NOTIFY_ENV, None)  # systemd hears from the supervisor only
        if self.settings.service.workers > 1:
            env[MULTIPROC_ENV] = self._metrics_dir()
        else:
            env.pop(MULTIPROC_ENV, None)
        cmd = [sys.executable, "-m", "logpipe", "worker", "--log-level", self.log_level]
        if self.config_path:
            cmd += ["-c", self.config_path]
        proc = subprocess.Popen(
            cmd, env=env, pass_fds=[*fds.values(), ready_w], preexec_fn=_die_with_parent
        )
        os.close(ready_w)
        log.info("Worker started. pid=%d slot=%d", proc.pid, slot)
        return Worker(proc.pid, proc, ready_r)

    def _spawn_all(self) -> list[Worker]:
        return [self._spawn(slot) for slot in range(self.settings.service.workers)]

    def _metrics_dir(self) -> str:
        path = os.path.join(self.settings.service.data_dir, "metrics")
        os.makedirs(path, exist_ok=True)
        return path

    def _reaped(self, worker: Worker) -> None:
        """A worker is gone: its live gauges must no longer count in the sums."""
        if self.settings.service.workers > 1 or os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid, self._metrics_dir())

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
            signal.signal(sig, self._on_signal)
        adopted = [int(p) for p in os.environ.pop(ADOPT_ENV, "").split(",") if p]
        self.retiring_on_ready = [Worker(pid, None, -1) for pid in adopted]
        if not adopted and self.settings.service.workers > 1:
            # A fresh start: counters from an earlier run's workers are not ours.
            directory = self._metrics_dir()
            for name in os.listdir(directory):
                if name.endswith(".db"):
                    os.unlink(os.path.join(directory, name))
        self.workers = self._spawn_all()
        while True:
            time.sleep(TICK_SECONDS)
            while self._signals:
                sig = self._signals.pop(0)
                if sig in (signal.SIGTERM, signal.SIGINT):
                    return self._stop(sig)
                if sig == signal.SIGHUP:
                    self._hup_pending = True
                if sig == signal.SIGUSR2:
                    self._usr2_pending = True
            self._tick()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signal.Signals(signum))

    def _tick(self) -> None:
        for w in self.retiring:
            if w.poll() is not None:
                self._reaped(w)
        self.retiring = [w for w in self.retiring if w.exit_code is None]
        for slot, worker in enumerate(self.workers):
            code = worker.poll()
            if code is not None:
                self._worker_died(slot, worker, code)
                return
        if all([w.check_ready() for w in self.workers]):
            pids = tuple(w.pid for w in self.workers)
            if self._ready_told != pids:
                self._ready_told = pids
                listed = ",".join(map(str, pids))
                systemd.notify(f"READY=1\nSTATUS=Serving. worker pids {listed}")
            if max(w.started for w in self.workers) + HEALTHY_AFTER_SECONDS < time.monotonic():
                self._restart_delay = RESTART_FIRST_SECONDS
            self._retire_old()
            if self._usr2_pending:
                self._usr2_pending = False
                self._upgrade()
            elif self._hup_pending:
                self._hup_pending = False
                self._reload()

    def _retire_old(self) -> None:
        """The current worker is reading: the ones it replaces may stop now."""
        old = self.retiring_on_ready
        if self.rollover is not None:
            old = old + self.rollover.old
            for sock in self.rollover.closing.values():
                sock.close()
            systemd.forget(list(self.rollover.closing))
            self.rollover = None
        for w in old:
            w.signal(signal.SIGTERM)
            log.info("Old worker told to stop; it drains its queue. pid=%d", w.pid)
        self.retiring.extend(old)
        self.retiring_on_ready = []

    def _worker_died(self, slot: int, worker: Worker, code: int) -> None:
        if self.rollover is not None and not worker.ready:
            # The reload's workers never got going: keep the old config and workers.
            r, self.rollover = self.rollover, None
            log.error(
                "Reload failed: a new worker exited before it was reading; still on the "
                "old config. code=%d",
                code,
            )
            self._reaped(worker)
            for w in self.workers:
                if w is not worker:
                    w.signal(signal.SIGTERM)
                    self.retiring.append(w)
            opened = [key for key in self.sockets if key not in r.sockets]
            for key in opened:
                self.sockets[key].close()
            systemd.forget(opened)
            self._ready_told = ()  # the old workers serve again: READY=1 ends the reload
            self.settings, self.sockets = r.settings, r.sockets
            self.workers = r.old
            return
        now = time.monotonic()
        restart_at = self._restart_at.get(slot, 0.0)
        if not restart_at:
            log.error(
                "Worker exited; starting another in %.0f s. pid=%d slot=%d code=%d",
                self._restart_delay,
                worker.pid,
                slot,
                code,
            )
            self._reaped(worker)
            self._restart_at[slot] = now + self._restart_delay
            return
        if now >= restart_at:
            del self._restart_at[slot]
            self._restart_delay = min(self._restart_delay * 2, RESTART_MAX_SECONDS)
            self.workers[slot] = self._spawn(slot)

    # -- reload and upgrade ----------------------------------------------------------

    def _reload(self) -> None:
        try:
            new = config_mod.load(self.config_path)
        except ConfigError as exc:
            log.error("Reload refused: %s; still on the old config.", exc)
            return
        wanted = listen.wanted_keys(new)
        sockets: dict[str, socket.socket] = {}
        opened: list[socket.socket] = []
        try:
            for key, (kind, address) in wanted.items():
                if key in self.sockets:
                    sockets[key] = self.sockets[key]
                else:
                    sockets[key] = listen.bind(kind, address, new)
                    opened.append(sockets[key])
        except OSError as exc:
            for sock in opened:
                sock.close()
            log.error(
                "Reload refused: cannot bind a new socket (%s); still on the old config.", exc
            )
            return
        closing = {key: sock for key, sock in self.sockets.items() if key not in wanted}
        self.rollover = _Rollover(self.workers, self.settings, self.sockets, closing)
        self.settings, self.sockets = new, sockets
        systemd.notify("RELOADING=1\nSTATUS=Reloading the config.")
        systemd.store({key: sock for key, sock in sockets.items() if sock in opened})
        self.workers = self._spawn_all()
        log.info(
            "Reloading: a worker on the new config is starting. kept=%d opened=%d closing=%d",
            len(sockets) - len(opened),
            len(opened),
            len(closing),
        )

    def _upgrade(self) -> None:
        """Re-execute this process image, same pid, handing down sockets and workers."""
        fds = {key: sock.fileno() for key, sock in self.sockets.items()}
        for fd in fds.values():
            os.set_inheritable(fd, True)
        workers = [w for w in (*self.workers, *self.retiring) if w.poll() is None]
        env = {
            **os.environ,
            listen.ENV_FDS: json.dumps(fds),
            ADOPT_ENV: ",".join(str(w.pid) for w in workers),
        }
        log.info("Upgrading: re-executing logpipe; sockets and workers are handed down.")
        for handler in logging.getLogger().handlers:
            handler.flush()
        try:
            os.execve(sys.executable, [sys.executable, "-m", "logpipe", *self.argv], env)
        except OSError as exc:
            log.error("Upgrade failed: cannot re-execute (%s); this supervisor carries on.", exc)

    # -- stop ----------------------------------------------------------------------

    def _stop(self, sig: signal.Signals) -> int:
        workers = [*self.workers, *self.retiring, *self.retiring_on_ready]
        if self.rollover is not None:
            workers += self.rollover.old
        log.info("Stopping: workers drain and exit. signal=%s workers=%d", sig.name, len(workers))
        systemd.notify("STOPPING=1\nSTATUS=Stopping: workers drain.")
        for w in workers:
            w.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.service.shutdown_timeout + STOP_GRACE_SECONDS
        while any(w.poll() is None for w in workers):
            if time.monotonic() > deadline:
                for w in workers:
                    w.signal(signal.SIGKILL)
                log.error("Workers did not stop in time; killed.")
            time.sleep(TICK_SECONDS)
        codes = [w.poll() for w in self.workers]
        return 0 if all(code in (0, None) for code in codes) else 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (it drains, then exits)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
