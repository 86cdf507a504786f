"""The bounded memory queue between inputs and the output, and the loss bookkeeping.

Bounded twice, in events and in (estimated) bytes. What happens when it is full is a
documented decision (``queue.when_full``):

- ``drop_newest``: the offer fails at once and the input counts a drop; nothing ever
  waits. An input asks ``room()`` *before* it parses, so a flood that is being
  dropped costs one receive per datagram and nothing more.
- ``block``: the input awaits ``wait_for_room()`` and stops reading meanwhile, which
  pushes back on the sender (the kernel's socket buffer, then the client).
- ``spill``: what does not fit goes to a disk spool (``logpipe.spool``), and once
  anything is there every new event goes there too, behind it, so order is kept; the
  memory queue is refilled from the spool as the output takes batches. Past the
  spool's own bound (``spill_max_bytes``) or on a full disk, events are refused and the
  input counts them (reason ``spool_full``). On stop, what is still in memory is
  spooled, and the next start ships the spool first.

Loss markers bypass the bounds (``put_marker``): they are few (one per input per
interval) and are the only record of what was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from logpipe import metrics
from logpipe.event import EVENT_OVERHEAD_BYTES
from logpipe.spool import Spool

Event = dict[str, Any]
log = logging.getLogger(__name__)
SPOOL_FULL_RETRY_SECONDS = 1.0


class EventQueue:
    """FIFO of events with event and byte bounds; one consumer takes batches."""

    # Hot path: every event passes through put_many/take, so no __dict__.
    __slots__ = (
        "_batches",
        "_bytes",
        "_events",
        "_flush_threshold",
        "_frame_of",
        "_frames",
        "_has_room",
        "_next_token",
        "_not_empty",
        "_ready",
        "_sizes",
        "_unread",
        "durable",
        "max_bytes",
        "max_events",
        "spool",
        "when_full",
    )

    def __init__(self, max_events: int, max_bytes: int, when_full: str) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.when_full = when_full
        self._events: deque[Event] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._not_empty = asyncio.Event()
        self._ready = asyncio.Event()  # set when a batch's worth is waiting
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._flush_threshold = 1
        self.spool: Spool | None = None  # set for when_full = "spill" or durability
        # durability = "disk": every event is spooled first, memory holds what is read
        # back, and the spool is acknowledged as batches are delivered, in order.
        self.durable = False
        self._unread = 0  # events in the spool not yet read back
        self._frames: deque[_Frame] = deque()  # read back, not yet all delivered
        self._frame_of: deque[_Frame | None] = deque()  # per event in memory
        self._batches: dict[int, list[_Frame | None]] = {}
        self._next_token = 0
        if not metrics.MULTIPROCESS:  # else the pipeline sets them on a timer
            metrics.QUEUE_EVENTS.set_function(lambda: len(self._events))
            metrics.QUEUE_BYTES.set_function(lambda: self._bytes)

    def __len__(self) -> int:
        """Events waiting: in memory, and in the spool behind them."""
        if self.durable:
            return len(self._events) + self._unread
        spooled = self.spool.pending_events if self.spool is not None else 0
        return len(self._events) + spooled

    def make_durable(self, spool: Spool) -> None:
        """durability = "disk": from now on every event goes through ``spool``."""
        self.spool = spool
        self.durable = True
        self._unread = spool.pending_events  # a crash's leftovers ship first

    @property
    def bytes(self) -> int:
        return self._bytes

    def room(self) -> int:
        """How many more events fit now (0 when full by events or by bytes).

        With a spool, room is the spool's: the memory bound only decides where they go.
        """
        if self.spool is not None:
            return self.max_events  # a full spool refuses in put_many, counted there
        return self._memory_room()

    def _memory_room(self) -> int:
        if self._bytes >= self.max_bytes:
            return 0
        return max(0, self.max_events - len(self._events))

    def put_many(self, events: list[Event], sizes: list[int]) -> int:
        """Append events the caller has made room for (``room()``); returns how many
        were refused (only a full spool refuses: the caller counts them as lost)."""
        if not events:
            return 0
        if self.durable:
            assert self.spool is not None
            if not self.spool.append(events):
                return len(events)
            self._unread += len(events)
            self._after_put()
            return 0
        fit = len(events)
        if self.spool is not None:
            fit = 0 if self.spool.pending_events else min(fit, self._memory_room())
        if fit:
            self._events.extend(events[:fit] if fit < len(events) else events)
            self._sizes.extend(sizes[:fit] if fit < len(events) else sizes)
            self._bytes += sum(sizes[:fit])
            metrics.QUEUE_PUSHED.inc(fit)
        refused = 0
        if fit < len(events):
            assert self.spool is not None
            rest = events[fit:]
            if self.spool.append(rest):
                metrics.SPILLED_EVENTS.inc(len(rest))
            else:
                refused = len(rest)
        self._after_put()
        return refused

    async def put_blocking(self, events: list[Event], sizes: list[int]) -> None:
        """Queue all of ``events``, waiting for room as needed (inputs that never drop)."""
        start = 0
        while start < len(events):
            room = self.room()
            if room == 0:
                await self.wait_for_room()
                continue
            end = min(len(events), start + room)
            refused = self.put_many(events[start:end], sizes[start:end])
            start = end - refused
            if refused:
                await asyncio.sleep(SPOOL_FULL_RETRY_SECONDS)  # these inputs wait, never drop

    def put_marker(self, event: Event) -> None:
        """Append a loss marker, whatever the bounds say."""
        if self.durable:
            assert self.spool is not None
            if self.spool.append([event]):  # a crash must not lose the record of a loss
                self._unread += 1
                self._after_put()
                self._ready.set()
                return
            self._frame_of.append(None)  # spool full: in memory, as without durability
        self._events.append(event)
        self._sizes.append(0)
        metrics.QUEUE_PUSHED.inc()
        self._not_empty.set()
        self._ready.set()  # markers should not wait for a full batch

    def _after_put(self) -> None:
        if (
            not self._events
            and not self._unread
            and not (self.spool is not None and self.spool.pending_events)
        ):
            return
        self._not_empty.set()
        if len(self._events) >= self._flush_threshold or self._bytes >= self.max_bytes:
            self._ready.set()
        if self.room() == 0:
            self._has_room.clear()

    async def wait_for_room(self) -> None:
        """For ``block``: return once at least one event fits."""
        while self.room() == 0:
            self._has_room.clear()
            await self._has_room.wait()

    async def take(self, max_events: int, max_bytes: int, max_wait: float) -> list[Event]:
        """Take up to a batch; wait up to ``max_wait`` for a full one once any event is there."""
        self._flush_threshold = max_events
        self._refill()
        if not self._events:
            self._not_empty.clear()
            await self._not_empty.wait()
            self._refill()
        if len(self._events) < max_events and self._bytes < max_bytes:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), max_wait)
            except TimeoutError:
                pass
        return self.take_nowait(max_events, max_bytes)

    def _refill(self) -> None:
        """Move spooled events back to memory, oldest first, as far as memory has room."""
        if self.durable:
            self._read_back()
            return
        spool = self.spool
        while spool is not None and spool.pending_events:
            room = self._memory_room()
            if room == 0:
                return
            back, position = spool.read(room)
            spool.ack(position)  # spill guards memory, not crashes: memory has them now
            if not back:
                return
            self._events.extend(back)
            sizes = [len(e.get("message") or "") + EVENT_OVERHEAD_BYTES for e in back]
            self._sizes.extend(sizes)
            self._bytes += sum(sizes)
            metrics.UNSPILLED_EVENTS.inc(len(back))

    def _read_back(self) -> None:
        """durability: read frames into memory; acknowledged only once delivered."""
        spool = self.spool
        assert spool is not None
        while self._unread and self._memory_room():
            back, end = spool.read(1)  # one whole frame
            if not back:
                self._unread = 0
                return
            frame = _Frame(end, len(back))
            self._frames.append(frame)
            self._events.extend(back)
            sizes = [len(e.get("message") or "") + EVENT_OVERHEAD_BYTES for e in back]
            self._sizes.extend(sizes)
            self._bytes += sum(sizes)
            self._frame_of.extend([frame] * len(back))
            self._unread = max(0, self._unread - len(back))

    def done(self, token: int | None) -> None:
        """The output has finished with the batch of ``token`` (``Batch.token``; None for
        a plain list): delivered or dead-lettered. Acknowledges the spool in order."""
        frames = self._batches.pop(token, None) if token is not None else None
        if not frames:
            return
        for frame in frames:
            if frame is not None:
                frame.left -= 1
        end = None
        while self._frames and self._frames[0].left == 0:
            end = self._frames.popleft().end
        if end is not None and self.spool is not None:
            self.spool.ack(end)

    def spool_memory(self, undelivered: Sequence[Event] = ()) -> int:
        """At stop: spool what memory still holds, so the next start ships it.

        ``undelivered``: events the output had taken and not delivered (older than
        those in memory, so they go first)."""
        spool = self.spool
        if spool is None or self.durable or not (self._events or undelivered):
            return 0  # durable: everything taken or in memory is in the spool already
        if spool.pending_events:
            # Memory holds the oldest events and the spool newer ones; rewriting the
            # spool to put these first would cost its size again on disk. Their ids
            # keep them exactly-once and @timestamp still sorts them.
            log.warning(
                "Spooling the memory queue behind newer spooled events; they ship after "
                "them on the next start. events=%d",
                len(self._events),
            )
        stored = spool.append([*undelivered, *self._events])
        spool.sync()
        if stored:
            self._events.clear()
            self._sizes.clear()
            self._bytes = 0
        return stored

    def take_nowait(self, max_events: int, max_bytes: int) -> list[Event]:
        """Take what is there now, up to the bounds (at least one event if any)."""
        self._refill()
        events, sizes = self._events, self._sizes
        batch: list[Event] = []
        taken_bytes = 0
        while events and len(batch) < max_events:
            size = sizes[0]
            if batch and taken_bytes + size > max_bytes:
                break
            batch.append(events.popleft())
            sizes.popleft()
            taken_bytes += size
        self._bytes -= taken_bytes
        if self.durable and batch:
            frame_of = self._frame_of
            token = self._next_token = self._next_token + 1
            self._batches[token] = [frame_of.popleft() for _ in range(len(batch))]
            batch = Batch(batch)
            batch.token = token
        if batch:
            metrics.QUEUE_POPPED.inc(len(batch))
            self._has_room.set()
        if events and len(events) >= self._flush_threshold:
            self._ready.set()
        return batch


class Batch(list[Event]):
    """A batch taken in durable mode: its token tells ``done`` which frames it held."""

    __slots__ = ("token",)


class _Frame:
    """One spool frame read back into memory: where it ends, and its events not done."""

    __slots__ = ("end", "left")

    def __init__(self, end: Any, left: int) -> None:
        self.end = end
        self.left = left


class LossTracker:
    """Drops of one input since the last loss marker: count, reason, time range."""

    __slots__ = ("count", "first_ns", "input", "last_ns", "reason")

    def __init__(self, input_name: str) -> None:
        self.input = input_name
        self.count = 0
        self.first_ns = 0
        self.last_ns = 0
        self.reason = ""

    def add(self, count: int, reason: str, first_ns: int, last_ns: int) -> None:
        if not count:
            return
        if self.count == 0:
            self.first_ns = first_ns
            self.reason = reason
        elif reason != self.reason:
            self.reason = "mixed"
        self.count += count
        self.last_ns = last_ns

    def take(self) -> tuple[int, str, int, int]:
        """Return and reset (count, reason, first_ns, last_ns)."""
        summary = (self.count, self.reason, self.first_ns, self.last_ns)
        self.count = 0
        return summary
