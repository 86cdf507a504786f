"""/metrics as Prometheus reads it, with several workers: one set of series for the
service, totals equal to what Elasticsearch holds, a real HELP text on every family,
and names that follow Prometheus's conventions."""

from __future__ import annotations

import socket
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import ES, free_port, wait_for, wait_for_count

pytestmark = pytest.mark.integration


def _families(body: bytes) -> list:
    return list(text_string_to_metric_families(body.decode()))


def _total(families: list, sample_name: str, **labels: str) -> float:
    return sum(
        s.value
        for f in families
        for s in f.samples
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_two_workers_metrics_equal_the_documents_in_elasticsearch(logpipe_factory, es: ES) -> None:
    port = free_port()
    lp = logpipe_factory(
        service={"workers": 2},
        **{"inputs.net": {"type": "syslog", "tcp": f"127.0.0.1:{port}"}},
    )
    datagrams, connections, per_connection = 3000, 6, 500

    def tcp_sender(c: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            for n in range(per_connection):
                m = b"<13>Nov 30 10:00:00 host metrictcp: line %d-%d" % (c, n)
                s.sendall(b"%d %s" % (len(m), m))

    senders = [threading.Thread(target=tcp_sender, args=(c,)) for c in range(connections)]
    for t in senders:
        t.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for n in range(datagrams):
            s.sendto(f"<14>Nov 30 10:00:00 metricdg: line {n}".encode(), lp.socket_path)
    for t in senders:
        t.join(60)
    total = datagrams + connections * per_connection
    wait_for_count(es, lp.data_stream, total, 90)

    def scraped() -> list:
        status, body = lp.get("/metrics")
        assert status == 200
        return _families(body)

    # The indexed counter is bumped when the bulk answer is read, just after the
    # documents became searchable.
    families = wait_for(
        lambda: (f := scraped()) and _total(f, "logpipe_indexed_events_total") >= total and f,
        30,
        "the indexed counter to catch up",
    )
    in_es = {
        "devlog": es.count(lp.data_stream, {"term": {"process.name": "metricdg"}}),
        "net": es.count(lp.data_stream, {"term": {"process.name": "metrictcp"}}),
    }
    assert in_es == {"devlog": datagrams, "net": connections * per_connection}
    for name, count in in_es.items():
        assert _total(families, "logpipe_received_events_total", input=name) == count
    assert _total(families, "logpipe_indexed_events_total") == es.count(lp.data_stream) == total
    assert _total(families, "logpipe_dropped_events_total") == 0
    # Both workers did some of it, and /metrics shows one series per label set: the
    # workers' values summed, no per-process label.
    assert len(lp.worker_pids()) == 2
    keys = [(s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples]
    assert len(keys) == len(set(keys))
    assert not any("pid" in s.labels for f in families for s in f.samples)
    # HELP texts are ours (older prometheus-clients said "Multiprocess metric" of every
    # family summed from the workers' files); names follow
    # the conventions: counters in _total, units spelled out as _seconds and _bytes.
    ours = [f for f in families if f.name.startswith("logpipe_")]
    assert len(ours) >= 10  # those written to so far; every one is checked
    for f in ours:
        assert f.documentation and f.documentation != "Multiprocess metric", f.name
        if f.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in f.samples), f.name
        assert "_ms" not in f.name and "milliseconds" not in f.name, f.name
        if "duration" in f.name:
            assert f.name.endswith("_seconds"), f.name
        if "bytes" in f.name:
            assert f.name.endswith("_bytes"), f.name
    assert lp.stop() == 0
