"""RFC 5424 pieces for :mod:`logpipe.parsers.syslog`: the header, RFC 3339 stamps, STRUCTURED-DATA.

Everything here works on the already decoded ``str`` and returns plain values; the
caller (``SyslogParser``) owns the caches and builds the event. No datetime objects:
RFC 3339 text is turned into epoch seconds with integer calendar arithmetic, because a
datetime per event costs more than the whole header parse.
"""

from __future__ import annotations

import re

# RFC 3339 as RFC 5424 profiles it (section 6.2.3), widened where being strict buys
# nothing: lower-case 't'/'z' (RFC 3339 section 5.6 allows them) and up to nine fraction
# digits (we keep nanoseconds; RFC 5424 stops at six). Groups: the seconds-precision
# date-time, the fraction digits, the offset ("Z"/"z" or "+hh:mm").
RFC3339_PATTERN = (
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.([0-9]{1,9}))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

# VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP, in one match.
# Field limits and PRINTUSASCII (%d33-126) are RFC 5424 section 6's; a field that breaks
# them (too long, a control character, two spaces) fails the whole match, which the
# caller turns into the failure form.
HEADER_RE = re.compile(
    r"([1-9][0-9]{0,2}) "
    r"(?:-|" + RFC3339_PATTERN + r") "
    r"([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) "
)

# A message commits to RFC 5424 when a VERSION-looking number and a space follow the
# PRI and the next thing can start a TIMESTAMP ("-" or a digit) or nothing follows.
# "<14>3 retries left" (Python's SysLogHandler) stays a plain <PRI>MSG message, while
# "<1>1 2003-11" or "<1>1000 -" are broken RFC 5424 and become the failure form.
COMMIT_RE = re.compile(r"[0-9]+ (?:[-0-9]|\Z)")

# SD-NAME: 1..32 PRINTUSASCII except '=', SP, ']' and '"' (RFC 5424 section 6.3).
_SD_NAME = r"[!#-<>-\\^-~]{1,32}"
# SP PARAM-NAME '="' PARAM-VALUE '"'. The value runs to the first unescaped '"'; an
# unescaped ']' inside the quotes is accepted (it is unambiguous there).
_SD_VALUE = r'[^"\\]*(?:\\.[^"\\]*)*'
_SD_PARAM_RE = re.compile(r" (" + _SD_NAME + r')="(' + _SD_VALUE + r')"', re.DOTALL)
# One whole SD-ELEMENT, validated in one C-level match: '[' SD-ID *(SP SD-PARAM) ']'.
# Its params are then split out with findall: two regex calls per element, not one
# per param plus a Python loop.
_SD_ELEMENT_RE = re.compile(
    r"\[(" + _SD_NAME + r")((?: " + _SD_NAME + r'="' + _SD_VALUE + r'")*)\]', re.DOTALL
)
# Only \" \\ \] are escapes; any other backslash stays as written (RFC 5424 section 6.3.3).
_SD_UNESCAPE_RE = re.compile(r'\\([\\"\]])')

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_leap(year: int) -> bool:
    """Whether ``year`` is a Gregorian leap year."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    """Number of days in ``month`` (1..12) of ``year``."""
    if month == 2 and is_leap(year):
        return 29
    return _DAYS_IN_MONTH[month]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).

    It does not validate: Feb 29 of a common year comes out as Mar 1, which the
    RFC 3164 year inference relies on to rank candidate years before validating.
    """
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def epoch_seconds(date_time: str, offset: str) -> int | None:
    """UTC epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` at ``offset``; None if out of range.

    ``date_time`` and ``offset`` are groups of :data:`RFC3339_PATTERN`, so only the
    ranges are left to check: month 13, day 32, Sep 31, Feb 29 of a common year, hour 24,
    minute or second 60 (RFC 5424 forbids leap seconds) and offsets beyond 23:59.
    """
    year = int(date_time[0:4])
    month = int(date_time[5:7])
    day = int(date_time[8:10])
    hour = int(date_time[11:13])
    minute = int(date_time[14:16])
    second = int(date_time[17:19])
    if not (1 <= month <= 12 and 1 <= day <= days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    if offset in ("Z", "z"):
        shift = 0
    else:
        off_hour = int(offset[1:3])
        off_minute = int(offset[4:6])
        if off_hour > 23 or off_minute > 59:
            return None
        shift = off_hour * 3600 + off_minute * 60
        if offset[0] == "-":
            shift = -shift
    days = days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - shift


def parse_structured_data(text: str, pos: int) -> tuple[dict[str, dict[str, str]] | None, int]:
    """Parse one or more SD-ELEMENTs starting at ``text[pos] == "["``.

    Returns ``(sd, end)`` with ``end`` just past the last ']', or ``(None, pos)`` when
    the section is malformed. Values are unescaped. A repeated SD-ID (RFC 5424 forbids
    it) is merged into the first element of that name, and a repeated PARAM-NAME
    (RFC 5424 allows it) keeps its first value: a flat dict cannot hold both, and
    "first wins" is one rule for both cases.
    """
    sd: dict[str, dict[str, str]] = {}
    while text.startswith("[", pos):
        match = _SD_ELEMENT_RE.match(text, pos)
        if match is None:
            return None, pos
        sd_id, body = match.groups()
        params = sd.get(sd_id)
        if params is None:
            params = sd[sd_id] = {}
        if body:
            for name, value in _SD_PARAM_RE.findall(body):
                if "\\" in value:
                    value = _SD_UNESCAPE_RE.sub(r"\1", value)
                params.setdefault(name, value)
        pos = match.end()
    return sd, pos
