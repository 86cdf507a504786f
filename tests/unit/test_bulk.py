"""The _bulk protocol, pure: encoding once, classifying answers item by item."""

from __future__ import annotations

import orjson

from logpipe.outputs import bulk


def _docs(n: int) -> list[bulk.Doc]:
    return bulk.encode([{"_id": f"id{i}", "message": f"m{i}", "n": i} for i in range(n)])


def _answer(*items: dict) -> bytes:
    errors = any(i.get("status", 201) >= 300 for i in items)
    return orjson.dumps({"errors": errors, "items": [{"create": i} for i in items]})


def test_encode_pops_id_and_body_is_ndjson() -> None:
    events = [{"_id": "a1", "message": "hi"}]
    docs = bulk.encode(events)
    assert "_id" not in events[0]
    lines = bulk.body(docs).split(b"\n")
    assert lines == [b'{"create":{"_id":"a1"}}', b'{"message":"hi"}', b""]


def test_all_created() -> None:
    docs = _docs(3)
    outcome = bulk.classify(docs, orjson.dumps({"errors": False, "items": [{}] * 3}))
    assert outcome.delivered == 3 and not outcome.retry and not outcome.rejected


def test_mixed_answer_is_split_by_item() -> None:
    docs = _docs(6)
    answer = _answer(
        {"status": 201},
        {"status": 409, "error": {"type": "version_conflict_engine_exception"}},
        {"status": 429, "error": {"type": "es_rejected_execution_exception"}},
        {"status": 503, "error": {"type": "unavailable_shards_exception"}},
        {
            "status": 400,
            "error": {
                "type": "document_parsing_exception",
                "reason": "bad [x]",
                "caused_by": {"reason": "not an object"},
            },
        },
        {"status": 500, "error": {"type": "es_rejected_execution_exception"}},
    )
    outcome = bulk.classify(docs, answer)
    assert outcome.created == 1 and outcome.duplicates == 1 and outcome.delivered == 2
    assert [d.id for d in outcome.retry] == ["id2", "id3", "id5"]
    assert outcome.retry_reasons == {"rejected_execution": 1, "status_503": 1, "status_500": 1}
    [rejected] = outcome.rejected
    assert rejected.doc.id == "id4"
    assert rejected.error_type == "document_parsing_exception"
    assert rejected.reason == "bad [x]: not an object"


def test_unreadable_or_short_answers_retry_everything() -> None:
    docs = _docs(2)
    for answer in (b"<html>proxy</html>", b'{"errors":true,"items":[{}]}', b"{}"):
        outcome = bulk.classify(docs, answer)
        assert len(outcome.retry) == 2 and outcome.delivered == 0, answer


def test_dead_letter_keeps_the_original_whole() -> None:
    [doc] = bulk.encode(
        [
            {
                "_id": "x",
                "@timestamp": "2026-01-01T00:00:00.000000000Z",
                "message": "boom",
                "event.dataset": "logpipe.devlog",
            }
        ]
    )
    letter = bulk.dead_letter(
        bulk.Rejection(doc, 400, "document_parsing_exception", "why"),
        "logs-logpipe-default",
        {"host.name": "n"},
        "2026-01-02T00:00:00.000000000Z",
    )
    assert letter["event.original"] == doc.source.decode()
    assert letter["message"] == "boom"
    assert letter["error.message"] == "why"
    assert letter["@timestamp"] == "2026-01-01T00:00:00.000000000Z"
    assert letter["_id"] == "x" and letter["event.dataset"] == "logpipe.devlog"


def test_a_mapping_conflict_is_repaired_into_logpipe_conflicts() -> None:
    doc = bulk.Doc("id-1", orjson.dumps({"message": "m", "logpipe.cee": {"detail": "plain"}}))
    reason = (
        "[1:240] object mapping for [logpipe.cee.detail] tried to parse field [detail] as "
        "object, but found a concrete value"
    )
    fixed = bulk.repair_conflict(bulk.Rejection(doc, 400, "document_parsing_exception", reason))
    assert fixed is not None and fixed.id == "id-1"
    source = orjson.loads(fixed.source)
    assert source["logpipe.conflicts.logpipe.cee.detail"] == "plain"
    assert source["logpipe.cee"] == {} and source["tags"] == ["_mapping_conflict"]
    typed = bulk.Doc("id-2", orjson.dumps({"n.count": [1, 2]}))
    reason = "failed to parse field [n.count] of type [long] in document with id 'id-2'"
    fixed = bulk.repair_conflict(bulk.Rejection(typed, 400, "document_parsing_exception", reason))
    assert fixed is not None
    assert orjson.loads(fixed.source)["logpipe.conflicts.n.count"] == "[1,2]"
    # Not a conflict, or a field it cannot find: left for the dead-letter stream.
    other = bulk.Rejection(doc, 400, "illegal_argument_exception", "failed to parse field [x]")
    assert bulk.repair_conflict(other) is None
    missing = bulk.Rejection(doc, 400, "document_parsing_exception", "failed to parse field [y]")
    assert bulk.repair_conflict(missing) is None


def test_daily_index_follows_each_events_own_day() -> None:
    daily = bulk.DailyIndex("logs-app-%Y.%m.%d")
    events = [
        {"_id": "a", "@timestamp": "2026-11-28T23:59:59.999999999Z", "message": "late"},
        {"_id": "b", "@timestamp": "2026-11-29T00:00:00.000000001Z", "message": "early"},
    ]
    docs = bulk.encode(events, daily)
    assert [d.index for d in docs] == ["logs-app-2026.11.28", "logs-app-2026.11.29"]
    lines = bulk.body(docs).split(b"\n")
    assert orjson.loads(lines[0]) == {"create": {"_index": "logs-app-2026.11.28", "_id": "a"}}
    assert orjson.loads(lines[2]) == {"create": {"_index": "logs-app-2026.11.29", "_id": "b"}}
    assert orjson.loads(lines[3])["message"] == "early"


def test_daily_index_of_an_unreadable_timestamp_is_todays() -> None:
    import time

    daily = bulk.DailyIndex("x-%Y.%j")
    today = time.strftime("x-%Y.%j", time.gmtime())
    assert daily.name_for("yesterday-ish") == daily.name_for(None) == today
    assert daily.name_for("1999-12-31T00:00:00Z") == "x-1999.365"


def test_a_dead_letter_names_the_index_that_refused_it() -> None:
    [doc] = bulk.encode(
        [{"_id": "z", "@timestamp": "2026-01-02T00:00:00Z", "message": "m"}],
        bulk.DailyIndex("logs-%Y.%m.%d"),
    )
    rejection = bulk.Rejection(doc, 400, "document_parsing_exception", "bad")
    letter = bulk.dead_letter(rejection, "logs-%Y.%m.%d", {}, "2026-01-03T00:00:00Z")
    assert letter["logpipe.dlq.data_stream"] == "logs-2026.01.02"
