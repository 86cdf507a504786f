"""Container log formats: the Docker Engine API log stream, json-file lines and CRI lines.

Everything here is pure: bytes in, :class:`LogLine` values out, no I/O and no clock.
The input modules move bytes from the Docker socket or from log files into these
functions; joining the pieces of a split line is :mod:`logpipe.parsers.partial`'s job.

Formats (see tests/unit/data/docker/README.md for the sources):

* ``GET /containers/{id}/logs`` without a TTY is *multiplexed*: frames of an 8-byte
  header ``[stream, 0, 0, 0, size (4 bytes, big endian)]`` and ``size`` payload bytes
  (moby ``pkg/stdcopy``). Stream 1 is stdout, 2 stderr, 0 stdin ("present for
  completeness", docker's own reader prints it on stdout) and 3 "systemerr": the daemon
  reports a failure (``Error grabbing logs: ...``) and the stream is over.
  :class:`MultiplexedDecoder` reads it.
* With a TTY the body is the raw terminal output: :class:`RawStreamDecoder`.
* With ``timestamps=1`` the daemon writes every log message (one line, or one piece of
  a line longer than 16 KiB) as ``<RFC 3339 nano> <text>``.
* ``<id>-json.log`` lines: :func:`parse_json_file_line`; CRI (containerd, CRI-O) lines:
  :func:`parse_cri_line`.

Decisions that callers rely on:

* Stream 0 is accepted and reported as ``"stdin"`` rather than dropped or folded into
  stdout: nothing is lost and the label says what the daemon sent.
* Timestamps become epoch nanoseconds with integer arithmetic (no datetime per line);
  the epoch seconds of a ``YYYY-MM-DDTHH:MM:SS`` prefix are cached because consecutive
  lines share their second. ``time_ns`` is 0 for a missing or invalid timestamp and for
  one before 1970 (Go's zero time ``0001-01-01T00:00:00Z`` means "unset"); callers use
  the receive time then.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import orjson

from logpipe.parsers.rfc5424 import epoch_seconds
from logpipe.timefmt import MAX_NS, NS_PER_SECOND

__all__ = [
    "FrameError",
    "LogLine",
    "MultiplexedDecoder",
    "RawStreamDecoder",
    "parse_cri_line",
    "parse_json_file_line",
    "parse_timestamp",
]

# RFC 3339 date-time, seconds to nine fraction digits (Go's RFC3339Nano drops trailing
# zeros, so any count 0..9 occurs; podman 4 sends none). No groups: the value is read
# back by slicing, the layout being fixed once the pattern matched.
_STAMP = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_STAMP_RE = re.compile(_STAMP)
# The timestamp the daemon puts before each message when timestamps=1, then one space
# (or nothing more: a message that is only the stamp).
_PREFIX_RE = re.compile(b"(" + _STAMP.encode() + rb")(?: |\Z)")
# "<stamp> <stream> <tag> <content>". The tag is F or P, optionally followed by more
# ":"-separated tags (kubelet reads only the first one, for forward compatibility).
# Runtimes from before tags existed wrote no tag: the optional group lets such a line
# through as a full line, which keeps its text instead of losing it (Filebeat
# "criflags: false"). A tag must be followed by a space or the end, so content that
# merely starts with "F" or "P" is not mistaken for one.
_CRI_RE = re.compile(
    b"(" + _STAMP.encode() + rb") (stdout|stderr) (?:([FP])(?::[!-~]*)?(?: |\Z))?",
)

# [stream, 0, 0, 0] read as one big-endian int keeps the padding check to one "&".
_HEADER = struct.Struct(">II")
_HEADER_SIZE = _HEADER.size
_PADDING_MASK = 0x00FFFFFF
_STREAMS = ("stdin", "stdout", "stderr")
_SYSTEMERR = 3

# 10 ** (9 - digits): nanoseconds per unit of a fraction with that many digits.
_FRACTION_SCALE = tuple(10 ** (9 - digits) for digits in range(10))
# Epoch ns of a whole second, keyed by the stamp's "YYYY-MM-DDTHH:MM:SS" (plus the
# "+hh:mm" offset when it is not Z), as str or as bytes; -1 when the second is out of
# range or before 1970. Lines share their second, so the calendar arithmetic runs once
# per second instead of once per line. Only text that matched _STAMP is ever a key, which
# lets a cache hit stand in for most of the regex (see the fast paths). Keyed, not one
# slot: several containers interleave lines from a few different seconds.
_second_ns: dict[str | bytes, int] = {}
_MAX_CACHED_SECONDS = 512


class FrameError(ValueError):
    """A log stream that cannot be decoded.

    ``can_continue`` is False when the stream is corrupt (oversize frame, unknown stream
    byte, non-zero padding, a daemon error frame): the caller closes the connection and
    counts the error. Every error the decoders here raise has ``can_continue=False``;
    the attribute exists because all logpipe stream decoders share this contract.
    """

    def __init__(self, message: str, *, can_continue: bool) -> None:
        super().__init__(message)
        self.can_continue = can_continue


@dataclass(slots=True)
class LogLine:
    """One line, or one piece of a split line, from a container."""

    stream: str
    """``"stdout"``, ``"stderr"``, ``"stdin"`` (multiplexed stream 0) or ``"tty"``;
    json-file lines carry whatever their ``stream`` key says (``""`` when absent)."""
    time_ns: int
    """Epoch nanoseconds of ``timestamp``; 0 when there is none or it is invalid."""
    timestamp: str
    """The timestamp text as the runtime wrote it (``""`` if none)."""
    text: bytes
    """The content without the trailing ``"\\n"``."""
    partial: bool
    """True when the line did not end with ``"\\n"``: a piece of a longer line (the
    caller joins pieces with :class:`~logpipe.parsers.partial.PartialReassembler`)."""


def _cache_second(key: str) -> int:
    """Compute, cache and return ``_second_ns[key]`` for a key cut from a valid stamp."""
    seconds = epoch_seconds(key[:19], key[19:] or "Z")
    # Outside date_nanos (before 1970, after 2262) is no time at all: found by tests/fuzz,
    # a year-4032 stamp made a nanosecond count too big for msgpack and for @timestamp.
    if seconds is None or seconds < 0 or seconds >= MAX_NS // NS_PER_SECOND:
        base = -1
    else:
        base = seconds * NS_PER_SECOND
    if len(_second_ns) >= _MAX_CACHED_SECONDS:
        _second_ns.clear()
    _second_ns[key] = base
    return base


def _stamp_ns(stamp: str) -> int:
    """Epoch ns of ``stamp``, which already matched ``_STAMP``; 0 if out of range."""
    if stamp[-1] in "Zz":
        key = stamp[:19]
        fraction = stamp[20:-1]
    else:
        key = stamp[:19] + stamp[-6:]
        fraction = stamp[20:-6]
    base = _second_ns.get(key)
    if base is None:
        base = _cache_second(key)
    if base < 0:
        return 0
    if fraction:
        return base + int(fraction) * _FRACTION_SCALE[len(fraction)]
    return base


def parse_timestamp(text: str) -> int:
    """Epoch nanoseconds of an RFC 3339 timestamp; 0 if it is not one.

    Accepts 0..9 fraction digits, ``Z``/``z`` or a ``±hh:mm`` offset, and ``T``/``t``.
    Returns 0 for out-of-range fields (month 13, Feb 30, hour 24, second 60, offset
    beyond 23:59), for more than nine fraction digits and for times before 1970.
    """
    # Fast path for json-file's UTC stamps: a cached second proves the first 19
    # characters are valid, so only the fraction is left to check.
    if text[19:20] == "." and text[-1:] == "Z":
        base = _second_ns.get(text[:19])
        fraction = text[20:-1]
        if (
            base is not None
            and 0 < len(fraction) < 10
            and fraction.isascii()
            and fraction.isdigit()
        ):
            return base + int(fraction) * _FRACTION_SCALE[len(fraction)] if base >= 0 else 0
    if _STAMP_RE.fullmatch(text) is None:
        return 0
    return _stamp_ns(text)


def _split_stamp(piece: bytes) -> tuple[int, str, bytes]:
    """``(time_ns, stamp, text)`` of a message that may start with ``<stamp> ``.

    A piece that does not start with a timestamp keeps all its bytes as text: a
    continuation that the daemon did not stamp must not lose its first word.
    """
    # Fast path for Docker's fixed layout (RFC3339NanoFixed: always nine digits and
    # "Z"): a cached bytes key proves the first 19 bytes valid; bytes.isdigit() is
    # ASCII-only, so this accepts exactly what the regex would.
    if piece[29:31] == b"Z " and piece[19:20] == b".":
        base = _second_ns.get(piece[:19])
        fraction = piece[20:29]
        if base is not None and fraction.isdigit():
            ns = base + int(fraction) if base >= 0 else 0
            return ns, piece[:30].decode("ascii"), piece[31:]
    match = _PREFIX_RE.match(piece)
    if match is None:
        return 0, "", piece
    stamp = match.group(1).decode("ascii")
    ns = _stamp_ns(stamp)
    if len(stamp) == 30 and stamp[29] == "Z":
        # Prime the bytes key for the fast path from the str key _stamp_ns just cached
        # (.get: another thread may have cleared the cache in between).
        base = _second_ns.get(stamp[:19])
        if base is not None:
            _second_ns[piece[:19]] = base
    return ns, stamp, piece[match.end() :]


class MultiplexedDecoder:
    """Docker Engine API ``/containers/{id}/logs`` body when the container has no TTY.

    Frames are an 8-byte header ``[stream(1)=1 stdout/2 stderr, 0, 0, 0, size(4, big
    endian)]`` plus payload. With ``timestamps=1`` each payload line starts with an
    RFC 3339 nano timestamp and a space, and so does every frame, even one that
    continues a partial line.

    ``feed`` returns one :class:`LogLine` per ``"\\n"``-terminated line of each complete
    frame, plus a ``partial=True`` line for a payload that does not end with ``"\\n"``.
    Output depends only on the bytes, never on how they were split into feeds.

    Errors (all :class:`FrameError` with ``can_continue=False``): a frame larger than
    ``max_frame_bytes``, a stream byte other than 0, 1, 2, non-zero padding bytes, and a
    stream-3 frame (the daemon's own error; the message includes its text). When lines
    were decoded in the same call before the bad frame, ``feed`` returns them and raises
    on the next call, so no good line is lost; :attr:`error` shows it at once. After an
    error the decoder keeps raising it.
    """

    __slots__ = ("_buf", "_error", "_max_frame_bytes", "_need", "_skip_newlines", "_timestamps")

    def __init__(
        self,
        timestamps: bool = True,
        max_frame_bytes: int = 1 << 20,
        skip_stray_newlines: bool = False,
    ) -> None:
        """``skip_stray_newlines``: podman's ``attach`` writes a lone "\n" between the
        replayed logs and the live frames; with this set, a "\n" where a frame header
        should start is skipped instead of failing the stream."""
        self._timestamps = timestamps
        self._skip_newlines = skip_stray_newlines
        self._max_frame_bytes = max_frame_bytes
        # Bytes of an incomplete frame; _need is the length that completes the header
        # or the frame, so a large frame arriving in small reads is appended to, not
        # re-parsed on every read.
        self._buf = bytearray()
        self._need = _HEADER_SIZE
        self._error: FrameError | None = None

    @property
    def error(self) -> FrameError | None:
        """The stream error found so far, or None."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (lost if the stream ends now)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[LogLine]:
        """Decode ``data``; ``[]`` means "need more bytes". Raises :class:`FrameError`."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            data = bytes(buf)
            buf.clear()
        lines: list[LogLine] = []
        pos = 0
        end = len(data)
        need = _HEADER_SIZE
        while end - pos >= _HEADER_SIZE:
            if self._skip_newlines and data[pos] == 10:
                pos += 1
                continue
            head, size = _HEADER.unpack_from(data, pos)
            stream_id = head >> 24
            if head & _PADDING_MASK or stream_id > _SYSTEMERR:
                return self._fail(lines, f"bad frame header {data[pos : pos + 8].hex()}")
            if size > self._max_frame_bytes:
                return self._fail(
                    lines, f"frame of {size} bytes is over the {self._max_frame_bytes} limit"
                )
            if end - pos - _HEADER_SIZE < size:
                need = _HEADER_SIZE + size
                break
            start = pos + _HEADER_SIZE
            pos = start + size
            if stream_id == _SYSTEMERR:
                message = data[start:pos].rstrip(b"\n").decode("utf-8", "replace")
                return self._fail(lines, f"the daemon ended the stream: {message}")
            if size:
                self._payload(data[start:pos], _STREAMS[stream_id], lines)
        if pos < end:
            buf += data[pos:] if pos else data
        self._need = need
        return lines

    def _fail(self, lines: list[LogLine], message: str) -> list[LogLine]:
        """Record the stream error; raise it now unless good lines must go out first."""
        self._error = FrameError(message, can_continue=False)
        self._buf.clear()
        if lines:
            return lines
        raise self._error

    def _payload(self, payload: bytes, stream: str, out: list[LogLine]) -> None:
        """Append the lines of one frame payload to ``out``."""
        pieces = payload.split(b"\n")
        # split() leaves b"" after a final "\n"; anything else is an unterminated piece.
        rest = pieces.pop()
        timestamps = self._timestamps
        for piece in pieces:
            if timestamps:
                ns, stamp, text = _split_stamp(piece)
                out.append(LogLine(stream, ns, stamp, text, False))
            else:
                out.append(LogLine(stream, 0, "", piece, False))
        if rest:
            if timestamps:
                ns, stamp, text = _split_stamp(rest)
                out.append(LogLine(stream, ns, stamp, text, True))
            else:
                out.append(LogLine(stream, 0, "", rest, True))


class RawStreamDecoder:
    """The TTY case: the body is the raw terminal output, no frame headers.

    Lines split on ``"\\n"``; a trailing ``"\\r"`` is stripped from complete lines. With
    ``timestamps=1`` each line may start with a timestamp and a space (a line without one
    keeps all its text). A line longer than ``max_line_bytes`` comes out in pieces of
    exactly ``max_line_bytes`` bytes marked ``partial=True`` (the last piece of a
    complete line is not partial); pieces after the first carry the first piece's
    timestamp. Never raises. Stream is ``"tty"``.

    Note: with a TTY Docker writes the 16 KiB pieces of a long line back to back, each
    with its own timestamp and no separator, so such a line arrives with the later
    timestamps inside its text; the raw stream gives no way to find them reliably.
    """

    __slots__ = (
        "_buf",
        "_continued",
        "_max_line_bytes",
        "_stamp",
        "_time_ns",
        "_timestamps",
    )

    def __init__(self, timestamps: bool = True, max_line_bytes: int = 1 << 20) -> None:
        self._timestamps = timestamps
        self._max_line_bytes = max(1, max_line_bytes)
        self._buf = bytearray()
        # Set once a piece of the current line has gone out: the next piece is a
        # continuation (no timestamp of its own, takes the first piece's).
        self._continued = False
        self._time_ns = 0
        self._stamp = ""

    def feed(self, data: bytes) -> list[LogLine]:
        """Decode ``data``; ``[]`` means "need more bytes"."""
        buf = self._buf
        limit = self._max_line_bytes
        if buf:
            # The common slow case (a long line trickling in) appends until a line
            # ends or the limit is passed, instead of copying the buffer on each read.
            if b"\n" not in data and len(buf) + len(data) <= limit:
                buf += data
                return []
            data = bytes(buf) + data
            buf.clear()
        lines: list[LogLine] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            self._line(data, start, newline, lines)
            start = newline + 1
        # Unterminated tail: pass on whole pieces while more than one piece is held, so
        # the cut points are the same however the bytes were split into reads.
        while len(data) - start > limit:
            self._piece(data[start : start + limit], True, lines)
            start += limit
        if start < len(data):
            buf += data[start:]
        return lines

    def flush(self) -> list[LogLine]:
        """At EOF: what is buffered becomes a final ``partial=True`` line."""
        lines: list[LogLine] = []
        if self._buf:
            self._piece(bytes(self._buf), True, lines)
            self._buf.clear()
        self._continued = False
        return lines

    def _line(self, data: bytes, start: int, end: int, out: list[LogLine]) -> None:
        """Emit the complete line ``data[start:end]`` (pieces if it is too long)."""
        limit = self._max_line_bytes
        while end - start > limit:
            self._piece(data[start : start + limit], True, out)
            start += limit
        piece = data[start:end]
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        self._piece(piece, False, out)

    def _piece(self, piece: bytes, partial: bool, out: list[LogLine]) -> None:
        """Emit one piece; the first piece of a line gives the line its timestamp."""
        if self._continued:
            out.append(LogLine("tty", self._time_ns, self._stamp, piece, partial))
        elif self._timestamps:
            ns, stamp, text = _split_stamp(piece)
            out.append(LogLine("tty", ns, stamp, text, partial))
            self._time_ns = ns
            self._stamp = stamp
        else:
            out.append(LogLine("tty", 0, "", piece, partial))
        self._continued = partial


def parse_json_file_line(line: bytes) -> LogLine | None:
    """One line of ``<id>-json.log`` (without the file's ``"\\n"``), or None.

    The line is ``{"log":"...","stream":"stdout","time":"..."}`` (``attrs`` ignored).
    ``partial`` is exactly "the ``log`` value does not end with ``"\\n"``": moby marks a
    16 KiB piece only by that (an empty ``log`` is partial too, and joins as nothing).

    None when the line is not such an object: not JSON, not an object, ``log`` missing
    or not a string, ``stream`` or ``time`` present but not strings. A missing ``stream``
    gives ``""``; a missing or unparseable ``time`` gives ``time_ns=0`` (the text is
    still worth keeping).
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    log = obj.get("log")
    stream = obj.get("stream", "")
    stamp = obj.get("time", "")
    if type(log) is not str or type(stream) is not str or type(stamp) is not str:
        return None
    partial = not log.endswith("\n")
    # orjson rejects lone surrogates, so every str it returns encodes as UTF-8.
    text = (log if partial else log[:-1]).encode()
    return LogLine(stream, parse_timestamp(stamp) if stamp else 0, stamp, text, partial)


def parse_cri_line(line: bytes) -> LogLine | None:
    """One CRI log line (containerd, CRI-O), or None when it is malformed.

    ``<RFC 3339 stamp> <stdout|stderr> <F|P> <content>``: tag ``P`` gives
    ``partial=True``. The stamp may carry an offset (``+00:00``: the node's zone). A
    trailing ``"\\n"`` the caller left on is dropped (kubelet does the same for ``P``).
    A line without a tag (runtimes from before tags) is read as a full line whose
    content follows the stream. None: no RFC 3339 stamp, a stream other than
    stdout/stderr, or no space after the stream. A stamp of the right shape with an
    impossible value (month 13) keeps the line with ``time_ns=0``.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    match = _CRI_RE.match(line)
    if match is None:
        return None
    stamp_bytes, stream_bytes, tag = match.groups()
    text = line[match.end() :]
    stamp = stamp_bytes.decode("ascii")
    stream = "stdout" if stream_bytes == b"stdout" else "stderr"
    return LogLine(stream, _stamp_ns(stamp), stamp, text, tag == b"P")
