"""The whole path: an app's syslog() call on /dev/log to a document in Elasticsearch."""

from __future__ import annotations

import logging
import logging.handlers
import re
import socket
import subprocess
import time
from datetime import UTC, datetime

import pytest

from tests.integration.conftest import ES, wait_for

pytestmark = pytest.mark.integration

# Message bodies as real daemons write them; each line gets a unique serial so every
# single one can be found again.
REAL_LINES = [
    (
        "sshd",
        "auth.info",
        "info",
        "Accepted publickey for deploy from 10.1.2.3 port 52144 ssh2: ED25519 SHA256:3kq1",
    ),
    ("dhclient", "daemon.notice", "notice", "DHCPACK of 10.1.2.40 from 10.1.2.1 (xid=0x5e2c1a07)"),
    ("CRON", "cron.info", "info", "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)"),
    ("systemd", "daemon.info", "info", "Started Session 42 of User deploy."),
    (
        "kernel",
        "kern.warning",
        "warning",
        "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
    ),
    (
        "nginx",
        "local7.err",
        "err",
        "2026/11/29 10:00:00 [error] 311#311: *7 upstream timed out (110: Connection timed out)",
    ),
    ("postfix/smtpd", "mail.info", "info", "connect from mail.example.org[192.0.2.10]"),
    (
        "sudo",
        "authpriv.notice",
        "notice",
        "deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl reload app",
    ),
]


def test_10000_logger_lines_are_searchable_with_their_fields(logpipe_factory, es: ES) -> None:
    lp = logpipe_factory()
    per_tag = 10_000 // len(REAL_LINES)
    pids: dict[str, int] = {}
    started = datetime.now(UTC)
    for tag, priority, _severity, body in REAL_LINES:
        text = "".join(f"{body} serial={tag}-{n}\n" for n in range(per_tag))
        proc = subprocess.Popen(
            ["logger", "-u", lp.socket_path, "-t", tag, "-p", priority, "-i"],
            stdin=subprocess.PIPE,
        )
        pids[tag] = proc.pid
        proc.communicate(text.encode(), timeout=60)
        assert proc.returncode == 0
    last_send = time.monotonic()

    wait_for(lambda: es.count(lp.data_stream) >= 10_000, 10, "10,000 documents searchable")
    assert time.monotonic() - last_send <= 10
    assert es.count(lp.data_stream) == 10_000

    for tag, _priority, severity, body in REAL_LINES:
        query = {"bool": {"filter": [{"term": {"process.name": tag}}]}}
        assert es.count(lp.data_stream, query) == per_tag, tag
        hits = es.search(lp.data_stream, {"match_phrase": {"message": f"serial={tag}-7"}})
        assert len(hits) == 1, tag
        src = hits[0]["_source"]
        assert src["message"] == f"{body} serial={tag}-7"
        assert src["process.name"] == tag
        assert src["process.pid"] == pids[tag]
        assert src["log.syslog.severity.name"] == severity
        assert src["log.level"] == severity
        assert src["host.name"] == "test-node"
        assert src["event.dataset"] == "logpipe.devlog"
        stamp = datetime.fromisoformat(src["@timestamp"].replace("Z", "+00:00"))
        assert abs((stamp - started).total_seconds()) < 60, src["@timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", src["@timestamp"])

    assert lp.metric("logpipe_received_events_total", input="devlog") == 10_000
    assert lp.metric("logpipe_indexed_events_total") == 10_000
    assert lp.metric("logpipe_dropped_events_total") == 0


def test_python_syslog_handler_and_awkward_datagrams(logpipe_factory, es: ES) -> None:
    lp = logpipe_factory(**{"inputs.devlog": {"max_message_bytes": "1KiB"}})
    logger = logging.getLogger("logpipe-test-app")
    handler = logging.handlers.SysLogHandler(address=lp.socket_path)
    handler.setFormatter(logging.Formatter("billing[%(process)d]: %(message)s"))
    logger.addHandler(handler)
    try:
        logger.error("payment declined for order 1001")
    finally:
        logger.removeHandler(handler)
        handler.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as raw:
        raw.sendto(b"\xff\xfe not a syslog header \xc3", lp.socket_path)
        raw.sendto(b"<14>Nov 29 10:00:00 big: " + b"x" * 5000, lp.socket_path)
        raw.sendto(
            b"<13>1 2026-11-29T10:00:00.123456+02:00 host7 app 99 ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="App\\"lication"] hello 5424',
            lp.socket_path,
        )

    wait_for(lambda: es.count(lp.data_stream) >= 4, 10, "4 documents")
    by_message = {h["_source"]["message"][:20]: h["_source"] for h in es.search(lp.data_stream)}

    handler_doc = by_message["payment declined for"]
    assert handler_doc["process.name"] == "billing"
    assert handler_doc["log.syslog.severity.name"] == "err"
    assert handler_doc["log.syslog.facility.name"] == "user"

    garbage = next(s for s in by_message.values() if "not a syslog header" in s["message"])
    assert "_syslog_parse_failure" in garbage["tags"]
    assert "\ufffd" in garbage["message"]  # invalid UTF-8 replaced, not dropped

    big = by_message["x" * 20]
    assert "_message_truncated" in big["tags"]
    assert len(big["message"]) < 1024

    rfc5424 = by_message["hello 5424"]
    assert rfc5424["@timestamp"] == "2026-11-29T08:00:00.123456000Z"
    assert rfc5424["host.hostname"] == "host7"
    assert rfc5424["log.syslog.msgid"] == "ID47"
    assert rfc5424["log.syslog.structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'App"lication'}
    }
    assert lp.metric("logpipe_truncated_events_total", input="devlog") == 1
    assert lp.metric("logpipe_parse_failures_total", input="devlog") == 1


def test_admin_endpoints_answer(logpipe_factory) -> None:
    lp = logpipe_factory()
    status, body = lp.get("/readyz")
    assert status == 200 and b'"ready": true' in body
    status, body = lp.get("/metrics")
    text = body.decode()
    for name in (
        "logpipe_received_events_total",
        "logpipe_dropped_events_total",
        "logpipe_queue_events",
        "logpipe_queue_bytes",
        "logpipe_indexed_events_total",
        "logpipe_bulk_request_duration_seconds_bucket",
        "logpipe_retries_total",
        "logpipe_dead_lettered_events_total",
        "logpipe_failed_events_total",
    ):
        assert (
            f"# HELP {name.removesuffix('_bucket').removesuffix('_total')}" in text
            or f"# HELP {name}" in text
        ), name
    result = lp.cli("status", "--admin", lp.admin)
    assert "elasticsearch" in result.stdout and "up" in result.stdout
