"""A disk spool: batches of events in segment files, read in order, deleted once acknowledged.

- ``<20-digit sequence>.seg``: a segment, a run of frames: 4-byte big-endian payload
  length, 4-byte big-endian CRC32 of the payload, then the payload (msgpack of the list
  of events given to one ``append``). A new segment starts when the current one has
  reached ``segment_bytes``, and on every start of the spool.
- ``cursor``: the acknowledged position (segment, offset of the first frame not yet
  acknowledged), replaced atomically on every ``ack``.

Every event carries its own ``_id``, so replaying one is harmless and losing one is not:
when unsure (a missing or unreadable cursor, a cursor inside a frame) the spool replays.
On open every frame from the cursor on is checked; a torn or corrupt frame ends the valid
part of its segment, which is truncated there (counted and logged); later segments are
read as usual. All I/O is synchronous; the caller decides where it runs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import struct
import time
import zlib
from collections import deque
from typing import Any, BinaryIO, NamedTuple

import msgpack

from logpipe import checkpoints
from logpipe.event import pack_default

log = logging.getLogger(__name__)

Event = dict[str, Any]

SEGMENT_SUFFIX = ".seg"
CURSOR_NAME = "cursor"
DEFAULT_SEGMENT_BYTES = 16 << 20
DEFAULT_FSYNC_INTERVAL = 1.0

_HEADER = struct.Struct(">II")  # payload length, CRC32 of the payload
_SEGMENT_NAME = re.compile(r"[0-9]{20}\.seg")
# A full disk refuses the batch; any other write error is a broken disk and is raised.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class Position(NamedTuple):
    """A place in the spool; positions compare in spool order."""

    segment: int
    offset: int


def _cursor_check(position: Position) -> int:
    # A flipped digit that still parses could point past unacknowledged data.
    return zlib.crc32(f"{position.segment}:{position.offset}".encode())


def _read_frame(fh: BinaryIO, offset: int, end: int) -> tuple[list[Event], int] | None:
    """The frame at ``offset`` (where ``fh`` is): its events and the offset after it.

    None when the frame is torn (runs past ``end``) or corrupt (CRC, msgpack, not a list).
    """
    header = fh.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    length, crc = _HEADER.unpack(header)
    after = offset + _HEADER.size + length
    if after > end:
        return None
    payload = fh.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    try:
        events = msgpack.unpackb(payload)
    except (ValueError, msgpack.UnpackException):
        return None
    return (events, after) if isinstance(events, list) else None


def _write_all(fd: int, data: bytes) -> None:
    # A write may store less than asked (a disk about to fill); the rest follows or fails.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segment files in ``directory``, bounded by ``max_bytes`` on disk.

    Two cursors: the acknowledged one (on disk, survives restarts) and the read one (in
    memory, ahead of it by what is being delivered). Acknowledged bytes stay on disk, and
    count against ``max_bytes``, until their whole segment is acknowledged, so keep
    ``segment_bytes`` well below ``max_bytes``. Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync_interval: float = DEFAULT_FSYNC_INTERVAL,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.damaged_frames = 0
        self.damaged_bytes = 0
        # The disk error that refused the latest append (None: it was not refused by one).
        self.last_error: OSError | None = None
        self._sizes: dict[int, int] = {}  # segment -> valid bytes, in segment order
        self._total = 0
        self._pending_events = 0
        self._unacked: deque[tuple[Position, int]] = deque()  # read frames: end, events
        self._head: int | None = None  # the segment being appended to
        self._fd: int | None = None
        self._dirty = False
        self._synced_at = time.monotonic()
        os.makedirs(directory, exist_ok=True)
        self._ack = self._recover()
        self._read = self._ack

    def append(self, events: list[Event]) -> int:
        """Store ``events`` as one frame: returns len(events), or 0 when full (bound or disk)."""
        self.last_error = None
        if not events:
            return 0
        payload = msgpack.packb(events, default=pack_default)
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        if self._total + len(frame) > self.max_bytes:
            self._reclaim_head()
            if self._total + len(frame) > self.max_bytes:
                return 0
        start = None
        try:
            fd, start = self._writable()
            _write_all(fd, frame)
            self._dirty = True
            if time.monotonic() - self._synced_at >= self.fsync_interval:
                self.sync()
        except OSError as exc:
            if start is not None:
                self._drop_tail(start)
            if exc.errno not in _DISK_FULL:
                raise
            self.last_error = exc
            return 0
        self._sizes[self._head] = start + len(frame)
        self._total += len(frame)
        self._pending_events += len(events)
        return len(events)

    def sync(self) -> None:
        """Make every append so far durable."""
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._synced_at = time.monotonic()

    def _writable(self) -> tuple[int, int]:
        """The head segment's fd and size; starts a new segment when it is full or closed."""
        if self._fd is not None and self._sizes[self._head] < self.segment_bytes:
            return self._fd, self._sizes[self._head]
        self._seal()
        seq = max([*self._sizes, self._ack.segment - 1]) + 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        self._fd = os.open(self._path(seq), flags, 0o644)
        self._head = seq
        self._sizes[seq] = 0
        _fsync_dir(self.directory)  # the new name must outlive a power loss with its data
        return self._fd, 0

    def _drop_tail(self, start: int) -> None:
        """Cut a partly written frame away so the segment stays valid."""
        try:
            os.ftruncate(self._fd, start)
        except OSError:
            # Appending after the torn frame would hide what follows from recovery.
            self._sizes[self._head] = start
            self._seal(durable=False)

    def _seal(self, durable: bool = True) -> None:
        """Stop appending to the head segment (it is never synced again after this)."""
        if self._fd is None:
            return
        if durable and self._dirty:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = self._head = None
        self._dirty = False

    def _reclaim_head(self) -> None:
        """Delete the head segment if all of it is acknowledged (it would never rotate
        away when ``max_bytes`` is below ``segment_bytes``)."""
        if self._head is None or self._ack != (self._head, self._sizes[self._head]):
            return
        self._seal(durable=False)  # delivered already: nothing to make durable
        self.ack(self._ack)  # the sealed head's end is the next segment's start now

    def read(self, max_events: int) -> tuple[list[Event], Position]:
        """Whole frames after the read cursor, up to ``max_events`` (at least one frame)."""
        events: list[Event] = []
        pos = self._settle(self._read)
        while not events or len(events) < max_events:
            end = self._sizes.get(pos.segment, 0)
            if pos.offset >= end:
                break
            pos = self._settle(self._read_segment(pos, end, max_events, events))
        self._read = pos
        return events, pos

    def _read_segment(self, pos: Position, end: int, max_events: int, out: list[Event]) -> Position:
        seq, offset = pos
        with open(self._path(seq), "rb") as fh:
            fh.seek(offset)
            while offset < end and (not out or len(out) < max_events):
                frame = _read_frame(fh, offset, end)
                if frame is None:  # changed on disk since recovery checked it
                    self._count_damage(seq, offset, end - offset)
                    if seq == self._head:
                        self._seal()
                    return Position(seq, end)
                batch, offset = frame
                out.extend(batch)
                self._unacked.append((Position(seq, offset), len(batch)))
        return Position(seq, offset)

    def ack(self, position: Position) -> None:
        """Everything before ``position`` is delivered: save the cursor, delete old segments."""
        position = self._settle(Position(*position))
        if position <= self._ack:
            return
        self._ack = position
        self._read = max(self._read, position)
        while self._unacked and self._unacked[0][0] <= position:
            self._pending_events -= self._unacked.popleft()[1]
        self._save_cursor()
        for seq in [s for s in self._sizes if s < position.segment]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path(seq))
            self._total -= self._sizes.pop(seq)

    def rewind(self) -> None:
        """Read again from the acknowledged cursor (the last delivery failed)."""
        self._read = self._ack
        self._unacked.clear()

    def _settle(self, pos: Position) -> Position:
        """Move a position at the end of a finished segment to the next segment's start."""
        while pos.segment != self._head and pos.offset >= self._sizes.get(pos.segment, 0):
            later = [s for s in self._sizes if s > pos.segment]
            if not later:
                # The next segment is made after the last one (see _writable).
                return pos if pos.segment not in self._sizes else Position(pos.segment + 1, 0)
            pos = Position(min(later), 0)
        return pos

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk after the acknowledged cursor."""
        return self._total - (self._ack.offset if self._ack.segment in self._sizes else 0)

    @property
    def pending_events(self) -> int:
        """Events after the acknowledged cursor (exact unless frames were found damaged)."""
        return self._pending_events

    @property
    def total_bytes(self) -> int:
        """Bytes in segment files, acknowledged or not (what ``max_bytes`` bounds)."""
        return self._total

    def close(self) -> None:
        self._seal()

    def _path(self, seq: int) -> str:
        return os.path.join(self.directory, f"{seq:020d}{SEGMENT_SUFFIX}")

    def _recover(self) -> Position:
        """Check the segments from the saved cursor on; the acknowledged position."""
        names = sorted(n for n in os.listdir(self.directory) if _SEGMENT_NAME.fullmatch(n))
        seqs = [int(name[: -len(SEGMENT_SUFFIX)]) for name in names]
        cursor = self._load_cursor() or Position(seqs[0] if seqs else 1, 0)
        frames: dict[int, list[tuple[int, int]]] = {}
        for seq in seqs:
            if seq < cursor.segment:
                os.remove(self._path(seq))
            else:
                frames[seq] = self._check_segment(seq)
                self._sizes[seq] = frames[seq][-1][0]
                self._total += self._sizes[seq]
        if cursor.segment in frames:
            # Only a frame boundary is a valid cursor; round down (replay, never skip).
            offset = max(end for end, _ in frames[cursor.segment] if end <= cursor.offset)
            cursor = Position(cursor.segment, offset)
        elif cursor.offset:  # its segment is gone: whatever comes next, from its start
            cursor = Position(cursor.segment + 1, 0)
        ack = self._settle(cursor)
        self._pending_events = sum(
            count for seq, ends in frames.items() for end, count in ends if Position(seq, end) > ack
        )
        for seq in [s for s in self._sizes if s < ack.segment]:
            os.remove(self._path(seq))
            self._total -= self._sizes.pop(seq)
        return ack

    def _check_segment(self, seq: int) -> list[tuple[int, int]]:
        """Frame ends and event counts, from (0, 0); truncates the segment at damage."""
        path = self._path(seq)
        frames = [(0, 0)]
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            while (offset := frames[-1][0]) < size:
                frame = _read_frame(fh, offset, size)
                if frame is None:
                    self._count_damage(seq, offset, size - offset)
                    os.truncate(path, offset)
                    break
                frames.append((frame[1], len(frame[0])))
        return frames

    def _count_damage(self, seq: int, offset: int, dropped: int) -> None:
        self.damaged_frames += 1
        self.damaged_bytes += dropped
        log.warning(
            "Dropped a damaged spool segment tail. path=%s offset=%d bytes=%d",
            self._path(seq),
            offset,
            dropped,
        )

    def _load_cursor(self) -> Position | None:
        path = os.path.join(self.directory, CURSOR_NAME)
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read())
            position = Position(int(data["segment"]), int(data["offset"]))
            if data["check"] != _cursor_check(position) or min(position) < 0:
                raise ValueError("cursor check failed")
            return position
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning(
                "Ignoring an unreadable spool cursor; replaying from the oldest segment "
                "(ids prevent duplicates). path=%s error=%s",
                path,
                exc,
            )
            return None

    def _save_cursor(self) -> None:
        path = os.path.join(self.directory, CURSOR_NAME)
        data = {"segment": self._ack.segment, "offset": self._ack.offset}
        data["check"] = _cursor_check(self._ack)
        try:
            checkpoints.write_json(path, data)
        except OSError as exc:
            # The old cursor stays: a restart replays more (no duplicates), never less.
            log.warning("Failed to save the spool cursor. path=%s error=%s", path, exc)
