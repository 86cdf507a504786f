"""Property tests for SyslogParser: it never raises, and what it builds it reads back.

The parser has a catch-all safety net in ``parse``; these tests call ``_parse`` (the
same code without the net) so a bug that raises is found instead of hidden.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.parsers.syslog import FACILITY_NAMES, SEVERITY_NAMES, SyslogParser
from logpipe.timefmt import iso_ns

NS = 1_000_000_000
UTC = datetime.UTC
STAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z")
REPO = Path(__file__).resolve().parents[2]
# No per-example deadline: CI machines are shared and slow; these are not timing tests.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

# Value type of every key the parser may emit.
KEY_TYPES: dict[str, type] = {
    "@timestamp": str,
    "message": str,
    "tags": list,
    "log.syslog.priority": int,
    "log.syslog.facility.code": int,
    "log.syslog.facility.name": str,
    "log.syslog.severity.code": int,
    "log.syslog.severity.name": str,
    "log.level": str,
    "log.syslog.version": int,
    "log.syslog.hostname": str,
    "host.hostname": str,
    "log.syslog.appname": str,
    "process.name": str,
    "log.syslog.procid": str,
    "process.pid": int,
    "log.syslog.msgid": str,
    "log.syslog.structured_data": dict,
}

ZONES = st.sampled_from(
    [
        UTC,
        ZoneInfo("Europe/Paris"),
        ZoneInfo("America/Los_Angeles"),
        datetime.timezone(datetime.timedelta(hours=-5)),
        None,
    ]
)
# 1971 .. 2100: any receive time a real clock can give.
RECEIVED = st.integers(min_value=365 * 86400 * NS, max_value=4_102_444_800 * NS)

FRAGMENTS = st.sampled_from(
    [
        b"<",
        b">",
        b"<13>",
        b"<191>",
        b"<0>",
        b"<192>",
        b"<007>",
        b"1 ",
        b"999 ",
        b"- ",
        b"-",
        b" ",
        b"  ",
        b"2026-11-29T15:44:33",
        b"2019-02-29T00:00:00",
        b"9999-12-31T23:59:59",
        b"0000-01-01T00:00:00",
        b".123456789",
        b".1",
        b"Z",
        b"z",
        b"+05:30",
        b"-24:00",
        b"-23:59",
        b"Nov 29 15:44:33",
        b"Feb 29 12:00:00",
        b"Jan  5 00:00:00",
        b"DEC 31 23:59:59",
        b"host",
        b"app",
        b"app[123]",
        b"[123]",
        b": ",
        b":",
        b"[",
        b"]",
        b'"',
        b"\\",
        b"=",
        b"x@1",
        b' a="b"',
        b'\\"',
        b"\\]",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\n",
        b"\r\n",
        b"\x00",
        b"\t",
        b"msg",
        "é".encode(),
    ]
)
SYSLOGISH = st.lists(FRAGMENTS, max_size=24).map(b"".join)


def check_event(parsed: dict[str, Any]) -> None:
    """The invariants every returned event keeps, whatever the input."""
    assert isinstance(parsed["message"], str)
    assert STAMP_RE.fullmatch(parsed["@timestamp"]), parsed["@timestamp"]
    for name, value in parsed.items():
        assert isinstance(value, KEY_TYPES[name]), name
    if "tags" in parsed:
        assert parsed["tags"] == ["_syslog_parse_failure"]
        assert set(parsed) == {"@timestamp", "message", "tags"}
    if "log.syslog.priority" in parsed:
        pri = parsed["log.syslog.priority"]
        assert 0 <= pri <= 191
        assert parsed["log.syslog.facility.name"] == FACILITY_NAMES[pri >> 3]
        assert parsed["log.level"] == SEVERITY_NAMES[pri & 7]
    for sd_id, params in parsed.get("log.syslog.structured_data", {}).items():
        assert isinstance(sd_id, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


@settings(PROPERTY, max_examples=400)
@given(data=st.binary(max_size=300), zone=ZONES, received_ns=RECEIVED)
def test_arbitrary_bytes_never_raise(
    data: bytes, zone: datetime.tzinfo | None, received_ns: int
) -> None:
    parser = SyslogParser(zone)
    check_event(parser._parse(data, received_ns))
    check_event(parser.parse(data, received_ns))


@settings(PROPERTY, max_examples=600)
@given(
    data=st.one_of(SYSLOGISH, st.tuples(SYSLOGISH, st.binary(max_size=20)).map(b"".join)),
    zone=ZONES,
    received_ns=RECEIVED,
)
def test_syslog_looking_bytes_never_raise(
    data: bytes, zone: datetime.tzinfo | None, received_ns: int
) -> None:
    parsed = SyslogParser(zone)._parse(data, received_ns)
    check_event(parsed)
    if "tags" in parsed:
        # Nothing is lost: the failure form carries the whole input as text, less
        # only trailing framing bytes.
        text = data.decode("utf-8", "replace")
        assert text.startswith(parsed["message"])
        assert not text[len(parsed["message"]) :].strip("\n\r\x00")


# ------------------------------------------------------------ round trips (RFC 5424)

PRINTUSASCII = st.characters(min_codepoint=33, max_codepoint=126)
SD_NAME = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='="]'),
    min_size=1,
    max_size=32,
)
SD_VALUE = st.text(max_size=20)
# A free-form MSG: no BOM of its own (one may be added), no trailing framing bytes.
MSG = st.text(max_size=40).filter(lambda s: not s.startswith("\ufeff") and s == s.rstrip("\n\x00"))


def field(max_size: int) -> st.SearchStrategy[str]:
    return st.text(PRINTUSASCII, min_size=1, max_size=max_size)


def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@st.composite
def stamp_5424(draw: st.DrawFn) -> tuple[str, int] | None:
    """RFC 3339 text and its epoch ns, or None for NILVALUE."""
    if draw(st.booleans()):
        return None
    # Wall-clock time at the offset, as seconds from 1970 (1970-01-02 .. 2261-12-31):
    # what @timestamp (date_nanos) can hold, whatever the offset.
    wall = draw(st.integers(86_400, 9_214_560_000))
    moment = EPOCH + datetime.timedelta(seconds=wall)
    fraction = draw(st.text("0123456789", max_size=9))
    offset = draw(st.one_of(st.sampled_from(["Z", "z"]), st.integers(-1439, 1439)))
    text = moment.strftime("%Y-%m-%d") + draw(st.sampled_from("Tt")) + moment.strftime("%H:%M:%S")
    if fraction:
        text += "." + fraction
    shift = 0
    if isinstance(offset, str):
        text += offset
    else:
        shift = offset * 60
        text += f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    seconds = wall - shift
    return text, seconds * NS + int(fraction.ljust(9, "0") or "0")


@settings(PROPERTY, max_examples=300)
@given(
    pri=st.integers(0, 191),
    version=st.integers(1, 999),
    stamp=stamp_5424(),
    host=field(255),
    app=field(48),
    procid=field(128),
    msgid=field(32),
    sd=st.one_of(
        st.none(),
        st.dictionaries(
            SD_NAME, st.dictionaries(SD_NAME, SD_VALUE, max_size=3), min_size=1, max_size=3
        ),
    ),
    msg=st.one_of(st.none(), MSG),
    bom=st.booleans(),
    received_ns=RECEIVED,
)
def test_rfc5424_round_trip(
    pri: int,
    version: int,
    stamp: tuple[str, int] | None,
    host: str,
    app: str,
    procid: str,
    msgid: str,
    sd: dict[str, dict[str, str]] | None,
    msg: str | None,
    bom: bool,
    received_ns: int,
) -> None:
    sd_text = "-"
    if sd is not None:
        sd_text = "".join(
            "[" + sd_id + "".join(f' {k}="{sd_escape(v)}"' for k, v in params.items()) + "]"
            for sd_id, params in sd.items()
        )
    header = (
        f"<{pri}>{version} {stamp[0] if stamp else '-'} {host} {app} {procid} {msgid} {sd_text}"
    )
    raw = header if msg is None else header + " " + ("\ufeff" if bom else "") + msg
    parsed = SyslogParser(UTC)._parse(raw.encode(), received_ns)
    check_event(parsed)
    assert "tags" not in parsed, raw
    assert parsed["@timestamp"] == iso_ns(stamp[1] if stamp else received_ns)
    assert parsed["message"] == (msg or "")
    assert parsed["log.syslog.priority"] == pri
    assert parsed["log.syslog.version"] == version
    for value, name in (
        (host, "log.syslog.hostname"),
        (app, "log.syslog.appname"),
        (procid, "log.syslog.procid"),
        (msgid, "log.syslog.msgid"),
    ):
        assert parsed.get(name) == (None if value == "-" else value)
    assert parsed.get("log.syslog.structured_data") == sd


# ------------------------------------------------------- round trips (local form)

TAG = st.text(
    st.characters(exclude_characters=" []:", exclude_categories=("Cs",)), min_size=1, max_size=20
)
HOST = st.text(
    st.characters(exclude_characters=" [", exclude_categories=("Cs",)), min_size=1, max_size=20
).filter(lambda s: not s.endswith(":"))
FIXED_MINUS_3 = datetime.timezone(datetime.timedelta(hours=-3))
# Shared across examples on purpose: the stamp caches must stay right as receipts jump.
SHARED = {UTC: SyslogParser(UTC), FIXED_MINUS_3: SyslogParser(FIXED_MINUS_3)}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@settings(PROPERTY, max_examples=300)
@given(
    zone=st.sampled_from([UTC, FIXED_MINUS_3]),
    wall=st.integers(2 * 365 * 86400, 4_070_908_800),  # 1972 .. 2099, as if UTC
    lag_ns=st.one_of(st.integers(0, NS - 1), st.integers(-100 * 86400 * NS, 100 * 86400 * NS)),
    host=st.one_of(st.none(), HOST),
    tag=TAG,
    pid=st.one_of(st.none(), st.integers(0, 4_194_304)),
    msg=MSG,
    pri=st.integers(0, 191),
)
def test_bsd_round_trip(
    zone: datetime.tzinfo,
    wall: int,
    lag_ns: int,
    host: str | None,
    tag: str,
    pid: int | None,
    msg: str,
    pri: int,
) -> None:
    moment = EPOCH + datetime.timedelta(seconds=wall)
    stamp = f"{MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"
    raw = f"<{pri}>{stamp} " + (f"{host} " if host else "") + tag
    raw += (f"[{pid}]" if pid is not None else "") + ": " + msg
    offset = zone.utcoffset(None)
    assert offset is not None
    stamp_ns = (wall - int(offset.total_seconds())) * NS
    received_ns = stamp_ns + lag_ns
    parsed = SHARED[zone]._parse(raw.encode(), received_ns)
    check_event(parsed)
    same_second = received_ns // NS == stamp_ns // NS
    assert parsed["@timestamp"] == iso_ns(received_ns if same_second else stamp_ns), raw
    assert parsed["message"] == msg
    assert parsed.get("log.syslog.hostname") == host
    assert parsed["log.syslog.appname"] == tag
    assert parsed.get("process.pid") == pid


def test_import_pulls_in_no_asyncio_or_aiohttp() -> None:
    code = (
        "import sys\n"
        "import logpipe.parsers.syslog\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'aiohttp'))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "stamp", ["1969-12-31T23:59:59Z", "2262-04-12T00:00:00Z", "9999-12-31T23:59:59.123Z"]
)
def test_a_stamp_that_date_nanos_cannot_hold_keeps_the_message_whole_as_a_failure(
    stamp: str,
) -> None:
    """Found by tests/fuzz: such a stamp made a document Elasticsearch refuses."""
    raw = f"<13>1 {stamp} host app - - - text".encode()
    event = SyslogParser(UTC).parse(raw, 1_764_410_000 * NS)
    assert event["tags"] == ["_syslog_parse_failure"]
    assert event["message"] == raw.decode()
    assert event["@timestamp"].startswith("2025-11-29T")
