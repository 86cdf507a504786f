"""The event dict, the ECS field names used in more than one place, and event ids.

An event is a plain dict with flat, dotted ECS keys (``"log.syslog.severity.name"``);
Elasticsearch expands the dots into objects when it maps the document, and a flat
dict is the cheapest thing to build once per event and encode once with orjson.
The document id travels in the same dict under ``_id`` and is popped off when the
event is encoded, so it never reaches ``_source``.

The fields every event of one input carries alike (``event.dataset``, ``host.name``,
``agent.*``) travel as one reference under ``_constants``: a :class:`Constants` made
once per input, whose JSON the bulk encoder splices into each document. Five keys
fewer per event keep its dict in the smaller hash table (18 keys fit in 32 slots, 23
need 64): 772 bytes an event instead of 1,345, and a third of the encoding time.
Every other consumer (the spool, the forward output) calls :func:`expand` first.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import orjson

from logpipe import __version__
from logpipe.timefmt import iso_ns

ID = "_id"
CONSTANTS = "_constants"
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
# tracemalloc on parsed and stamped events of 120 bytes: 1,032 bytes each in all for
# RFC 5424, 977 for /dev/log ones (1,402 while the constant fields were copied into
# each event; 600 was the figure before that, and let a full queue take twice its
# max_bytes and a worker's RSS past 200 MiB in the tcp benchmark).
EVENT_OVERHEAD_BYTES = 1000


class Constants:
    """The fields all events of one input share, kept once, with their JSON."""

    __slots__ = ("fields", "keys", "tail")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.keys = frozenset(fields)
        # What the encoder puts in place of an event's closing brace.
        self.tail = b"," + orjson.dumps(fields)[1:]


def expand(event: dict[str, Any]) -> dict[str, Any]:
    """Put an event's constant fields into the event itself (in place; returned).

    For any consumer but the bulk encoder. Takes the spool's form too, where the
    reference was stored as a plain dict of the fields.
    """
    constants = event.pop(CONSTANTS, None)
    if constants is not None:
        event.update(constants.fields if type(constants) is Constants else constants)
    return event


def pack_default(value: object) -> object:
    """msgpack's ``default`` hook: a :class:`Constants` is stored as its fields."""
    if type(value) is Constants:
        return value.fields
    raise TypeError(f"cannot serialize {type(value).__name__}")


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

    __slots__ = ("_prefix", "constants", "sequence")

    def __init__(self, node: str, input_name: str, input_type: str) -> None:
        self.constants = Constants(
            {
                EVENT_DATASET: f"logpipe.{input_type}",
                HOST_NAME: node,
                "agent.type": AGENT_TYPE,
                "agent.name": node,
                "agent.version": __version__,
            }
        )
        self._prefix = id_prefix(node, input_name, time.time_ns()) + "-"
        self.sequence = 0

    def with_fields(self, fields: dict[str, Any]) -> Constants:
        """The constants of events that also carry ``fields`` alike (a connection's peer):
        made once per connection, for :meth:`stamp`."""
        return Constants({**fields, **self.constants.fields})

    def stamp(
        self,
        event: dict[str, Any],
        received_ns: int,
        event_id: str | None = None,
        constants: Constants | None = None,
    ) -> dict[str, Any]:
        """Stamp one event in place (and return it).

        ``event_id``: an id derived from the event's position in its source (container
        and timestamp, file and offset), so that re-reading it lands on the same document.
        ``constants``: from :meth:`with_fields`; the input's own by default.
        """
        self.sequence = seq = self.sequence + 1
        if constants is None:
            constants = self.constants
        if event.keys().isdisjoint(constants.keys):
            event[CONSTANTS] = constants
        else:
            # The message brought a field of its own by that name (@cee, a forward
            # record): ours wins, as it always did, and JSON gets no duplicate key.
            event.update(constants.fields)
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
