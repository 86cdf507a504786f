"""``logpipe tail``: the fleet's logs from Elasticsearch in a terminal, like ``docker logs
-f`` across hosts.

The last ``--lines`` events that match, oldest first, then (with ``--follow``, the
default) every new one as it becomes searchable. Following goes by ``event.created``
(when logpipe received an event), not ``@timestamp``: a line that arrives late with an
old time of its own is still shown. Each poll asks again for what was received since
``LOOKBACK_SECONDS`` before the newest ``event.created`` printed so far (before the
tail began, until something is printed; never later than that long before now), and
prints the ids not printed yet: a document becomes searchable a flush and a refresh
after its ``event.created``, and while Elasticsearch was away, minutes after. (A node
whose own shipping lags the rest of the fleet by more than the lookback is not waited
for.)

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
from logpipe.timefmt import NS_PER_SECOND, iso_ns, iso_to_ns

POLL_SECONDS = 0.25
LOOKBACK_SECONDS = 30.0
PAGE = 1000
AWAY_RETRY_SECONDS = 1.0
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
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.search = search
        self.clock = clock
        self.index = index
        self.filters = filters
        self.out = out
        self.as_json = as_json
        # id -> its event.created, forgotten once the window has passed it
        self.seen: dict[str, str] = {}
        self.window_start = iso_ns(clock() - int(LOOKBACK_SECONDS * NS_PER_SECOND))

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
        start = self.window_start
        self.seen = {i: c for i, c in self.seen.items() if c >= start}
        body = {
            "query": query(self.filters, start),
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
        self._advance(hits)

    def _advance(self, hits: list[dict[str, Any]]) -> None:
        """Move the window's start to the lookback before the newest event received,
        or before now if that is earlier (ISO stamps in one format sort as text)."""
        created = [h["_source"].get("event.created") for h in hits]
        newest = max((c for c in created if isinstance(c, str)), default="")
        before_now = iso_ns(self.clock() - int(LOOKBACK_SECONDS * NS_PER_SECOND))
        if not newest:
            return
        try:
            newest_ns = iso_to_ns(newest)
        except ValueError:
            return
        start = min(before_now, iso_ns(newest_ns - int(LOOKBACK_SECONDS * NS_PER_SECOND)))
        self.window_start = max(self.window_start, start)  # never back

    def follow(self, transient: tuple[type[BaseException], ...] = ()) -> None:
        """Poll forever; ``transient`` errors (Elasticsearch away) are waited out, said
        once on stderr, and what was received meanwhile is shown when it is back."""
        away = False
        while True:
            try:
                self.poll()
            except transient as exc:
                if not away:
                    print(f"logpipe tail: Elasticsearch: {exc}; retrying", file=sys.stderr)
                away = True
                time.sleep(AWAY_RETRY_SECONDS)
                continue
            if away:
                print("logpipe tail: Elasticsearch is back", file=sys.stderr)
                away = False
            time.sleep(POLL_SECONDS)

    def _print(self, hits: Iterable[dict[str, Any]]) -> None:
        printed = 0
        for hit in hits:
            if hit["_id"] in self.seen:
                continue
            created = hit["_source"].get("event.created")
            self.seen[hit["_id"]] = created if isinstance(created, str) else self.window_start
            source = hit["_source"]
            if self.as_json:
                line = orjson.dumps({"_id": hit["_id"], **source}).decode()
            else:
                line = format_line(source)
            self.out.write(line + "\n")
            printed += 1
        if printed:
            self.out.flush()


class Unavailable(Exception):
    """Elasticsearch answered that it cannot search now: a status the output retries too
    (a shard not started yet, as a new index has for a moment, answers a search 503)."""


def run(settings: Any, filters: Filters, lines: int, follow: bool, as_json: bool) -> int:
    """The command: 0, or 1 with one line when Elasticsearch cannot be asked."""
    from elasticsearch import ApiError, ConnectionTimeout, TransportError
    from elasticsearch import ConnectionError as Unreachable

    from logpipe.outputs.bulk import RETRY_STATUSES
    from logpipe.outputs.elasticsearch import destinations, search_target
    from logpipe.outputs.es_setup import client

    es = client(settings)
    events_at = search_target(destinations(settings.elasticsearch)[0])

    def search(index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            answer = es.search(index=index, ignore_unavailable=True, **body)
        except ApiError as exc:
            if exc.meta.status in RETRY_STATUSES:
                raise Unavailable(str(exc)) from exc
            raise
        return list(answer["hits"]["hits"])

    tail = Tail(search, events_at, filters, sys.stdout, as_json)
    try:
        tail.backlog(lines)
        if follow:
            tail.follow(transient=(Unreachable, ConnectionTimeout, Unavailable))
    except (ApiError, TransportError, Unavailable) as exc:
        print(f"logpipe tail: Elasticsearch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
