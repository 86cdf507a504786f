"""merge_json_line: mapping the common JSON logger keys onto ECS, and leaving non-JSON alone."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.parsers.jsonline import merge_json_line

BASE = {"host.name": "web-1"}

# (name, text, keyword arguments, the fields added to {"message": text, **BASE}).
MERGES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "zap production line",
        '{"level":"info","ts":1714564800.123,"caller":"server/http.go:88",'
        '"msg":"request done","status":200,"trace_id":"4bf92f35","span_id":"00f067aa"}',
        {},
        {
            "log.level": "info",
            "message": "request done",
            "trace.id": "4bf92f35",
            "span.id": "00f067aa",
            "logpipe.json": {"ts": 1714564800.123, "caller": "server/http.go:88", "status": 200},
        },
    ),
    (
        "zap error with logger, error and stacktrace",
        '{"level":"error","ts":1714564800.5,"logger":"http","msg":"dial failed",'
        '"error":"dial tcp 10.0.0.5:5432: connect: connection refused",'
        '"stacktrace":"main.run\\n\\t/app/main.go:42"}',
        {},
        {
            "log.level": "error",
            "log.logger": "http",
            "message": "dial failed",
            "error.message": "dial tcp 10.0.0.5:5432: connect: connection refused",
            "logpipe.json": {"ts": 1714564800.5, "stacktrace": "main.run\n\t/app/main.go:42"},
        },
    ),
    (
        "logrus JSONFormatter",
        '{"level":"warning","msg":"disk almost full","time":"2024-05-01T12:00:00Z","free_mb":512}',
        {},
        {
            "log.level": "warning",
            "message": "disk almost full",
            "logpipe.json": {"time": "2024-05-01T12:00:00Z", "free_mb": 512},
        },
    ),
    (
        "pino: the numeric level and the err object stay under the prefix",
        '{"level":50,"time":1714564800000,"pid":7,"hostname":"web-1",'
        '"err":{"type":"Error","message":"boom","stack":"Error: boom\\n    at main.js:1"},'
        '"msg":"boom"}',
        {},
        {
            "message": "boom",
            "logpipe.json": {
                "level": 50,
                "time": 1714564800000,
                "pid": 7,
                "hostname": "web-1",
                "err": {
                    "type": "Error",
                    "message": "boom",
                    "stack": "Error: boom\n    at main.js:1",
                },
            },
        },
    ),
    (
        "structlog JSONRenderer: 'event' is not a message key, the message stays raw",
        '{"event": "user logged in", "user_id": 42, "level": "info", "logger": "auth", '
        '"timestamp": "2024-05-01T12:00:00.000000Z"}',
        {},
        {
            "log.level": "info",
            "log.logger": "auth",
            "logpipe.json": {
                "event": "user logged in",
                "user_id": 42,
                "timestamp": "2024-05-01T12:00:00.000000Z",
            },
        },
    ),
    (
        "Cloud Logging style severity, upper case, lower-cased",
        '{"severity":"WARNING","message":"slow query","logger_name":"db"}',
        {},
        {"log.level": "warning", "message": "slow query", "log.logger": "db"},
    ),
    (
        "lvl and err",
        '{"lvl":"DEBUG","msg":"tick","err":"timeout"}',
        {},
        {"log.level": "debug", "message": "tick", "error.message": "timeout"},
    ),
    (
        "ECS logging: dotted keys, kept as they are inside the prefix object",
        '{"@timestamp":"2024-05-01T12:00:00.000Z","log.level":"INFO","message":"ok",'
        '"ecs.version":"1.6.0","service.name":"api"}',
        {},
        {
            "log.level": "info",
            "message": "ok",
            "logpipe.json": {
                "@timestamp": "2024-05-01T12:00:00.000Z",
                "ecs.version": "1.6.0",
                "service.name": "api",
            },
        },
    ),
    (
        "the first key present wins; the others stay under the prefix",
        '{"message":"second","msg":"first","severity":"error","level":"warn","err":"b",'
        '"error":"a"}',
        {},
        {
            "log.level": "warn",
            "message": "first",
            "error.message": "a",
            "logpipe.json": {"message": "second", "severity": "error", "err": "b"},
        },
    ),
    (
        "a mapped key that is not a string does not win",
        '{"level":30,"severity":"info","msg":{"text":"x"},"message":"y","trace_id":123}',
        {},
        {
            "log.level": "info",
            "message": "y",
            "logpipe.json": {"level": 30, "msg": {"text": "x"}, "trace_id": 123},
        },
    ),
    (
        "keys are case-sensitive",
        '{"Level":"INFO","MSG":"x"}',
        {},
        {"logpipe.json": {"Level": "INFO", "MSG": "x"}},
    ),
    (
        "nested fields keep their JSON types",
        '{"msg":"req","http":{"method":"GET","status":200,"ok":true},"tags":["a","b"],'
        '"ratio":0.5,"none":null}',
        {},
        {
            "message": "req",
            "logpipe.json": {
                "http": {"method": "GET", "status": 200, "ok": True},
                "tags": ["a", "b"],
                "ratio": 0.5,
                "none": None,
            },
        },
    ),
    (
        "only mapped keys: no prefix object",
        '{"msg":"only","level":"info"}',
        {},
        {"message": "only", "log.level": "info"},
    ),
    ("an empty object merges nothing but is JSON", "{}", {}, {}),
    (
        "surrounding whitespace is stripped",
        ' \t{"msg":"padded"}\r\n',
        {},
        {"message": "padded"},
    ),
    (
        "keep_original keeps the text as it came",
        ' {"msg":"x","a":1}\n',
        {"keep_original": True},
        {"message": "x", "logpipe.json": {"a": 1}, "event.original": ' {"msg":"x","a":1}\n'},
    ),
    (
        "another prefix",
        '{"msg":"x","a":1}',
        {"prefix": "app"},
        {"message": "x", "app": {"a": 1}},
    ),
    (
        "duplicate keys: the last one, as JSON parsers do",
        '{"msg":"one","msg":"two"}',
        {},
        {"message": "two"},
    ),
]

NOT_OBJECTS = [
    ("array", '[{"msg":"x"}]'),
    ("number", "42"),
    ("string", '"{\\"msg\\":\\"x\\"}"'),
    ("null", "null"),
    ("true", "true"),
    ("empty", ""),
    ("whitespace", "  \t "),
    ("plain text", "GET /health 200"),
    ("unterminated", '{"msg":"x"'),
    ("missing value", '{"msg":}'),
    ("single quotes", "{'msg': 'x'}"),
    ("trailing text", '{"msg":"x"} trailing'),
    ("two objects", '{"a":1}{"b":2}'),
    ("trailing comma", '{"a":1,}'),
    ("braces only in text", "{not json}"),
    ("a lone surrogate", '{"msg":"\ud800"}'),
    ("a number too large", '{"n":1e400}'),
    ("nesting too deep", '{"a":' * 2000 + "1" + "}" * 2000),
    ("a byte order mark", '\ufeff{"msg":"x"}'),
    ("NaN", '{"n":NaN}'),
]


@pytest.mark.parametrize(
    ("text", "options", "added"),
    [case[1:] for case in MERGES],
    ids=[case[0] for case in MERGES],
)
def test_merge(text: str, options: dict[str, Any], added: dict[str, Any]) -> None:
    event = {"message": text, **BASE}
    assert merge_json_line(event, text, **options) is True
    assert event == {"message": text, **BASE, **added}


@pytest.mark.parametrize("text", [case[1] for case in NOT_OBJECTS], ids=[c[0] for c in NOT_OBJECTS])
@pytest.mark.parametrize("keep_original", [False, True])
def test_not_an_object_leaves_the_event_alone(text: str, keep_original: bool) -> None:
    event = {"message": text, **BASE}
    assert merge_json_line(event, text, keep_original=keep_original) is False
    assert event == {"message": text, **BASE}


def test_existing_fields_are_overwritten_only_by_mapped_keys() -> None:
    event = {"message": "raw", "log.level": "error", "logpipe.json": {"old": 1}}
    assert merge_json_line(event, '{"msg":"new"}') is True
    assert event == {"message": "new", "log.level": "error", "logpipe.json": {"old": 1}}


JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
MAPPED = ["level", "severity", "lvl", "log.level", "msg", "message", "logger", "logger_name"]
MAPPED += ["error", "err", "trace_id", "span_id"]
KEY = st.sampled_from(MAPPED) | st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(KEY, JSON_VALUE, max_size=8), padding=st.sampled_from(["", " \n"]))
def test_every_key_lands_somewhere(payload: dict[str, Any], padding: str) -> None:
    text = padding + orjson.dumps(payload).decode() + padding
    event: dict[str, Any] = {"message": text}
    assert merge_json_line(event, text, prefix="p") is True
    rest = event.pop("p", None)
    assert rest is None or rest  # never an empty prefix object
    rest = rest or {}
    mapped = {k: v for k, v in event.items() if k != "message" or v != text}
    # Mapped fields are strings taken from the payload; the rest is the payload as it was.
    assert all(isinstance(v, str) for v in mapped.values())
    assert len(mapped) + len(rest) == len(payload)
    for key, value in rest.items():
        assert payload[key] == value


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(max_size=40) | st.text(alphabet='{}[]":,0123456789.eE-+ \\nultrfas', max_size=40)
)
def test_never_raises(text: str) -> None:
    event = {"message": text}
    before = copy.deepcopy(event)
    if not merge_json_line(event, text, keep_original=True):
        assert event == before
