"""Joining the pieces of split container log lines.

Docker splits a line longer than 16 KiB into pieces (json-file entries without a
trailing ``"\\n"``, API frames without one), CRI runtimes write ``P`` pieces before the
final ``F``, and the raw TTY decoder cuts overlong lines. Every source marks a piece
with ``partial=True``; :class:`PartialReassembler` joins them per key (a container and
stream) into whole lines, with a cap on the size of one line and a timeout for a last
piece that never gets its end (a container that exits mid-line).

Pure: no clock. The caller passes the current time to :meth:`PartialReassembler.expired`
(and, optionally, to :meth:`PartialReassembler.feed`).
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["PartialReassembler"]


class _Pending:
    """The pieces of one unfinished line."""

    __slots__ = ("pieces", "size", "started_ns", "time_ns", "truncated")

    def __init__(self, time_ns: int, started_ns: int | None) -> None:
        self.pieces: list[bytes] = []
        self.size = 0
        self.time_ns = time_ns
        # When the first piece arrived, in the caller's clock; None until known.
        self.started_ns = started_ns
        self.truncated = False


class PartialReassembler:
    """Joins partial pieces per key (a container+stream) into whole lines.

    ``feed(key, text, partial, time_ns)`` returns ``(whole_text, time_ns_of_first_piece,
    truncated)`` when a line completes, else None. A piece with ``partial=False`` and
    nothing pending is returned as it is (no copy).

    Lines longer than ``max_line_bytes`` keep their first ``max_line_bytes`` bytes; the
    rest of that line is dropped and ``truncated`` is True when it completes (the caller
    tags and counts).

    ``expired(now_ns)`` returns and forgets ``(key, text, time_ns, truncated)`` for the
    lines whose first piece is at least ``flush_timeout_ns`` old, so a final partial that
    never completes does not hold the stream. The age is measured from the ``now_ns``
    given to ``feed`` with the first piece; when ``feed`` got none, from the first
    ``expired`` call that saw the line (a line is then flushed between one and two
    expiry intervals late, never early).
    """

    __slots__ = ("_flush_timeout_ns", "_max_line_bytes", "_pending")

    def __init__(self, max_line_bytes: int = 1 << 20, flush_timeout_ns: int = 5 * 10**9) -> None:
        self._max_line_bytes = max_line_bytes
        self._flush_timeout_ns = flush_timeout_ns
        self._pending: dict[Hashable, _Pending] = {}

    def __len__(self) -> int:
        """Number of keys with pending pieces."""
        return len(self._pending)

    def pending(self, key: Hashable) -> bool:
        """Whether ``key`` has an unfinished line."""
        return key in self._pending

    def feed(
        self,
        key: Hashable,
        text: bytes,
        partial: bool,
        time_ns: int,
        now_ns: int | None = None,
    ) -> tuple[bytes, int, bool] | None:
        """Add one piece; the whole line when ``partial`` is False, else None."""
        entry = self._pending.get(key)
        limit = self._max_line_bytes
        if entry is None:
            if not partial:
                # The common case: a whole line with nothing pending, no copy.
                if len(text) > limit:
                    return text[:limit], time_ns, True
                return text, time_ns, False
            entry = self._pending[key] = _Pending(time_ns, now_ns)
        room = limit - entry.size
        if len(text) > room:
            text = text[:room] if room > 0 else b""
            entry.truncated = True
        if text:
            entry.pieces.append(text)
            entry.size += len(text)
        if partial:
            return None
        del self._pending[key]
        return b"".join(entry.pieces), entry.time_ns, entry.truncated

    def flush(self, key: Hashable) -> tuple[bytes, int, bool] | None:
        """Return and forget ``key``'s unfinished line (its stream ended), or None."""
        entry = self._pending.pop(key, None)
        if entry is None:
            return None
        return b"".join(entry.pieces), entry.time_ns, entry.truncated

    def expired(self, now_ns: int) -> list[tuple[Hashable, bytes, int, bool]]:
        """Return and forget the unfinished lines older than the flush timeout."""
        timeout = self._flush_timeout_ns
        done: list[tuple[Hashable, bytes, int, bool]] = []
        for key, entry in self._pending.items():
            if entry.started_ns is None:
                entry.started_ns = now_ns
            if now_ns - entry.started_ns >= timeout:
                done.append((key, b"".join(entry.pieces), entry.time_ns, entry.truncated))
        for key, _, _, _ in done:
            del self._pending[key]
        return done
