"""Index mode: classic daily indices instead of data streams (``elasticsearch.index``)."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import pytest

from tests.integration.conftest import ES, wait_for

pytestmark = pytest.mark.integration

CID = "d1" * 32


def _json_file(tmp_path: Path) -> str:
    """A Docker json-file log whose 200 lines straddle midnight (UTC) of 28/29 November."""
    directory = tmp_path / "containers" / CID
    directory.mkdir(parents=True)
    with open(directory / f"{CID}-json.log", "w") as fh:
        for n in range(1, 201):
            stamp = (
                f"2026-11-28T23:59:{n % 60:02d}.{n:09d}Z"
                if n <= 100
                else f"2026-11-29T00:00:{n % 60:02d}.{n:09d}Z"
            )
            line = {"log": f"line {n}\n", "stream": "stdout", "time": stamp}
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    return str(tmp_path / "containers" / "*" / "*-json.log")


def test_daily_indices_by_each_events_day_dead_letters_and_no_duplicates_on_reread(
    logpipe_factory, es: ES, tmp_path: Path
) -> None:
    prefix = f"daily-{secrets.token_hex(3)}"
    lp = logpipe_factory(
        start=False,
        elasticsearch={"index": f"{prefix}-%Y.%m.%d", "dlq_index": f"{prefix}.dlq-%Y.%m.%d"},
        **{
            "inputs.docker": {
                "type": "docker",
                "mode": "files",
                "paths": [_json_file(tmp_path)],
                "socket": "",
                "poll_interval": "100ms",
            }
        },
    )
    first = lp.cli("setup", "-c", str(lp.config_path)).stdout
    assert f"component template logpipe-{prefix}@mappings: installed" in first
    assert f"index template logpipe-{prefix} (for {prefix}-*): installed" in first
    assert f"index template logpipe-{prefix}.dlq (for {prefix}.dlq-*): installed" in first
    assert "ILM: nothing to do (daily indices, no retention)" in first
    second = lp.cli("setup", "-c", str(lp.config_path)).stdout
    assert "installed" not in second and "nothing to change" in second

    lp.start()
    wait_for(lambda: es.count(f"{prefix}-*") == 200, 30, "200 documents in the daily indices")
    # By the line's own day, not the day it was sent (today is neither).
    assert es.count(f"{prefix}-2026.11.28") == 100
    assert es.count(f"{prefix}-2026.11.29") == 100
    status, body = es.request("GET", f"/{prefix}-2026.11.28")
    assert status == 200, body
    index = body[f"{prefix}-2026.11.28"]
    assert "data_stream" not in index  # a plain index
    assert index["mappings"]["properties"]["@timestamp"]["type"] == "date_nanos"
    assert index["settings"]["index"]["codec"] == "best_compression"

    # A refused document goes to the dead-letter index of its own day.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b'<14>Nov 29 10:00:00 app[1]: @cee: {"msg": "a", "k": {"x": 1}}', lp.socket_path)
        wait_for(lambda: es.count(f"{prefix}-*") == 201, 15, "the object document")
        s.sendto(b'<14>Nov 29 10:00:00 app[1]: @cee: {"msg": "b", "k": "flat"}', lp.socket_path)
    wait_for(lambda: es.count(f"{prefix}.dlq-*") == 1, 15, "the dead letter")
    [letter] = es.search(f"{prefix}.dlq-*")
    day = letter["_source"]["@timestamp"][:10].replace("-", ".")
    assert letter["_index"] == f"{prefix}.dlq-{day}"
    assert letter["_source"]["logpipe.dlq.data_stream"] == f"{prefix}-{day}"
    assert es.count(f"{prefix}-*") == 201  # the dead-letter indices are not in the pattern

    # Read the whole file again (its checkpoint gone): every line meets its id, 409.
    assert lp.stop() == 0
    (lp.workdir / "data" / "docker-docker.files.json").unlink()
    lp.start()
    wait_for(lambda: lp.metric("logpipe_duplicate_events_total") == 200, 30, "200 answers of 409")
    assert es.count(f"{prefix}-*") == 201
    ids = es.all_ids(f"{prefix}-*")
    assert len(ids) == len(set(ids)) == 201

    # `logpipe tail` searches the daily indices too: the newest three lines, in time order.
    tail = lp.cli(
        "tail", "-c", str(lp.config_path), "--no-follow", "--since", "7d", "-n", "3", "line"
    )
    shown = [row.rsplit(": ", 1)[-1] for row in tail.stdout.splitlines()]
    assert shown == ["line 178", "line 119", "line 179"], tail.stdout
