"""The ``forward`` input: the Fluentd Forward Protocol v1 over TCP or TLS.

Who sends it: Docker's ``fluentd`` log driver (one Message per line), Fluent Bit and
Fluentd (Forward, PackedForward, CompressedPackedForward), ``fluent-logger`` libraries,
and logpipe's own ``forward`` output (a node tier feeding an aggregator).

What it promises a sender:

* An ``ack`` for a chunk only once its events are in the queue (in the spool, with
  ``durability = "disk"``). Nothing is dropped for a full queue: the forward protocol
  lets the sender hold its data, so the connection stops being read until there is room
  (TCP pushes back) and the ack waits with it.
* A chunk re-sent with the same ``chunk`` id (the sender saw no ack) lands on the same
  documents: the event ids come from the chunk id and the entry's place in it.
* Events that a logpipe node forwarded keep their own fields and ids, so a tier of
  forwarding adds no duplicates either.
* With ``shared_key`` the client must complete the HELO/PING/PONG handshake first.
* A malformed frame closes that one connection, counted; the service goes on.

Docker's records map to the same fields as the docker input (``container.id``,
``container.name``, ``logpipe.stream``, ``message``), and a line Docker split into 16 KiB
pieces (``partial_message``) is joined again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import time
from collections import deque
from typing import Any

from logpipe import listen, metrics
from logpipe.config import ForwardSettings
from logpipe.event import EVENT_OVERHEAD_BYTES, ID, TAGS, TIMESTAMP, Constants, Stamper
from logpipe.inputs.streams import (
    CLOSED_AUTH,
    CLOSED_MALFORMED,
    StreamConnection,
    StreamServer,
    tls_server_context,
)
from logpipe.parsers import forward as proto
from logpipe.queue import EventQueue, LossTracker
from logpipe.timefmt import iso_ns

log = logging.getLogger(__name__)

TAG_TRUNCATED = "_message_truncated"
TAG_PARTIAL = "_partial_incomplete"  # Docker pieces whose last one never came


def chunk_id_prefix(tag: str, chunk: str) -> str:
    """Ids for the events of a chunk: the same chunk re-sent gets the same ids."""
    return hashlib.blake2b(f"{tag}\0{chunk}".encode(), digest_size=12).hexdigest() + "-"


class ForwardInput:
    """A Forward protocol listener feeding the queue."""

    def __init__(
        self, settings: ForwardSettings, queue: EventQueue, node: str, loss: LossTracker
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.queue = queue
        self.loss = loss
        self.node = node
        self.stamper = Stamper(node, settings.name, "forward")
        self.inherited: dict[str, socket.socket] = {}
        self.streams: list[tuple[str, socket.socket, ssl.SSLContext | None]] = []
        self.server = StreamServer(
            settings.name,
            queue,
            settings.max_connections,
            settings.idle_timeout,
            lambda server, listener, context: _ForwardConnection(self, server, listener, context),
        )
        self._received = metrics.RECEIVED_EVENTS.labels(input=self.name)
        self._received_bytes = metrics.RECEIVED_BYTES.labels(input=self.name)
        self._acks = metrics.FORWARD_ACKS.labels(input=self.name)

    def listener_keys(self) -> list[str]:
        return [listen.tcp_key(self.settings.listen)]

    @property
    def bound(self) -> bool:
        return bool(self.streams)

    @property
    def connections(self) -> set[StreamConnection]:
        return self.server.connections

    def open(self) -> None:
        s = self.settings
        key = listen.tcp_key(s.listen)
        sock = self.inherited.pop(key, None) or listen.bind_tcp(s.listen)
        context = None
        if s.tls_cert:
            try:
                context = tls_server_context(
                    s.tls_cert, s.tls_key, s.tls_client_ca, s.tls_min_version
                )
            except BaseException:
                sock.close()
                raise
        self.streams = [("tls" if context else "tcp", sock, context)]
        log.info(
            "Listening for the forward protocol. input=%s address=%s tls=%s shared_key=%s",
            self.name,
            s.listen,
            context is not None,
            bool(s.shared_key),
        )

    def start(self, loop: Any) -> None:
        self.server.start(loop, self.streams)

    def stop(self) -> None:
        self.server.stop()

    async def wait_closed(self, deadline: float) -> None:
        await self.server.wait_closed(deadline)

    def close(self) -> None:
        self.server.close()
        for _, sock, _ in self.streams:
            sock.close()
        self.streams = []

    def events_of(
        self, chunk: proto.Chunk, constants: Constants, joiner: _PartialJoiner
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """One chunk's records as stamped events (Docker's pieces joined first).
        ``constants``: the connection's (its peer fields and the input's constants),
        which win over a record's fields of the same name."""
        received_ns = time.time_ns()
        stamp = self.stamper.stamp
        prefix = chunk_id_prefix(chunk.tag, chunk.chunk) if chunk.chunk else None
        events: list[dict[str, Any]] = []
        sizes: list[int] = []
        for index, (time_ns, record) in enumerate(chunk.entries):
            if ID in record and TIMESTAMP in record:
                # A logpipe node's event: already stamped, its id kept end to end.
                events.append(record)
                sizes.append(EVENT_OVERHEAD_BYTES + len(record.get("message", "")))
                continue
            event, partial = proto.record_to_event(chunk.tag, record)
            # Docker before 19.03 marks pieces without an id or a last flag: those are
            # kept as they come rather than guessed at.
            if partial is not None and partial.partial_id:
                joined = joiner.add(partial, event)
                if joined is None:
                    continue
                event = joined
            event[TIMESTAMP] = iso_ns(time_ns or received_ns)
            event_id = f"{prefix}{index:x}" if prefix is not None else None
            events.append(stamp(event, received_ns, event_id, constants))
            sizes.append(EVENT_OVERHEAD_BYTES + len(event.get("message", "")))
        self._received.inc(len(chunk.entries))
        self._received_bytes.inc(chunk.size)
        return events, sizes


class _PartialJoiner:
    """Docker splits a line longer than 16 KiB into pieces; this joins them again, within
    ``max_bytes`` (a longer line is cut there and tagged)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pending: dict[str, tuple[dict[str, Any], list[str], int]] = {}

    def add(self, partial: proto.Partial, event: dict[str, Any]) -> dict[str, Any] | None:
        partial_id, _ordinal, last = partial
        first, pieces, size = self.pending.pop(partial_id, (event, [], 0))
        text = event.get("message", "")
        if size < self.max_bytes:
            pieces.append(text[: self.max_bytes - size])
        size += len(text)
        if not last:
            self.pending[partial_id] = (first, pieces, size)
            return None
        first["message"] = "".join(pieces)
        if size > self.max_bytes:
            first.setdefault(TAGS, []).append(TAG_TRUNCATED)
        return first

    def flush(self) -> list[dict[str, Any]]:
        """At the end of the connection: pieces whose last one never came, as they are."""
        out = []
        for first, pieces, _ in self.pending.values():
            first["message"] = "".join(pieces)
            first.setdefault(TAGS, []).append(TAG_PARTIAL)
            out.append(first)
        self.pending.clear()
        return out


class _ForwardConnection(StreamConnection):
    """One forward client: decode, authenticate, queue, acknowledge."""

    def __init__(
        self,
        owner: ForwardInput,
        server: StreamServer,
        listener: str,
        context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(server, listener, context)
        self.owner = owner
        self.decoder = proto.ForwardDecoder(max_message_bytes=owner.settings.max_message_bytes)
        self.joiner = _PartialJoiner(owner.settings.max_message_bytes)
        self.backlog: deque[proto.Chunk] = deque()
        self.nonce = b""
        self.authenticated = not owner.settings.shared_key
        self._draining = False
        self._cached: tuple[proto.Chunk, list[dict[str, Any]], list[int]] | None = None
        self._constants: Constants | None = None  # once the peer is known

    def established(self) -> None:
        if not self.authenticated:
            self.nonce = os.urandom(16)
            self.write(proto.helo(self.nonce, b"", True))

    def received(self, data: bytes) -> None:
        owner = self.owner
        try:
            messages = self.decoder.feed(data)
        except proto.ForwardError:
            messages = []
        for message in messages:
            if isinstance(message, proto.Ping):
                self._ping(message)
            elif not self.authenticated:
                log.warning(
                    "Closing a forward connection that sent events before the handshake. "
                    "input=%s peer=%s",
                    owner.name,
                    self.peer,
                )
                self.abort(CLOSED_AUTH)
                return
            else:
                self.backlog.append(message)
        if self.backlog and not self._draining:
            self._queue_what_fits()
        if self.decoder.error is not None:
            # What came before the bad frame is queued (and acked) above; then this one
            # connection is closed.
            log.warning(
                "Closing a forward connection whose data is malformed. input=%s peer=%s error=%s",
                owner.name,
                self.peer,
                self.decoder.error,
            )
            self.abort(CLOSED_MALFORMED)

    def _ping(self, ping: proto.Ping) -> None:
        settings = self.owner.settings
        hostname = settings.self_hostname or self.owner.node
        problem = proto.check_ping(ping, self.nonce, settings.shared_key) if self.nonce else None
        if not self.nonce:
            problem = "no handshake expected (no shared_key configured)"
        digest = proto.shared_key_digest(
            ping.shared_key_salt, hostname, self.nonce, settings.shared_key
        )
        self.write(proto.pong(problem is None, problem or "", hostname, digest))
        if problem is not None:
            log.warning(
                "Forward handshake refused. input=%s peer=%s reason=%s",
                self.owner.name,
                self.peer,
                problem,
            )
            self.close(CLOSED_AUTH)  # after the PONG that says why
            return
        self.authenticated = True

    def _queue_what_fits(self) -> None:
        """The common case, without a task: the queue has room, queue and ack at once."""
        queue = self.owner.queue
        while self.backlog:
            events, sizes = self._events(self.backlog[0])
            if queue.room() < len(events):
                break
            if queue.put_many(events, sizes):  # the spool refused: wait, as for room
                break
            self._ack(self.backlog.popleft())
        if self.backlog:
            self._draining = True
            self.pause()  # the sender waits; its data stays with it
            assert self.server.loop is not None
            self.server.loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Queue the backlog as room comes; never drop (the sender can hold)."""
        try:
            while self.backlog and self.open:
                chunk = self.backlog[0]
                events, sizes = self._events(chunk)
                await self.owner.queue.put_blocking(events, sizes)
                self.backlog.popleft()
                self._ack(chunk)
        finally:
            self._draining = False
            self._cached = None
            if self.open:
                self.resume()

    def _events(self, chunk: proto.Chunk) -> tuple[list[dict[str, Any]], list[int]]:
        # Made once per chunk even when it has to wait for room more than once.
        cached = self._cached
        if cached is not None and cached[0] is chunk:
            return cached[1], cached[2]
        if self._constants is None:
            self._constants = self.owner.stamper.with_fields(self.fields)
        events, sizes = self.owner.events_of(chunk, self._constants, self.joiner)
        self._cached = (chunk, events, sizes)
        return events, sizes

    def _ack(self, chunk: proto.Chunk) -> None:
        self._cached = None
        if chunk.chunk:
            self.write(proto.ack(chunk.chunk))
            self.owner._acks.inc()

    def ended(self) -> None:
        leftover = self.joiner.flush()
        if leftover:
            stamp = self.owner.stamper.stamp
            now = time.time_ns()
            for event in leftover:
                event.setdefault(TIMESTAMP, iso_ns(now))
                event.update(self.fields)
            self.owner.queue.put_many(
                [stamp(e, now) for e in leftover], [EVENT_OVERHEAD_BYTES] * len(leftover)
            )
