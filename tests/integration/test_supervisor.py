"""The supervisor keeps /dev/log alive: reloads and upgrades under a container's load."""

from __future__ import annotations

import array
import os
import signal
import socket
import threading
import time

import pytest

from tests.containers.podman import IMAGE, Podman
from tests.integration.conftest import (
    ES,
    assert_numbered_lines,
    free_port,
    wait_for,
    wait_for_count,
)

pytestmark = pytest.mark.integration

# busybox `logger` as fast as it goes (one process per line: a few hundred a second),
# for `seconds`; the count it sent is the container's last line of output.
LOGGER_FOR = (
    "i=0; end=$(( $(date +%s) + {seconds} )); "
    'while [ $(date +%s) -lt $end ]; do i=$((i+1)); logger -t reload "line $i"; done; '
    "echo sent $i"
)


def _signals_under_logger_load(
    lp, es: ES, podman: Podman, seconds: int, plan: list[signal.Signals]
) -> None:
    """A container logs through the socket FILE for ``seconds`` while the supervisor gets
    ``plan``: every line lands once, the inode stays, the pid stays, workers change."""
    assert lp.proc is not None
    supervisor = lp.proc.pid
    inode = os.stat(lp.socket_path).st_ino
    first_workers = lp.worker_pids()
    # The socket FILE, not its directory: the mount pins this inode for the container.
    cid = podman.run(
        "-v", f"{lp.socket_path}:/dev/log", IMAGE, "sh", "-c", LOGGER_FOR.format(seconds=seconds)
    )
    gap = seconds / (len(plan) + 1)
    for sig in plan:
        time.sleep(gap)
        os.kill(supervisor, sig)
    podman.cli("wait", cid, timeout=seconds + 60)
    sent = int(podman.cli("logs", cid).stdout.split()[-1])
    assert sent > 50 * seconds, f"only {sent} lines in {seconds} s"
    print(f"busybox logger sent {sent} lines in {seconds} s")

    query = {"term": {"process.name": "reload"}}
    wait_for_count(es, lp.data_stream, sent, 120, query)
    time.sleep(2)  # anything late, or duplicated, would show now
    hits = es.all_hits(lp.data_stream, query, source=["message"])
    assert len({h["_id"] for h in hits}) == len(hits) == sent
    numbers = sorted(int(h["_source"]["message"].split()[1]) for h in hits)
    assert numbers == list(range(1, sent + 1))  # every line, each once

    assert os.stat(lp.socket_path).st_ino == inode
    assert lp.proc.pid == supervisor and lp.proc.poll() is None  # re-executed in place
    log_text = lp.log_text()
    reloads, upgrades = plan.count(signal.SIGHUP), plan.count(signal.SIGUSR2)
    assert log_text.count("Reloading: a worker on the new config is starting") == reloads
    assert log_text.count("Upgrading: re-executing logpipe") == upgrades
    wait_for(lambda: not set(lp.worker_pids()) & set(first_workers), 30, "old workers gone")
    assert len(lp.worker_pids()) == 1


def test_socket_file_mount_survives_five_reloads_and_two_upgrades(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    lp = logpipe_factory()
    _signals_under_logger_load(lp, es, podman, 60, [signal.SIGHUP] * 5 + [signal.SIGUSR2] * 2)
    assert lp.log_text().count("Supervisor holds the listening sockets. inherited=2 bound=0") == 2


class CheckingTcpSender(threading.Thread):
    """Numbered octet-counted syslog lines over one TCP connection, reconnecting as
    rsyslog's omfwd does: before each send it peeks whether the server has closed its
    side (a worker that stops sends FIN), and if so opens a new connection."""

    def __init__(self, port: int, app: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.port, self.app, self.rate = port, app, rate
        self.stopping = threading.Event()
        self.sent = self.connections = 0

    def run(self) -> None:
        sock = None
        while not self.stopping.is_set():
            if sock is not None:
                try:
                    closed = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    closed = False
                if closed:
                    sock.close()
                    sock = None
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                sock.settimeout(None)  # blocking, so MSG_DONTWAIT answers at once
                self.connections += 1
            line = f"<14>Nov 29 10:00:00 host {self.app}: line {self.sent + 1}".encode()
            sock.sendall(b"%d %s" % (len(line), line))
            self.sent += 1
            time.sleep(1 / self.rate)
        if sock is not None:
            sock.close()


def test_socket_activation_serves_the_passed_sockets_through_reloads(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    """systemd passes a datagram socket (devlog) and a stream socket (syslog over TCP)."""
    tcp = free_port()
    lp = logpipe_factory(
        start=False, **{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{tcp}"}}
    )
    lp.setup()
    os.makedirs(os.path.dirname(lp.socket_path), exist_ok=True)

    def first_connection() -> None:
        # systemd-socket-activate binds, then starts the program on the first connection.
        with wait_for(lambda: _connect_or_none(tcp), 30, "the activation socket") as s:
            line = b"<13>Nov 29 10:00:00 host activate: the first connection"
            s.sendall(b"%d %s" % (len(line), line))

    poke = threading.Thread(target=first_connection)
    poke.start()
    # Two socket-activate in a row: the outer passes the TCP socket, the inner adds the
    # datagram one (each binds one type), and logpipe gets both as systemd would pass them.
    lp.start(
        prefix=[
            "systemd-socket-activate", "-l", f"127.0.0.1:{tcp}",
            "systemd-socket-activate", "--datagram", "-l", lp.socket_path,
        ]
    )  # fmt: skip
    poke.join()
    assert "inherited=2 bound=1" in lp.log_text()  # devlog and tcp came from systemd
    wait_for_count(es, lp.data_stream, 1, 30, {"term": {"process.name": "activate"}})
    sender = CheckingTcpSender(tcp, "tcpreload", rate=300)
    sender.start()
    _signals_under_logger_load(lp, es, podman, 60, [signal.SIGHUP] * 5 + [signal.SIGUSR2] * 2)
    sender.stopping.set()
    sender.join(30)
    print(f"TCP sender: {sender.sent} lines over {sender.connections} connections")
    assert sender.connections > 1  # the workers changed under it, and it followed
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "tcpreload"}}, sender.sent)


class FakeSystemdNotifySocket:
    """FAKE of systemd's notify socket ($NOTIFY_SOCKET). Only systemd running as PID 1
    provides the real one, and the test machine has none; this receives what sd_notify
    sends, the states and the descriptors, as systemd would, and keeps them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.states: list[str] = []
        self.store: dict[str, int] = {}  # FDNAME -> our copy of the descriptor

    def receive(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
            except TimeoutError:
                return
            state = data.decode()
            self.states.append(state)
            fds = [
                fd
                for level, kind, cdata in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                for fd in array.array("i", cdata[: len(cdata) - len(cdata) % 4])
            ]
            fields = dict(line.split("=", 1) for line in state.splitlines())
            if fields.get("FDSTORE") == "1":
                old = self.store.get(fields["FDNAME"])
                self.store[fields["FDNAME"]] = fds[0]
                if old is not None:  # systemd keeps one copy per socket too
                    os.close(old)
            for extra in fds[1:]:
                os.close(extra)

    def close(self) -> None:
        self.sock.close()
        for fd in self.store.values():
            os.close(fd)


def test_under_systemd_sockets_go_to_the_fd_store_and_outlive_a_supervisor_crash(
    logpipe_factory, es: ES, tmp_path, monkeypatch
) -> None:
    tcp = free_port()
    lp = logpipe_factory(
        start=False, **{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{tcp}"}}
    )
    lp.setup()
    notify = FakeSystemdNotifySocket(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
        lp.start()
        monkeypatch.delenv("NOTIFY_SOCKET")
        wait_for(lambda: notify.receive() or any(s.startswith("READY=1") for s in notify.states),
                 20, "READY=1")  # fmt: skip
        assert sorted(notify.store) == sorted(
            [
                "unix-dgram_" + lp.socket_path,
                f"tcp_127.0.0.1_{tcp}",
                f"tcp_127.0.0.1_{lp.admin_port}",
            ]
        )
        inode = os.stat(lp.socket_path).st_ino
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"<13>Nov 29 10:00:00 fdstore: line 1", lp.socket_path)
        lp.kill()  # the supervisor and its worker, SIGKILL: nothing is cleaned up

        # What systemd does on the restart: the stored sockets, as LISTEN_FDS from fd 3.
        stored = list(notify.store.values())

        def as_systemd_passes_them() -> None:
            high = [os.dup(fd) + 100 for fd in stored]  # out of the way of 3, 4, 5
            for fd, target in zip(stored, high, strict=True):
                os.dup2(fd, target)
            for n, fd in enumerate(high):
                os.dup2(fd, 3 + n)  # dup2 leaves the copy inheritable

        lp.start(
            prefix=["sh", "-c", f'export LISTEN_PID=$$ LISTEN_FDS={len(stored)}; exec "$@"', "sh"],
            preexec_fn=as_systemd_passes_them,
            close_fds=False,
        )
        assert f"inherited={len(stored)} bound=0" in lp.log_text()
        assert os.stat(lp.socket_path).st_ino == inode  # the same socket, never re-created
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"<13>Nov 29 10:00:00 fdstore: line 2", lp.socket_path)
        with socket.create_connection(("127.0.0.1", tcp)) as c:
            line = b"<13>Nov 29 10:00:00 host fdstore: line 3"
            c.sendall(b"%d %s" % (len(line), line))
        # line 1 may have died with the worker: memory queue, SIGKILL (durability = disk
        # is the setting for that); 2 and 3 came in on the sockets systemd kept.
        query = {"term": {"process.name": "fdstore"}}
        wait_for(
            lambda: (
                es.count(lp.data_stream, query) >= 2
                and {"line 2", "line 3"}
                <= {h["_source"]["message"] for h in es.search(lp.data_stream, query)}
            ),
            30,
            "lines 2 and 3",
        )
    finally:
        notify.close()


def _connect_or_none(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return None


def test_bad_config_on_sighup_is_refused_and_the_old_one_keeps_running(
    logpipe_factory, es: ES
) -> None:
    lp = logpipe_factory()
    assert lp.proc is not None
    good = lp.config_path.read_text()
    workers = lp.worker_pids()
    lp.config_path.write_text(good.replace("[queue]\n", '[queue]\nwhen_full = "sometimes"\n'))
    os.kill(lp.proc.pid, signal.SIGHUP)
    wait_for(lambda: "Reload refused" in lp.log_text(), 20, "the refusal")
    line = next(x for x in lp.log_text().splitlines() if "Reload refused" in x)
    assert "queue.when_full" in line
    assert lp.worker_pids() == workers
    lp.config_path.write_text(good)


def test_a_killed_worker_is_started_again_on_the_same_socket(logpipe_factory, es: ES) -> None:
    lp = logpipe_factory()
    inode = os.stat(lp.socket_path).st_ino
    (worker,) = lp.worker_pids()
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: lp.worker_pids() not in ([], [worker]), 30, "a new worker")
    wait_for(lambda: lp.get("/readyz")[0] == 200, 30, "the new worker ready")
    assert os.stat(lp.socket_path).st_ino == inode
    assert "Worker exited; starting another" in lp.log_text()


def test_ten_sighups_in_a_second_leave_one_worker_and_lose_nothing(logpipe_factory, es: ES) -> None:
    lp = logpipe_factory()
    assert lp.proc is not None
    inode = os.stat(lp.socket_path).st_ino
    total = 3000
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for n in range(total):
            if n % 300 == 0:
                os.kill(lp.proc.pid, signal.SIGHUP)  # ten, 0.1 s apart
            s.sendto(f"<14>Nov 29 10:00:00 hups: line {n + 1}".encode(), lp.socket_path)
            time.sleep(1 / total)
    query = {"term": {"process.name": "hups"}}
    assert_numbered_lines(es, lp.data_stream, query, total)
    # Signals that come while a reload is under way are folded into one more reload.
    wait_for(lambda: len(lp.worker_pids()) == 1, 60, "one worker left")
    assert lp.get("/readyz")[0] == 200
    assert os.stat(lp.socket_path).st_ino == inode
    assert 1 <= lp.log_text().count("Reloading: a worker on the new config") <= 10


def test_two_workers_share_the_sockets_sum_their_metrics_and_reload_together(
    logpipe_factory, es: ES
) -> None:
    """service.workers = 2: both read the same /dev/log and TCP sockets (the kernel shares
    them out), /metrics sums both, a reload replaces both, a killed one is restarted in
    its slot, and every line lands once."""
    port = free_port()
    lp = logpipe_factory(
        service={"workers": 2},
        **{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{port}"}},
    )
    assert lp.proc is not None
    first = lp.worker_pids()
    assert len(first) == 2
    inode = os.stat(lp.socket_path).st_ino
    per_phase, phases = 4000, 3

    def tcp_sender(start: int) -> None:
        # Several connections, so that both workers get some.
        for c in range(4):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                for n in range(start + c * 250, start + (c + 1) * 250):
                    m = b"<13>Nov 30 10:00:00 host twotcp: line %d" % (n + 1)
                    s.sendall(b"%d %s" % (len(m), m))

    def datagrams(start: int, count: int = per_phase, tag: str = "twodg") -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for n in range(start, start + count):
                s.sendto(f"<14>Nov 30 10:00:00 {tag}: line {n + 1}".encode(), lp.socket_path)
                if n % 100 == 0:
                    time.sleep(0.01)

    for phase in range(phases):
        sender = threading.Thread(target=tcp_sender, args=(phase * 1000,))
        sender.start()
        if phase < phases - 1:
            datagrams(phase * per_phase)
        else:
            # Under light load the idle worker wins every wake-up; to show that each one
            # reads the shared socket, one is stopped while the other must read it all.
            for paused, tag in zip(lp.worker_pids(), ("half0", "half1"), strict=True):
                os.kill(paused, signal.SIGSTOP)
                try:
                    datagrams(0, per_phase // 2, tag)
                    wait_for_count(
                        es, lp.data_stream, per_phase // 2, 60, {"term": {"process.name": tag}}
                    )
                finally:
                    os.kill(paused, signal.SIGCONT)
        sender.join(60)
        if phase == 0:
            os.kill(lp.proc.pid, signal.SIGHUP)  # a reload: a new generation of two
            wait_for(
                lambda: len(set(lp.worker_pids()) - set(first)) == 2 and len(lp.worker_pids()) == 2,
                60,
                "two new workers, the old two gone",
            )
        if phase == 1:
            victim = lp.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(
                lambda v=victim: v not in lp.worker_pids() and len(lp.worker_pids()) == 2,
                60,
                "the killed worker's slot filled again",
            )
            wait_for(lambda: lp.get("/readyz")[0] == 200, 30, "ready again")
    # The one killed may have taken what it had read but not shipped with it: the kernel
    # gives datagrams to whichever worker reads, so what each lost is not knowable here;
    # the phases before and after must be whole.
    query = {"term": {"process.name": "twodg"}}
    tcp_query = {"term": {"process.name": "twotcp"}}
    wait_for_count(es, lp.data_stream, per_phase, 60, query)
    counts: list[tuple[int, int]] = []

    def settled() -> bool:  # no more arriving: what is missing now is missing for good
        counts.append((es.count(lp.data_stream, query), es.count(lp.data_stream, tcp_query)))
        return len(counts) >= 3 and counts[-1] == counts[-3]

    wait_for(settled, 60, "the counts to settle", interval=1)
    hits = es.all_hits(lp.data_stream, query, source=["message", "_id"])
    numbers = sorted(int(h["_source"]["message"].split()[1]) for h in hits)
    assert len(numbers) == len(set(numbers)), "no line twice"
    assert [n for n in numbers if n <= per_phase] == list(range(1, per_phase + 1))
    tcp_numbers = sorted(
        int(h["_source"]["message"].split()[1]) for h in es.all_hits(lp.data_stream, tcp_query)
    )
    assert len(tcp_numbers) == len(set(tcp_numbers))
    assert [n for n in tcp_numbers if n <= 1000 or n > 2000] == list(range(1, 1001)) + list(
        range(2001, 3001)
    )
    # Each worker of the last generation read one half alone: its ids carry its prefix.
    prefixes = []
    for tag in ("half0", "half1"):
        half_query = {"term": {"process.name": tag}}
        assert_numbered_lines(es, lp.data_stream, half_query, per_phase // 2)
        ids = {h["_id"].split("-")[0] for h in es.all_hits(lp.data_stream, half_query)}
        assert len(ids) == 1
        prefixes += ids
    assert prefixes[0] != prefixes[1]
    # /metrics on either worker sums both (and those that ran before them).
    received = lp.metric("logpipe_received_events_total", input="devlog")
    assert received >= len(numbers)
    assert lp.metric("logpipe_connections", input="net") == 0
    assert os.stat(lp.socket_path).st_ino == inode
    assert lp.stop() == 0
