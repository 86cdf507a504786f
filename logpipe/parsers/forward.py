"""The Fluentd Forward Protocol v1: msgpack on TCP, as Docker's ``fluentd`` log driver,
fluentd's ``out_forward`` and Fluent Bit's ``forward`` output speak it.

Pure: bytes in, values out, no sockets, no clock. :class:`ForwardDecoder` reads what a
client sends (one per connection), the ``ack``/``helo``/``pong`` helpers write the
server's replies, and ``packed_forward``/``ping``/:class:`ClientDecoder` are the client
half for logpipe's own forward output.

Every top-level object on the wire is an array, and the type of its second element says
which mode it is:

* Message ``[tag, time, record, option?]`` (one event; all Docker sends);
* Forward ``[tag, [[time, record], ...], option?]``;
* PackedForward ``[tag, bin-or-str of concatenated [time, record], option?]``;
* CompressedPackedForward: PackedForward with option ``compressed: "gzip"``.

A time is an EventTime (msgpack ext 0: big-endian uint32 seconds, uint32 nanoseconds),
or integer or float seconds. ``option`` may carry ``chunk``, an id the server echoes as
``{"ack": chunk}`` once it has the data. With a shared key the server first sends
``["HELO", ...]``, the client answers ``["PING", ...]`` and the server ``["PONG", ...]``.

Decisions that callers rely on:

* A time that is valid but unusable (0, negative, past 2262) is ``time_ns == 0``: the
  caller uses the receive time (fluentd reads time 0 as "now" too). Only a time of the
  wrong type is an error. A nil time (``long? time`` in fluentd's own grammar) is 0.
* A top-level nil is a TCP heartbeat and is skipped, as fluentd's in_forward does.
* Strings are decoded losslessly (invalid UTF-8 survives as surrogate escapes) because
  two things on the wire are raw bytes inside a msgpack *str*: PackedForward entries
  from pre-bin clients (msgpack 0.5, fluentd v0.12) and Fluent Bit's PING salt. When a
  message had invalid UTF-8 anywhere, its text is then rewritten with U+FFFD, so what
  comes out is always valid text and valid UTF-8 never pays for the check.
* Records are maps; keys that are not strings become strings. Values are kept as they
  came (bytes, ext values included); :func:`record_to_event` makes them JSON-safe.
* Every error is a :class:`ForwardError`: the connection is out of step or the peer
  sends garbage, so the caller closes that one connection. Messages decoded before
  the error in the same :meth:`ForwardDecoder.feed` are returned first; the next call
  raises, and :attr:`ForwardDecoder.error` shows it at once.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import orjson

from logpipe.event import MESSAGE
from logpipe.timefmt import MAX_NS, NS_PER_SECOND, iso_ns

__all__ = [
    "CONTAINER_ID",
    "CONTAINER_NAME",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "FORWARD_RECORD",
    "FORWARD_TAG",
    "STREAM",
    "Ack",
    "Chunk",
    "ClientDecoder",
    "EventTime",
    "ForwardDecoder",
    "ForwardError",
    "Helo",
    "Message",
    "Partial",
    "Ping",
    "Pong",
    "ServerMessage",
    "ack",
    "check_ping",
    "check_pong",
    "event_time",
    "helo",
    "packed_forward",
    "password_digest",
    "ping",
    "pong",
    "record_to_event",
    "shared_key_digest",
    "time_ns",
]

CONTAINER_ID = "container.id"
CONTAINER_NAME = "container.name"
STREAM = "logpipe.stream"
FORWARD_TAG = "logpipe.forward.tag"
FORWARD_RECORD = "logpipe.forward.record"

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Gzip'd logs shrink 5-20x; past this multiple of max_message_bytes it is a bomb.
DECOMPRESSED_RATIO = 8

_EVENT_TIME = struct.Struct(">II")
_EVENT_TIME_CODE = 0
_EVENT_TIME_LIMIT = (1 << 32) * NS_PER_SECOND  # uint32 seconds: until 2106
_MAX_SECONDS = MAX_NS // NS_PER_SECOND
# Bytes handed to the Unpacker at a time: its buffer then never holds more than one
# unfinished message plus one slice, so max_buffer_size can be the message limit.
_FEED_SLICE = 64 * 1024
# Nesting kept inside a record. Elasticsearch refuses objects deeper than 20
# (index.mapping.depth.limit) and the record sits 3 levels down; orjson stops at 254.
_MAX_DEPTH = 16
_TOO_DEEP = "[nested too deeply]"
_PLAIN = frozenset((str, int, float, bool, type(None)))

_KINDS = {list: "an array", dict: "a map", str: "a string", bytes: "binary", int: "an int"}

# Invalid UTF-8 sequences met by the unpackers here, ever. A decoder compares it before
# and after an object to learn whether that object had any; an increment from another
# decoder in between only costs a needless rewrite. (Decoders run on the event loop's
# thread: the count is not meant to be exact across threads.)
_bad_utf8 = 0
_surrogateescape = codecs.lookup_error("surrogateescape")


def _escape_bad_utf8(error: UnicodeError) -> tuple[str, int]:
    global _bad_utf8
    _bad_utf8 += 1
    return _surrogateescape(error)


_UNICODE_ERRORS = "logpipe.forward"
codecs.register_error(_UNICODE_ERRORS, _escape_bad_utf8)


class ForwardError(ValueError):
    """Input that is not the forward protocol; the caller closes that one connection.

    ``can_continue`` is always False (the stream has lost its place or its peer speaks
    something else); it is there because all logpipe stream decoders share the contract.
    """

    can_continue = False


class EventTime(NamedTuple):
    """Msgpack ext type 0: the time of an event to the nanosecond."""

    seconds: int
    nanoseconds: int


@dataclass(slots=True)
class Chunk:
    """The events of one message (Message mode gives one entry, the others many)."""

    tag: str
    entries: list[tuple[int, dict[str, Any]]]
    """``(time_ns, record)``; ``time_ns`` 0 means "use the receive time"."""
    chunk: str | None
    """The option ``chunk``: acknowledge it with :func:`ack` once the events are safe."""
    size: int
    """Bytes of this message as received (compressed, for CompressedPackedForward)."""


@dataclass(slots=True)
class Ping:
    """The client's answer to HELO; check it with :func:`check_ping`."""

    hostname: str
    shared_key_salt: bytes
    shared_key_hexdigest: str
    username: str
    password_digest: str


@dataclass(slots=True)
class Helo:
    """The server's greeting: a client must answer with :func:`ping`."""

    nonce: bytes
    auth_salt: bytes
    """Empty when the server does not ask for a username and password."""
    keepalive: bool


@dataclass(slots=True)
class Pong:
    """The server's verdict on a PING; check its digest with :func:`check_pong`."""

    authenticated: bool
    reason: str
    hostname: str
    digest: str


@dataclass(slots=True)
class Ack:
    """The server has the chunk with this id."""

    chunk: str


class Partial(NamedTuple):
    """Docker's marks on a piece of a line longer than 16 KiB."""

    partial_id: str
    """Shared by the pieces of one line ("" from Docker before 19.03)."""
    ordinal: int
    """1, 2, ... (0 when Docker did not say)."""
    last: bool


Message = Chunk | Ping
ServerMessage = Helo | Pong | Ack


def _kind(value: Any) -> str:
    """What a value is, in msgpack words, for error messages."""
    if value is None:
        return "nil"
    return _KINDS.get(type(value), type(value).__name__)


def _ext(code: int, data: bytes) -> object:
    if code == _EVENT_TIME_CODE and len(data) == 8:
        return EventTime(*_EVENT_TIME.unpack(data))
    return msgpack.ExtType(code, data)


def _unpacker(max_bytes: int) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=False,
        strict_map_key=False,
        unicode_errors=_UNICODE_ERRORS,
        max_buffer_size=max_bytes,
        ext_hook=_ext,
    )


def event_time(ns: int) -> msgpack.ExtType:
    """``ns`` (epoch nanoseconds, 1970 to 2106) as an EventTime; ValueError outside."""
    if not 0 <= ns < _EVENT_TIME_LIMIT:
        raise ValueError(f"{ns} ns is outside what an EventTime can hold")
    return msgpack.ExtType(_EVENT_TIME_CODE, _EVENT_TIME.pack(*divmod(ns, NS_PER_SECOND)))


def time_ns(value: Any) -> int:
    """Epoch nanoseconds of an event's time; 0 when it has none that can be stored.

    EventTime, int or float seconds, or nil. 0 for negative times, times past 2262
    (what date_nanos holds) and an EventTime with 10**9 nanoseconds or more. A value of
    another type (bool included) is a :class:`ForwardError`.
    """
    kind = type(value)
    if kind is EventTime:
        seconds, nanoseconds = value
        if nanoseconds >= NS_PER_SECOND:
            return 0
        return seconds * NS_PER_SECOND + nanoseconds  # uint32 seconds: always in range
    if kind is int:
        if 0 <= value <= _MAX_SECONDS:
            return value * NS_PER_SECOND
        return 0
    if kind is float:
        if 0.0 <= value <= _MAX_SECONDS:  # False for NaN
            return min(int(value * NS_PER_SECOND), MAX_NS)
        return 0
    if value is None:
        return 0
    raise ForwardError(f"a time is {_kind(value)}, not an EventTime or a number")


def _text(value: str) -> str:
    """``value`` with the surrogate escapes of invalid UTF-8 turned into U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _scrub(value: Any, depth: int) -> Any:
    """``value`` with every string made valid text (only for objects with bad UTF-8)."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is not dict and kind is not list:
        return value
    if depth >= _MAX_DEPTH * 2:
        return _TOO_DEEP  # record_to_event cuts at half this depth anyway
    if kind is dict:
        return {_scrub(k, depth + 1): _scrub(v, depth + 1) for k, v in value.items()}
    return [_scrub(item, depth + 1) for item in value]


def _key_text(key: Any) -> str:
    if type(key) is str:
        return key
    if type(key) is bytes:
        return key.decode("utf-8", "replace")
    return str(key)


def _record(value: Any) -> dict[str, Any]:
    """A record as it must be: a map with string keys."""
    if type(value) is not dict:
        raise ForwardError(f"a record is {_kind(value)}, not a map")
    for key in value:
        if type(key) is not str:
            return {_key_text(k): v for k, v in value.items()}
    return value


def _entry(item: Any) -> tuple[int, dict[str, Any]]:
    if type(item) is not list or len(item) != 2:
        raise ForwardError(f"an entry is {_kind(item)}, not [time, record]")
    return time_ns(item[0]), _record(item[1])


def _gunzip(data: bytes, limit: int) -> bytes:
    """All the gzip members in ``data``, at most ``limit`` bytes of them."""
    out: list[bytes] = []
    total = 0
    while data:
        member = zlib.decompressobj(wbits=31)
        try:
            piece = member.decompress(data, limit - total + 1)
        except zlib.error as exc:
            raise ForwardError(f"compressed entries are not gzip: {exc}") from exc
        total += len(piece)
        if total > limit:
            raise ForwardError(f"compressed entries inflate past {limit} bytes (a bomb)")
        if not member.eof:
            raise ForwardError("compressed entries end in the middle of a gzip member")
        out.append(piece)
        data = member.unused_data
    return b"".join(out)


def _packed_entries(payload: bytes) -> list[tuple[int, dict[str, Any]]]:
    unpacker = _unpacker(max(len(payload), 1))
    unpacker.feed(payload)
    entries = []
    end = 0  # of the last whole entry (tell() also counts the start of a cut-off one)
    try:
        mark = _bad_utf8
        for item in unpacker:
            end = unpacker.tell()
            if _bad_utf8 != mark:
                item = _scrub(item, 0)
                mark = _bad_utf8
            entries.append(_entry(item))
    except ForwardError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ForwardError(f"packed entries are not msgpack: {exc}") from exc
    if end != len(payload):
        raise ForwardError("packed entries end in the middle of an entry")
    return entries


def _option(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ForwardError(f"the option is {_kind(value)}, not a map")
    return value


def _chunk_id(option: dict[str, Any]) -> str | None:
    chunk = option.get("chunk")
    if chunk is None or type(chunk) is str:
        return chunk
    raise ForwardError(f"the chunk id is {_kind(chunk)}, not a string")


class _MessageStream:
    """Msgpack objects out of one connection's bytes, each with its size on the wire."""

    __slots__ = ("_error", "_fed", "_mark", "_max", "_offset", "_unpacker")

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._unpacker = _unpacker(max_message_bytes + _FEED_SLICE)
        self._fed = 0  # bytes given to the unpacker
        self._offset = 0  # where the unfinished message starts
        # _bad_utf8 when the unfinished message started: its strings may be decoded
        # across several feeds, so this is kept between them.
        self._mark = _bad_utf8
        self._error: ForwardError | None = None

    @property
    def error(self) -> ForwardError | None:
        """The error that ended this stream, or None."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished message (lost if the connection ends now)."""
        return self._fed - self._offset

    def feed(self, data: bytes) -> list[Any]:
        """The messages completed by ``data``; ``[]`` means "need more bytes"."""
        if self._error is not None:
            raise self._error
        out: list[Any] = []
        view = memoryview(data)
        try:
            for start in range(0, len(view), _FEED_SLICE):
                piece = view[start : start + _FEED_SLICE]
                try:
                    self._unpacker.feed(piece)
                except msgpack.BufferFull:
                    raise self._too_big(self._fed + len(piece) - self._offset) from None
                self._fed += len(piece)
                self._drain(out)
                if self._fed - self._offset > self._max:
                    raise self._too_big(self._fed - self._offset)
        except ForwardError as exc:
            self._error = exc
            if out:
                return out
            raise
        return out

    def _too_big(self, size: int) -> ForwardError:
        return ForwardError(f"a message of {size}+ bytes is over the {self._max} limit")

    def _drain(self, out: list[Any]) -> None:
        unpacker = self._unpacker
        try:
            for obj in unpacker:
                end = unpacker.tell()
                size = end - self._offset
                self._offset = end
                if size > self._max:
                    raise self._too_big(size)
                dirty = _bad_utf8 != self._mark
                self._mark = _bad_utf8
                if obj is not None:  # nil: a heartbeat
                    out.append(self._message(obj, size, dirty))
        except ForwardError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ForwardError(f"not msgpack: {exc or type(exc).__name__}") from exc

    def _message(self, obj: Any, size: int, dirty: bool) -> Any:
        raise NotImplementedError


class ForwardDecoder(_MessageStream):
    """What a forward client sends on one connection, however the bytes are split.

    ``feed`` returns :class:`Chunk` and :class:`Ping` values. Limits: a message larger
    than ``max_message_bytes`` and compressed entries that inflate past
    ``max_decompressed_bytes`` (default ``DECOMPRESSED_RATIO`` times the first) are a
    :class:`ForwardError`.
    """

    __slots__ = ("_max_decompressed",)

    def __init__(
        self,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_decompressed_bytes: int | None = None,
    ) -> None:
        super().__init__(max_message_bytes)
        self._max_decompressed = max_decompressed_bytes or max_message_bytes * DECOMPRESSED_RATIO

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by ``data``; ``[]`` means "need more bytes"."""
        return super().feed(data)

    def _message(self, obj: Any, size: int, dirty: bool) -> Message:
        if type(obj) is not list:
            raise ForwardError(f"a message is {_kind(obj)}, not an array")
        count = len(obj)
        if count == 6 and obj[0] == "PING":
            return _ping_message(obj, dirty)
        if count < 2:
            raise ForwardError(f"a message is an array of {count}, not [tag, ...]")
        second = obj[1]
        if type(second) is str:  # a pre-bin client's packed entries: get the bytes back
            second = obj[1] = second.encode("utf-8", "surrogateescape")
        if dirty:
            obj = _scrub(obj, 0)
            second = obj[1]
        tag = obj[0]
        if type(tag) is not str:
            raise ForwardError(f"a tag is {_kind(tag)}, not a string")
        if type(second) is list:
            if count > 3:
                raise ForwardError(f"a Forward message has {count} items, not 2 or 3")
            option = _option(obj[2] if count == 3 else None)
            return Chunk(tag, [_entry(item) for item in second], _chunk_id(option), size)
        if type(second) is bytes:
            if count > 3:
                raise ForwardError(f"a PackedForward message has {count} items, not 2 or 3")
            option = _option(obj[2] if count == 3 else None)
            payload = self._inflate(second, option.get("compressed"))
            return Chunk(tag, _packed_entries(payload), _chunk_id(option), size)
        if count not in (3, 4):
            raise ForwardError(f"a Message has {count} items, not 3 or 4")
        option = _option(obj[3] if count == 4 else None)
        return Chunk(tag, [(time_ns(second), _record(obj[2]))], _chunk_id(option), size)

    def _inflate(self, payload: bytes, compressed: object) -> bytes:
        if compressed == "gzip":
            return _gunzip(payload, self._max_decompressed)
        if compressed is None or compressed == "text":
            return payload
        what = repr(compressed[:32]) if type(compressed) is str else _kind(compressed)
        raise ForwardError(f"unsupported compression {what}")


def _ping_message(obj: list[Any], dirty: bool) -> Ping:
    salt = obj[2]
    if type(salt) is str:  # Fluent Bit sends 16 random bytes as a str
        obj[2] = salt.encode("utf-8", "surrogateescape")
    if dirty:
        obj = _scrub(obj, 0)
    _, hostname, salt, digest, username, password = obj
    if type(salt) is not bytes or not all(
        type(field) is str for field in (hostname, digest, username, password)
    ):
        raise ForwardError("a PING is not [PING, hostname, salt, digest, username, password]")
    return Ping(hostname, salt, digest, username, password)


# --- the server's side ---------------------------------------------------------------


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def ack(chunk: str) -> bytes:
    """The reply that tells a client its chunk arrived."""
    return _pack({"ack": chunk})


def helo(nonce: bytes, auth_salt: bytes, keepalive: bool = True) -> bytes:
    """The server's greeting when it has a shared key; ``auth_salt`` empty: no users."""
    return _pack(["HELO", {"nonce": nonce, "auth": auth_salt, "keepalive": keepalive}])


def pong(authenticated: bool, reason: str, server_hostname: str, digest: str) -> bytes:
    """The server's answer to a PING; on refusal fluentd sends ``"", ""`` as the last two."""
    return _pack(["PONG", authenticated, reason, server_hostname, digest])


def shared_key_digest(salt: bytes, hostname: str, nonce: bytes, shared_key: str) -> str:
    """sha512 hex of salt + hostname + nonce + key.

    Both directions use it, with the client's salt and the server's nonce: the PING's
    with the client's hostname, the PONG's with the server's, so each side proves it
    knows the key without sending it.
    """
    digest = hashlib.sha512(salt)
    digest.update(hostname.encode())
    digest.update(nonce)
    digest.update(shared_key.encode())
    return digest.hexdigest()


def password_digest(auth_salt: bytes, username: str, password: str) -> str:
    """sha512 hex of the HELO's auth salt + username + password (user authentication)."""
    return hashlib.sha512(auth_salt + username.encode() + password.encode()).hexdigest()


def _same(digest: str, expected: str) -> bool:
    return hmac.compare_digest(digest.encode(), expected.encode())


def check_ping(
    ping: Ping,
    nonce: bytes,
    shared_key: str,
    *,
    auth_salt: bytes = b"",
    users: dict[str, str] | None = None,
) -> str | None:
    """None when the client knows the shared key (and, with ``users``, a password),
    else the reason to send back in the PONG (fluentd's wording)."""
    expected = shared_key_digest(ping.shared_key_salt, ping.hostname, nonce, shared_key)
    if not _same(ping.shared_key_hexdigest, expected):
        return "shared_key mismatch"
    if users is not None:
        password = users.get(ping.username)
        if password is None or not _same(
            ping.password_digest, password_digest(auth_salt, ping.username, password)
        ):
            return "username/password mismatch"
    return None


# --- the client's side ---------------------------------------------------------------


def _wire_time(ns: int) -> object:
    if 0 <= ns < _EVENT_TIME_LIMIT:
        return msgpack.ExtType(_EVENT_TIME_CODE, _EVENT_TIME.pack(*divmod(ns, NS_PER_SECOND)))
    return ns // NS_PER_SECOND  # after 2106: whole seconds are all a receiver can take


def packed_forward(
    tag: str, entries: list[tuple[int, dict[str, Any]]], chunk: str | None, compress: bool
) -> bytes:
    """One (Compressed)PackedForward message; times go as EventTime.

    Records must be msgpack-able (str keys, JSON-like values), as logpipe events are.
    """
    pack = msgpack.Packer(use_bin_type=True).pack
    payload = b"".join([pack([_wire_time(ns), record]) for ns, record in entries])
    option: dict[str, Any] = {"size": len(entries)}
    if chunk is not None:
        option["chunk"] = chunk
    if compress:
        gzip = zlib.compressobj(wbits=31)
        payload = gzip.compress(payload) + gzip.flush()
        option["compressed"] = "gzip"
    return _pack([tag, payload, option])


def ping(
    client_hostname: str,
    salt: bytes,
    nonce: bytes,
    shared_key: str,
    username: str = "",
    password_digest: str = "",
) -> bytes:
    """The client's answer to a HELO (``nonce`` is the HELO's)."""
    digest = shared_key_digest(salt, client_hostname, nonce, shared_key)
    return _pack(["PING", client_hostname, salt, digest, username, password_digest])


def check_pong(pong: Pong, salt: bytes, nonce: bytes, shared_key: str) -> str | None:
    """None when the server accepted us and knows the key, else why not."""
    if not pong.authenticated:
        return f"refused: {pong.reason}"
    expected = shared_key_digest(salt, pong.hostname, nonce, shared_key)
    if not _same(pong.digest, expected):
        return "the server does not know the shared key"
    return None


def _raw(value: Any) -> bytes:
    """A nonce or salt, which clients send as bin or as str."""
    if type(value) is bytes:
        return value
    if type(value) is str:
        return value.encode("utf-8", "surrogateescape")
    if value is None:
        return b""
    raise ForwardError(f"a nonce or salt is {_kind(value)}, not bytes")


class ClientDecoder(_MessageStream):
    """What a forward server sends back: :class:`Helo`, :class:`Pong`, :class:`Ack`."""

    __slots__ = ()

    def __init__(self, max_message_bytes: int = 64 * 1024) -> None:
        super().__init__(max_message_bytes)

    def feed(self, data: bytes) -> list[ServerMessage]:
        """The replies completed by ``data``; ``[]`` means "need more bytes"."""
        return super().feed(data)

    def _message(self, obj: Any, size: int, dirty: bool) -> ServerMessage:
        if type(obj) is dict:
            chunk = obj.get("ack")
            if type(chunk) is str:
                return Ack(_text(chunk) if dirty else chunk)
            raise ForwardError("a reply map without an 'ack' string")
        if type(obj) is list and len(obj) == 2 and obj[0] == "HELO":
            options = _option(obj[1])
            keepalive = options.get("keepalive", True)
            if type(keepalive) is not bool:
                raise ForwardError(f"HELO keepalive is {_kind(keepalive)}, not a boolean")
            return Helo(_raw(options.get("nonce")), _raw(options.get("auth")), keepalive)
        if type(obj) is list and len(obj) == 5 and obj[0] == "PONG":
            _, authenticated, reason, hostname, digest = _scrub(obj, 0) if dirty else obj
            if type(authenticated) is bool and all(
                type(field) is str for field in (reason, hostname, digest)
            ):
                return Pong(authenticated, reason, hostname, digest)
        raise ForwardError(f"a reply is {_kind(obj)}, not HELO, PONG or an ack")


# --- records to events ---------------------------------------------------------------


def _json_scalar(value: Any) -> object:
    """A JSON-able stand-in for a msgpack value orjson cannot encode."""
    kind = type(value)
    if kind is bytes:
        return value.decode("utf-8", "replace")
    if kind is EventTime:
        return iso_ns(time_ns(value))
    if kind is msgpack.Timestamp:
        ns = value.to_unix_nano()
        return iso_ns(ns) if 0 <= ns <= MAX_NS else str(value)
    if kind is msgpack.ExtType:
        return {"ext_type": value.code, "data": value.data.hex()}
    return str(value)


def _json_value(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        return {_key_text(k): _json_value(v, depth + 1) for k, v in value.items()}
    if kind is list:
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        return [_json_value(item, depth + 1) for item in value]
    return _json_scalar(value)


def _message_text(value: Any) -> str:
    if type(value) is str:
        return value
    if type(value) is bytes:
        return value.decode("utf-8", "replace")
    return orjson.dumps(_json_value(value, 0)).decode()


def _ordinal(value: Any) -> int:
    """Docker's decimal ``partial_ordinal``; 0 when it is not one."""
    if type(value) is str and 0 < len(value) < 10 and value.isascii() and value.isdigit():
        return int(value)
    return 0


def _partial(rest: dict[str, Any]) -> Partial:
    """Pop Docker's partial_* keys (partial_message is "true") into a Partial."""
    del rest["partial_message"]
    partial_id = rest.pop("partial_id", "")
    ordinal = rest.pop("partial_ordinal", "")
    last = rest.pop("partial_last", "")
    return Partial(
        partial_id if type(partial_id) is str else "",
        _ordinal(ordinal),
        last == "true",
    )


def record_to_event(tag: str, record: dict[str, Any]) -> tuple[dict[str, Any], Partial | None]:
    """One record as a logpipe event (flat ECS keys), and Docker's partial marks if any.

    ``log``, ``message`` or ``msg`` (the first that is text; else the first present,
    as JSON) is the message; Docker's ``container_id``, ``container_name`` (without its
    "/") and ``source`` are ``container.id``, ``container.name`` and ``logpipe.stream``;
    the rest of the record goes under ``logpipe.forward.record``, made JSON-safe. A piece
    of a split line comes with a :class:`Partial`: the caller joins the pieces, the last
    one having ``last`` True.
    """
    rest = dict(record)
    event: dict[str, Any] = {FORWARD_TAG: tag}
    for key in ("log", "message", "msg"):
        value = rest.get(key)
        if type(value) is str or type(value) is bytes:
            event[MESSAGE] = _message_text(rest.pop(key))
            break
    else:
        for key in ("log", "message", "msg"):
            if rest.get(key) is not None:
                event[MESSAGE] = _message_text(rest.pop(key))
                break
    value = rest.get("container_id")
    if type(value) is str:
        event[CONTAINER_ID] = rest.pop("container_id")
    value = rest.get("container_name")
    if type(value) is str:
        event[CONTAINER_NAME] = value[1:] if value.startswith("/") else value
        del rest["container_name"]
    value = rest.get("source")
    if type(value) is str:
        event[STREAM] = rest.pop("source")
    partial = _partial(rest) if rest.get("partial_message") == "true" else None
    if rest:
        for key, value in rest.items():
            if type(key) is not str or type(value) not in _PLAIN:
                rest = _json_value(rest, 0)
                break
        event[FORWARD_RECORD] = rest
    return event, partial
