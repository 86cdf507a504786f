"""The ``forward`` output: ship to forward receivers (a logpipe aggregator, Fluentd).

For a node tier that should not write to Elasticsearch itself: each batch goes as one
(Compressed)PackedForward chunk with a ``chunk`` id, and counts as delivered only when
the receiver acknowledges it. No ack (the connection breaks, the receiver restarts, the
ack times out): the same bytes, with the same chunk id, go again, to the next receiver
if there are several. A logpipe aggregator makes the same ids from a re-sent chunk, and
every event carries its own ``_id`` besides, so a retry adds no duplicate in
Elasticsearch. Receivers are taken in turn (each sender starts at a different one) and
one that fails is skipped until its backoff has passed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from logpipe import metrics
from logpipe.config import ForwardOutputSettings, split_address
from logpipe.event import expand
from logpipe.parsers import forward as proto
from logpipe.parsers.docker import parse_timestamp
from logpipe.queue import EventQueue

log = logging.getLogger(__name__)

OUTPUT = "forward"


class _Receiver:
    """One receiver address and when it may be tried again."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.host, self.port = split_address(address)
        self.retry_at = 0.0
        self.failures = 0


class _Link:
    """One sender's connection to one receiver, past the handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = proto.ClientDecoder()
        self.pending: list[Any] = []

    async def next_message(self, wait: float) -> Any:
        """The receiver's next message (HELO, PONG, ack); TimeoutError after ``wait``."""
        while not self.pending:
            async with asyncio.timeout(wait):
                data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the receiver closed the connection")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def close(self) -> None:
        self.writer.close()


class ForwardOutput:
    """Batches from the queue to forward receivers, acknowledged."""

    def __init__(
        self,
        settings: ForwardOutputSettings,
        queue: EventQueue,
        node: str,
        enrichers: Sequence[Callable[[list[Any]], Awaitable[None]]] = (),
    ) -> None:
        self.settings = settings
        self.enrichers = list(enrichers)
        self.queue = queue
        self.node = node
        self.receivers = [_Receiver(a) for a in settings.hosts]
        self.template_ok = asyncio.Event()  # nothing to check: ready at once
        self.reachable = True  # until every receiver has failed
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._unfinished: dict[int, list[Any]] = {}
        self._batch_number = 0
        self._context = self._tls_context() if settings.tls else None
        self._indexed = metrics.INDEXED_EVENTS.labels(output=OUTPUT)
        self._up = metrics.OUTPUT_UP.labels(output=OUTPUT)

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.create_default_context(cafile=s.tls_ca or None)
        if s.tls_cert:
            context.load_cert_chain(s.tls_cert, s.tls_key or None)
        return context

    @property
    def idle(self) -> bool:
        return self._in_flight == 0 and len(self.queue) == 0

    async def start(self) -> None:
        self.template_ok.set()
        for n in range(self.settings.concurrency):
            self._tasks.append(asyncio.create_task(self._send_loop(n), name=f"forward-{n}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def undelivered(self) -> list[Any]:
        """After stop(): the events of chunks sent but not acknowledged, oldest first."""
        return [event for _, batch in sorted(self._unfinished.items()) for event in batch]

    async def _send_loop(self, number: int) -> None:
        s = self.settings
        links: dict[str, _Link] = {}
        turn = number  # senders start at different receivers
        try:
            while True:
                events = await self.queue.take(
                    s.batch_max_events, s.batch_max_bytes, s.flush_interval
                )
                if not events:
                    continue
                self._in_flight += 1
                token = getattr(events, "token", None)
                self._batch_number = batch = self._batch_number + 1
                self._unfinished[batch] = list(events)
                try:
                    for enrich in self.enrichers:  # the aggregator has no Docker API
                        await enrich(events)
                    chunk_id = base64.b64encode(os.urandom(16)).decode()
                    entries = [(_event_ns(e), expand(e)) for e in events]
                    payload = proto.packed_forward(s.tag, entries, chunk_id, s.compress)
                    turn = await self._deliver(links, turn, payload, chunk_id, len(events))
                    self.queue.done(token)
                    del self._unfinished[batch]
                    self._indexed.inc(len(events))
                finally:
                    self._in_flight -= 1
        finally:
            for link in links.values():
                link.close()

    async def _deliver(
        self, links: dict[str, _Link], turn: int, payload: bytes, chunk_id: str, count: int
    ) -> int:
        """Send one chunk until a receiver acknowledges it; returns the next turn."""
        attempt = 0
        while True:
            receiver = self._pick(turn)
            turn += 1
            if receiver is None:
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            try:
                link = links.get(receiver.address)
                if link is None:
                    link = links[receiver.address] = await self._connect(receiver)
                link.writer.write(payload)
                await link.writer.drain()
                while True:
                    message = await link.next_message(self.settings.ack_timeout)
                    if isinstance(message, proto.Ack) and message.chunk == chunk_id:
                        break
                receiver.failures = 0
                self._mark(True)
                return turn
            except (OSError, TimeoutError, ConnectionError, proto.ForwardError) as exc:
                link = links.pop(receiver.address, None)
                if link is not None:
                    link.close()
                receiver.failures += 1
                receiver.retry_at = time.monotonic() + self._backoff(receiver.failures)
                attempt += 1
                metrics.RETRIES.labels(output=OUTPUT, reason="transport").inc(count)
                level = logging.WARNING if receiver.failures in (1, 5) else logging.DEBUG
                log.log(
                    level,
                    "Forward receiver failed; the chunk goes again. receiver=%s error=%s "
                    "events=%d failures=%d",
                    receiver.address,
                    exc or type(exc).__name__,
                    count,
                    receiver.failures,
                )
                if all(r.failures for r in self.receivers):
                    self._mark(False)

    def _pick(self, turn: int) -> _Receiver | None:
        now = time.monotonic()
        n = len(self.receivers)
        for i in range(n):
            receiver = self.receivers[(turn + i) % n]
            if receiver.retry_at <= now:
                return receiver
        return None

    async def _connect(self, receiver: _Receiver) -> _Link:
        s = self.settings
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                receiver.host,
                receiver.port,
                ssl=self._context,
                server_hostname=receiver.host if self._context else None,
            ),
            s.connect_timeout,
        )
        link = _Link(reader, writer)
        if s.shared_key:
            await self._handshake(link, receiver)
        log.info("Connected to a forward receiver. receiver=%s", receiver.address)
        return link

    async def _handshake(self, link: _Link, receiver: _Receiver) -> None:
        s = self.settings
        helo = await link.next_message(s.connect_timeout)
        if not isinstance(helo, proto.Helo):
            raise proto.ForwardError(f"expected HELO, got {type(helo).__name__}")
        salt = os.urandom(16)
        hostname = s.self_hostname or self.node
        link.writer.write(proto.ping(hostname, salt, helo.nonce, s.shared_key))
        pong = await link.next_message(s.connect_timeout)
        if not isinstance(pong, proto.Pong):
            raise proto.ForwardError(f"expected PONG, got {type(pong).__name__}")
        if not pong.authenticated:
            raise ConnectionError(f"the receiver refused our shared key: {pong.reason}")
        expected = proto.shared_key_digest(salt, pong.hostname, helo.nonce, s.shared_key)
        if pong.digest != expected:
            raise ConnectionError("the receiver does not know the shared key")

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        cap = min(s.retry_max_backoff, s.retry_initial_backoff * 2 ** min(attempt, 20))
        return cap / 2 + random.uniform(0, cap / 2)

    def _mark(self, up: bool) -> None:
        if up != self.reachable:
            self.reachable = up
            self._up.set(1 if up else 0)
            if not up:
                log.warning("No forward receiver is reachable; chunks wait and retry.")


def _event_ns(event: dict[str, Any]) -> int:
    stamp = event.get("@timestamp")
    return parse_timestamp(stamp) if isinstance(stamp, str) else 0
