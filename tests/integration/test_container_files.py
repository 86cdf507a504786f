"""Container log files tailed from disk: json-file (Docker's layout) and CRI (podman's k8s-file)."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.containers.podman import IMAGE, RM_LINES, Podman, run_rm_burst
from tests.integration.conftest import ES, assert_numbered_lines, wait_for_count

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "docker"
PODMAN_LOGS = "/var/lib/containers/storage/overlay-containers/*/userdata/ctr.log"
CID = "4f2a" * 16  # a container id for the Docker-layout directory the test writes


def files_input(paths: list[str], socket: str = "") -> dict[str, object]:
    return {
        "type": "docker",
        "mode": "files",
        "paths": paths,
        "socket": socket,
        "poll_interval": "100ms",
    }


def test_json_file_40000_byte_line_is_one_event_with_docker_metadata(
    logpipe_factory, es: ES, tmp_path: Path
) -> None:
    # Docker's layout: containers/<id>/<id>-json.log with config.v2.json beside it. The
    # log is the shared synthetic file: one 40,000-byte line split by moby's 16 KiB rule.
    container_dir = tmp_path / "containers" / CID
    container_dir.mkdir(parents=True)
    shutil.copy(DATA / "json-file_partial_16k.synthetic.log", container_dir / f"{CID}-json.log")
    (container_dir / "config.v2.json").write_text(
        json.dumps(
            {
                "ID": CID,
                "Name": "/billing-api",
                "Config": {"Image": "registry.example/billing:2.1", "Labels": {"team": "payments"}},
            }
        )
    )
    lp = logpipe_factory(
        **{"inputs.docker": files_input([str(tmp_path / "containers" / "*" / "*-json.log")])}
    )
    wait_for_count(es, lp.data_stream, 3, 20)
    time.sleep(1)
    hits = es.search(lp.data_stream, sort=[{"@timestamp": "asc"}])
    assert [len(h["_source"]["message"]) for h in hits] == [17, 40_000, 16]
    big = hits[1]["_source"]
    assert big["message"].startswith("0123456789abcdef-")
    assert big["container.id"] == CID
    assert big["container.name"] == "billing-api"
    assert big["container.image.name"] == "registry.example/billing:2.1"
    assert big["container.labels"] == {"team": "payments"}
    assert big["logpipe.stream"] == "stdout"
    assert big["@timestamp"].startswith("2024-01-02T03:04:05")


def test_cri_40000_byte_line_from_podman_is_one_event(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    lp = logpipe_factory(**{"inputs.docker": files_input([PODMAN_LOGS], podman.socket_path)})
    cid = podman.run(
        "--name",
        "long-liner",
        IMAGE,
        "sh",
        "-c",
        'echo before; head -c 40000 /dev/zero | tr "\\0" x; echo; echo after',
    )
    query = {"term": {"container.id": cid}}
    wait_for_count(es, lp.data_stream, 3, 30, query)
    time.sleep(1)
    hits = es.search(lp.data_stream, query, sort=[{"@timestamp": "asc"}])
    assert [h["_source"]["message"] for h in hits][::2] == ["before", "after"]
    assert hits[1]["_source"]["message"] == "x" * 40_000
    assert hits[1]["_source"]["container.name"] == "long-liner"
    assert hits[1]["_source"]["container.image.name"] == IMAGE


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_files_mode_restart_gives_every_line_exactly_once(
    logpipe_factory, es: ES, podman: Podman, how: signal.Signals
) -> None:
    lp = logpipe_factory(**{"inputs.docker": files_input([PODMAN_LOGS], podman.socket_path)})
    cid = podman.run(
        "--name",
        f"files-{how.name.lower()}",
        IMAGE,
        "sh",
        "-c",
        'i=1; while [ $i -le 3000 ]; do echo "tick $i"; i=$((i+1)); usleep 2000; done',
    )
    query = {"term": {"container.id": cid}}
    wait_for_count(es, lp.data_stream, 300, 30, query)
    if how == signal.SIGKILL:
        assert lp.kill() == -signal.SIGKILL  # supervisor and worker: nothing drains
    else:
        assert lp.stop(30) == 0
    time.sleep(2)
    lp.start()
    wait_for_count(es, lp.data_stream, 3000, 90, query)
    time.sleep(2)
    ids = es.all_ids(lp.data_stream, query)
    assert len(ids) == len(set(ids)) == 3000
    messages = sorted(
        int(h["_source"]["message"].split()[1]) for h in es.search(lp.data_stream, query, size=5000)
    )
    assert messages == list(range(1, 3001))


def test_files_mode_joins_a_java_trace_when_the_input_asks(
    logpipe_factory, es: ES, tmp_path: Path
) -> None:
    from tests.integration.test_containers import JAVA_TRACE

    container_dir = tmp_path / "containers" / CID
    container_dir.mkdir(parents=True)
    lines = [*JAVA_TRACE.splitlines(), "2026-11-29 10:00:01.000 INFO next"]
    with open(container_dir / f"{CID}-json.log", "w") as fh:
        for n, line in enumerate(lines):
            stamp = f"2026-11-29T10:00:00.{n:09d}Z"
            fh.write(
                json.dumps(
                    {"log": line + "\n", "stream": "stdout", "time": stamp}, separators=(",", ":")
                )
                + "\n"
            )
    lp = logpipe_factory(
        **{
            "inputs.docker": {
                **files_input([str(tmp_path / "containers" / "*" / "*-json.log")]),
                "multiline": "java",
                "multiline_timeout": "300ms",
            }
        }
    )
    wait_for_count(es, lp.data_stream, 2, 20)
    time.sleep(1)
    hits = es.search(lp.data_stream, sort=[{"@timestamp": "asc"}])
    assert [h["_source"]["message"] for h in hits] == [JAVA_TRACE, lines[-1]]
    assert hits[0]["_source"]["@timestamp"] == "2026-11-29T10:00:00.000000000Z"


def test_five_containers_files_mode_in_order_by_timestamp(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    from tests.integration.test_containers import BY_TIME, NUMBERED, _by_stream

    lp = logpipe_factory(**{"inputs.docker": files_input([PODMAN_LOGS], podman.socket_path)})
    names = [f"filenumbers-{n}" for n in range(5)]
    for name in names:
        podman.run("--name", name, IMAGE, "sh", "-c", NUMBERED.format(n=2000, tail="true"))
    query = {"prefix": {"container.name": "filenumbers-"}}
    wait_for_count(es, lp.data_stream, 20_000, 90, query)
    assert es.count(lp.data_stream, query) == 20_000
    for name in names:
        for stream, word in (("stdout", "out"), ("stderr", "err")):
            # conmon stamps every line in nanoseconds: @timestamp, then event.sequence,
            # gives the app's order.
            docs = _by_stream(es, lp.data_stream, name, stream, BY_TIME)
            assert [d["message"] for d in docs] == [f"{word} {i}" for i in range(1, 2001)]
            assert docs[0]["container.image.name"] == IMAGE


def test_rm_containers_that_exit_at_once_lose_nothing_in_files_mode(
    logpipe_factory, es: ES, podman: Podman
) -> None:
    # The default poll_interval (250ms), and three in a row: a removed container's log
    # inode goes straight to the next one's log (ids by inode alone collided here).
    settings = {**files_input([PODMAN_LOGS], podman.socket_path), "poll_interval": "250ms"}
    lp = logpipe_factory(**{"inputs.docker": settings})
    for name in run_rm_burst(podman, "fileshort"):
        assert_numbered_lines(es, lp.data_stream, {"term": {"container.name": name}}, RM_LINES)
