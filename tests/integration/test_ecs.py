"""ECS conformance of what logpipe indexes: documents from every input (devlog, syslog
over TCP and UDP, forward, container log files) are read back from Elasticsearch, and
each field path is checked against the official ECS field list
(../shared/data/ecs/ecs_flat.yml) and the data stream's real mapping: a path ECS defines
must be mapped with ECS's type; any other path must be under ``logpipe.``, ``labels.`` or
``container.labels.``."""

from __future__ import annotations

import json
import logging.handlers
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fluent import sender

from tests.integration.conftest import ES, free_port, wait_for_count

pytestmark = pytest.mark.integration

ECS_FLAT = Path(__file__).resolve().parents[3] / "shared" / "data" / "ecs" / "ecs_flat.yml"
OWN_PREFIXES = ("logpipe.", "labels.", "container.labels.")
# Mapping types that serve an ECS type (date_nanos is a date to the nanosecond; ECS's
# match_only_text is a text field without positions).
SERVES = {
    "date": {"date", "date_nanos"},
    "match_only_text": {"match_only_text", "text"},
    "keyword": {"keyword", "constant_keyword", "wildcard"},
    "wildcard": {"wildcard", "keyword"},
    "constant_keyword": {"constant_keyword", "keyword"},
    "object:keyword": {"object", "flattened"},
}
CID = "5e" * 32


def _ecs() -> dict[str, str]:
    """ECS path -> type; an object of keywords (container.labels, labels) is served by a
    flattened field as well as by an object of keywords: "object:keyword"."""
    with open(ECS_FLAT) as fh:
        fields = yaml.load(fh, Loader=yaml.CSafeLoader)
    return {
        path: spec["type"] + (":keyword" if spec.get("object_type") == "keyword" else "")
        for path, spec in fields.items()
    }


def _paths(source: dict[str, Any], ecs: dict[str, str], prefix: str = "") -> set[str]:
    """Leaf paths of a document; an object that ECS types as object or flattened (labels,
    structured data) is one path itself, its keys are checked by the prefix rule."""
    out: set[str] = set()
    for key, value in source.items():
        path = prefix + key
        if isinstance(value, dict) and ecs.get(path) != "flattened":
            if ecs.get(path, "").startswith("object"):
                out.add(path)
            out |= _paths(value, ecs, path + ".")
        else:
            out.add(path)
    return out


def _mapped(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in properties.items():
        path = prefix + name
        out[path] = spec.get("type", "object")
        if "properties" in spec:
            out |= _mapped(spec["properties"], path + ".")
    return out


def _container_files(root: Path) -> str:
    """Docker's layout: one json-file line and config.v2.json for the name and labels."""
    directory = root / "containers" / CID
    directory.mkdir(parents=True)
    (directory / f"{CID}-json.log").write_text(
        '{"log":"from a container file\\n","stream":"stderr","time":"2026-11-30T10:00:00.5Z"}\n'
    )
    (directory / "config.v2.json").write_text(
        json.dumps(
            {
                "ID": CID,
                "Name": "/ecs-check",
                "Config": {"Image": "registry.example/ecs:1", "Labels": {"team": "ops"}},
            }
        )
    )
    return str(root / "containers" / "*" / "*-json.log")


def test_documents_from_every_input_conform_to_ecs(logpipe_factory, es: ES, tmp_path: Path):
    tcp, udp, fwd = free_port(), free_port(), free_port()
    lp = logpipe_factory(
        **{
            "inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{tcp}", "udp": f"127.0.0.1:{udp}"},
            "inputs.fwd": {"type": "forward", "listen": f"127.0.0.1:{fwd}"},
            "inputs.files": {
                "type": "docker",
                "mode": "files",
                "socket": "",
                "paths": [_container_files(tmp_path)],
                "poll_interval": "100ms",
            },
        }
    )
    # /dev/log: Python's SysLogHandler (the local form), and an @cee message.
    handler = logging.handlers.SysLogHandler(address=lp.socket_path)
    handler.setFormatter(logging.Formatter("ecsapp[%(process)d]: %(message)s"))
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "from devlog", None, None)
    handler.emit(record)
    handler.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(
            b'<14>Nov 30 10:00:00 ceeapp[7]: @cee: {"msg": "cee", "k": {"n": 1}}', lp.socket_path
        )
    # Syslog over TCP (RFC 5424 with structured data and a MSGID) and UDP (RFC 3164).
    m = (
        b"<165>1 2026-11-30T10:00:00.123456Z web01 ecsnet 4242 ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application"] over tcp'
    )
    with socket.create_connection(("127.0.0.1", tcp), timeout=10) as s:
        s.sendall(b"%d %s" % (len(m), m))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"<34>Nov 30 10:00:00 mymachine su: over udp", ("127.0.0.1", udp))
    # Forward: a plain record with extra fields, and a Docker fluentd-driver record.
    client = sender.FluentSender("ecs", host="127.0.0.1", port=fwd)
    try:
        assert client.emit("app", {"message": "over forward", "user": "ann"}), client.last_error
        assert client.emit(
            "docker",
            {
                "log": "from the fluentd driver",
                "container_id": "ab" * 32,
                "container_name": "/driver-app",
                "source": "stdout",
            },
        ), client.last_error
    finally:
        client.close()
    expected = 7
    wait_for_count(es, lp.data_stream, expected, 60)
    time.sleep(1)
    docs = [h["_source"] for h in es.search(lp.data_stream, size=100)]
    assert len(docs) == expected
    datasets = {d["event.dataset"] for d in docs}
    assert datasets == {"logpipe.devlog", "logpipe.syslog", "logpipe.forward", "logpipe.docker"}

    ecs = _ecs()
    status, mapping = es.request("GET", f"/{lp.data_stream}/_mapping")
    assert status == 200
    (index,) = mapping.values()
    mapped = _mapped(index["mappings"]["properties"])
    seen: set[str] = set()
    problems: list[str] = []
    for doc in docs:
        for path in _paths(doc, ecs):
            seen.add(path)
            if path in ecs:
                want, got = ecs[path], mapped.get(path)
                if got not in SERVES.get(want, {want}):
                    problems.append(f"{path}: ECS type {want}, mapped as {got}")
            elif not path.startswith(OWN_PREFIXES):
                problems.append(f"{path}: not an ECS field, and not under {OWN_PREFIXES}")
    assert not problems, "\n".join(sorted(set(problems)))
    # What was checked covers what each input makes (a test that checked nothing passes).
    for path in (
        "@timestamp", "message", "log.level", "log.syslog.structured_data",
        "log.syslog.msgid", "process.pid", "user.id", "container.id", "container.name",
        "container.image.name", "log.file.path", "source.ip", "host.name", "agent.version",
    ):  # fmt: skip
        assert path in seen, path
