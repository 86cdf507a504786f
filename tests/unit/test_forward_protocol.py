"""The Fluentd forward protocol on raw bytes: every mode, the handshake, Docker's records.

Frames are built by hand with msgpack (times as EventTime ext 0 and as plain ints), then
fed whole, split at every offset and in random pieces. The Docker samples are the
byte-exact examples in /work/shared/data/forward/docker_fluentd_examples.jsonl (see the
provenance below).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import struct
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.parsers.forward import (
    Ack,
    Chunk,
    ClientDecoder,
    EventTime,
    ForwardDecoder,
    ForwardError,
    Helo,
    Partial,
    Ping,
    Pong,
    ack,
    check_ping,
    check_pong,
    event_time,
    helo,
    packed_forward,
    password_digest,
    ping,
    pong,
    record_to_event,
    shared_key_digest,
    time_ns,
)

NS = 1_000_000_000
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Provenance: /work/shared/data/forward/docker_fluentd_examples.jsonl (see its README.md).
# Synthetic, byte-exact examples of what Docker's fluentd log driver writes, built by a
# one-off script from the encoding rules of moby/moby daemon/logger/fluentd/fluentd.go
# @ b985e2313a8676e18072b442911fc8f64f17d440 and the fluent-logger-golang v1.10.1 it
# vendors (Apache-2.0); ids, names and times invented. "forward" and "packed_forward"
# are the file's non-Docker examples of those modes; "ack_reply" is the expected answer
# to "request_ack".
DOCKER = {
    "default": bytes.fromhex(
        "94ac613733313733393966336638d265937d2584ac636f6e7461696e65725f6964d94061373331373339"
        "396633663830303030303030303030303030303030303030303030303030303030303030303030303030"
        "303030303030303030303030303030ae636f6e7461696e65725f6e616d65a62f7765622d31a6736f7572"
        "6365a67374646f7574a36c6f67b0474554202f6865616c74687a2032303080"
    ),
    "sub_second": bytes.fromhex(
        "94b3646f636b65722e613733313733393966336638d70065937d25075bcd1584ac636f6e7461696e6572"
        "5f6964d94061373331373339396633663830303030303030303030303030303030303030303030303030"
        "303030303030303030303030303030303030303030303030303030ae636f6e7461696e65725f6e616d65"
        "a62f7765622d31a6736f75726365a67374646f7574a36c6f67b0474554202f6865616c74687a20323030"
        "80"
    ),
    "request_ack": bytes.fromhex(
        "94ac613733313733393966336638d265937d2584ac636f6e7461696e65725f6964d94061373331373339"
        "396633663830303030303030303030303030303030303030303030303030303030303030303030303030"
        "303030303030303030303030303030ae636f6e7461696e65725f6e616d65a62f7765622d31a6736f7572"
        "6365a67374646f7574a36c6f67b0474554202f6865616c74687a2032303081a56368756e6bb84a583254"
        "5a514141414144767a61754a5a30556a41513d3d"
    ),
    "ack_reply": bytes.fromhex("81a361636bb84a5832545a514141414144767a61754a5a30556a41513d3d"),
    "partial_1": bytes.fromhex(
        "94ac613733313733393966336638d265937d2588ac636f6e7461696e65725f6964d94061373331373339"
        "396633663830303030303030303030303030303030303030303030303030303030303030303030303030"
        "303030303030303030303030303030ae636f6e7461696e65725f6e616d65a62f7765622d31a6736f7572"
        "6365a67374646f7574a36c6f67b47878787878787878787878787878787878787878af7061727469616c"
        "5f6d657373616765a474727565aa7061727469616c5f6964d94066666666666666666666666666666666"
        "666666666666666666666666666666666666666666666666666666666666666666666666666666666666"
        "666666666666af7061727469616c5f6f7264696e616ca131ac7061727469616c5f6c617374a566616c73"
        "6580"
    ),
    "partial_2": bytes.fromhex(
        "94ac613733313733393966336638d265937d2588ac636f6e7461696e65725f6964d94061373331373339"
        "396633663830303030303030303030303030303030303030303030303030303030303030303030303030"
        "303030303030303030303030303030ae636f6e7461696e65725f6e616d65a62f7765622d31a6736f7572"
        "6365a67374646f7574a36c6f67a57979797979af7061727469616c5f6d657373616765a474727565aa70"
        "61727469616c5f6964d94066666666666666666666666666666666666666666666666666666666666666"
        "666666666666666666666666666666666666666666666666666666666666666666af7061727469616c5f"
        "6f7264696e616ca132ac7061727469616c5f6c617374a47472756580"
    ),
    "extra_attributes": bytes.fromhex(
        "94ac613733313733393966336638d265937d2586ac636f6e7461696e65725f6964d94061373331373339"
        "396633663830303030303030303030303030303030303030303030303030303030303030303030303030"
        "303030303030303030303030303030ae636f6e7461696e65725f6e616d65a62f7765622d31a6736f7572"
        "6365a67374646f7574a36c6f67b0474554202f6865616c74687a20323030b0636f6d5f6578616d706c65"
        "5f7465616da87061796d656e7473a74150505f454e56a470726f6480"
    ),
    "forward": bytes.fromhex(
        "93a56170702e789292d265937d2581a36c6f67a16192d265937d2681a36c6f67a16281a473697a6502"
    ),
    "packed_forward": bytes.fromhex(
        "93a56170702e78c41a92d265937d2581a36c6f67a16192d265937d2681a36c6f67a16281a473697a6502"
    ),
}
CONTAINER_ID = "a7317399f3f8" + "0" * 52
DOCKER_RECORD = {
    "container_id": CONTAINER_ID,
    "container_name": "/web-1",
    "source": "stdout",
    "log": "GET /healthz 200",
}
T0 = 1704164645


def pack(obj: Any, bin_type: bool = True) -> bytes:
    return msgpack.packb(obj, use_bin_type=bin_type)


def et(seconds: int, nanoseconds: int = 0) -> msgpack.ExtType:
    """An EventTime built by hand (not with the module's own encoder)."""
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanoseconds))


def entries_bytes(*entries: list[Any]) -> bytes:
    return b"".join(pack(entry) for entry in entries)


def decode_all(data: bytes, cuts: list[int] | None = None, **limits: int) -> list[Any]:
    """Feed ``data`` cut at ``cuts``; the messages, then the error (if any) at the end."""
    decoder = ForwardDecoder(**limits)
    out: list[Any] = []
    start = 0
    try:
        for cut in [*sorted(set(cuts or [])), len(data)]:
            out += decoder.feed(data[start:cut])
            start = cut
        if decoder.error is not None:
            decoder.feed(b"")
    except ForwardError as exc:
        out.append(("error", str(exc)))
    return out


def one(data: bytes, **limits: int) -> Chunk | Ping:
    (message,) = ForwardDecoder(**limits).feed(data)
    return message


# --- every mode -------------------------------------------------------------------------

RECORD = {"log": "hello", "n": 1}
MODES = [
    ("message, EventTime", [["t", et(T0, 5), RECORD]], [(T0 * NS + 5, RECORD)], None),
    ("message, int time", [["t", T0, RECORD]], [(T0 * NS, RECORD)], None),
    ("message, float time", [["t", 1.5, RECORD]], [(1_500_000_000, RECORD)], None),
    ("message, nil time", [["t", None, RECORD]], [(0, RECORD)], None),
    ("message, option", [["t", T0, RECORD, {"chunk": "c1"}]], [(T0 * NS, RECORD)], "c1"),
    ("message, nil option", [["t", T0, RECORD, None]], [(T0 * NS, RECORD)], None),
    ("message, empty option", [["t", T0, RECORD, {}]], [(T0 * NS, RECORD)], None),
    (
        "forward",
        [["t", [[et(T0), RECORD], [T0 + 1, {"b": 2}]], {"size": 2, "chunk": "c2"}]],
        [(T0 * NS, RECORD), ((T0 + 1) * NS, {"b": 2})],
        "c2",
    ),
    ("forward, no option", [["t", [[T0, RECORD]]]], [(T0 * NS, RECORD)], None),
    ("forward, no entries", [["t", [], {"chunk": "c3"}]], [], "c3"),
    (
        "packed forward, bin",
        [["t", entries_bytes([et(T0, 1), RECORD], [T0, {"b": 2}]), {"chunk": "c4"}]],
        [(T0 * NS + 1, RECORD), (T0 * NS, {"b": 2})],
        "c4",
    ),
    (
        "packed forward, no option",
        [["t", entries_bytes([T0, RECORD])]],
        [(T0 * NS, RECORD)],
        None,
    ),
    (
        "compressed packed forward",
        [
            [
                "t",
                gzip.compress(entries_bytes([et(T0, 7), RECORD], [T0, {"b": 2}])),
                {"compressed": "gzip", "size": 2, "chunk": "c5"},
            ]
        ],
        [(T0 * NS + 7, RECORD), (T0 * NS, {"b": 2})],
        "c5",
    ),
    (
        "compressed packed forward, two gzip members",
        [
            [
                "t",
                gzip.compress(entries_bytes([T0, RECORD])) + gzip.compress(entries_bytes([T0, {}])),
                {"compressed": "gzip"},
            ]
        ],
        [(T0 * NS, RECORD), (T0 * NS, {})],
        None,
    ),
    (
        "compressed = text means not compressed",
        [["t", entries_bytes([T0, RECORD]), {"compressed": "text"}]],
        [(T0 * NS, RECORD)],
        None,
    ),
    (
        "non-string keys become strings",
        [["t", T0, {1: "a", b"k": "b"}]],
        [(T0 * NS, {"1": "a", "k": "b"})],
        None,
    ),
]


@pytest.mark.parametrize(
    ("message", "entries", "chunk"),
    [pytest.param(m[1][0], m[2], m[3], id=m[0]) for m in MODES],
)
def test_every_mode_decodes(message: list[Any], entries: list[Any], chunk: str | None) -> None:
    data = pack(message)
    assert one(data) == Chunk("t", entries, chunk, len(data))


def test_packed_entries_in_a_str_from_a_pre_bin_client_keep_their_bytes() -> None:
    """msgpack 0.5 (fluentd v0.12) packs the entries as str: raw bytes, not UTF-8."""
    payload = entries_bytes([et(T0, 3), {"log": "\u00e9t\u00e9"}], [T0, {"n": 200}])
    data = pack(["t", payload, {"chunk": "c"}], bin_type=False)
    assert data[3] in (0xD9, 0xDA, 0xDB) or data[3] >> 5 == 0b101  # a str, not bin
    chunk = one(data)
    assert chunk.entries == [(T0 * NS + 3, {"log": "\u00e9t\u00e9"}), (T0 * NS, {"n": 200})]


def test_a_frame_split_at_every_offset_decodes_the_same() -> None:
    messages = [
        ["docker.web", et(T0, 9), {"log": "caf\u00e9", "source": "stderr"}, {"chunk": "a"}],
        ["t", [[T0, {"k": [1, 2, {"x": None}]}]], {"chunk": "b"}],
        ["t", gzip.compress(entries_bytes([T0, {"log": "z"}])), {"compressed": "gzip"}],
    ]
    data = b"".join(pack(message) for message in messages) + b"\xc0"  # and a heartbeat
    data += b"\x93\xa1t\x01\x81\xa3log\xa2\xff\xfe"  # a str that is not UTF-8
    whole = decode_all(data)
    assert [m.chunk for m in whole] == ["a", "b", None, None]
    assert whole[-1].entries == [(NS, {"log": "\ufffd\ufffd"})]
    for cut in range(1, len(data)):
        assert decode_all(data, [cut]) == whole, cut
    assert decode_all(data, list(range(len(data)))) == whole  # a byte at a time


def test_several_messages_in_one_read_keep_their_own_sizes() -> None:
    first, second = pack(["a", T0, {}]), pack(["b", [[T0, {}]]])
    assert [(m.tag, m.size) for m in ForwardDecoder().feed(first + second)] == [
        ("a", len(first)),
        ("b", len(second)),
    ]


def test_a_nil_is_a_heartbeat_and_is_skipped() -> None:
    decoder = ForwardDecoder()
    assert decoder.feed(b"\xc0") == []
    message = pack(["t", T0, {}])
    assert decoder.feed(b"\xc0" + message) == [Chunk("t", [(T0 * NS, {})], None, len(message))]


def test_invalid_utf8_becomes_replacement_characters_everywhere() -> None:
    data = b"\x93\xa2t\xff\x01\x81\xa2k\xfe\x91\xa2\xc3\x28"  # ["t\xff", 1, {"k\xfe": ["\xc3("]}]
    chunk = one(data)
    assert chunk.tag == "t\ufffd"
    assert chunk.entries == [(NS, {"k\ufffd": ["\ufffd("]})]
    orjson.dumps(chunk.entries[0][1])  # no surrogates left


# --- times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EventTime(T0, 123456789), T0 * NS + 123456789),
        (EventTime(0, 0), 0),
        (EventTime(2**32 - 1, 999_999_999), (2**32 - 1) * NS + 999_999_999),
        (EventTime(T0, NS), 0),  # nanoseconds out of range
        (T0, T0 * NS),
        (0, 0),
        (-1, 0),
        ((2**63 - 1) // NS, (2**63 - 1) // NS * NS),
        ((2**63 - 1) // NS + 1, 0),
        (2**64 - 1, 0),
        (1.25, 1_250_000_000),
        (-0.5, 0),
        (float("nan"), 0),
        (float("inf"), 0),
        (1e300, 0),
        (None, 0),
    ],
)
def test_time_ns(value: Any, expected: int) -> None:
    assert time_ns(value) == expected


@pytest.mark.parametrize(
    "value", [True, False, "1704164645", b"\x00", [T0], {}, msgpack.ExtType(1, b"12345678")]
)
def test_a_time_of_the_wrong_type_is_an_error(value: Any) -> None:
    with pytest.raises(ForwardError, match="time"):
        time_ns(value)


def test_event_time_encodes_ext_0_big_endian() -> None:
    assert event_time(T0 * NS + 5) == et(T0, 5)
    assert pack(event_time(NS + 2)) == b"\xd7\x00" + struct.pack(">II", 1, 2)  # fixext8
    with pytest.raises(ValueError):
        event_time(-1)
    with pytest.raises(ValueError):
        event_time(2**32 * NS)


def test_an_ext_0_that_is_not_8_bytes_is_not_a_time() -> None:
    with pytest.raises(ForwardError, match="time"):
        one(pack(["t", msgpack.ExtType(0, b"1234"), {}]))


# --- what closes the connection ---------------------------------------------------------

GZ = gzip.compress(entries_bytes([T0, {}]))
ERRORS = [
    ("a map", pack({"ack": "x"}), "not an array"),
    ("a string", pack("hello"), "not an array"),
    ("an int", pack(7), "not an array"),
    ("an array of one", pack(["t"]), "not \\[tag"),
    ("a tag that is an int", pack([1, T0, {}]), "tag"),
    ("a tag that is binary", pack([b"t", T0, {}]), "tag"),
    ("a record that is a string", pack(["t", T0, "log"]), "record"),
    ("a record that is an array", pack(["t", T0, ["log"]]), "record"),
    ("a nil record", pack(["t", T0, None]), "record"),
    ("a message of five", pack(["t", T0, {}, {}, {}]), "Message has 5"),
    ("a message of two", pack(["t", T0]), "Message has 2"),
    ("a time that is a string", pack(["t", "now", {}]), "time"),
    ("a time that is a bool", pack(["t", True, {}]), "time"),
    ("a forward entry of three", pack(["t", [[T0, {}, {}]]]), "entry"),
    ("a forward entry that is a map", pack(["t", [{}]]), "entry"),
    ("a forward record that is an int", pack(["t", [[T0, 5]]]), "record"),
    ("a forward message of four", pack(["t", [], {}, {}]), "Forward message has 4"),
    ("an option that is an array", pack(["t", T0, {}, []]), "option"),
    ("a chunk id that is an int", pack(["t", T0, {}, {"chunk": 5}]), "chunk id"),
    ("zstd", pack(["t", GZ, {"compressed": "zstd"}]), "unsupported compression"),
    ("gzip that is not gzip", pack(["t", b"nope", {"compressed": "gzip"}]), "not gzip"),
    ("gzip cut short", pack(["t", GZ[:-6], {"compressed": "gzip"}]), "middle of a gzip"),
    ("gzip then junk", pack(["t", GZ + b"junk", {"compressed": "gzip"}]), "not gzip"),
    ("packed entries cut short", pack(["t", entries_bytes([T0, {"a": 1}])[:-1]]), "middle"),
    ("packed entries that are not msgpack", pack(["t", b"\xc1"]), "not msgpack"),
    ("a packed entry that is not a pair", pack(["t", pack([T0])]), "entry"),
    ("a packed record that is not a map", pack(["t", pack([T0, "x"])]), "record"),
    ("a byte msgpack never uses", b"\xc1", "not msgpack"),
    ("a map key that is a map", b"\x93\xa1t\x01\x81\x81\x01\x02\x03", "not msgpack"),
    ("nesting past msgpack's stack", b"\x91" * 2000, "not msgpack"),
    ("a PING with a number for a hostname", pack(["PING", 1, b"s", "d", "", ""]), "PING"),
    ("a PING with a number for a salt", pack(["PING", "h", 1, "d", "", ""]), "PING"),
    (
        "a compression nested too deep for repr()",
        b"\x93\xa1t\xc4\x00\x81\xaacompressed" + b"\x91" * 1000 + b"\xc0",
        "an array",
    ),
]


@pytest.mark.parametrize(("data", "match"), [pytest.param(e[1], e[2], id=e[0]) for e in ERRORS])
def test_malformed_input_is_a_forward_error(data: bytes, match: str) -> None:
    decoder = ForwardDecoder()
    with pytest.raises(ForwardError, match=match):
        decoder.feed(data)
    assert decoder.error is not None and not decoder.error.can_continue
    with pytest.raises(ForwardError):  # the stream stays broken
        decoder.feed(pack(["t", T0, {}]))


def test_messages_before_an_error_are_returned_first() -> None:
    good = pack(["t", T0, {}, {"chunk": "keep"}])
    decoder = ForwardDecoder()
    assert [m.chunk for m in decoder.feed(good + pack(["t", T0, "bad"]))] == ["keep"]
    assert decoder.error is not None and "record" in str(decoder.error)
    with pytest.raises(ForwardError, match="record"):
        decoder.feed(good)


def test_a_message_over_the_limit_in_one_read_is_an_error() -> None:
    limit = 1000
    at_limit = pack(["t", T0, {"log": "x" * (limit - 16)}])
    assert len(at_limit) == limit
    assert one(at_limit, max_message_bytes=limit).size == limit
    with pytest.raises(ForwardError, match="over the 1000 limit"):
        ForwardDecoder(max_message_bytes=limit).feed(pack(["t", T0, {"log": "x" * limit}]))


def test_a_message_over_the_limit_fails_before_it_is_complete() -> None:
    decoder = ForwardDecoder(max_message_bytes=1000)
    entry = pack([T0, {"log": "y" * 40}])
    decoder.feed(b"\x93\xa1t\xdd\x00\x01\x00\x00")  # an array of 65536 entries
    with pytest.raises(ForwardError, match="over the 1000 limit"):
        for _ in range(100):
            decoder.feed(entry)
    assert decoder.buffered > 1000


def test_a_big_read_of_small_messages_is_not_over_the_limit() -> None:
    message = pack(["t", T0, {"log": "z" * 100}])
    chunks = ForwardDecoder(max_message_bytes=200).feed(message * 5000)  # 600 KB in one read
    assert len(chunks) == 5000


def test_a_decompression_bomb_is_refused() -> None:
    bomb = gzip.compress(entries_bytes(*[[T0, {"log": "0" * 1000}]] * 1000))  # 1 MB of zeros
    data = pack(["t", bomb, {"compressed": "gzip"}])
    assert len(data) < 10_000
    with pytest.raises(ForwardError, match="bomb"):
        ForwardDecoder(max_message_bytes=10_000).feed(data)  # 8 x 10 KB
    with pytest.raises(ForwardError, match="bomb"):
        ForwardDecoder(max_decompressed_bytes=500_000).feed(data)
    assert len(one(data, max_message_bytes=200_000).entries) == 1000


# --- the server's replies and the handshake ---------------------------------------------


def test_ack_helo_and_pong_encodings() -> None:
    assert ack("JX2TZQAAAADvzauJZ0UjAQ==") == DOCKER["ack_reply"]
    assert msgpack.unpackb(DOCKER["ack_reply"]) == {"ack": "JX2TZQAAAADvzauJZ0UjAQ=="}
    assert helo(b"\x01\x02", b"", keepalive=False) == (
        b"\x92\xa4HELO\x83\xa5nonce\xc4\x02\x01\x02\xa4auth\xc4\x00\xa9keepalive\xc2"
    )
    assert msgpack.unpackb(helo(b"n", b"a")) == [
        "HELO",
        {"nonce": b"n", "auth": b"a", "keepalive": True},
    ]
    assert pong(False, "shared_key mismatch", "", "") == pack(
        ["PONG", False, "shared_key mismatch", "", ""]
    )
    assert msgpack.unpackb(pong(True, "", "srv", "ab")) == ["PONG", True, "", "srv", "ab"]


def test_shared_key_digest_is_sha512_of_salt_hostname_nonce_key() -> None:
    salt, nonce = bytes(range(16)), b"\xfe" * 16
    expected = hashlib.sha512(salt + b"client.example" + nonce + b"s3cr\xc3\xa9t").hexdigest()
    assert shared_key_digest(salt, "client.example", nonce, "s3cr\u00e9t") == expected
    assert len(expected) == 128
    assert password_digest(b"auth", "alice", "pw") == hashlib.sha512(b"authalicepw").hexdigest()


NONCE, SALT, KEY = b"\x00nonce-from-server", b"\x80\xff salt \x00", "shared"


def ping_frame(
    key: str = KEY, nonce: bytes = NONCE, bin_salt: bool = True, user: str = "", pw: str = ""
) -> bytes:
    digest = hashlib.sha512(SALT + b"client" + nonce + key.encode()).hexdigest()
    return pack(["PING", "client", SALT, digest, user, pw], bin_type=bin_salt)


@pytest.mark.parametrize(
    ("frame", "nonce", "reason"),
    [
        pytest.param(ping_frame(), NONCE, None, id="right key"),
        pytest.param(ping_frame(bin_salt=False), NONCE, None, id="salt sent as str (Fluent Bit)"),
        pytest.param(ping(("client"), SALT, NONCE, KEY), NONCE, None, id="our own ping"),
        pytest.param(ping_frame(key="wrong"), NONCE, "shared_key mismatch", id="wrong key"),
        pytest.param(ping_frame(), b"another nonce", "shared_key mismatch", id="stale nonce"),
    ],
)
def test_a_ping_is_accepted_or_refused(frame: bytes, nonce: bytes, reason: str | None) -> None:
    message = one(frame)
    assert isinstance(message, Ping)
    assert (message.hostname, message.shared_key_salt) == ("client", SALT)
    assert check_ping(message, nonce, KEY) == reason


def test_a_ping_with_user_authentication() -> None:
    users = {"alice": "pw"}
    right = one(ping_frame(user="alice", pw=password_digest(b"as", "alice", "pw")))
    wrong = one(ping_frame(user="alice", pw=password_digest(b"as", "alice", "nope")))
    nobody = one(ping_frame(user="bob", pw=password_digest(b"as", "bob", "pw")))
    assert isinstance(right, Ping) and isinstance(wrong, Ping) and isinstance(nobody, Ping)
    assert check_ping(right, NONCE, KEY, auth_salt=b"as", users=users) is None
    assert (
        check_ping(wrong, NONCE, KEY, auth_salt=b"as", users=users) == "username/password mismatch"
    )
    assert (
        check_ping(nobody, NONCE, KEY, auth_salt=b"as", users=users) == "username/password mismatch"
    )


def test_a_ping_digest_that_is_not_ascii_is_refused_not_raised() -> None:
    message = one(pack(["PING", "client", SALT, "\u00e9" * 128, "", ""]))
    assert isinstance(message, Ping)
    assert check_ping(message, NONCE, KEY) == "shared_key mismatch"


# --- the client's side ------------------------------------------------------------------

EVENTS = [(T0 * NS + 42, {"message": "one", "n": 1}), (0, {"message": "two", "nested": {"a": [1]}})]


@pytest.mark.parametrize(
    ("chunk", "compress"), list(itertools.product([None, "id-1"], [False, True]))
)
def test_packed_forward_round_trips(chunk: str | None, compress: bool) -> None:
    data = packed_forward("logpipe", EVENTS, chunk, compress)
    tag, payload, option = msgpack.unpackb(data)
    expected_option: dict[str, Any] = {"size": 2}
    if chunk is not None:
        expected_option["chunk"] = chunk
    if compress:
        expected_option["compressed"] = "gzip"
        payload = gzip.decompress(payload)
    assert (tag, option) == ("logpipe", expected_option)
    assert isinstance(payload, bytes)  # bin, not str
    assert payload.startswith(b"\x92\xd7\x00" + struct.pack(">II", T0, 42))  # EventTime
    assert one(data) == Chunk("logpipe", EVENTS, chunk, len(data))


def test_packed_forward_after_2106_sends_whole_seconds() -> None:
    late = 2**32 * NS + 7
    assert one(packed_forward("t", [(late, {})], None, False)).entries == [(2**32 * NS, {})]


def test_the_client_reads_helo_pong_and_acks() -> None:
    replies = (
        helo(b"\x00\xffnonce", b"")
        + pack(["HELO", {"nonce": b"n\xff\x80", "auth": "salt"}], bin_type=False)
        + pong(True, "", "server", "d1g")
        + ack("c1")
    )
    decoder = ClientDecoder()
    out = [item for cut in range(len(replies)) for item in decoder.feed(replies[cut : cut + 1])]
    assert out == [
        Helo(b"\x00\xffnonce", b"", True),
        Helo(b"n\xff\x80", b"salt", True),
        Pong(True, "", "server", "d1g"),
        Ack("c1"),
    ]


def test_check_pong() -> None:
    good = Pong(True, "", "server", shared_key_digest(SALT, "server", NONCE, KEY))
    assert check_pong(good, SALT, NONCE, KEY) is None
    client_digest = Pong(True, "", "server", shared_key_digest(SALT, "client", NONCE, KEY))
    assert check_pong(client_digest, SALT, NONCE, KEY) == "the server does not know the shared key"
    assert check_pong(Pong(False, "shared_key mismatch", "", ""), SALT, NONCE, KEY) == (
        "refused: shared_key mismatch"
    )


@pytest.mark.parametrize(
    "data",
    [
        pack({"nack": "x"}),
        pack({"ack": 5}),
        pack(["HELO"]),
        pack(["HELO", {"keepalive": "yes"}]),
        pack(["HELO", {"nonce": 5}]),
        pack(["PONG", "true", "", "h", "d"]),
        pack(["PONG", True, "", "h"]),
        pack(["t", T0, {}]),
        pack("HELO"),
        b"\xc1",
    ],
)
def test_the_client_refuses_anything_else(data: bytes) -> None:
    with pytest.raises(ForwardError):
        ClientDecoder().feed(data)


# --- Docker's fluentd log driver --------------------------------------------------------

DOCKER_CASES = [
    ("default", "a7317399f3f8", T0 * NS, DOCKER_RECORD, None),
    ("sub_second", "docker.a7317399f3f8", T0 * NS + 123456789, DOCKER_RECORD, None),
    ("request_ack", "a7317399f3f8", T0 * NS, DOCKER_RECORD, "JX2TZQAAAADvzauJZ0UjAQ=="),
]


@pytest.mark.parametrize(("name", "tag", "ns", "record", "chunk"), DOCKER_CASES)
def test_docker_samples_decode(
    name: str, tag: str, ns: int, record: dict[str, str], chunk: str | None
) -> None:
    data = DOCKER[name]
    assert one(data) == Chunk(tag, [(ns, record)], chunk, len(data))


def test_docker_forward_and_packed_forward_samples_decode() -> None:
    entries = [(T0 * NS, {"log": "a"}), ((T0 + 1) * NS, {"log": "b"})]
    assert one(DOCKER["forward"]).entries == entries
    assert one(DOCKER["packed_forward"]).entries == entries


DOCKER_EVENT = {
    "logpipe.forward.tag": "a7317399f3f8",
    "message": "GET /healthz 200",
    "container.id": CONTAINER_ID,
    "container.name": "web-1",
    "logpipe.stream": "stdout",
}
PIECE = "f" * 64


@pytest.mark.parametrize(
    ("name", "event", "partial"),
    [
        ("default", DOCKER_EVENT, None),
        (
            "extra_attributes",
            {
                **DOCKER_EVENT,
                "logpipe.forward.record": {"com_example_team": "payments", "APP_ENV": "prod"},
            },
            None,
        ),
        ("partial_1", {**DOCKER_EVENT, "message": "x" * 20}, Partial(PIECE, 1, False)),
        ("partial_2", {**DOCKER_EVENT, "message": "yyyyy"}, Partial(PIECE, 2, True)),
    ],
)
def test_docker_records_map_to_events(
    name: str, event: dict[str, Any], partial: Partial | None
) -> None:
    chunk = one(DOCKER[name])
    assert isinstance(chunk, Chunk)
    ((_, record),) = chunk.entries
    assert record_to_event(chunk.tag, record) == (event, partial)


@pytest.mark.parametrize(
    ("record", "event", "partial"),
    [
        (
            {"message": "m", "msg": "x"},
            {"message": "m", "logpipe.forward.record": {"msg": "x"}},
            None,
        ),
        ({"msg": "x"}, {"message": "x"}, None),
        (
            {"log": {"a": 1}, "msg": "text"},
            {"message": "text", "logpipe.forward.record": {"log": {"a": 1}}},
            None,
        ),
        ({"log": {"a": 1}}, {"message": '{"a":1}'}, None),
        ({"log": [1, b"x"]}, {"message": '[1,"x"]'}, None),
        ({"log": b"caf\xc3\xa9 \xff"}, {"message": "caf\u00e9 \ufffd"}, None),
        ({"log": None, "x": 1}, {"logpipe.forward.record": {"log": None, "x": 1}}, None),
        ({}, {}, None),
        ({"container_name": "no-slash"}, {"container.name": "no-slash"}, None),
        ({"container_id": 5}, {"logpipe.forward.record": {"container_id": 5}}, None),
        (  # Docker before 19.03: only partial_message
            {"log": "p", "partial_message": "true"},
            {"message": "p"},
            Partial("", 0, False),
        ),
        (
            {"log": "p", "partial_message": "true", "partial_id": "i", "partial_ordinal": "\u00b2"},
            {"message": "p"},
            Partial("i", 0, False),
        ),
        (
            {"log": "p", "partial_message": "false", "partial_last": "true"},
            {
                "message": "p",
                "logpipe.forward.record": {"partial_message": "false", "partial_last": "true"},
            },
            None,
        ),
        (
            {
                "log": "v",
                "b": b"\xff",
                "t": EventTime(T0, 5),
                "k": {1: msgpack.ExtType(9, b"\x01")},
            },
            {
                "message": "v",
                "logpipe.forward.record": {
                    "b": "\ufffd",
                    "t": "2024-01-02T03:04:05.000000005Z",
                    "k": {"1": {"ext_type": 9, "data": "01"}},
                },
            },
            None,
        ),
        (
            {"ts": msgpack.Timestamp(1, 5), "f": 1.5, "ok": True},
            {
                "logpipe.forward.record": {
                    "ts": "1970-01-01T00:00:01.000000005Z",
                    "f": 1.5,
                    "ok": True,
                }
            },
            None,
        ),
    ],
)
def test_record_to_event(
    record: dict[str, Any], event: dict[str, Any], partial: Partial | None
) -> None:
    assert record_to_event("t", record) == ({"logpipe.forward.tag": "t", **event}, partial)


def test_record_to_event_cuts_nesting_elasticsearch_could_not_map() -> None:
    deep: Any = "bottom"
    for _ in range(1000):
        deep = {"d": deep}
    nested: Any = 1
    for _ in range(20):
        nested = [nested]
    event, _ = record_to_event("t", {"deep": deep, "list": nested})
    text = orjson.dumps(event).decode()  # orjson itself stops at 254 levels
    assert text.count("[nested too deeply]") == 2


def test_record_to_event_does_not_change_the_record() -> None:
    record = dict(DOCKER_RECORD, extra={"a": b"x"})
    record_to_event("t", record)
    assert record == dict(DOCKER_RECORD, extra={"a": b"x"})


# --- properties -------------------------------------------------------------------------

SAMPLE_FRAMES = [pack(m[1][0]) for m in MODES] + [DOCKER[n] for n in DOCKER] + [ping_frame()]


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def feed_pieces(data: bytes, cuts: list[int]) -> tuple[list[Any], bool]:
    decoder = ForwardDecoder(max_message_bytes=4096)
    out: list[Any] = []
    for piece in pieces(data, cuts):
        try:
            out += decoder.feed(piece)
        except ForwardError:
            return out, True
    return out, decoder.error is not None


@PROPERTY
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda frames, at, junk: b"".join(frames)[:at] + junk + b"".join(frames)[at:],
            st.lists(st.sampled_from(SAMPLE_FRAMES), min_size=1, max_size=3),
            st.integers(0, 2000),
            st.binary(max_size=8),
        ),
    ),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=10),
)
def test_any_bytes_in_any_chunking_decode_or_raise_forward_error(
    data: bytes, cuts: list[int]
) -> None:
    """Never another exception, and the chunking never changes the result."""
    assert feed_pieces(data, cuts) == feed_pieces(data, [])


MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.builds(lambda s, n: et(s, n), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=4) | st.integers(-(2**63), 2**64 - 1), children, max_size=4
        )
    ),
    max_leaves=20,
)


@PROPERTY
@given(
    message=st.lists(MSGPACK_VALUES, max_size=6)
    | st.tuples(st.text(max_size=4), MSGPACK_VALUES, MSGPACK_VALUES).map(list)
    | st.tuples(st.just("t"), st.lists(st.lists(MSGPACK_VALUES, max_size=3), max_size=3)).map(list)
)
def test_any_msgpack_structure_decodes_to_json_safe_events_or_raises(message: list[Any]) -> None:
    decoder = ForwardDecoder()
    try:
        decoded = decoder.feed(pack(message))
    except ForwardError:
        return
    for chunk in decoded:
        if isinstance(chunk, Chunk):
            for _, record in chunk.entries:
                event, _ = record_to_event(chunk.tag, record)
                orjson.dumps(event)
