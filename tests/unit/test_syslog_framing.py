"""Syslog stream framing (RFC 6587): octet counting and LF, however the bytes are chunked."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.parsers.syslog_framing import (
    NON_TRANSPARENT,
    OCTET_COUNTING,
    FrameSplitter,
    TruncatedFrame,
)

MESSAGES = [b"<13>1 2026-11-29T10:00:00Z host app - - - hello", b"<14>second\nwith a newline"]


def counted(*messages: bytes) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def feed_in_pieces(splitter: FrameSplitter, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in sorted(set(cuts)):
        out += splitter.feed(data[start:cut])
        start = cut
    out += splitter.feed(data[start:])
    return out


def test_octet_counting_is_chosen_by_a_leading_digit_and_keeps_newlines() -> None:
    splitter = FrameSplitter(1024)
    assert splitter.feed(counted(*MESSAGES)) == MESSAGES
    assert splitter.framing == OCTET_COUNTING


def test_lf_framing_splits_lines_and_skips_empty_ones() -> None:
    splitter = FrameSplitter(1024)
    assert splitter.feed(b"<13>one\n\n<13>two\n<13>thr") == [b"<13>one", b"<13>two"]
    assert splitter.framing == NON_TRANSPARENT
    assert splitter.feed(b"ee\n") == [b"<13>three"]


def test_the_framing_holds_for_the_connection() -> None:
    """A line that starts with a digit later on is a line, not a length."""
    splitter = FrameSplitter(1024)
    splitter.feed(b"<13>first\n")
    assert splitter.feed(b"42 is the answer\n") == [b"42 is the answer"]


def test_a_length_split_across_reads_waits_for_the_rest() -> None:
    splitter = FrameSplitter(1024)
    assert splitter.feed(b"1") == []
    assert splitter.feed(b"1 hello") == []
    assert splitter.feed(b" worl") == []
    assert splitter.feed(b"d") == [b"hello world"]


@pytest.mark.parametrize(
    ("stream", "before"),
    [(b"12x hello", []), (b"0 ", []), (b"5 hello<13>oops", [b"hello"]), (b"12345678901 x", [])],
)
def test_a_stream_that_is_not_octet_counted_any_more_is_a_framing_error(
    stream: bytes, before: list[bytes]
) -> None:
    splitter = FrameSplitter(1024)
    assert splitter.feed(stream) == before  # what came before the break is kept
    assert splitter.error is not None and "octet count" in splitter.error
    assert splitter.feed(b"5 hello") == [] and splitter.flush() == []


def test_an_over_long_counted_frame_is_cut_and_the_next_one_is_whole() -> None:
    splitter = FrameSplitter(10)
    big = b"x" * 25
    data = counted(big, b"next")
    out = feed_in_pieces(splitter, data, [4, 9, 20])
    assert out == [b"x" * 10, b"next"]
    assert type(out[0]) is TruncatedFrame
    assert type(out[1]) is bytes


def test_an_over_long_line_is_cut_and_the_rest_of_it_skipped() -> None:
    splitter = FrameSplitter(10)
    out = feed_in_pieces(splitter, b"<13>" + b"y" * 30 + b"\n<13>ok\n", [5, 20, 33])
    assert out == [b"<13>yyyyyy", b"<13>ok"]
    assert type(out[0]) is TruncatedFrame


def test_flush_keeps_a_last_line_without_lf_and_a_cut_counted_frame() -> None:
    lines = FrameSplitter(100)
    lines.feed(b"<13>a\n<13>no newline")
    assert lines.flush() == [b"<13>no newline"]
    frames = FrameSplitter(100)
    frames.feed(b"20 only part")
    out = frames.flush()
    assert out == [b"only part"] and type(out[0]) is TruncatedFrame


_message = st.binary(min_size=1, max_size=200)


@settings(max_examples=300, deadline=None)
@given(st.lists(_message, min_size=1, max_size=20), st.lists(st.integers(0, 5000), max_size=30))
def test_octet_counted_frames_come_out_whole_however_the_stream_is_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    data = counted(*messages)
    assert feed_in_pieces(FrameSplitter(1024), data, cuts) == messages


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b), min_size=1),
    st.lists(st.integers(0, 5000), max_size=30),
)
def test_lines_come_out_whole_however_the_stream_is_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    messages = [b"<" + m for m in messages]  # a syslog line starts with "<", not a digit
    data = b"".join(m + b"\n" for m in messages)
    assert feed_in_pieces(FrameSplitter(1024), data, cuts) == messages


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=10))
def test_any_bytes_give_frames_within_the_limit_and_at_most_an_error(
    data: bytes, cuts: list[int]
) -> None:
    splitter = FrameSplitter(64)
    out = feed_in_pieces(splitter, data, cuts) + splitter.flush()
    assert all(0 < len(frame) <= 64 for frame in out)
    assert splitter.buffered <= 64 + 11
