"""logpipe status's table, from two /metrics texts and /status."""

from __future__ import annotations

from logpipe import status

BEFORE = """
# TYPE logpipe_received_events_total counter
logpipe_received_events_total{input="devlog"} 1000.0
logpipe_received_events_total{input="net"} 10.0
# TYPE logpipe_indexed_events_total counter
logpipe_indexed_events_total{output="elasticsearch"} 900.0
"""
AFTER = """
# TYPE logpipe_received_events_total counter
logpipe_received_events_total{input="devlog"} 3000.0
logpipe_received_events_total{input="net"} 10.0
# TYPE logpipe_dropped_events_total counter
logpipe_dropped_events_total{input="devlog",reason="queue_full"} 5.0
logpipe_dropped_events_total{input="devlog",reason="reader_behind"} 7.0
# TYPE logpipe_indexed_events_total counter
logpipe_indexed_events_total{output="elasticsearch"} 2900.0
# TYPE logpipe_connections gauge
logpipe_connections{input="net",listener="tcp"} 3.0
logpipe_connections{input="net",listener="tls"} 1.0
# TYPE logpipe_queue_events gauge
logpipe_queue_events 25000.0
# TYPE logpipe_queue_bytes gauge
logpipe_queue_bytes 1048576.0
"""
STATUS = {
    "uptime_seconds": 3723.4,
    "queue": {"events": 1, "bytes": 1, "max_events": 100000, "max_bytes": 64 * 2**20},
    "inputs": [
        {"name": "devlog", "type": "devlog", "bound": True},
        {"name": "net", "type": "syslog", "bound": False},
    ],
    "elasticsearch": {"reachable": True, "template": False},
}


def test_render_shows_rates_fill_drops_and_connections_per_input() -> None:
    text = status.render(STATUS, status.parse(BEFORE), status.parse(AFTER), 2.0)
    lines = text.splitlines()
    assert lines[0].startswith("logpipe   up 1h2m3s   queue 25,000/100,000 events (25%)")
    assert "1.0 MiB/64.0 MiB" in lines[0]
    assert "up, index template missing (run logpipe setup)" in lines[1]
    assert "indexed 2,900 (1,000/s)" in lines[1]
    assert lines[3].split() == ["input", "type", "received", "/s", "dropped", "parse",
                                "failures", "connections"]  # fmt: skip
    assert lines[4].split() == ["devlog", "devlog", "3,000", "1,000", "12", "0", "0"]
    assert lines[5].split() == ["net", "(not", "bound)", "syslog", "10", "0", "0", "0", "4"]
