"""The disk spool: order, bounds, acknowledgement, and recovery from torn or corrupt files."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.spool import Position, Spool

HEADER_BYTES = 8
# No per-example deadline: these tests do file I/O on shared CI machines.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=50)


def batch(start: int, count: int) -> list[dict]:
    return [{"_id": f"id-{n}", "n": n, "message": "x" * 20} for n in range(start, start + count)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def frame_bytes(events: list[dict]) -> int:
    return HEADER_BYTES + len(msgpack.packb(events))


def read_all(spool: Spool, max_events: int = 7) -> list[dict]:
    events: list[dict] = []
    while got := spool.read(max_events)[0]:
        events.extend(got)
    return events


def fill(spool: Spool, batches: int, size: int = 3) -> list[dict]:
    events: list[dict] = []
    for i in range(batches):
        events += batch(i * size, size)
        assert spool.append(batch(i * size, size)) == size
    return events


def test_round_trip_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=500)
    events = fill(spool, 40)
    assert len(segments(tmp_path)) > 5
    assert spool.pending_events == 120
    assert (
        spool.pending_bytes
        == spool.total_bytes
        == sum(p.stat().st_size for p in segments(tmp_path))
    )
    assert read_all(spool) == events
    assert spool.pending_events == 120  # read, not yet acknowledged
    spool.ack(spool.read(10)[1])
    assert spool.pending_events == spool.pending_bytes == 0
    spool.close()


def test_read_returns_whole_frames_at_least_one(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append(batch(0, 5))
    spool.append(batch(5, 5))
    got, position = spool.read(2)
    assert [e["n"] for e in got] == [0, 1, 2, 3, 4]  # one whole frame, though over max_events
    got, _ = spool.read(0)
    assert [e["n"] for e in got] == [5, 6, 7, 8, 9]
    assert spool.read(10)[0] == []
    assert position == Position(position.segment, frame_bytes(batch(0, 5)))


def test_max_bytes_refusal_stores_nothing(tmp_path: Path) -> None:
    one = frame_bytes(batch(0, 3))
    spool = Spool(str(tmp_path), max_bytes=3 * one + one // 2)
    events = fill(spool, 3)
    before = spool.total_bytes
    assert spool.append(batch(9, 3)) == 0
    assert spool.last_error is None  # refused by the bound, not by the disk
    assert spool.total_bytes == before == sum(p.stat().st_size for p in segments(tmp_path))
    assert spool.pending_events == 9
    assert read_all(spool) == events


def test_a_fully_acknowledged_head_is_reclaimed_when_the_bound_is_below_a_segment(
    tmp_path: Path,
) -> None:
    one = frame_bytes(batch(0, 3))
    spool = Spool(str(tmp_path), max_bytes=2 * one, segment_bytes=100 * one)
    for round_ in range(5):  # would refuse from the third round on without reclaiming
        assert spool.append(batch(round_, 3)) == 3
        assert spool.append(batch(round_, 3)) == 3
        got, position = spool.read(100)
        assert len(got) == 6
        spool.ack(position)
    assert spool.pending_bytes == 0 and spool.pending_events == 0


def test_ack_deletes_segments_and_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=300)
    events = fill(spool, 30)
    first_segments = segments(tmp_path)
    delivered, position = spool.read(40)
    spool.ack(position)
    assert segments(tmp_path)[0] != first_segments[0]  # wholly delivered segments are gone
    assert spool.pending_events == 90 - len(delivered)
    assert spool.pending_bytes == spool.total_bytes - position.offset
    in_flight, _ = spool.read(20)  # read but never acknowledged: replayed after a restart
    spool.close()

    reopened = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=300)
    assert reopened.pending_events == 90 - len(delivered)
    rest = read_all(reopened)
    assert rest[: len(in_flight)] == in_flight
    assert delivered + rest == events
    assert reopened.damaged_frames == 0


def test_acknowledging_everything_leaves_nothing_after_reopen(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=300)
    fill(spool, 10)
    read_all(spool)
    spool.ack(spool.read(1)[1])
    spool.close()
    reopened = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=300)
    assert segments(tmp_path) == [] and reopened.total_bytes == 0
    assert reopened.append(batch(100, 2)) == 2
    assert read_all(reopened) == batch(100, 2)


def test_rewind_reads_again_from_the_acknowledged_cursor(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=200)
    events = fill(spool, 10)
    first, position = spool.read(6)
    spool.ack(position)
    second, _ = spool.read(6)
    spool.rewind()
    assert spool.read(6)[0] == second
    spool.rewind()
    assert first + read_all(spool) == events
    spool.ack(spool.read(1)[1])
    assert spool.pending_events == 0


def test_stale_ack_is_ignored(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    fill(spool, 4)
    _, early = spool.read(3)
    _, late = spool.read(3)
    spool.ack(late)
    spool.ack(early)
    assert spool.pending_events == 6
    spool.rewind()
    assert [e["n"] for e in spool.read(100)[0]] == list(range(6, 12))


def test_torn_tail_at_every_offset_keeps_the_good_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "source"
    spool = Spool(str(source), max_bytes=1 << 20)
    events = fill(spool, 3, size=2)
    spool.close()
    (segment,) = segments(source)
    data = segment.read_bytes()
    last_start = 2 * frame_bytes(batch(0, 2))
    assert len(data) == last_start + frame_bytes(batch(4, 2))
    for cut in range(last_start, len(data)):
        copy = tmp_path / f"cut{cut}"
        shutil.copytree(source, copy)
        (copy / segment.name).write_bytes(data[:cut])
        caplog.clear()
        torn = Spool(str(copy), max_bytes=1 << 20)
        assert read_all(torn) == events[:4], cut
        assert (copy / segment.name).stat().st_size == last_start
        assert (torn.damaged_frames, torn.damaged_bytes) == (
            int(cut > last_start),
            cut - last_start,
        )
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == int(cut > last_start)
        if warnings:
            message = warnings[0].getMessage()
            assert segment.name in message and f"offset={last_start}" in message


def test_a_flipped_byte_drops_the_rest_of_its_segment_only(tmp_path: Path) -> None:
    one = frame_bytes(batch(0, 3))
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=3 * one)
    events = fill(spool, 9)  # three segments of three frames
    spool.close()
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[one + HEADER_BYTES + 5] ^= 0x40  # in the second frame's payload
    first.write_bytes(bytes(data))

    reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert read_all(reopened) == events[:3] + events[9:]
    assert (reopened.damaged_frames, reopened.damaged_bytes) == (1, 2 * one)
    assert first.stat().st_size == one


def test_a_frame_that_is_not_msgpack_is_damage(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    events = fill(spool, 1)
    spool.close()
    (segment,) = segments(tmp_path)
    payload = b"\xc1"  # never valid msgpack, with a correct CRC
    with segment.open("ab") as fh:
        fh.write(len(payload).to_bytes(4, "big") + zlib.crc32(payload).to_bytes(4, "big"))
        fh.write(payload)
    reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert read_all(reopened) == events
    assert (reopened.damaged_frames, reopened.damaged_bytes) == (1, HEADER_BYTES + 1)


def test_damage_found_while_reading_the_head_moves_appends_to_a_new_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    events = fill(spool, 2)
    assert spool.read(3)[0] == events[:3]
    (head,) = segments(tmp_path)
    data = bytearray(head.read_bytes())
    data[-3] ^= 0x01  # the second frame, changed on disk after recovery checked it
    head.write_bytes(bytes(data))
    assert spool.read(10)[0] == []
    assert spool.damaged_frames == 1 and caplog.records[-1].levelno == logging.WARNING
    assert spool.append(batch(50, 2)) == 2
    assert len(segments(tmp_path)) == 2
    got, position = spool.read(10)
    assert got == batch(50, 2)
    spool.ack(position)
    assert segments(tmp_path) == [tmp_path / f"{position.segment:020d}.seg"]


@pytest.mark.parametrize(
    "cursor",
    [b"{not json", b'{"segment": 1, "offset": 0}', b'{"segment": 1, "offset": 99, "check": 1}'],
)
def test_an_unreadable_cursor_replays_from_the_oldest_segment(
    tmp_path: Path, cursor: bytes
) -> None:
    one = frame_bytes(batch(0, 3))
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=3 * one)
    fill(spool, 6)
    _, position = spool.read(12)  # all of the first segment and one frame of the second
    spool.ack(position)
    oldest = segments(tmp_path)[0]
    spool.close()
    (tmp_path / "cursor").write_bytes(cursor)
    reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert [e["n"] for e in read_all(reopened)] == list(range(9, 18))  # the oldest left, whole
    assert segments(tmp_path)[0] == oldest


def test_a_cursor_inside_a_frame_rounds_down(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    fill(spool, 3)
    spool.close()
    segment = int(segments(tmp_path)[0].stem)
    inside = Position(segment, frame_bytes(batch(0, 3)) + 4)
    check = zlib.crc32(f"{inside.segment}:{inside.offset}".encode())
    (tmp_path / "cursor").write_text(
        json.dumps({"segment": segment, "offset": inside.offset, "check": check})
    )
    reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert [e["n"] for e in read_all(reopened)] == list(range(3, 9))


def test_fsync_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    every = Spool(str(tmp_path / "every"), max_bytes=1 << 20, fsync_interval=0)
    fill(every, 3)
    assert sum(path.endswith(".seg") for path in synced) == 3
    synced.clear()
    hourly = Spool(str(tmp_path / "hourly"), max_bytes=1 << 20, fsync_interval=3600)
    fill(hourly, 3)
    assert not any(path.endswith(".seg") for path in synced)
    hourly.sync()
    hourly.sync()  # nothing new to make durable
    assert sum(path.endswith(".seg") for path in synced) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, so the disk really fills up (needs root and mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        # Lazy: a failed test may leave a spool file open on it.
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def test_a_full_disk_refuses_the_batch_and_keeps_the_files_valid(small_disk: Path) -> None:
    directory = str(small_disk / "spool")
    spool = Spool(directory, max_bytes=1 << 30, segment_bytes=64 << 10, fsync_interval=0)
    stored: list[dict] = []
    for i in range(1000):  # 10 KiB frames: the last one is cut short by the disk
        events = [{"_id": f"id-{i}", "blob": f"{i:06d}" * 1700}]
        if spool.append(events) == 0:
            break
        stored += events
    else:
        pytest.fail("the 256 KiB disk never filled up")
    assert spool.last_error is not None and spool.last_error.errno == errno.ENOSPC
    assert len(stored) > 10
    on_disk = sum(p.stat().st_size for p in segments(Path(directory)))
    assert on_disk == spool.total_bytes
    spool.close()

    reopened = Spool(directory, max_bytes=1 << 30, segment_bytes=64 << 10, fsync_interval=0)
    assert reopened.damaged_frames == 0
    assert read_all(reopened, max_events=5) == stored
    assert reopened.append([{"_id": "big", "blob": "z" * 20_000}]) == 0  # still full
    reopened.ack(reopened.read(1)[1])  # delivered: the segments go, and the space with them
    assert reopened.append([{"_id": "after", "blob": "z" * 20_000}]) == 1
    assert reopened.last_error is None
    assert [e["_id"] for e in reopened.read(10)[0]] == ["after"]
    reopened.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
event_batches = st.lists(
    st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), min_size=1, max_size=5),
    max_size=20,
)


@PROPERTY
@given(batches=event_batches, max_events=st.integers(min_value=1, max_value=10))
def test_any_batches_read_back_in_order_live_and_after_reopen(
    batches: list[list[dict]], max_events: int
) -> None:
    expected = [event for events in batches for event in events]
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(directory, max_bytes=1 << 24, segment_bytes=256)
        for events in batches:
            assert spool.append(events) == len(events)
        assert spool.pending_events == len(expected)
        assert read_all(spool, max_events) == expected
        spool.close()
        reopened = Spool(directory, max_bytes=1 << 24, segment_bytes=256)
        assert read_all(reopened, max_events) == expected
        assert reopened.damaged_frames == 0
