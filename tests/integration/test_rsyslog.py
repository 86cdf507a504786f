"""A host's rsyslog forwarding to logpipe with the snippets of config/rsyslog/, as they are."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
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
from tests.integration.rsyslog import Rsyslogd

pytestmark = pytest.mark.integration

LINES = 10_000
SHORT_HOSTNAME = socket.gethostname().split(".")[0]  # rsyslog drops the domain


@pytest.fixture()
def rsyslogds(tmp_path: Path) -> Iterator[list[Rsyslogd]]:
    started: list[Rsyslogd] = []
    yield started
    for r in started:
        r.stop()


def _rsyslogd(started: list[Rsyslogd], workdir: Path, snippet: str, **env: str) -> Rsyslogd:
    r = Rsyslogd(workdir, snippet, {"LOGPIPE_HOST": "127.0.0.1", **env})
    started.append(r)
    r.start()
    return r


def _numbered(tag: str) -> list[str]:
    return [f"line {n}" for n in range(1, LINES + 1)]


def _check_fields(es: ES, index: str, tag: str) -> None:
    (hit,) = es.search(index, {"term": {"process.name": tag}}, size=1)
    doc = hit["_source"]
    assert doc["host.hostname"] == SHORT_HOSTNAME
    assert doc["log.syslog.appname"] == tag
    assert doc["source.ip"] == "127.0.0.1"
    assert doc["log.syslog.version"] == 1  # RSYSLOG_SyslogProtocol23Format is RFC 5424


def test_rsyslog_over_tcp_with_octet_counting(logpipe_factory, es: ES, rsyslogds, tmp_path):
    port = free_port()
    lp = logpipe_factory(**{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{port}"}})
    r = _rsyslogd(rsyslogds, tmp_path / "rs", "60-logpipe-tcp.conf", LOGPIPE_PORT=str(port))
    r.log("fwdtcp", _numbered("fwdtcp"))
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "fwdtcp"}}, LINES)
    _check_fields(es, lp.data_stream, "fwdtcp")
    assert lp.metric("logpipe_parse_failures_total", input="net") == 0


def test_rsyslog_keeps_messages_through_a_logpipe_restart(
    logpipe_factory, es: ES, rsyslogds, tmp_path
):
    """The snippet's disk-assisted queue and retries: logpipe stopped mid-stream, started
    again, and rsyslog delivers what it held."""
    port = free_port()
    lp = logpipe_factory(**{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{port}"}})
    r = _rsyslogd(rsyslogds, tmp_path / "rs", "60-logpipe-tcp.conf", LOGPIPE_PORT=str(port))
    r.log("fwdgap", [f"line {n}" for n in range(1, 2001)])
    assert lp.stop() == 0
    # rsyslog does not close on logpipe's FIN; its quiet connection is closed at once
    # rather than holding the stop until shutdown_timeout.
    assert "still open at the deadline" not in lp.log_text()
    r.log("fwdgap", [f"line {n}" for n in range(2001, 4001)])  # logpipe is away
    time.sleep(2)
    lp.start()
    query = {"term": {"process.name": "fwdgap"}}
    try:
        wait_for_count(es, lp.data_stream, 3999, 90, query)
    finally:
        numbers = {
            int(h["_source"]["message"].split()[1]) for h in es.all_hits(lp.data_stream, query)
        }
        missing = sorted(set(range(1, 4001)) - numbers)
        # rsyslog's own messages (connection errors, suspensions) go through the action too.
        own = es.all_hits(lp.data_stream, {"term": {"process.name": "rsyslogd"}})
        print("missing:", len(missing), missing[:10], missing[-10:])
        print("\n".join(h["_source"]["message"] for h in own))
    # TCP syslog has no acknowledgements: the message rsyslog was writing when the
    # connection went may be lost; all the rest arrives.
    assert len(missing) <= 1


def test_rsyslog_over_udp_every_loss_counted(logpipe_factory, es: ES, rsyslogds, tmp_path):
    port = free_port()
    lp = logpipe_factory(**{"inputs.net": {"type": "syslog", "udp": f"127.0.0.1:{port}"}})
    r = _rsyslogd(rsyslogds, tmp_path / "rs", "62-logpipe-udp.conf", LOGPIPE_PORT=str(port))
    r.log("fwdudp", _numbered("fwdudp"))
    query = {"term": {"process.name": "fwdudp"}}
    markers = {"term": {"event.action": "dropped"}}

    def settled() -> bool:
        received = lp.metric("logpipe_received_events_total", input="net")
        dropped = lp.metric("logpipe_dropped_events_total", input="net")
        kernel = lp.metric("logpipe_dropped_events_total", input="net", reason="kernel_buffer")
        return received + kernel >= LINES and es.count(lp.data_stream, query) >= received - dropped

    wait_for(settled, 60, "every datagram indexed or counted as dropped")
    indexed = es.count(lp.data_stream, query)
    dropped = lp.metric("logpipe_dropped_events_total", input="net")
    print(f"rsyslog over UDP: {indexed} indexed, {dropped:.0f} dropped of {LINES}")
    assert indexed + dropped == LINES
    if dropped:
        wait_for(lambda: es.count(lp.data_stream, markers) > 0, 30, "a loss marker")
    _check_fields(es, lp.data_stream, "fwdudp")


def test_udp_drops_in_the_kernel_are_counted_and_marked(logpipe_factory, es: ES):
    """The worker frozen (SIGSTOP) with a small receive buffer: the kernel drops what does
    not fit, and logpipe learns how many from SO_RXQ_OVFL, which the kernel attaches to
    the datagrams queued after the drops."""
    port = free_port()
    lp = logpipe_factory(
        **{
            "inputs.net": {
                "type": "syslog",
                "udp": f"127.0.0.1:{port}",
                "receive_buffer_bytes": "64KiB",
            }
        },
        queue={"loss_marker_interval": "1s"},
    )
    (worker,) = lp.worker_pids()
    total = 5000
    os.kill(worker, signal.SIGSTOP)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in range(1, total + 1):
                s.sendto(b"<13>Nov 29 10:00:00 host kdrop: line %d" % n, ("127.0.0.1", port))
    finally:
        os.kill(worker, signal.SIGCONT)
    # The kernel's count rides on the datagrams queued after the drops: a few more.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for n in range(total + 1, total + 11):
            time.sleep(0.05)
            s.sendto(b"<13>Nov 29 10:00:00 host kdrop: line %d" % n, ("127.0.0.1", port))
    total += 10
    query = {"term": {"process.name": "kdrop"}}
    wait_for(
        lambda: (
            lp.metric("logpipe_received_events_total", input="net")
            + lp.metric("logpipe_dropped_events_total", input="net", reason="kernel_buffer")
            == total
        ),
        30,
        "every datagram read or counted",
    )
    kernel = lp.metric("logpipe_dropped_events_total", input="net", reason="kernel_buffer")
    assert kernel > 0
    markers = {"term": {"logpipe.loss.reason": "kernel_buffer"}}
    wait_for(
        lambda: (
            sum(h["_source"]["logpipe.loss.count"] for h in es.search(lp.data_stream, markers))
            == kernel
            if es.count(lp.data_stream, markers) > 0
            else False
        ),
        30,
        "loss markers for every kernel drop",
    )
    wait_for(lambda: es.count(lp.data_stream, query) == total - kernel, 30, "the rest indexed")


def test_rsyslog_over_tls_with_client_certificates(logpipe_factory, es: ES, rsyslogds, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    strangers = make_certificates(tmp_path / "strangers")  # another CA altogether
    port = free_port()
    lp = logpipe_factory(
        **{
            "inputs.net": {
                "type": "syslog",
                "tls": f"127.0.0.1:{port}",
                "tls_cert": str(certs / "server.pem"),
                "tls_key": str(certs / "server.key"),
                "tls_client_ca": str(certs / "ca.pem"),
            }
        }
    )
    env = {"LOGPIPE_PORT": str(port), "LOGPIPE_CA": str(certs / "ca.pem")}
    good = _rsyslogd(rsyslogds, tmp_path / "good", "61-logpipe-tls.conf",
                     LOGPIPE_CERT=str(certs / "client.pem"), LOGPIPE_KEY=str(certs / "client.key"),
                     **env)  # fmt: skip
    good.log("fwdtls", _numbered("fwdtls"))
    # rsyslog's TLS sender is slower than its TCP one: give it the time it takes.
    wait_for_count(es, lp.data_stream, LINES, 120, {"term": {"process.name": "fwdtls"}})
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "fwdtls"}}, LINES)
    _check_fields(es, lp.data_stream, "fwdtls")

    bad = _rsyslogd(rsyslogds, tmp_path / "bad", "61-logpipe-tls.conf",
                    LOGPIPE_CERT=str(strangers / "client.pem"),
                    LOGPIPE_KEY=str(strangers / "client.key"), **env)  # fmt: skip
    bad.log("fwdstranger", ["should not arrive"])
    wait_for(
        lambda: lp.metric("logpipe_connections_closed_total", reason="tls_handshake") >= 1,
        30,
        "the stranger's handshake refused",
    )
    time.sleep(2)
    assert es.count(lp.data_stream, {"term": {"process.name": "fwdstranger"}}) <= 0


@pytest.mark.parametrize(
    ("template", "framing"),
    [
        ("RSYSLOG_ForwardFormat", "octet-counted"),
        ("RSYSLOG_TraditionalForwardFormat", "traditional"),
        ("RSYSLOG_SyslogProtocol23Format", "traditional"),
    ],
)
def test_rsyslog_forwarding_templates_parse_without_failures(
    logpipe_factory, es: ES, rsyslogds, tmp_path, template: str, framing: str
):
    """What rsyslog's own forwarding templates send, in both TCP framings, parsed with
    the host, the tag and the message right (not the snippets: every template)."""
    port = free_port()
    lp = logpipe_factory(**{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{port}"}})
    action = (
        f'action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
        f'TCP_Framing="{framing}" template="{template}")'
    )
    r = Rsyslogd(tmp_path / "rs", "", {}, action=action)
    rsyslogds.append(r)
    r.start()
    r.log("tmpl", [f"line {n} of {template}" for n in range(1, 1001)])
    query = {"term": {"process.name": "tmpl"}}
    assert_numbered_lines(es, lp.data_stream, query, 1000)
    (hit,) = es.search(lp.data_stream, {"match_phrase": {"message": "line 7 of"}}, size=1)
    doc = hit["_source"]
    assert doc["message"].strip() == f"line 7 of {template}"
    assert doc["host.hostname"] == SHORT_HOSTNAME
    assert "tags" not in doc
    assert lp.metric("logpipe_parse_failures_total", input="net") == 0


def test_tcp_with_block_pushes_back_on_the_sender_and_drops_nothing(logpipe_factory, es: ES):
    port = free_port()
    lp = logpipe_factory(
        **{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{port}"}},
        queue={"max_events": 100, "when_full": "block"},
    )
    total = 20_000
    sent = [0]
    padding = b" " + b"p" * 1000  # 20 MB in all: more than the kernel buffers hold

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            for n in range(1, total + 1):
                s.sendall(b"<13>Nov 29 10:00:00 host pushback: line %d%s\n" % (n, padding))
                sent[0] = n

    es.node.pause()
    try:
        thread = threading.Thread(target=send)
        thread.start()
        time.sleep(5)
        stalled_at = sent[0]
        assert stalled_at < total  # the sender is held up by TCP, not its lines dropped
        time.sleep(1)
        assert sent[0] == stalled_at
    finally:
        es.node.resume()
    thread.join(60)
    assert_numbered_lines(es, lp.data_stream, {"term": {"process.name": "pushback"}}, total)
    assert lp.metric("logpipe_dropped_events_total", input="net") == 0
