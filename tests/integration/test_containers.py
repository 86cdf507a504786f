"""Container logs through the Docker Engine API (podman's), and /dev/log attribution."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from logpipe.enrich.containers import ContainerMetadata
from logpipe.enrich.docker_client import DockerClient
from tests.containers.podman import IMAGE, RM_LINES, Podman, run_rm_burst
from tests.integration.conftest import ES, assert_numbered_lines, wait_for, wait_for_count

pytestmark = pytest.mark.integration

NUMBERED = (
    'i=1; while [ $i -le {n} ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; {tail}'
)


def docker_input(podman: Podman, **extra: object) -> dict[str, object]:
    return {"type": "docker", "mode": "api", "socket": podman.socket_path, **extra}


def _by_stream(es: ES, index: str, name: str, stream: str, sort: list) -> list[dict]:
    hits = es.search(
        index,
        {
            "bool": {
                "filter": [{"term": {"container.name": name}}, {"term": {"logpipe.stream": stream}}]
            }
        },
        sort=sort,
    )
    return [h["_source"] for h in hits]


BY_TIME = [{"@timestamp": "asc"}, {"event.sequence": "asc"}]
BY_ARRIVAL = [{"event.sequence": "asc"}]


def test_five_containers_stdout_and_stderr_all_arrive_labelled_and_in_order(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    lp = logpipe_factory(**{"inputs.docker": docker_input(podman)})
    names = [f"numbers-{n}" for n in range(5)]
    for name in names:
        podman.run(
            "--name",
            name,
            "--label",
            "com.docker.compose.service=numbers",
            IMAGE,
            "sh",
            "-c",
            NUMBERED.format(n=2000, tail="true"),
        )
    wait_for_count(es, lp.data_stream, 20_000, 90)
    assert es.count(lp.data_stream) == 20_000
    assert lp.metric("logpipe_received_events_total", input="docker") == 20_000
    for name in names:
        for stream, word in (("stdout", "out"), ("stderr", "err")):
            # podman 4.3's API stamps whole seconds; within a second, event.sequence
            # (logpipe's arrival order) must be the app's order.
            docs = _by_stream(es, lp.data_stream, name, stream, BY_TIME)
            assert [d["message"] for d in docs] == [f"{word} {i}" for i in range(1, 2001)]
            first = docs[0]
            assert first["container.image.name"] == IMAGE
            assert first["container.labels"]["com.docker.compose.service"] == "numbers"
            assert first["container.runtime"] == "podman"
            assert len(first["container.id"]) == 64
            assert first["event.dataset"] == "logpipe.docker"


def test_rm_container_that_exits_at_once_loses_nothing(logpipe_factory, es: ES, podman: Podman):
    # Three in a row: podman can remove such a container before its `start` event is
    # even delivered, so one lucky run would prove little.
    lp = logpipe_factory(**{"inputs.docker": docker_input(podman)})
    for name in run_rm_burst(podman, "shortlived"):
        assert_numbered_lines(es, lp.data_stream, {"term": {"container.name": name}}, RM_LINES)


def test_rm_container_removed_while_logpipe_is_frozen_still_arrives_whole(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    # Deterministic form of the race above: logpipe sees the container, then is frozen
    # (SIGSTOP) while the container writes, exits and is removed. Its log file, held
    # open since it appeared, is all that is left to read when logpipe thaws.
    lp = logpipe_factory(**{"inputs.docker": docker_input(podman)})
    name = "frozen-reader"
    cid = podman.run(
        "--rm",
        "--name",
        name,
        IMAGE,
        "sh",
        "-c",
        'sleep 2; i=1; while [ $i -le 500 ]; do echo "late $i"; i=$((i+1)); done',
    )
    time.sleep(1.2)  # seen by the list (every 250ms) and by /events, and read once
    workers = lp.worker_pids()
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: cid not in podman.cli("ps", "-aq", "--no-trunc").stdout,
            30,
            "the --rm container to be removed",
        )
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    query = {"term": {"container.name": name}}
    wait_for_count(es, lp.data_stream, 500, 30, query)
    hits = es.search(lp.data_stream, query, size=1000)
    assert sorted(int(h["_source"]["message"].split()[1]) for h in hits) == list(range(1, 501))
    assert "shipped the rest from its log file" in lp.log_text()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_while_containers_write_gives_every_line_exactly_once(
    logpipe_factory, es: ES, podman: Podman, how: signal.Signals
) -> None:
    lp = logpipe_factory(**{"inputs.docker": docker_input(podman)})
    name = f"steady-{how.name.lower()}"
    podman.run(
        "--name",
        name,
        IMAGE,
        "sh",
        "-c",
        'i=1; while [ $i -le 3000 ]; do echo "tick $i"; i=$((i+1)); usleep 2000; done',
    )
    query = {"term": {"container.name": name}}
    wait_for_count(es, lp.data_stream, 300, 30, query)
    if how == signal.SIGKILL:
        assert lp.kill() == -signal.SIGKILL  # supervisor and worker: nothing drains
    else:
        assert lp.stop(30) == 0
    time.sleep(2)  # the container keeps writing while logpipe is down
    lp.start()
    wait_for_count(es, lp.data_stream, 3000, 90, query)
    time.sleep(2)
    docs = _by_stream(es, lp.data_stream, name, "stdout", BY_ARRIVAL)
    assert sorted(int(d["message"].split()[1]) for d in docs) == list(range(1, 3001))


def test_devlog_line_from_a_container_carries_its_id_and_name(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    lp = logpipe_factory(**{"inputs.devlog": {"docker_socket": podman.socket_path}})
    # logger reads its lines from stdin, as a daemon that keeps /dev/log open would: the
    # sender is alive when its datagram is read. (A one-shot sender that has exited
    # before logpipe reads its datagram cannot be attributed by pid: see the README.)
    cid = podman.run(
        "--name",
        "devlog-writer",
        "-v",
        f"{lp.socket_path}:/dev/log",
        IMAGE,
        "sh",
        "-c",
        "(echo 'hello from inside'; sleep 5) | logger -t webapp",
    )
    query = {"match_phrase": {"message": "hello from inside"}}
    wait_for(lambda: es.count(lp.data_stream, query) == 1, 20, "the container's logger line")
    [hit] = es.search(lp.data_stream, query)
    src = hit["_source"]
    assert src["container.id"] == cid
    assert src["container.name"] == "devlog-writer"
    assert src["container.image.name"] == IMAGE
    assert src["container.runtime"] == "podman"
    assert src["process.name"] == "webapp"


def test_a_removed_container_is_still_named_from_its_create_event(podman: Podman, tmp_path) -> None:
    # A `--rm` container can write, exit and be removed before its lines are shipped;
    # inspect then answers "no such container", and its name comes from the event log.
    cidfile = tmp_path / "cid"
    podman.run(
        "--rm", "--cidfile", str(cidfile), "--name", "gone-already", "--label", "team=payments",
        IMAGE, "true", detach=False,
    )  # fmt: skip
    cid = cidfile.read_text().strip()
    assert podman.cli("inspect", cid, check=False).returncode != 0  # removed

    async def look_up() -> tuple[dict | None, dict | None]:
        metadata = ContainerMetadata(DockerClient(podman.socket_path), "podman")
        try:
            both = await asyncio.gather(metadata.fetch(cid), metadata.fetch(cid))
            return both[0], metadata.cached(cid)
        finally:
            await metadata.client.close()

    fields, cached = asyncio.run(look_up())
    assert (
        fields
        == cached
        == {
            "container.id": cid,
            "container.name": "gone-already",
            "container.image.name": IMAGE,
            "container.labels": {"logpipe.test": "1", "team": "payments"},
            "container.runtime": "podman",
        }
    )


def test_per_container_socket_is_that_containers_and_goes_with_it(
    logpipe_factory, es: ES, podman: Podman, tmp_path
) -> None:
    sockets_dir = tmp_path / "containers"
    lp = logpipe_factory(
        **{
            "inputs.devlog": {
                "docker_socket": podman.socket_path,
                "per_container_sockets": True,
                "per_container_dir": str(sockets_dir),
            }
        }
    )
    name = "own-socket"
    (sockets_dir / name).mkdir(parents=True)  # the directory the container mounts
    cid = podman.run(
        "--name",
        name,
        "-v",
        f"{sockets_dir / name}:/run/logpipe",
        IMAGE,
        "sh",
        "-c",
        # point /dev/log at the container's own socket, as an image would
        "ln -sf /run/logpipe/log /dev/log; sleep 1; "
        "(echo 'via my own socket'; echo 'second line'; sleep 2) | logger -t ownapp; sleep 30",
    )
    query = {"term": {"container.name": name}}
    wait_for_count(es, lp.data_stream, 2, 20, query)
    for hit in es.search(lp.data_stream, query):
        src = hit["_source"]
        assert src["container.id"] == cid
        assert src["container.image.name"] == IMAGE
        assert src["process.name"] == "ownapp"
    assert (sockets_dir / name / "log").is_socket()
    podman.cli("rm", "-f", name)
    wait_for(lambda: not (sockets_dir / name / "log").exists(), 15, "the socket to be removed")


JAVA_TRACE = "\n".join(
    [
        "2026-11-29 10:00:00.123 ERROR [main] c.e.billing.Invoicer - invoice 42 failed",
        "java.lang.IllegalStateException: ledger closed for period 2026-11",
        *[f"\tat com.example.billing.Ledger.post{n}(Ledger.java:{100 + n})" for n in range(14)],
        "Caused by: java.sql.SQLTransientConnectionException: pool exhausted after 30000ms",
        *[
            f"\tat com.zaxxer.hikari.pool.HikariPool.get{n}(HikariPool.java:{200 + n})"
            for n in range(12)
        ],
        "\t... 12 more",
    ]
)


def test_java_stack_trace_is_one_event_when_the_container_asks(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    assert len(JAVA_TRACE.splitlines()) == 30
    lp = logpipe_factory(**{"inputs.docker": docker_input(podman, multiline_timeout="500ms")})
    text = f"{JAVA_TRACE}\n2026-11-29 10:00:01.000 INFO [main] c.e.billing.Invoicer - next\n"
    podman.run(
        "--name", "java-app", "--label", "logpipe.multiline=java", IMAGE, "cat", stdin=text.encode()
    )
    query = {"term": {"container.name": "java-app"}}
    wait_for_count(es, lp.data_stream, 2, 30, query)
    time.sleep(1)
    hits = es.search(lp.data_stream, query, sort=[{"@timestamp": "asc"}, {"event.sequence": "asc"}])
    assert [h["_source"]["message"] for h in hits] == [
        JAVA_TRACE,
        "2026-11-29 10:00:01.000 INFO [main] c.e.billing.Invoicer - next",
    ]


def test_json_lines_merge_when_the_container_asks(logpipe_factory, es: ES, podman: Podman):
    lp = logpipe_factory(**{"inputs.docker": docker_input(podman)})
    line = '{"level":"WARN","msg":"disk almost full","logger":"fs","free_mb":812,"mount":"/data"}'
    podman.run(
        "--name",
        "json-app",
        "--label",
        "logpipe.json=true",
        IMAGE,
        "cat",
        stdin=f"{line}\nplain text line\n".encode(),
    )
    query = {"term": {"container.name": "json-app"}}
    wait_for_count(es, lp.data_stream, 2, 30, query)
    docs = {h["_source"]["message"]: h["_source"] for h in es.search(lp.data_stream, query)}
    merged = docs["disk almost full"]
    assert merged["log.level"] == "warn"
    assert merged["log.logger"] == "fs"
    assert merged["logpipe.json"] == {"free_mb": 812, "mount": "/data"}
    assert "log.level" not in docs["plain text line"]
