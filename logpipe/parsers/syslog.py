"""Syslog messages (RFC 5424, RFC 3164 and the local /dev/log form) to flat ECS fields.

One parser for every syslog input: bytes and the receive time in, a flat dict with
dotted ECS keys out (Elasticsearch expands the dots). It never raises on input bytes:
what it cannot read comes back whole in ``message`` with the receive time and
``tags: ["_syslog_parse_failure"]``, so nothing is lost and bad senders are visible.

Which form a message is in:

* ``<PRI>`` then ``VERSION SP`` then "-", a digit or nothing: RFC 5424. It is read
  strictly (field lengths, PRINTUSASCII, STRUCTURED-DATA syntax, a real date): a
  malformed one becomes the failure form. Leniencies: lower-case 't'/'z', 1..9 fraction
  digits, a repeated SD-ID (merged, first value of a param wins), an unescaped ']'
  inside a quoted SD value, invalid UTF-8 anywhere (replaced). A timestamp with the
  right shape but impossible values (month 13, Sep 31, hour 24, offset -24:00) makes
  the whole message a failure rather than "time unknown": the original text is then
  kept intact instead of silently swapping in the receive time.
* ``<PRI>`` then a BSD stamp ``Mmm dd hh:mm:ss`` (or an RFC 3339 stamp, as rsyslog
  sends): RFC 3164 with a HOSTNAME, or the local form without one (see
  :func:`logpipe.parsers.rfc3164.split_body` for the heuristic). An impossible stamp
  (Feb 30, hour 25) is a failure, as for RFC 5424.
* ``<PRI>`` and anything else: Python's ``SysLogHandler`` without a formatter. The
  priority is kept and the rest is the message, with the receive time.
* No PRI but a BSD or RFC 3339 stamp first (a line of /var/log/syslog): parsed as
  RFC 3164 without the priority fields. Anything else without a PRI is a failure.

Trailing "\\n", "\\r\\n" and "\\0" (framing, SysLogHandler's NUL) are removed first;
leading whitespace is not, since it is never part of valid syslog.
"""

from __future__ import annotations

import datetime
from typing import Any

from logpipe.parsers import rfc3164, rfc5424
from logpipe.timefmt import MAX_NS, NS_PER_SECOND, iso_ns

SEVERITY_NAMES: tuple[str, ...] = (
    "emerg",
    "alert",
    "crit",
    "err",
    "warning",
    "notice",
    "info",
    "debug",
)
FACILITY_NAMES: tuple[str, ...] = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)

TAG_PARSE_FAILURE = "_syslog_parse_failure"

# The six priority fields of each PRI value, built once: merging a ready dict is
# cheaper than a divmod and two tuple lookups per event.
_PRI_FIELDS: tuple[dict[str, Any], ...] = tuple(
    {
        "log.syslog.priority": pri,
        "log.syslog.facility.code": pri >> 3,
        "log.syslog.facility.name": FACILITY_NAMES[pri >> 3],
        "log.syslog.severity.code": pri & 7,
        "log.syslog.severity.name": SEVERITY_NAMES[pri & 7],
        "log.level": SEVERITY_NAMES[pri & 7],
    }
    for pri in range(192)
)

# "<13>" -> 13 for every PRI text we accept (1..3 digits, leading zeros allowed, <= 191):
# one slice and one dict lookup instead of isdigit/int/range checks per event.
_PRI_BY_TEXT: dict[str, int] = {
    f"<{value:0{width}d}>": value for width in (1, 2, 3) for value in range(min(192, 10**width))
}

# @timestamp is date_nanos: a stamp before 1970 or after 2262 cannot be stored, and a
# message that carries one is kept whole as a failure (found by tests/fuzz: such a
# document was refused by Elasticsearch and went to the dead-letter stream).
_MIN_NS = 0
_MAX_NS = MAX_NS

_BOM = "\ufeff"
# Sentinels below every valid stamp.
_NO_STAMP = _MIN_NS - 1
_BAD_STAMP = _MIN_NS - 2


def _strip_trailer(data: bytes) -> bytes:
    """Drop trailing "\\n", "\\r\\n" and "\\0" (any run of them); a lone "\\r" stays."""
    end = len(data)
    while end:
        last = data[end - 1]
        if last == 0:
            end -= 1
        elif last == 10:
            end -= 1
            if end and data[end - 1] == 13:
                end -= 1
        else:
            break
    return data[:end]


def _failure(text: str, received_ns: int) -> dict[str, Any]:
    """The failure form: the whole message as text, the receive time, the tag."""
    # A fresh list each time: inputs append their own tags to it.
    return {"@timestamp": iso_ns(received_ns), "message": text, "tags": [TAG_PARSE_FAILURE]}


def _add_process(event: dict[str, Any], tag: str | None, pid: str | None) -> None:
    """Set appname/procid and their ECS twins; process.pid only for an int64 PID."""
    if tag is not None:
        event["log.syslog.appname"] = event["process.name"] = tag
    if pid is not None:
        event["log.syslog.procid"] = pid
        if len(pid) <= 18 and pid.isascii() and pid.isdigit():
            event["process.pid"] = int(pid)


class SyslogParser:
    """Parse syslog datagrams/frames into flat ECS dicts; one instance per input.

    Not thread-safe (the stamp caches are plain attributes); cheap to make one per
    input. The caches hold the last stamp text seen and its epoch seconds, because
    consecutive messages nearly always share the same second.
    """

    __slots__ = ("_bsd_sec", "_bsd_text", "_iso_date_time", "_iso_offset", "_iso_sec", "_zone")

    def __init__(self, zone: datetime.tzinfo | None = None) -> None:
        """zone: the zone for stamps that carry none (RFC 3164).

        None means the host's local zone.
        """
        self._zone = zone
        # RFC 3164 stamp cache: stamp text -> epoch seconds (valid near that instant).
        self._bsd_text = ""
        self._bsd_sec = 0
        # RFC 3339 cache: (date-time to the second, offset) -> epoch seconds.
        self._iso_date_time = ""
        self._iso_offset = ""
        self._iso_sec = 0

    def parse(self, data: bytes, received_ns: int) -> dict[str, Any]:
        """Parse one syslog message into flat ECS fields.

        RFC 5424, RFC 3164, or the local /dev/log form; never raises. ``received_ns``
        (epoch ns) is @timestamp when the message has no usable time of its own.
        """
        try:
            return self._parse(data, received_ns)
        except Exception:  # noqa: BLE001 - the promise is "never raises"; a bug here must not drop the event
            return _failure(bytes(data).decode("utf-8", "replace"), received_ns)

    def _parse(self, data: bytes, received_ns: int) -> dict[str, Any]:
        """:meth:`parse` without the safety net (the tests call this to find bugs)."""
        if data and data[-1] in (0, 10):
            stripped = data.rstrip(b"\n\x00")
            # rstrip alone would keep the "\r" of "\r\n": the exact (slower) rule then.
            data = _strip_trailer(data) if stripped.endswith(b"\r") else stripped
        text = data.decode("utf-8", "replace")
        if not text.startswith("<"):
            return self._parse_bsd(text, 0, -1, received_ns)
        pos = text.find(">", 1, 5) + 1
        pri = _PRI_BY_TEXT.get(text[:pos], -1) if pos else -1
        if pri < 0:
            return _failure(text, received_ns)
        # A letter (the BSD stamp's month) is by far the common case: skip the regex.
        if "0" <= text[pos : pos + 1] <= "9" and rfc5424.COMMIT_RE.match(text, pos):
            return self._parse_5424(text, pos, pri, received_ns)
        return self._parse_bsd(text, pos, pri, received_ns)

    def _iso_ns(self, date_time: str, fraction: str | None, offset: str) -> int:
        """Epoch ns of RFC 3339 groups, or _BAD_STAMP; cached on the whole second."""
        if date_time == self._iso_date_time and offset == self._iso_offset:
            seconds = self._iso_sec
        else:
            computed = rfc5424.epoch_seconds(date_time, offset)
            if computed is None:
                return _BAD_STAMP
            seconds = self._iso_sec = computed
            self._iso_date_time = date_time
            self._iso_offset = offset
        ns = seconds * NS_PER_SECOND
        if fraction:
            ns += int(fraction) * 10 ** (9 - len(fraction))
        if not _MIN_NS <= ns <= _MAX_NS:
            return _BAD_STAMP
        return ns

    def _parse_5424(self, text: str, pos: int, pri: int, received_ns: int) -> dict[str, Any]:
        """RFC 5424 from ``pos`` (just after the PRI); strict, see the module docstring."""
        match = rfc5424.HEADER_RE.match(text, pos)
        if match is None:
            return _failure(text, received_ns)
        version, date_time, fraction, offset, host, app, procid, msgid = match.groups()
        if date_time is None:
            stamp_ns = received_ns
        else:
            stamp_ns = self._iso_ns(date_time, fraction, offset)
            if stamp_ns == _BAD_STAMP:
                return _failure(text, received_ns)
        end = match.end()
        marker = text[end : end + 1]
        structured: dict[str, dict[str, str]] | None = None
        if marker == "-":
            end += 1
        elif marker == "[":
            structured, end = rfc5424.parse_structured_data(text, end)
            if structured is None:
                return _failure(text, received_ns)
        else:
            return _failure(text, received_ns)
        if end == len(text):
            message = ""
        elif text[end] == " ":
            message = text[end + 1 :]
            if message.startswith(_BOM):
                message = message[1:]
        else:
            return _failure(text, received_ns)
        event = {"@timestamp": iso_ns(stamp_ns), "message": message, **_PRI_FIELDS[pri]}
        event["log.syslog.version"] = int(version)
        if host != "-":
            event["log.syslog.hostname"] = event["host.hostname"] = host
        _add_process(event, None if app == "-" else app, None if procid == "-" else procid)
        if msgid != "-":
            event["log.syslog.msgid"] = msgid
        if structured is not None:
            event["log.syslog.structured_data"] = structured
        return event

    def _bsd_stamp(self, text: str, pos: int, received_ns: int) -> tuple[int, int]:
        """(epoch ns, end) of a BSD or RFC 3339 stamp at ``pos``; ns is _NO_STAMP/_BAD_STAMP.

        The cache miss path of :meth:`_parse_bsd` (which checks the cache inline).
        """
        recv_sec = received_ns // NS_PER_SECOND
        match = rfc3164.BSD_STAMP_RE.match(text, pos)
        if match is not None:
            month, day, hour, minute, second = match.groups()
            seconds = rfc3164.bsd_stamp_seconds(
                self._zone, month, int(day), (int(hour), int(minute), int(second)), recv_sec
            )
            if seconds is None:
                return _BAD_STAMP, pos
            self._bsd_text = match.group()
            self._bsd_sec = seconds
            # Same wall-clock second as the receive stamp: use the precise one.
            return (received_ns if seconds == recv_sec else seconds * NS_PER_SECOND), match.end()
        match = rfc3164.ISO_STAMP_RE.match(text, pos)
        if match is not None:
            return self._iso_ns(*match.groups()), match.end()
        return _NO_STAMP, pos

    def _parse_bsd(self, text: str, pos: int, pri: int, received_ns: int) -> dict[str, Any]:
        """RFC 3164 / local form / bare <PRI>MSG from ``pos``; ``pri`` -1 means no PRI."""
        start = pos
        if pri >= 0 and text.startswith(" ", pos):
            # "<134> Feb 29 ..." is seen in the wild; the space is not part of the stamp.
            pos += 1
        # The common case, one string compare: the same stamp as the last message, and a
        # receipt close enough that the nearest-year choice cannot have changed.
        cached = self._bsd_text
        end = pos + len(cached)
        recv_sec = received_ns // NS_PER_SECOND
        seconds = self._bsd_sec
        if (
            cached
            and text.startswith(cached, pos)
            and (end == len(text) or text[end] == " ")
            and -rfc3164.CACHE_WINDOW_SECONDS < recv_sec - seconds < rfc3164.CACHE_WINDOW_SECONDS
        ):
            # Same wall-clock second as the kernel's receive stamp: that is the same
            # moment, known to the nanosecond.
            stamp_ns = received_ns if seconds == recv_sec else seconds * NS_PER_SECOND
        else:
            stamp_ns, end = self._bsd_stamp(text, pos, received_ns)
        if stamp_ns == _BAD_STAMP or (stamp_ns == _NO_STAMP and pri < 0):
            return _failure(text, received_ns)
        if stamp_ns == _NO_STAMP:
            # Python's SysLogHandler: "<PRI>MSG", no stamp. Only its ident shape
            # "name[pid]: " is taken as a tag; any other text is all message.
            event = {"@timestamp": iso_ns(received_ns), "message": text[start:], **_PRI_FIELDS[pri]}
            match = rfc3164.STAMPLESS_TAG_RE.match(text, start)
            if match is not None:
                event["message"] = text[match.end() :]
                _add_process(event, match.group(1), match.group(2))
            return event
        if end == len(text):
            host = tag = pid = None
            message = ""
        else:
            host, tag, pid, message = rfc3164.split_body(text, end + 1)
        if pri >= 0:
            event = {"@timestamp": iso_ns(stamp_ns), "message": message, **_PRI_FIELDS[pri]}
        else:
            event = {"@timestamp": iso_ns(stamp_ns), "message": message}
        if host is not None:
            event["log.syslog.hostname"] = event["host.hostname"] = host
        _add_process(event, tag, pid)
        return event
