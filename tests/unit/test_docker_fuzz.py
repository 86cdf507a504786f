"""Property tests for the container log parsers.

* The stream decoders raise nothing but FrameError, whatever the bytes.
* Output depends only on the bytes, not on how they were split into reads.
* What the decoders cut into lines and pieces joins back into the bytes sent.
* The line parsers and the cgroup reader never raise.
"""

from __future__ import annotations

import datetime
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.parsers.cgroup import container_id_from_cgroup
from logpipe.parsers.docker import (
    FrameError,
    LogLine,
    MultiplexedDecoder,
    RawStreamDecoder,
    parse_cri_line,
    parse_json_file_line,
    parse_timestamp,
)
from logpipe.parsers.partial import PartialReassembler

NS = 1_000_000_000
UTC = datetime.UTC
# No per-example deadline: CI machines are shared and slow; these are not timing tests.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that make interesting log text: stamps of every precision, line ends, bytes
# that are not UTF-8, and near-misses of a stamp.
TEXT_FRAGMENTS = st.sampled_from(
    [
        b"2026-11-29T16:18:43Z ",
        b"2026-11-29T16:18:43.123456789Z ",
        b"2026-11-29T16:18:43.123456Z ",
        b"2019-05-07T18:57:50.904275087+02:00 ",
        b"2026-13-29T16:18:43Z ",
        b"2026-11-29T16:18:43",
        b"\n",
        b"\r\n",
        b"\r",
        b" ",
        b"hello",
        b"x" * 20,
        b"\xff\xfe",
        b"\x00",
        b"stdout F ",
        b"P ",
    ]
)
TEXT = st.lists(st.one_of(TEXT_FRAGMENTS, st.binary(max_size=8)), max_size=12).map(b"".join)


def frame(stream: int, payload: bytes) -> bytes:
    """One Engine API frame."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


FRAMES = st.lists(st.tuples(st.integers(0, 2), TEXT), max_size=8)
# A valid stream with, sometimes, something bad after it: an unknown stream byte, a
# daemon error frame, an oversize header, random bytes.
TAILS = st.one_of(
    st.just(b""),
    st.binary(max_size=20),
    st.builds(frame, st.integers(3, 255), TEXT),
    st.just(b"\x01\x00\x00\x00\x7f\xff\xff\xff"),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (taken modulo its length, sorted)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def decode_multiplexed(
    decoder: MultiplexedDecoder, chunks: list[bytes]
) -> tuple[list[LogLine], str | None]:
    """Lines, and the error text (or None), of feeding ``chunks`` then an empty read."""
    lines: list[LogLine] = []
    try:
        for chunk in [*chunks, b""]:
            lines.extend(decoder.feed(chunk))
    except FrameError as error:
        assert error.can_continue is False
        return lines, str(error)
    return lines, None


def decode_raw(decoder: RawStreamDecoder, chunks: list[bytes]) -> list[LogLine]:
    """Lines of feeding ``chunks`` then flushing."""
    lines: list[LogLine] = []
    for chunk in chunks:
        lines.extend(decoder.feed(chunk))
    return lines + decoder.flush()


@PROPERTY
@given(
    frames=FRAMES,
    tail=TAILS,
    cuts=st.lists(st.integers(0, 1 << 16), max_size=12),
    timestamps=st.booleans(),
    max_frame_bytes=st.integers(0, 300),
)
def test_multiplexed_split_invariance(
    frames: list[tuple[int, bytes]],
    tail: bytes,
    cuts: list[int],
    timestamps: bool,
    max_frame_bytes: int,
) -> None:
    data = b"".join(frame(stream, payload) for stream, payload in frames) + tail
    options: dict[str, Any] = {"timestamps": timestamps, "max_frame_bytes": max_frame_bytes}
    whole = decode_multiplexed(MultiplexedDecoder(**options), [data])
    assert decode_multiplexed(MultiplexedDecoder(**options), chunked(data, cuts)) == whole
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert decode_multiplexed(MultiplexedDecoder(**options), one_by_one) == whole


@PROPERTY
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 1 << 16), max_size=12))
def test_multiplexed_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    whole = decode_multiplexed(MultiplexedDecoder(max_frame_bytes=64), [data])
    assert decode_multiplexed(MultiplexedDecoder(max_frame_bytes=64), chunked(data, cuts)) == whole


@PROPERTY
@given(frames=FRAMES)
def test_multiplexed_lines_join_back_into_the_payloads(frames: list[tuple[int, bytes]]) -> None:
    data = b"".join(frame(stream, payload) for stream, payload in frames)
    lines, error = decode_multiplexed(MultiplexedDecoder(timestamps=False), [data])
    assert error is None
    for stream_id, name in enumerate(("stdin", "stdout", "stderr")):
        sent = b"".join(payload for stream, payload in frames if stream == stream_id)
        got = b"".join(x.text + (b"" if x.partial else b"\n") for x in lines if x.stream == name)
        assert got == sent


@PROPERTY
@given(
    data=TEXT,
    cuts=st.lists(st.integers(0, 1 << 16), max_size=12),
    timestamps=st.booleans(),
    max_line_bytes=st.integers(1, 40),
)
def test_raw_stream_split_invariance(
    data: bytes, cuts: list[int], timestamps: bool, max_line_bytes: int
) -> None:
    options: dict[str, Any] = {"timestamps": timestamps, "max_line_bytes": max_line_bytes}
    whole = decode_raw(RawStreamDecoder(**options), [data])
    assert decode_raw(RawStreamDecoder(**options), chunked(data, cuts)) == whole
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert decode_raw(RawStreamDecoder(**options), one_by_one) == whole


@PROPERTY
@given(data=TEXT, max_line_bytes=st.integers(1, 40))
def test_raw_stream_pieces_join_back(data: bytes, max_line_bytes: int) -> None:
    lines = decode_raw(RawStreamDecoder(timestamps=False, max_line_bytes=max_line_bytes), [data])
    assert all(len(x.text) <= max_line_bytes for x in lines)
    joined = b"".join(x.text + (b"" if x.partial else b"\n") for x in lines)
    # Only a CR right before a LF is dropped.
    assert joined == data.replace(b"\r\n", b"\n")


@PROPERTY
@given(data=st.binary(max_size=300))
def test_line_parsers_never_raise(data: bytes) -> None:
    for parsed in (parse_json_file_line(data), parse_cri_line(data)):
        assert parsed is None or isinstance(parsed, LogLine)


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.sampled_from(["stdout", "stderr", "2026-11-29T16:18:43.123Z", "0001-01-01T00:00:00Z", "\n"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)


@PROPERTY
@given(
    entry=st.dictionaries(
        st.sampled_from(["log", "stream", "time", "attrs", "other"]), JSON_VALUES, max_size=5
    ),
    suffix=st.sampled_from([b"", b"\r", b" ", b"}", b"\n"]),
)
def test_json_file_objects(entry: dict[str, Any], suffix: bytes) -> None:
    raw = json.dumps(entry).encode() + suffix
    parsed = parse_json_file_line(raw)
    log = entry.get("log")
    well_formed = (
        suffix in (b"", b" ", b"\n", b"\r")
        and isinstance(log, str)
        and isinstance(entry.get("stream", ""), str)
        and isinstance(entry.get("time", ""), str)
    )
    if not well_formed:
        assert parsed is None
        return
    assert parsed is not None and isinstance(log, str)
    assert parsed.text + (b"" if parsed.partial else b"\n") == log.encode()
    assert parsed.stream == entry.get("stream", "")
    assert parsed.timestamp == entry.get("time", "")


# Hypothesis wants naive bounds and applies the zones itself, hence the noqa.
MOMENTS = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),  # noqa: DTZ001
    max_value=datetime.datetime(9998, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from(
        [
            UTC,
            datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
            datetime.timezone(-datetime.timedelta(hours=8)),
        ]
    ),
)


@PROPERTY
@given(moment=MOMENTS, nanos=st.integers(0, NS - 1), digits=st.integers(0, 9))
def test_timestamps_against_datetime(moment: datetime.datetime, nanos: int, digits: int) -> None:
    moment = moment.replace(microsecond=0)
    fraction = f"{nanos:09d}"[:digits]
    offset = moment.strftime("%z")
    offset = "Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + offset
    expected = int(moment.timestamp()) * NS + int(fraction.ljust(9, "0"))
    # date_nanos holds 1970..2262; outside it a stamp counts as none (0).
    storable = expected if 0 <= expected < 2**63 - NS else 0
    assert parse_timestamp(text) == storable
    parsed = parse_cri_line(f"{text} stderr P x".encode())
    assert parsed == LogLine("stderr", storable, text, b"x", True)


@PROPERTY
@given(text=st.text(max_size=60))
def test_parse_timestamp_never_raises(text: str) -> None:
    assert parse_timestamp(text) >= 0


CGROUP_COMPONENTS = st.sampled_from(
    [
        "docker",
        "kubepods",
        "kubepods.slice",
        "libpod_parent",
        "system.slice",
        "init.scope",
        "a" * 64,
        "docker-" + "b" * 64 + ".scope",
        "libpod-conmon-" + "c" * 64,
        "crio-" + "d" * 64,
        "cri-containerd-" + "e" * 64 + ".scope",
        "",
        ":",
        "..",
    ]
)


@PROPERTY
@given(
    lines=st.lists(
        st.one_of(
            st.text(max_size=80),
            st.builds(
                lambda prefix, parts: prefix + "/".join(parts),
                st.sampled_from(["0::/", "1:name=systemd:/", "12:memory:", ""]),
                st.lists(CGROUP_COMPONENTS, max_size=6),
            ),
        ),
        max_size=4,
    )
)
def test_container_id_from_cgroup_never_raises(lines: list[str]) -> None:
    found = container_id_from_cgroup("\n".join(lines))
    if found is not None:
        container_id, runtime = found
        assert len(container_id) == 64 and runtime in ("docker", "podman", "containerd", "cri-o")


@PROPERTY
@given(
    feeds=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.binary(max_size=10), st.booleans()),
        max_size=30,
    ),
    max_line_bytes=st.integers(0, 25),
)
def test_reassembler_joins_per_key_up_to_the_cap(
    feeds: list[tuple[str, bytes, bool]], max_line_bytes: int
) -> None:
    joiner = PartialReassembler(max_line_bytes=max_line_bytes, flush_timeout_ns=0)
    expected: dict[str, list[bytes]] = {}
    for n, (key, text, partial) in enumerate(feeds):
        expected.setdefault(key, []).append(text)
        result = joiner.feed(key, text, partial, n)
        if partial:
            assert result is None
            continue
        whole = b"".join(expected.pop(key))
        assert result is not None
        assert result[0] == whole[:max_line_bytes]
        assert result[2] == (len(whole) > max_line_bytes)
    assert len(joiner) == len(expected)
    for key, text, _, truncated in joiner.expired(0):
        whole = b"".join(expected.pop(key))
        assert text == whole[:max_line_bytes] and truncated == (len(whole) > max_line_bytes)
    assert expected == {} and len(joiner) == 0
