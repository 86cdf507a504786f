"""The supervisor keeps /dev/log alive: reloads and upgrades under a container's load."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from tests.containers.podman import IMAGE, Podman
from tests.integration.conftest import ES, assert_numbered_lines, wait_for, wait_for_count

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


def test_socket_activation_serves_the_passed_socket_through_reloads(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    lp = logpipe_factory(start=False)
    lp.setup()
    os.makedirs(os.path.dirname(lp.socket_path), exist_ok=True)

    def first_datagram() -> None:
        # systemd-socket-activate binds, then starts the program on the first datagram.
        wait_for(lambda: os.path.exists(lp.socket_path), 30, "the activation socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"<13>Nov 29 10:00:00 activate: the first datagram", lp.socket_path)

    poke = threading.Thread(target=first_datagram)
    poke.start()
    lp.start(prefix=["systemd-socket-activate", "--datagram", "-l", lp.socket_path])
    poke.join()
    assert "inherited=1 bound=1" in lp.log_text()  # the devlog socket came from systemd
    wait_for_count(es, lp.data_stream, 1, 30, {"term": {"process.name": "activate"}})
    _signals_under_logger_load(lp, es, podman, 20, [signal.SIGHUP, signal.SIGUSR2, signal.SIGHUP])


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
