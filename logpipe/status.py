"""``logpipe status``: a running logpipe at a glance, from its admin endpoint.

Two scrapes of /metrics ``interval`` seconds apart give the rates; /status gives uptime,
bounds and Elasticsearch's state. With several workers /metrics is already the sum of
all of them, so the table is the service's. :func:`render` is pure.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# sample name -> label -> value, summed over the other labels
Samples = dict[str, dict[str, float]]


def parse(text: str, by: str = "input") -> Samples:
    """logpipe's samples from /metrics text, summed per value of the ``by`` label ("" where
    a sample has none)."""
    out: Samples = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("logpipe_") and not s.name.endswith("_created"):
                out[s.name][s.labels.get(by, "")] += s.value
    return out


def _total(samples: Samples, name: str) -> float:
    return sum(samples.get(name, {}).values())


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return (f"{days}d" if days else "") + (f"{hours}h" if days or hours else "") + f"{minutes}m{s}s"


def render(status: dict[str, Any], before: Samples, after: Samples, seconds: float) -> str:
    """The table: the service line, Elasticsearch's line, then one row per input."""

    def rate(name: str, key: str | None = None) -> float:
        if key is None:
            return (_total(after, name) - _total(before, name)) / seconds
        return (after.get(name, {}).get(key, 0.0) - before.get(name, {}).get(key, 0.0)) / seconds

    q = status["queue"]
    events = _total(after, "logpipe_queue_events")
    queued_bytes = _total(after, "logpipe_queue_bytes")
    fill = events / q["max_events"] * 100 if q["max_events"] else 0.0
    lines = [
        f"logpipe   up {_duration(status['uptime_seconds'])}   "
        f"queue {events:,.0f}/{q['max_events']:,} events ({fill:.0f}%), "
        f"{_mib(queued_bytes)}/{_mib(q['max_bytes'])}   "
        f"spool {_mib(_total(after, 'logpipe_spool_bytes'))}",
    ]
    es = status["elasticsearch"]
    state = ("up" if es["reachable"] else "DOWN") + (
        "" if es["template"] else ", index template missing (run logpipe setup)"
    )
    lines.append(
        f"elasticsearch   {state}   indexed {_total(after, 'logpipe_indexed_events_total'):,.0f} "
        f"({rate('logpipe_indexed_events_total'):,.0f}/s)   "
        f"retries {_total(after, 'logpipe_retries_total'):,.0f}   "
        f"dead letters {_total(after, 'logpipe_dead_lettered_events_total'):,.0f}   "
        f"failed {_total(after, 'logpipe_failed_events_total'):,.0f}"
    )
    head = ("input", "type", "received", "/s", "dropped", "parse failures", "connections")
    rows = [head]
    for inp in status["inputs"]:
        name = inp["name"]

        def value(metric: str, key: str = name) -> float:
            return after.get(metric, {}).get(key, 0.0)

        rows.append(
            (
                name if inp["bound"] else f"{name} (not bound)",
                inp["type"],
                f"{value('logpipe_received_events_total'):,.0f}",
                f"{rate('logpipe_received_events_total', name):,.0f}",
                f"{value('logpipe_dropped_events_total'):,.0f}",
                f"{value('logpipe_parse_failures_total'):,.0f}",
                f"{value('logpipe_connections'):,.0f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines.append("")
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fetch(admin: str, interval: float) -> str:
    """Ask the admin endpoint twice ``interval`` apart; the rendered table."""
    url = admin.rstrip("/")

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"{url}{path}", timeout=5) as resp:
            return resp.read()

    before = parse(get("/metrics").decode())
    started = time.monotonic()
    time.sleep(interval)
    after = parse(get("/metrics").decode())
    seconds = time.monotonic() - started
    return render(json.loads(get("/status")), before, after, seconds)
