"""The Elasticsearch ``_bulk`` protocol as pure functions: encode a batch, classify a response.

No sockets here. The shipper (``logpipe.outputs.elasticsearch``) moves the bytes and
owns the backoff; these functions decide what the bytes are and what an answer means.

Each event is encoded exactly once, into a ``Doc`` that keeps the action line and the
source apart, so a retry of some items re-joins the same bytes without re-encoding,
and a dead letter can quote the original document verbatim.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from logpipe.event import CONSTANTS, ID, Constants, expand

# Statuses and error types worth another try: the cluster is busy or unwell, the
# document is fine. Anything else 4xx (mapping conflicts, bad values) will fail the
# same way again, so it goes to the dead-letter stream instead.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_ERROR_TYPES = frozenset(
    {
        "es_rejected_execution_exception",
        "circuit_breaking_exception",
        "unavailable_shards_exception",
    }
)

TAG_CONFLICT = "_mapping_conflict"
_ACTION_HEAD = b'{"create":{"_id":"'
_ACTION_HEAD_INDEX = b'{"create":{"_index":"'
_ACTION_ID = b'","_id":"'
_ACTION_TAIL = b'"}}\n'


@dataclass(slots=True)
class Doc:
    """One encoded event: its id, its ``_source`` bytes, and its index in index mode
    ("" when the request's path names the data stream)."""

    id: str
    source: bytes
    index: str = ""


class DailyIndex:
    """Index names from a strftime pattern and each event's day (``logpipe-%Y.%m.%d``).

    The day is the event's own (``@timestamp``, UTC), not the day it is sent: a retry
    after midnight goes to the same index, where its id answers 409.
    """

    __slots__ = ("_names", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._names: dict[str, str] = {}  # "YYYY-MM-DD" -> index name

    def name_for(self, timestamp: Any) -> str:
        day = timestamp[:10] if type(timestamp) is str else ""
        name = self._names.get(day)
        if name is None:
            try:
                parsed = time.strptime(day, "%Y-%m-%d")
            except ValueError:
                # Not our ISO form (a JSON line's own "@timestamp"?): the day it is
                # sent, as Elasticsearch itself would have no better answer.
                return time.strftime(self.pattern, time.gmtime())
            name = time.strftime(self.pattern, parsed)
            if len(self._names) >= 4096:
                self._names.clear()  # bounded: events from all over the calendar
            self._names[day] = name
        return name


def encode(events: list[dict[str, Any]], daily: DailyIndex | None = None) -> list[Doc]:
    """Encode events once. Pops ``_id`` off each event (it must not reach ``_source``)
    and the ``_constants`` reference, whose JSON is spliced in after the event's own.
    With ``daily``, each doc names its index, from its ``@timestamp``."""
    dumps = orjson.dumps
    docs: list[Doc] = []
    append = docs.append
    for ev in events:
        constants = ev.get(CONSTANTS)
        if type(constants) is Constants:
            del ev[CONSTANTS]
            # orjson needs no default hook for our dicts: every value is str, int or
            # a nested dict/list of those, so an error here is a programming error.
            # A stamped event always has fields of its own (@timestamp, event.created).
            append(Doc(ev.pop(ID), dumps(ev)[:-1] + constants.tail))
        else:  # none, or a spooled event's (stored as a plain dict): expand() knows
            append(Doc(ev.pop(ID), dumps(expand(ev))))
        if daily is not None:
            docs[-1].index = daily.name_for(ev.get("@timestamp"))
    return docs


def body(docs: list[Doc]) -> bytes:
    """The NDJSON request body for these documents (action line, source, newline each)."""
    parts: list[bytes] = []
    append = parts.append
    for doc in docs:
        if doc.index:
            append(_ACTION_HEAD_INDEX)
            append(doc.index.encode())
            append(_ACTION_ID)
        else:
            append(_ACTION_HEAD)
        append(doc.id.encode())
        append(_ACTION_TAIL)
        append(doc.source)
        append(b"\n")
    return b"".join(parts)


@dataclass(slots=True)
class Rejection:
    """A document Elasticsearch will not take as it is, and why."""

    doc: Doc
    status: int
    error_type: str
    reason: str


@dataclass(slots=True)
class Outcome:
    """What a ``_bulk`` response means for each document sent."""

    created: int = 0
    duplicates: int = 0  # 409: a retry that had already landed; counts as delivered
    retry: list[Doc] = field(default_factory=list)
    retry_reasons: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return self.created + self.duplicates


def classify(docs: list[Doc], response: bytes) -> Outcome:
    """Classify a 200 answer to ``_bulk`` item by item (items come back in request order)."""
    outcome = Outcome()
    try:
        parsed = orjson.loads(response)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("items"), list):
        # A 200 without items is not a bulk answer (a proxy page?): nothing is known
        # to have landed, and retrying is safe because every create carries its id.
        outcome.retry = list(docs)
        outcome.retry_reasons["bad_response"] = len(docs)
        return outcome
    if not parsed.get("errors"):
        outcome.created = len(docs)
        if len(parsed["items"]) != len(docs):
            outcome.created = 0
            outcome.retry = list(docs)
            outcome.retry_reasons["bad_response"] = len(docs)
        return outcome
    items = parsed["items"]
    if len(items) != len(docs):
        outcome.retry = list(docs)
        outcome.retry_reasons["bad_response"] = len(docs)
        return outcome
    for doc, item in zip(docs, items, strict=True):
        result = next(iter(item.values()), {}) if isinstance(item, dict) else {}
        status = result.get("status", 0)
        if status in (200, 201):
            outcome.created += 1
        elif status == 409:
            outcome.duplicates += 1
        else:
            error = result.get("error") or {}
            if isinstance(error, str):
                error = {"type": "error", "reason": error}
            error_type = str(error.get("type", f"http_{status}"))
            if status in RETRY_STATUSES or error_type in RETRY_ERROR_TYPES or status == 0:
                outcome.retry.append(doc)
                key = "rejected_execution" if status == 429 else f"status_{status}"
                outcome.retry_reasons[key] = outcome.retry_reasons.get(key, 0) + 1
            else:
                reason = str(error.get("reason", ""))
                caused = error.get("caused_by")
                if isinstance(caused, dict) and caused.get("reason"):
                    reason = f"{reason}: {caused['reason']}"
                outcome.rejected.append(Rejection(doc, status, error_type, reason))
    return outcome


def dead_letter(
    rejection: Rejection, data_stream: str, constant: dict[str, Any], created: str
) -> dict[str, Any]:
    """The dead-letter event for a rejected document: the original kept whole, as a string."""
    original = rejection.doc.source
    try:
        source = orjson.loads(original)
    except orjson.JSONDecodeError:
        source = {}
    event: dict[str, Any] = {
        "@timestamp": source.get("@timestamp", created),
        "message": str(source.get("message", "")),
        "event.created": created,
        "event.kind": "pipeline_error",
        "event.original": original.decode("utf-8", "replace"),
        "error.type": rejection.error_type,
        "error.message": rejection.reason,
        "logpipe.dlq.data_stream": rejection.doc.index or data_stream,
        "logpipe.dlq.status": rejection.status,
        "logpipe.dlq.id": rejection.doc.id,
        ID: rejection.doc.id,
    }
    event.update(constant)
    if "event.dataset" in source:
        event["event.dataset"] = source["event.dataset"]
    return event


# A rejection that names one field whose value the mapping cannot take.
CONFLICT_TYPES = ("document_parsing_exception", "mapper_parsing_exception")
_CONFLICT_FIELD = (
    re.compile(r"object mapping for \[([^\]]+)\] tried to parse field"),
    re.compile(r"failed to parse field \[([^\]]+)\]"),
    re.compile(r"mapper \[([^\]]+)\] cannot be changed"),
    re.compile(r"non object mapping \[([^\]]+)\]"),
)
CONFLICTS_PREFIX = "logpipe.conflicts."
_MISSING = object()


def conflict_field(rejection: Rejection) -> str | None:
    """The dotted path of the field a mapping conflict is about, if the reason names one."""
    if rejection.error_type not in CONFLICT_TYPES:
        return None
    for pattern in _CONFLICT_FIELD:
        m = pattern.search(rejection.reason)
        if m:
            return m.group(1)
    return None


def _pop_path(source: dict[str, Any], path: str) -> Any:
    """Remove and return the value at a dotted ``path``: a flat key or nested objects."""
    if path in source:
        return source.pop(path)
    parts = path.split(".")
    for cut in range(1, len(parts)):
        head = ".".join(parts[:cut])
        inner = source.get(head)
        if isinstance(inner, dict):
            value = _pop_path(inner, ".".join(parts[cut:]))
            if value is not _MISSING:
                return value
    return _MISSING


def repair_conflict(rejection: Rejection) -> Doc | None:
    """The rejected document with the conflicting value moved to a string field under
    ``logpipe.conflicts.``, where the mapping takes any text; None if it cannot be.

    The document keeps its id (it was not indexed) and everything else it had, so it
    lands in the data stream users search, tagged ``_mapping_conflict``.
    """
    path = conflict_field(rejection)
    if path is None or path.startswith(CONFLICTS_PREFIX):
        return None
    try:
        source = orjson.loads(rejection.doc.source)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(source, dict):
        return None
    value = _pop_path(source, path)
    if value is _MISSING:
        return None
    source[CONFLICTS_PREFIX + path] = (
        value if isinstance(value, str) else orjson.dumps(value).decode()
    )
    tags = source.get("tags")
    source["tags"] = [*tags, TAG_CONFLICT] if isinstance(tags, list) else [TAG_CONFLICT]
    return Doc(rejection.doc.id, orjson.dumps(source), rejection.doc.index)
