"""The bounded queue, loss bookkeeping, stamping and ids."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest

from logpipe.event import Stamper, expand, loss_marker
from logpipe.outputs import bulk
from logpipe.parsers.cee import apply_cee
from logpipe.queue import EventQueue, LossTracker
from logpipe.spool import Spool
from logpipe.timefmt import iso_ns


def test_iso_ns_formats_utc_with_nanoseconds() -> None:
    assert iso_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_ns(1_764_430_615_123_456_789) == "2025-11-29T15:36:55.123456789Z"
    assert iso_ns(1_764_430_616_000_000_001) == "2025-11-29T15:36:56.000000001Z"


def test_queue_bounds_by_events_and_bytes() -> None:
    async def scenario() -> None:
        q = EventQueue(max_events=3, max_bytes=1000, when_full="drop_newest")
        assert q.room() == 3
        q.put_many([{"n": 1}, {"n": 2}], [100, 100])
        assert q.room() == 1
        q.put_many([{"n": 3}], [900])
        assert q.room() == 0 and q.bytes == 1100
        q.put_marker({"marker": True})  # markers ignore the bounds
        assert len(q) == 4
        batch = q.take_nowait(max_events=10, max_bytes=250)
        assert [e.get("n") for e in batch] == [1, 2]  # byte bound cuts the batch
        assert q.room() == 1  # 2 of 3 events held (the marker counts), 900 of 1000 bytes
        rest = await q.take(10, 10_000, 0.01)
        assert [e.get("n") for e in rest] == [3, None]
        assert q.room() == 3 and q.bytes == 0

    asyncio.run(scenario())


def test_take_waits_for_a_full_batch_up_to_max_wait() -> None:
    async def scenario() -> None:
        q = EventQueue(100, 10**6, "block")
        q.put_many([{"n": 1}], [10])
        loop = asyncio.get_running_loop()
        start = loop.time()
        batch = await q.take(10, 10**6, 0.2)
        assert len(batch) == 1 and loop.time() - start >= 0.19
        loop.call_later(0.05, q.put_many, [{"n": i} for i in range(10)], [1] * 10)
        start = loop.time()
        batch = await q.take(10, 10**6, 5)
        assert len(batch) == 10 and loop.time() - start < 1

    asyncio.run(scenario())


def test_block_policy_waits_for_room() -> None:
    async def scenario() -> None:
        q = EventQueue(1, 10**6, "block")
        q.put_many([{"n": 1}], [1])
        waiter = asyncio.ensure_future(q.wait_for_room())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        q.take_nowait(1, 10)
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


def _spilling_queue(directory, max_events: int, spool_bytes: int = 1 << 20) -> EventQueue:
    q = EventQueue(max_events, 10**6, "spill")
    q.spool = Spool(str(directory), spool_bytes, segment_bytes=4096)
    return q


def test_spill_keeps_arrival_order_through_the_spool(tmp_path) -> None:
    async def scenario() -> None:
        q = _spilling_queue(tmp_path, max_events=10)
        assert q.room() == 10
        assert q.put_many([{"n": i} for i in range(25)], [10] * 25) == 0
        assert q.spool is not None and q.spool.pending_events == 15
        # Memory has room again after a take, but new events queue behind the spooled.
        first = q.take_nowait(4, 10**6)
        assert q.put_many([{"n": 25}, {"n": 26}], [10, 10]) == 0
        taken = [e["n"] for e in first]
        while len(q):
            taken += [e["n"] for e in await q.take(7, 10**6, 0)]
        assert taken == list(range(27))
        assert q.spool.pending_events == 0

    asyncio.run(scenario())


def test_spill_past_the_spool_bound_is_refused_and_reported(tmp_path) -> None:
    async def scenario() -> None:
        q = _spilling_queue(tmp_path, max_events=2, spool_bytes=300)
        big = [{"n": i, "message": "x" * 100} for i in range(10)]
        refused = q.put_many(big, [100] * 10)
        assert refused == 8  # 2 in memory; the 8 others, one frame, exceed 300 bytes
        assert [e["n"] for e in q.take_nowait(10, 10**6)] == [0, 1]

    asyncio.run(scenario())


def test_stop_spools_memory_and_the_next_start_ships_it(tmp_path) -> None:
    async def first_run() -> None:
        q = _spilling_queue(tmp_path, max_events=100)
        q.put_many([{"n": i} for i in range(5)], [10] * 5)
        assert q.spool_memory() == 5 and len(q) == 5
        assert q.spool is not None
        q.spool.close()

    async def second_run() -> list[int]:
        q = _spilling_queue(tmp_path, max_events=100)
        return [e["n"] for e in await q.take(100, 10**6, 0)]

    asyncio.run(first_run())
    assert asyncio.run(second_run()) == [0, 1, 2, 3, 4]


def test_durable_queue_acknowledges_only_what_was_delivered(tmp_path) -> None:
    async def first_run() -> None:
        q = EventQueue(100, 10**6, "drop_newest")
        q.make_durable(Spool(str(tmp_path), 1 << 20, segment_bytes=4096))
        for start in (0, 10, 20):  # three frames of ten
            assert q.put_many([{"n": i} for i in range(start, start + 10)], [10] * 10) == 0
        assert len(q) == 30
        batch = await q.take(15, 10**6, 0)
        assert [e["n"] for e in batch] == list(range(15))
        q.done(getattr(batch, "token", None))  # frame 1 whole, frame 2 half: ack frame 1
        q.take_nowait(100, 10**6)  # taken, never delivered: a crash comes first
        assert q.spool is not None
        q.spool.sync()  # no close: as after SIGKILL

    async def second_run() -> list[int]:
        q = EventQueue(100, 10**6, "drop_newest")
        q.make_durable(Spool(str(tmp_path), 1 << 20, segment_bytes=4096))
        return [e["n"] for e in await q.take(100, 10**6, 0)]

    asyncio.run(first_run())
    assert asyncio.run(second_run()) == list(range(10, 30))


def test_durable_queue_keeps_a_loss_marker_through_a_crash(tmp_path) -> None:
    async def first_run() -> None:
        q = EventQueue(100, 10**6, "drop_newest")
        q.make_durable(Spool(str(tmp_path), 1 << 20, segment_bytes=4096))
        assert q.put_many([{"n": 1}], [10]) == 0
        q.put_marker({"event.action": "dropped", "logpipe.loss.count": 7})
        assert q.spool is not None
        q.spool.sync()  # no close: as after SIGKILL

    async def second_run() -> list[dict]:
        q = EventQueue(100, 10**6, "drop_newest")
        q.make_durable(Spool(str(tmp_path), 1 << 20, segment_bytes=4096))
        return list(await q.take(100, 10**6, 0))

    asyncio.run(first_run())
    assert asyncio.run(second_run()) == [
        {"n": 1},
        {"event.action": "dropped", "logpipe.loss.count": 7},
    ]


def test_loss_tracker_and_marker() -> None:
    tracker = LossTracker("devlog")
    tracker.add(5, "queue_full", 1_000, 2_000)
    tracker.add(7, "queue_full", 3_000, 4_000)
    count, reason, first, last = tracker.take()
    assert (count, reason, first, last) == (12, "queue_full", 1_000, 4_000)
    assert tracker.count == 0
    marker = loss_marker(Stamper("n", "devlog", "devlog"), "devlog", reason, count, first, last, 5)
    assert marker["event.action"] == "dropped"
    assert marker["logpipe.loss.count"] == 12
    assert marker["event.start"] == iso_ns(1_000) and marker["event.end"] == iso_ns(4_000)
    assert "dropped 12 events" in marker["message"]


def test_stamper_ids_are_unique_per_run_and_sequence() -> None:
    a, b = Stamper("node", "devlog", "devlog"), Stamper("node", "devlog", "devlog")
    ids = {a.stamp({}, 1)["_id"] for _ in range(1000)} | {
        b.stamp({}, 1)["_id"] for _ in range(1000)
    }
    assert len(ids) == 2000
    event = a.stamp({"message": "m"}, 1_000_000_000)
    assert event["event.sequence"] == 1001
    assert event["event.created"] == "1970-01-01T00:00:01.000000000Z"
    source = orjson.loads(bulk.encode([event])[0].source)
    assert source["host.name"] == "node" and source["agent.type"] == "logpipe"
    assert source["event.dataset"] == "logpipe.devlog" and source["message"] == "m"


def _keys(source: bytes) -> list[str]:
    """The document's keys in order, duplicates kept (a dict would hide them)."""
    return [k for k, _ in json.loads(source, object_pairs_hook=lambda pairs: pairs)]


def test_constant_fields_reach_every_consumer_once_and_ours_win() -> None:
    stamper = Stamper("node", "devlog", "devlog")
    plain = stamper.stamp({"message": "m"}, 1)
    # A message that brought a host.name of its own (an @cee payload, a forward
    # record): the node's wins, as it did when the fields were copied in.
    claimed = stamper.stamp({"message": "m", "host.name": "elsewhere"}, 1)
    docs = bulk.encode([plain, claimed])
    for doc in docs:
        keys = _keys(doc.source)
        assert len(keys) == len(set(keys)), keys
        assert "_constants" not in keys and "_id" not in keys
        assert orjson.loads(doc.source)["host.name"] == "node"
    # The forward output and anything else that is not the bulk encoder: expand().
    other = expand(stamper.stamp({"message": "m"}, 1))
    assert other["agent.name"] == "node" and "_constants" not in other


def test_spooled_events_keep_their_constant_fields(tmp_path: Path) -> None:
    stamper = Stamper("node", "syslog", "syslog")
    spool = Spool(str(tmp_path), 1 << 20, segment_bytes=4096)
    assert spool.append([stamper.stamp({"message": "m"}, 1)]) == 1
    events, _ = Spool(str(tmp_path), 1 << 20, segment_bytes=4096).read(10)
    source = orjson.loads(bulk.encode(events)[0].source)
    assert source["event.dataset"] == "logpipe.syslog" and source["agent.type"] == "logpipe"
    assert "_constants" not in source


@pytest.mark.parametrize(
    ("message", "expected_message", "cee", "tags"),
    [
        ('@cee: {"msg": "hi", "a": {"b": 1}}', "hi", {"msg": "hi", "a": {"b": 1}}, None),
        ('@cee:{"x": 1}', '@cee:{"x": 1}', {"x": 1}, None),
        ("@cee: {broken", "@cee: {broken", None, ["_cee_parse_failure"]),
        ("@cee: [1, 2]", "@cee: [1, 2]", None, ["_cee_parse_failure"]),
    ],
)
def test_cee(message, expected_message, cee, tags) -> None:
    event = {"message": message}
    apply_cee(event)
    assert event["message"] == expected_message
    assert event.get("logpipe.cee") == cee
    assert event.get("tags") == tags
