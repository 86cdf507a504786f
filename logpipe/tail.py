"""``logpipe tail``: the fleet's logs from Elasticsearch in a terminal, like ``docker logs
-f`` across hosts.

The last ``--lines`` events that match, oldest first, then (with ``--follow``, the
default) every new one as it becomes searchable. Following goes by ``event.created``
(when logpipe received an event), not ``@timestamp``: a line that arrives late with an
old time of its own is still shown. Each poll asks again for what was received in the
last ``LOOKBACK_SECONDS`` and prints the ids not printed yet, because a document becomes
searchable up to a refresh (1 s) and a flush after its ``event.created``.

The query and the line format are pure functions (:func:`query`, :func:`format_line`);
the loop around them is the only I/O.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from logpipe.parsers.syslog import SEVERITY_NAMES

POLL_SECONDS = 0.25
LOOKBACK_SECONDS = 30.0
PAGE = 1000
# What application loggers write into log.level (JSON lines), by syslog rank.
_LEVEL_ALIASES: dict[str, tuple[str, ...]] = {
    "emerg": ("emergency", "fatal"),
    "crit": ("critical",),
    "err": ("error",),
    "warning": ("warn",),
    "info": ("information",),
    "debug": ("trace",),
}
_DURATION_RE = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Filters:
    """What the user asked to see; every one is optional."""

    container: str = ""
    host: str = ""
    severity: str = ""  # this severity and worse
    text: str = ""
    since: str = ""  # "10m", "2h", or an ISO 8601 time
    until: str = ""


def levels_at_least(severity: str) -> list[str]:
    """The log.level values of ``severity`` and worse (``warning`` -> emerg .. warning)."""
    wanted = severity.lower()
    for name, aliases in _LEVEL_ALIASES.items():
        if wanted in aliases:
            wanted = name
    if wanted not in SEVERITY_NAMES:
        raise ValueError(f"unknown severity {severity!r}: one of {', '.join(SEVERITY_NAMES)}")
    names = SEVERITY_NAMES[: SEVERITY_NAMES.index(wanted) + 1]
    return [v for name in names for v in (name, *_LEVEL_ALIASES.get(name, ()))]


def time_bound(value: str) -> str:
    """``10m`` -> Elasticsearch date math ``now-10m``; an ISO time stays as it is."""
    match = _DURATION_RE.match(value)
    return f"now-{match.group(1)}{match.group(2)}" if match else value


def query(filters: Filters, created_from: str | None = None) -> dict[str, Any]:
    """The bool query for ``filters``; ``created_from``: only events received since then."""
    clauses: list[dict[str, Any]] = []
    if filters.container:
        clauses.append({"term": {"container.name": filters.container}})
    if filters.host:
        # The node that shipped it, or the host a syslog message names.
        clauses.append(
            {
                "bool": {
                    "should": [
                        {"term": {"host.name": filters.host}},
                        {"term": {"host.hostname": filters.host}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    if filters.severity:
        clauses.append({"terms": {"log.level": levels_at_least(filters.severity)}})
    if filters.text:
        clauses.append(
            {
                "simple_query_string": {
                    "query": filters.text,
                    "fields": ["message"],
                    "default_operator": "and",
                }
            }
        )
    stamp: dict[str, str] = {}
    if filters.since:
        stamp["gte"] = time_bound(filters.since)
    if filters.until:
        stamp["lte"] = time_bound(filters.until)
    if stamp:
        clauses.append({"range": {"@timestamp": stamp}})
    if created_from is not None:
        clauses.append({"range": {"event.created": {"gte": created_from}}})
    return {"bool": {"filter": clauses}}


def format_line(source: dict[str, Any]) -> str:
    """``TIME HOST SOURCE[LEVEL]: MESSAGE``; the source is the container, else the
    process, else the dataset."""
    who = (
        source.get("container.name")
        or source.get("process.name")
        or source.get("log.syslog.appname")
        or source.get("event.dataset", "?")
    )
    host = source.get("host.hostname") or source.get("host.name", "-")
    level = source.get("log.level")
    tag = f"{who}[{level}]" if level else str(who)
    message = str(source.get("message", "")).rstrip("\n")
    return f"{source.get('@timestamp', '-')} {host} {tag}: {message}"


# The newest first for the backlog; when following, the newest received.
_SORT_DESC = [{"@timestamp": "desc"}, {"event.sequence": "desc"}]
_SORT_NEWEST_RECEIVED = [{"event.created": "desc"}, {"event.sequence": "desc"}]


def _time_order(hit: dict[str, Any]) -> tuple[str, int]:
    """Printing order: @timestamp, then the input's sequence (ISO stamps sort as text)."""
    source = hit["_source"]
    return source.get("@timestamp", ""), source.get("event.sequence", 0)


class Tail:
    """Prints matching events to ``out``; ``search(index, body) -> hits`` is the I/O."""

    def __init__(
        self,
        search: Callable[[str, dict[str, Any]], list[dict[str, Any]]],
        index: str,
        filters: Filters,
        out: TextIO,
        as_json: bool = False,
    ) -> None:
        self.search = search
        self.index = index
        self.filters = filters
        self.out = out
        self.as_json = as_json
        self.seen: dict[str, float] = {}  # id -> when printed, forgotten after the lookback

    def backlog(self, lines: int) -> None:
        """The last ``lines`` matching events, oldest first."""
        if lines <= 0:
            return
        hits = self.search(
            self.index, {"query": query(self.filters), "sort": _SORT_DESC, "size": lines}
        )
        self._print(reversed(hits))

    def poll(self) -> None:
        """Print what was received in the last LOOKBACK_SECONDS and not printed yet.

        The newest PAGE received, oldest of them first: asking for the oldest PAGE would
        stick at the start of the window once it holds more than PAGE events. Above
        PAGE per poll (4,000 lines/s) some are not shown, and stderr says so.
        """
        now = time.time()
        self.seen = {i: t for i, t in self.seen.items() if now - t < 2 * LOOKBACK_SECONDS}
        body = {
            "query": query(self.filters, f"now-{int(LOOKBACK_SECONDS)}s"),
            "sort": _SORT_NEWEST_RECEIVED,
            "size": PAGE,
        }
        hits = self.search(self.index, body)
        if len(hits) == PAGE and hits[-1]["_id"] not in self.seen:
            print(
                f"logpipe tail: more than {PAGE} lines in {POLL_SECONDS} s, some not shown; "
                "a filter (--container, --host, --severity, text) narrows them",
                file=sys.stderr,
            )
        self._print(sorted(hits, key=_time_order))

    def follow(self) -> None:
        while True:
            self.poll()
            time.sleep(POLL_SECONDS)

    def _print(self, hits: Iterable[dict[str, Any]]) -> None:
        printed = 0
        now = time.time()
        for hit in hits:
            if hit["_id"] in self.seen:
                continue
            self.seen[hit["_id"]] = now
            source = hit["_source"]
            if self.as_json:
                line = orjson.dumps({"_id": hit["_id"], **source}).decode()
            else:
                line = format_line(source)
            self.out.write(line + "\n")
            printed += 1
        if printed:
            self.out.flush()


def run(settings: Any, filters: Filters, lines: int, follow: bool, as_json: bool) -> int:
    """The command: 0, or 1 with one line when Elasticsearch cannot be asked."""
    from elasticsearch import ApiError, TransportError

    from logpipe.outputs.es_setup import client

    es = client(settings)

    def search(index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = es.search(index=index, ignore_unavailable=True, **body)
        return list(answer["hits"]["hits"])

    tail = Tail(search, settings.elasticsearch.data_stream, filters, sys.stdout, as_json)
    try:
        tail.backlog(lines)
        if follow:
            tail.follow()
    except (ApiError, TransportError) as exc:
        print(f"logpipe tail: Elasticsearch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
