"""The forward protocol: real clients in, a node tier out to an aggregator, abuse."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import pytest
from fluent import sender

from tests.integration.certs import make_certificates
from tests.integration.conftest import (
    ES,
    ROOT,
    assert_numbered_lines,
    free_port,
    wait_for,
    wait_for_count,
)

pytestmark = pytest.mark.integration

EXAMPLES = Path(os.environ.get("LOGPIPE_SHARED", ROOT.parent / "shared")) / "data" / "forward"
GO_CLIENT = ROOT / "tests" / "clients" / "fluentclient"


@pytest.fixture(scope="session")
def fluentclient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fluent-logger-golang (the library of Docker's fluentd driver) as a command,
    built now from tests/clients/fluentclient with the Go module proxy."""
    out = tmp_path_factory.mktemp("go") / "fluentclient"
    subprocess.run(
        ["go", "build", "-o", str(out), "."],
        cwd=GO_CLIENT,
        check=True,
        timeout=600,
    )
    return out


def _forward_input(port: int, **extra: object) -> dict[str, dict[str, object]]:
    return {"inputs.fwd": {"type": "forward", "listen": f"127.0.0.1:{port}", **extra}}


def _send_frames(port: int, frames: list[bytes], replies: int = 0) -> list[object]:
    """Raw frames over one connection; returns the first ``replies`` msgpack objects."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        for frame in frames:
            s.sendall(frame)
        unpacker = msgpack.Unpacker(raw=False)
        out: list[object] = []
        while len(out) < replies:
            data = s.recv(65536)
            if not data:
                break
            unpacker.feed(data)
            out.extend(unpacker)
        return out


def test_fluent_logger_golang_with_ack_lands_exactly_once(
    logpipe_factory, es: ES, fluentclient: Path
):
    port = free_port()
    lp = logpipe_factory(**_forward_input(port))
    result = subprocess.run(
        [str(fluentclient), "-addr", f"127.0.0.1:{port}", "-tag", "goack", "-count", "10000",
         "-ack"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {"posted": 10000, "failed": 0}  # each chunk acked
    query = {"term": {"logpipe.forward.tag": "goack"}}
    assert_numbered_lines(es, lp.data_stream, query, 10_000)
    assert lp.metric("logpipe_forward_acks_total", input="fwd") == 10_000
    (hit,) = es.search(lp.data_stream, query, size=1)
    assert hit["_source"]["event.dataset"] == "logpipe.forward"
    assert hit["_source"]["source.ip"] == "127.0.0.1"


def test_python_fluent_logger_message_mode(logpipe_factory, es: ES):
    port = free_port()
    lp = logpipe_factory(**_forward_input(port))
    client = sender.FluentSender("pyapp", host="127.0.0.1", port=port, nanosecond_precision=True)
    try:
        for n in range(1, 1001):
            assert client.emit("web", {"message": f"line {n}", "user": "ann"}), client.last_error
    finally:
        client.close()
    query = {"term": {"logpipe.forward.tag": "pyapp.web"}}
    assert_numbered_lines(es, lp.data_stream, query, 1000)
    (hit,) = es.search(lp.data_stream, query, size=1)
    assert hit["_source"]["logpipe.forward.record"] == {"user": "ann"}


def _examples() -> list[dict]:
    with open(EXAMPLES / "docker_fluentd_examples.jsonl") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_docker_fluentd_driver_records_map_like_the_docker_input(logpipe_factory, es: ES):
    """The byte-exact Docker driver frames of ../shared/data/forward (synthetic, built from
    the driver's encoding rules): container fields, the ack, a split line joined."""
    port = free_port()
    lp = logpipe_factory(**_forward_input(port))
    examples = [e for e in _examples() if isinstance(e["decoded"], list)]
    docker = [e for e in examples if e["decoded"][0] != "app.x"]  # not the Forward-mode ones
    chunks = [e["decoded"][-1]["chunk"] for e in docker if e["decoded"][-1].get("chunk")]
    replies = _send_frames(port, [bytes.fromhex(e["hex"]) for e in docker], replies=len(chunks))
    assert replies == [{"ack": c} for c in chunks]
    pieces = [e["decoded"][2] for e in docker if "partial_id" in e["decoded"][2]]
    records = [e["decoded"][2] for e in docker if "partial_id" not in e["decoded"][2]]
    query = {"term": {"container.name": "web-1"}}
    wait_for(lambda: es.count(lp.data_stream, query) >= len(records) + 1, 30, "the records")
    time.sleep(1)
    hits = es.search(lp.data_stream, query, size=100)
    assert len(hits) == len(records) + 1  # the pieces of the split line are one event
    joined = "".join(p["log"] for p in sorted(pieces, key=lambda p: int(p["partial_ordinal"])))
    assert joined in [h["_source"]["message"] for h in hits]
    for hit in hits:
        doc = hit["_source"]
        assert doc["container.id"] == records[0]["container_id"]
        assert doc["logpipe.stream"] == "stdout"
        assert "container_id" not in doc.get("logpipe.forward.record", {})
    extra = [h["_source"] for h in hits if "logpipe.forward.record" in h["_source"]]
    assert extra[0]["logpipe.forward.record"] == {"com_example_team": "payments", "APP_ENV": "prod"}


def _forward_mode_frame(tag: str, lines: list[str], chunk: str) -> bytes:
    entries = [[int(time.time()), {"message": line}] for line in lines]
    return msgpack.packb([tag, entries, {"chunk": chunk, "size": len(entries)}])


def test_a_malformed_frame_closes_one_connection_and_others_go_on(logpipe_factory, es: ES):
    port = free_port()
    lp = logpipe_factory(**_forward_input(port))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as bad:
        bad.sendall(msgpack.packb(["tag", 12345, "a record that is not a map"]))
        bad.settimeout(10)
        assert bad.recv(1) == b""  # closed by logpipe
    replies = _send_frames(port, [_forward_mode_frame("after", ["line 1", "line 2"], "c1")], 1)
    assert replies == [{"ack": "c1"}]
    assert_numbered_lines(es, lp.data_stream, {"term": {"logpipe.forward.tag": "after"}}, 2)
    assert lp.metric("logpipe_connections_closed_total", input="fwd", reason="malformed_frame") == 1


def test_a_resent_chunk_lands_on_the_same_documents(logpipe_factory, es: ES):
    port = free_port()
    lp = logpipe_factory(**_forward_input(port))
    frame = _forward_mode_frame("again", [f"line {n}" for n in range(1, 101)], "same-chunk")
    for _ in range(3):  # as a client does that never saw the ack
        assert _send_frames(port, [frame], 1) == [{"ack": "same-chunk"}]
    query = {"term": {"logpipe.forward.tag": "again"}}
    wait_for_count(es, lp.data_stream, 100, 30, query)
    time.sleep(2)
    assert es.count(lp.data_stream, query) == 100
    assert lp.metric("logpipe_duplicate_events_total") == 200


def _digest(*parts: bytes) -> str:
    return hashlib.sha512(b"".join(parts)).hexdigest()


def test_shared_key_handshake_admits_the_key_and_refuses_others(logpipe_factory, es: ES):
    port = free_port()
    key = "s3cret"
    lp = logpipe_factory(**_forward_input(port, shared_key=key, self_hostname="aggregator"))
    for client_key, ok in ((key, True), ("wrong", False)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(s.recv(4096))
            name, options = next(unpacker)
            assert name == "HELO" and len(options["nonce"]) >= 16
            salt = os.urandom(16)
            digest = _digest(salt, b"client-1", options["nonce"], client_key.encode())
            s.sendall(msgpack.packb(["PING", "client-1", salt, digest, "", ""]))
            while True:
                data = s.recv(4096)
                unpacker.feed(data)
                replies = list(unpacker)
                if replies:
                    break
            pong = replies[0]
            assert pong[0] == "PONG" and pong[1] is ok
            if ok:
                # The server proves it knows the key too: digest over ITS hostname.
                assert pong[3] == "aggregator"
                assert pong[4] == _digest(salt, b"aggregator", options["nonce"], key.encode())
                s.sendall(_forward_mode_frame("keyed", ["line 1"], "k1"))
                unpacker.feed(s.recv(4096))
                assert list(unpacker) == [{"ack": "k1"}]
            else:
                s.settimeout(10)
                assert s.recv(1) == b""
    wait_for_count(es, lp.data_stream, 1, 30, {"term": {"logpipe.forward.tag": "keyed"}})
    assert lp.metric("logpipe_connections_closed_total", input="fwd", reason="auth") == 1


def _send_paced(path: str, total: int, rate: float, word: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        start = time.monotonic()
        for n in range(1, total + 1):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.sendto(f"<14>Nov 29 10:00:00 {word}: line {n}".encode(), path)


def test_node_to_aggregator_survives_the_aggregator_killed_mid_stream(logpipe_factory, es: ES):
    """A node forwards to an aggregator that alone writes to Elasticsearch; the
    aggregator is SIGKILLed twice and started again: nothing lost, nothing doubled."""
    port = free_port()
    aggregator = logpipe_factory(
        **_forward_input(port, shared_key="tier"),
        queue={"durability": "disk"},
    )
    node = logpipe_factory(
        forward={"hosts": [f"127.0.0.1:{port}"], "shared_key": "tier", "flush_interval": "200ms",
                 "batch_max_events": 500, "ack_timeout": "5s", "retry_max_backoff": "1s"},
    )  # fmt: skip
    total = 20_000
    sender_thread = threading.Thread(
        target=_send_paced, args=(node.socket_path, total, 2000.0, "tiered")
    )
    sender_thread.start()
    for _ in range(2):
        time.sleep(3)
        aggregator.kill()
        time.sleep(1)
        aggregator.start()
    sender_thread.join()
    query = {"term": {"process.name": "tiered"}}
    wait_for_count(es, aggregator.data_stream, total, 120, query)
    time.sleep(2)
    hits = es.all_hits(aggregator.data_stream, query, source=["message", "host.name"])
    assert len({h["_id"] for h in hits}) == len(hits) == total
    assert sorted(int(h["_source"]["message"].split()[1]) for h in hits) == list(
        range(1, total + 1)
    )
    assert node.metric("logpipe_retries_total", output="forward") > 0  # it did re-send


def test_a_flood_of_idle_connections_and_a_slow_sender_do_not_stop_others(logpipe_factory, es: ES):
    tcp = free_port()
    lp = logpipe_factory(**{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{tcp}"}})
    held: list[socket.socket] = []
    stop = threading.Event()

    def slow_sender() -> None:
        line = b"<13>Nov 29 10:00:00 host slow: one byte a second\n"
        with socket.create_connection(("127.0.0.1", tcp)) as s:
            for byte in line:
                if stop.is_set():
                    return
                s.sendall(bytes([byte]))
                time.sleep(1)

    slow = threading.Thread(target=slow_sender)
    try:
        held.extend(socket.create_connection(("127.0.0.1", tcp), timeout=10) for _ in range(1000))
        slow.start()
        wait_for(lambda: lp.metric("logpipe_connections", input="net") >= 1001, 30, "1,001 open")
        subprocess.run(
            ["logger", "-n", "127.0.0.1", "-P", str(tcp), "--tcp", "--octet-count", "-t", "busy"],
            input="".join(f"line {n}\n" for n in range(1, 1001)),
            text=True,
            check=True,
            timeout=60,
        )
        assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "busy"}}, 1000)
    finally:
        stop.set()
        for s in held:
            s.close()
        slow.join(5)


def test_node_over_tls_balances_two_aggregators_and_fails_over(
    logpipe_factory, es: ES, tmp_path: Path
):
    """Mutual TLS between the tiers; two aggregators, one stopped mid-stream: the node
    moves its chunks to the other, and every event is in once."""
    certs = make_certificates(tmp_path / "certs")
    tls_in = {
        "tls_cert": str(certs / "server.pem"),
        "tls_key": str(certs / "server.key"),
        "tls_client_ca": str(certs / "ca.pem"),
    }
    ports = [free_port(), free_port()]
    aggregators = [
        logpipe_factory(**_forward_input(port, **tls_in), queue={"durability": "disk"})
        for port in ports
    ]
    # Both aggregators write to the first one's data stream: one place to count.
    for a in aggregators[1:]:
        a.stop()
        a.config_path.write_text(
            a.config_path.read_text().replace(a.data_stream, aggregators[0].data_stream)
        )
        a.start()
    node = logpipe_factory(
        forward={
            "hosts": [f"127.0.0.1:{p}" for p in ports],
            "tls": True,
            "tls_ca": str(certs / "ca.pem"),
            "tls_cert": str(certs / "client.pem"),
            "tls_key": str(certs / "client.key"),
            "batch_max_events": 200,
            "flush_interval": "100ms",
            "retry_max_backoff": "1s",
        }
    )
    total = 10_000
    sender_thread = threading.Thread(
        target=_send_paced, args=(node.socket_path, total, 2000.0, "balanced")
    )
    sender_thread.start()
    time.sleep(2)
    received_before = [a.metric("logpipe_received_events_total", input="fwd") for a in aggregators]
    assert all(r > 0 for r in received_before), received_before  # both took chunks
    assert aggregators[1].stop() == 0  # one aggregator goes away mid-stream
    sender_thread.join()
    query = {"term": {"process.name": "balanced"}}
    index = aggregators[0].data_stream
    wait_for_count(es, index, total, 120, query)
    time.sleep(2)
    hits = es.all_hits(index, query, source=["message"])
    assert len({h["_id"] for h in hits}) == len(hits) == total
