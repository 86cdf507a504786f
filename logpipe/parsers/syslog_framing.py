"""Syslog over a byte stream (TCP, TLS): where one message ends and the next begins.

Two framings are in use (RFC 6587):

* octet counting, ``MSG-LEN SP SYSLOG-MSG`` (RFC 5425 for TLS; rsyslog with
  ``TCP_Framing="octet-counted"``): exact, and a message may contain newlines;
* non-transparent framing, each message ended by LF (what rsyslog and syslog-ng send
  by default, and ``logger --tcp``).

Which one a connection uses is decided by its first byte: a digit means octet counting
(a syslog message itself begins with ``<``), anything else means LF. The choice holds
for the rest of the connection, so a message in LF framing that happens to start with
a digit is not misread.

A message longer than ``max_bytes`` is cut there and returned as a
:class:`TruncatedFrame` (the input tags it); the rest of it is skipped, and the frames
after it are read as usual. What cannot be framed at all (a length that is not a
number) sets :attr:`FrameSplitter.error`, after the frames before it have been
returned: the stream has lost its place, and the only honest thing left is to close
that one connection.
"""

from __future__ import annotations

OCTET_COUNTING = "octet-counting"
NON_TRANSPARENT = "lf"

# "MSG-LEN SP": at most this many digits. A 64-bit length is absurd for a log message;
# ten digits keep int() cheap and a garbage stream from looking like a length for long.
_MAX_LENGTH_DIGITS = 10
_DIGITS = frozenset(b"0123456789")


class TruncatedFrame(bytes):
    """A message cut at the size limit: the first ``max_bytes`` of it."""

    __slots__ = ()


class FrameSplitter:
    """Splits one connection's bytes into syslog messages, however they are chunked."""

    __slots__ = ("_max", "_pending", "_skip", "error", "framing")

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._pending = b""  # the start of a frame not yet complete
        # Bytes of an over-long frame still to throw away: a count in octet counting,
        # -1 for "up to the next LF" in LF framing.
        self._skip = 0
        self.framing: str | None = None
        self.error: str | None = None  # set once the stream cannot be framed any more

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by ``data`` (without their framing)."""
        if not data or self.error is not None:
            return []
        if self.framing is None:
            self.framing = OCTET_COUNTING if data[0] in _DIGITS else NON_TRANSPARENT
        if self.framing is NON_TRANSPARENT:
            return self._feed_lines(data)
        return self._feed_counted(data)

    def flush(self) -> list[bytes]:
        """At the end of the stream: a last message without its LF is still a message;
        a frame cut short by the peer is kept as far as it came, marked truncated."""
        pending, self._pending = self._pending, b""
        if not pending or self._skip or self.error is not None:
            return []
        if self.framing is NON_TRANSPARENT:
            return [pending]
        _, sep, body = pending.partition(b" ")
        return [TruncatedFrame(body)] if sep and body else []

    def _feed_lines(self, data: bytes) -> list[bytes]:
        if self._skip:
            end = data.find(b"\n")
            if end < 0:
                return []
            self._skip = 0
            data = data[end + 1 :]
        if self._pending:
            data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        limit = self._max
        out = [
            line if len(line) <= limit else TruncatedFrame(line[:limit]) for line in lines if line
        ]
        if len(self._pending) > limit:
            out.append(TruncatedFrame(self._pending[:limit]))
            self._pending = b""
            self._skip = -1
        return out

    def _feed_counted(self, data: bytes) -> list[bytes]:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip :]
            self._skip = 0
        if self._pending:
            data = self._pending + data
        out: list[bytes] = []
        limit = self._max
        pos, size = 0, len(data)
        while pos < size:
            space = data.find(b" ", pos, pos + _MAX_LENGTH_DIGITS + 1)
            if space < 0:
                if size - pos > _MAX_LENGTH_DIGITS or not data[pos:].isdigit():
                    self.error = _what(data, pos)
                    pos = size
                break  # the length itself is split across reads
            digits = data[pos:space]
            if not digits.isdigit() or digits[0] == 0x30:  # "0": NONZERO-DIGIT first
                self.error = _what(data, pos)
                pos = size
                break
            length = int(digits)
            start = space + 1
            end = start + length
            if length > limit:
                if size < start + limit:
                    break  # not yet the part that is kept
                out.append(TruncatedFrame(data[start : start + limit]))
                if end > size:
                    self._skip = end - size
                    pos = size
                    break
                pos = end
                continue
            if end > size:
                break
            out.append(data[start:end])
            pos = end
        self._pending = data[pos:] if pos < size else b""
        return out


def _what(data: bytes, pos: int) -> str:
    return f"expected an octet count (MSG-LEN SP), got {bytes(data[pos : pos + 16])!r}"
