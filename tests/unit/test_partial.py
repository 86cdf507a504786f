"""PartialReassembler: joining pieces per key, the size cap, and expiry."""

from __future__ import annotations

from typing import Any

import pytest

from logpipe.parsers.partial import PartialReassembler

NS = 1_000_000_000

# (key, text, partial, time_ns) fed in order, and what each feed returns.
JOINS: list[tuple[str, dict[str, Any], list[tuple[Any, bytes, bool, int]], list[Any]]] = [
    (
        "a whole line passes through",
        {},
        [("a", b"hello", False, 5)],
        [(b"hello", 5, False)],
    ),
    (
        "pieces join, first piece's time",
        {},
        [("a", b"one ", True, 1), ("a", b"two ", True, 2), ("a", b"three", False, 3)],
        [None, None, (b"one two three", 1, False)],
    ),
    (
        "interleaved keys do not mix",
        {},
        [
            (("c1", "stdout"), b"out-1 ", True, 1),
            (("c1", "stderr"), b"err-1 ", True, 2),
            (("c2", "stdout"), b"other", False, 3),
            (("c1", "stdout"), b"out-2", False, 4),
            (("c1", "stderr"), b"err-2", False, 5),
        ],
        [None, None, (b"other", 3, False), (b"out-1 out-2", 1, False), (b"err-1 err-2", 2, False)],
    ),
    (
        "an empty final piece completes the line",
        {},
        [("a", b"x" * 10, True, 1), ("a", b"", False, 2)],
        [None, (b"x" * 10, 1, False)],
    ),
    (
        "empty partial pieces join as nothing",
        {},
        [("a", b"", True, 1), ("a", b"x", False, 2)],
        [None, (b"x", 1, False)],
    ),
    (
        "exactly max_line_bytes is not truncated",
        {"max_line_bytes": 6},
        [("a", b"abc", True, 1), ("a", b"def", False, 2)],
        [None, (b"abcdef", 1, False)],
    ),
    (
        "over max_line_bytes: first bytes kept, rest dropped, reported at completion",
        {"max_line_bytes": 5},
        [
            ("a", b"abc", True, 1),
            ("a", b"def", True, 2),
            ("a", b"ghi", True, 3),
            ("a", b"j", False, 4),
        ],
        [None, None, None, (b"abcde", 1, True)],
    ),
    (
        "a single whole line over the cap is truncated too",
        {"max_line_bytes": 4},
        [("a", b"abcdef", False, 1)],
        [(b"abcd", 1, True)],
    ),
    (
        "the cap is per line: the next line starts afresh",
        {"max_line_bytes": 4},
        [
            ("a", b"abcdef", True, 1),
            ("a", b"", False, 2),
            ("a", b"xy", True, 3),
            ("a", b"z", False, 4),
        ],
        [None, (b"abcd", 1, True), None, (b"xyz", 3, False)],
    ),
]


@pytest.mark.parametrize(
    ("options", "feeds", "expected"),
    [case[1:] for case in JOINS],
    ids=[case[0] for case in JOINS],
)
def test_join(
    options: dict[str, Any], feeds: list[tuple[Any, bytes, bool, int]], expected: list[Any]
) -> None:
    joiner = PartialReassembler(**options)
    assert [joiner.feed(*feed) for feed in feeds] == expected
    assert len(joiner) == 0


def test_pending_and_len() -> None:
    joiner = PartialReassembler()
    assert len(joiner) == 0 and not joiner.pending("a")
    joiner.feed("a", b"x", True, 1)
    joiner.feed("b", b"y", True, 1)
    assert len(joiner) == 2 and joiner.pending("a") and joiner.pending("b")
    joiner.feed("a", b"z", False, 2)
    assert len(joiner) == 1 and not joiner.pending("a")


def test_expiry_from_the_feed_time() -> None:
    joiner = PartialReassembler(flush_timeout_ns=5 * NS)
    joiner.feed("a", b"first ", True, 111, now_ns=100 * NS)
    joiner.feed("a", b"second", True, 222, now_ns=103 * NS)
    joiner.feed("b", b"later", True, 333, now_ns=104 * NS)
    assert joiner.expired(104 * NS) == []
    assert joiner.expired(105 * NS - 1) == []
    # Measured from the first piece, not the last.
    assert joiner.expired(105 * NS) == [("a", b"first second", 111, False)]
    assert not joiner.pending("a") and joiner.pending("b")
    assert joiner.expired(109 * NS) == [("b", b"later", 333, False)]
    assert len(joiner) == 0


def test_expiry_without_feed_time_counts_from_the_first_expired_call() -> None:
    joiner = PartialReassembler(flush_timeout_ns=5 * NS)
    joiner.feed("a", b"tail", True, 7)
    assert joiner.expired(1_000 * NS) == []  # first seen now: never flushed early
    assert joiner.expired(1_004 * NS) == []
    assert joiner.expired(1_005 * NS) == [("a", b"tail", 7, False)]


def test_expired_line_reports_truncation_and_key_restarts() -> None:
    joiner = PartialReassembler(max_line_bytes=3, flush_timeout_ns=0)
    joiner.feed("a", b"abcdef", True, 1)
    assert joiner.expired(0) == [("a", b"abc", 1, True)]
    assert joiner.feed("a", b"next", False, 2) == (b"nex", 2, True)


def test_flush_one_key() -> None:
    joiner = PartialReassembler()
    assert joiner.flush("a") is None
    joiner.feed("a", b"x", True, 1)
    joiner.feed("a", b"y", True, 2)
    assert joiner.flush("a") == (b"xy", 1, False)
    assert joiner.flush("a") is None
