"""Network syslog: util-linux `logger` and raw sockets over UDP, TCP and TLS into Elasticsearch."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.certs import make_certificates
from tests.integration.conftest import (
    ES,
    assert_numbered_lines,
    free_port,
    wait_for,
    wait_for_count,
)

pytestmark = pytest.mark.integration


def _syslog_input(**extra: object) -> dict[str, dict[str, object]]:
    return {"inputs.net": {"type": "syslog", **extra}}


def _logger(port: int, *args: str, lines: list[str]) -> None:
    subprocess.run(
        ["logger", "-n", "127.0.0.1", "-P", str(port), *args],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        timeout=60,
    )


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _closed_by_peer(sock: socket.socket, timeout: float = 10) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_logger_over_tcp_octet_counted_rfc5424_and_lf_rfc3164(logpipe_factory, es: ES) -> None:
    tcp = free_port()
    lp = logpipe_factory(**_syslog_input(tcp=f"127.0.0.1:{tcp}"))
    n = 1000
    _logger(tcp, "--tcp", "--octet-count", "--rfc5424", "-t", "counted",
            lines=[f"line {i}" for i in range(1, n + 1)])  # fmt: skip
    # logger --tcp without --octet-count ends each message with LF.
    _logger(tcp, "--tcp", "--rfc3164", "-t", "lf", lines=[f"line {i}" for i in range(1, n + 1)])
    for app in ("counted", "lf"):
        assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": app}}, n)
    (hit,) = es.search(lp.data_stream, {"term": {"process.name": "counted"}}, size=1)
    doc = hit["_source"]
    assert doc["host.hostname"] == socket.gethostname()
    assert doc["source.ip"] == "127.0.0.1" and doc["source.port"] > 0
    assert doc["network.transport"] == "tcp"
    assert doc["event.dataset"] == "logpipe.syslog"
    assert lp.metric("logpipe_connections_accepted_total", input="net", listener="tcp") == 2


def test_logger_over_udp_with_loss_counted(logpipe_factory, es: ES) -> None:
    udp = free_port()
    lp = logpipe_factory(**_syslog_input(udp=f"127.0.0.1:{udp}"))
    n = 1000
    _logger(udp, "--udp", "--rfc5424", "-t", "dgram", lines=[f"line {i}" for i in range(1, n + 1)])
    query = {"term": {"process.name": "dgram"}}
    wait_for_count(es, lp.data_stream, n, 30, query)
    received = lp.metric("logpipe_received_events_total", input="net")
    dropped = lp.metric("logpipe_dropped_events_total", input="net")
    assert received == n and dropped == 0
    (hit,) = es.search(lp.data_stream, query, size=1)
    assert hit["_source"]["network.transport"] == "udp"
    assert hit["_source"]["source.ip"] == "127.0.0.1"


def test_udp_flood_into_a_full_queue_is_dropped_counted_and_marked(logpipe_factory, es: ES) -> None:
    udp = free_port()
    lp = logpipe_factory(
        **_syslog_input(udp=f"127.0.0.1:{udp}"),
        queue={"max_events": 50, "loss_marker_interval": "1s"},
        elasticsearch={"hosts": ["http://127.0.0.1:1"]},  # nowhere: the queue stays full
        service={"shutdown_timeout": "1s"},
        start=False,
    )
    lp.start(wait_ready=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(2000):
            s.sendto(b"<13>Nov 29 10:00:00 host flood: line %d" % i, ("127.0.0.1", udp))
    wait_for(
        lambda: lp.metric("logpipe_received_events_total", input="net") == 2000, 20, "all read"
    )
    dropped = lp.metric("logpipe_dropped_events_total", input="net", reason="queue_full")
    assert dropped >= 2000 - 50 - 5  # the queue's 50, and a loss marker or few
    wait_for(lambda: lp.metric("logpipe_loss_markers_total", input="net") >= 1, 20, "a marker")


def test_a_broken_frame_closes_one_connection_and_the_others_go_on(logpipe_factory, es: ES) -> None:
    tcp = free_port()
    lp = logpipe_factory(**_syslog_input(tcp=f"127.0.0.1:{tcp}"))
    good, bad = _connect(tcp), _connect(tcp)
    good.sendall(b"<13>Nov 29 10:00:00 host goodconn: line 1\n")
    bad.sendall(b"11 <13>one msg12x <13>this is no longer a frame")
    assert _closed_by_peer(bad)
    bad.close()
    good.sendall(b"<13>Nov 29 10:00:00 host goodconn: line 2\n")
    good.close()
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "goodconn"}}, 2)
    assert es.count(lp.data_stream, {"match_phrase": {"message": "one msg"}}) == 1
    assert lp.metric("logpipe_connections_closed_total", input="net", reason="malformed_frame") == 1
    assert "Closing a connection whose framing broke" in lp.log_text()


def test_max_connections_and_idle_timeout_cut_off_and_count(logpipe_factory, es: ES) -> None:
    tcp = free_port()
    lp = logpipe_factory(
        **_syslog_input(tcp=f"127.0.0.1:{tcp}", max_connections=3, idle_timeout="2s")
    )
    held = [_connect(tcp) for _ in range(3)]
    for s in held:
        s.sendall(b"<13>Nov 29 10:00:00 host held: hello\n")
    wait_for(lambda: lp.metric("logpipe_connections", input="net") == 3, 10, "3 connections")
    with _connect(tcp) as extra:
        assert _closed_by_peer(extra)
    assert lp.metric("logpipe_connections_closed_total", reason="max_connections") == 1
    # The three say nothing more: the idle timeout closes them, and room comes back.
    for s in held:
        assert _closed_by_peer(s, timeout=15)
        s.close()
    assert lp.metric("logpipe_connections_closed_total", reason="idle_timeout") == 3
    late = _connect(tcp)
    late.sendall(b"<13>Nov 29 10:00:00 host late: after the idle ones\n")
    late.close()
    wait_for_count(es, lp.data_stream, 1, 20, {"term": {"process.name": "late"}})
    assert es.count(lp.data_stream, {"term": {"process.name": "held"}}) == 3


def test_an_over_long_message_is_cut_tagged_and_the_next_one_is_whole(
    logpipe_factory, es: ES
) -> None:
    tcp = free_port()
    lp = logpipe_factory(**_syslog_input(tcp=f"127.0.0.1:{tcp}", max_message_bytes="1KiB"))
    big = b"<13>Nov 29 10:00:00 host longone: " + b"x" * 5000
    nxt = b"<13>Nov 29 10:00:00 host afterlong: fine"
    with _connect(tcp) as s:
        s.sendall(b"%d %s%d %s" % (len(big), big, len(nxt), nxt))
    wait_for_count(es, lp.data_stream, 1, 20, {"term": {"process.name": "afterlong"}})
    (hit,) = es.search(lp.data_stream, {"term": {"process.name": "longone"}}, size=1)
    assert "_message_truncated" in hit["_source"]["tags"]
    assert lp.metric("logpipe_truncated_events_total", input="net") == 1


def _tls_input(certs: Path, port: int, **extra: object) -> dict[str, dict[str, object]]:
    return _syslog_input(
        tls=f"127.0.0.1:{port}",
        tls_cert=str(certs / "server.pem"),
        tls_key=str(certs / "server.key"),
        **extra,
    )


def test_tls_with_client_certificates_and_one_without_is_refused(
    logpipe_factory, es: ES, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    lp = logpipe_factory(**_tls_input(certs, port, tls_client_ca=str(certs / "ca.pem")))
    trusting = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    trusting.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    lines = [b"<13>Nov 29 10:00:00 host tlsapp: line %d" % i for i in range(1, 201)]
    with trusting.wrap_socket(_connect(port), server_hostname="127.0.0.1") as s:
        s.sendall(b"".join(b"%d %s" % (len(m), m) for m in lines))
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "tlsapp"}}, 200)

    anonymous = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    try:
        with anonymous.wrap_socket(_connect(port), server_hostname="127.0.0.1") as s:
            # TLS 1.3 finishes the client's side of the handshake before the server has
            # checked; the refusal then arrives on the first read, as an alert or a close.
            s.sendall(b"<13>Nov 29 10:00:00 host nocert: should not arrive\n")
            refused = s.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        refused = True
    assert refused
    wait_for(
        lambda: lp.metric("logpipe_connections_closed_total", reason="tls_handshake") == 1,
        10,
        "the refusal counted",
    )
    time.sleep(1)
    assert es.count(lp.data_stream, {"term": {"process.name": "nocert"}}) == 0


def test_a_tls_sender_that_never_reads_loses_nothing_when_it_closes(
    logpipe_factory, es: ES, tmp_path: Path
) -> None:
    """rsyslog's TLS sender never reads. Had the server sent TLS 1.3 session tickets, they
    would sit unread in the sender's socket, its close() would then be a RST, and a RST
    throws away what logpipe had not read yet. Here a burst is sent and closed at once,
    repeatedly, as rsyslog's queue workers do."""
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    lp = logpipe_factory(**_tls_input(certs, port))
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    per_connection, connections = 5000, 8
    for c in range(connections):
        lines = [
            b"<13>Nov 29 10:00:00 host burst: line %d" % (c * per_connection + i)
            for i in range(1, per_connection + 1)
        ]
        with context.wrap_socket(_connect(port), server_hostname="127.0.0.1") as s:
            s.sendall(b"".join(b"%d %s" % (len(m), m) for m in lines))
    total = per_connection * connections
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "burst"}}, total)


def test_ipv6_listeners_and_ipv4_through_a_dual_stack_socket(logpipe_factory, es: ES) -> None:
    udp, tcp = free_port(), free_port()
    lp = logpipe_factory(**_syslog_input(udp=f"[::1]:{udp}", tcp=f"[::]:{tcp}"))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.sendto(b"<13>Nov 29 10:00:00 host six: over udp6", ("::1", udp))
    with socket.create_connection(("127.0.0.1", tcp), timeout=10) as s:  # IPv4 into [::]
        s.sendall(b"<13>Nov 29 10:00:00 host four: over tcp4\n")
    wait_for_count(es, lp.data_stream, 2, 30, {"terms": {"process.name": ["six", "four"]}})
    by_name = {
        h["_source"]["process.name"]: h["_source"]
        for h in es.search(lp.data_stream, {"terms": {"process.name": ["six", "four"]}})
    }
    assert by_name["six"]["source.ip"] == "::1"
    assert by_name["six"]["network.transport"] == "udp"
    assert by_name["four"]["source.ip"] == "127.0.0.1"  # not ::ffff:127.0.0.1
