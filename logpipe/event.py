"""The event dict, the ECS field names used in more than one place, and event ids.

An event is a plain dict with flat, dotted ECS keys (``"log.syslog.severity.name"``);
Elasticsearch expands the dots into objects when it maps the document, and a flat
dict is the cheapest thing to build once per event and encode once with orjson.
The document id travels in the same dict under ``_id`` and is popped off when the
event is encoded, so it never reaches ``_source``.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from logpipe import __version__
from logpipe.timefmt import iso_ns

ID = "_id"
TIMESTAMP = "@timestamp"
MESSAGE = "message"
TAGS = "tags"
EVENT_CREATED = "event.created"
EVENT_SEQUENCE = "event.sequence"
EVENT_DATASET = "event.dataset"
EVENT_ACTION = "event.action"
EVENT_KIND = "event.kind"
EVENT_START = "event.start"
EVENT_END = "event.end"
EVENT_ORIGINAL = "event.original"
HOST_NAME = "host.name"
PROCESS_PID = "process.pid"
USER_ID = "user.id"
GROUP_ID = "group.id"
ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"
LOSS_COUNT = "logpipe.loss.count"
LOSS_REASON = "logpipe.loss.reason"
LOSS_INPUT = "logpipe.loss.input"
ACTION_DROPPED = "dropped"

AGENT_TYPE = "logpipe"

# Estimated bytes an event costs beyond its message text: the dict, its keys and
# the constant fields. The queue's byte bound is about memory, so an estimate that
# is cheap and stable beats an exact figure computed per event. Measured with
# tracemalloc on parsed and stamped RFC 5424 events of 120 bytes: 1,402 bytes each
# (600 before, which let a full queue take twice its max_bytes and a worker's RSS
# past 200 MiB in the tcp benchmark).
EVENT_OVERHEAD_BYTES = 1300


def id_prefix(node: str, input_name: str, start_ns: int) -> str:
    """A short prefix unique to one run of one input on one node.

    Events without a source position (datagrams) get ``prefix + sequence`` as their
    id: unique across nodes and restarts, fixed at receipt and kept through every
    retry, and free of per-event hashing.
    """
    # The pid too: workers of one node start their inputs in the same instant.
    key = f"{node}\0{input_name}\0{start_ns}\0{os.getpid()}"
    digest = hashlib.blake2b(key.encode(), digest_size=9).digest()
    return digest.hex()


class Stamper:
    """Adds the fields every event of one input carries: times, sequence, id, host, agent."""

    __slots__ = ("_constant", "_prefix", "dataset", "sequence")

    def __init__(self, node: str, input_name: str, input_type: str) -> None:
        self.dataset = f"logpipe.{input_type}"
        self._constant = {
            EVENT_DATASET: self.dataset,
            HOST_NAME: node,
            "agent.type": AGENT_TYPE,
            "agent.name": node,
            "agent.version": __version__,
        }
        self._prefix = id_prefix(node, input_name, time.time_ns()) + "-"
        self.sequence = 0

    def stamp(
        self, event: dict[str, Any], received_ns: int, event_id: str | None = None
    ) -> dict[str, Any]:
        """Stamp one event in place (and return it).

        ``event_id``: an id derived from the event's position in its source (container
        and timestamp, file and offset), so that re-reading it lands on the same document.
        """
        self.sequence = seq = self.sequence + 1
        event.update(self._constant)
        event[EVENT_CREATED] = iso_ns(received_ns)
        event[EVENT_SEQUENCE] = seq
        event[ID] = event_id or f"{self._prefix}{seq:x}"
        return event


def loss_marker(
    stamper: Stamper,
    input_name: str,
    reason: str,
    count: int,
    first_ns: int,
    last_ns: int,
    now_ns: int,
) -> dict[str, Any]:
    """The event that tells a Kibana user, in place, that events were dropped."""
    first, last = iso_ns(first_ns), iso_ns(last_ns)
    event = {
        TIMESTAMP: first,
        MESSAGE: (
            f"logpipe dropped {count} events from input {input_name} ({reason}) "
            f"between {first} and {last}"
        ),
        EVENT_ACTION: ACTION_DROPPED,
        EVENT_KIND: "event",
        EVENT_START: first,
        EVENT_END: last,
        "log.level": "warning",
        LOSS_COUNT: count,
        LOSS_REASON: reason,
        LOSS_INPUT: input_name,
    }
    return stamper.stamp(event, now_ns)
