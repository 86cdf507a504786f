"""RFC 3164 / local ``/dev/log`` pieces for :mod:`logpipe.parsers.syslog`.

The BSD stamp ``Mmm dd hh:mm:ss`` has no year and no zone: the zone is the parser's,
and the year is the one nearest to the receipt time. Both need the zone rules, so
this is the one place that touches ``datetime``/``time`` (zone conversions only, no
clock reads), and only when the caller's one-entry cache misses.
"""

from __future__ import annotations

import datetime
import re
import time

from logpipe.parsers.rfc5424 import RFC3339_PATTERN, days_from_civil, days_in_month

# "Mmm dd hh:mm:ss" followed by a space or the end. The day may be space-padded
# ("Jan  5", RFC 3164) or not ("Jan 5", seen in the wild); the month in any case.
BSD_STAMP_RE = re.compile(
    r"([A-Za-z]{3}) {1,2}([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?= |\Z)"
)

# rsyslog's forwarding formats put an RFC 3339 stamp where the BSD one goes.
ISO_STAMP_RE = re.compile(RFC3339_PATTERN + r"(?= |\Z)")

MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}

# With no stamp at all (Python's SysLogHandler) a tag is only taken in the exact shape
# SysLogHandler.ident / glibc produce, "name[digits]: ", so "Error: disk full" stays text.
STAMPLESS_TAG_RE = re.compile(r"([^ \[\]:]+)\[([0-9]{1,18})\]: ")

# A cached stamp -> instant result is reused only while the receipt is within this
# window of that instant: the other candidate years are then a year away, so the
# nearest-year choice cannot have changed (150 days leaves room for DST and leap days).
CACHE_WINDOW_SECONDS = 150 * 86400


def _receipt_wall(zone: datetime.tzinfo | None, recv_sec: int) -> tuple[int, int]:
    """(year, wall-clock seconds as if UTC) of the receipt time in ``zone``."""
    if zone is None:
        local = time.localtime(recv_sec)
        return local.tm_year, recv_sec + local.tm_gmtoff
    moment = datetime.datetime.fromtimestamp(recv_sec, zone)
    offset = moment.utcoffset()
    shift = int(offset.total_seconds()) if offset is not None else 0
    return moment.year, recv_sec + shift


def _wall_to_epoch(
    zone: datetime.tzinfo | None, year: int, month: int, day: int, hms: tuple[int, int, int]
) -> int:
    """UTC epoch seconds of a wall-clock time in ``zone`` (None: the host's zone)."""
    hour, minute, second = hms
    if zone is None:
        # mktime applies the host's zone rules, DST included (isdst=-1: let it decide).
        return int(time.mktime((year, month, day, hour, minute, second, 0, 1, -1)))
    moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=zone)
    return int(moment.timestamp())


def bsd_stamp_seconds(
    zone: datetime.tzinfo | None,
    month_name: str,
    day: int,
    hms: tuple[int, int, int],
    recv_sec: int,
) -> int | None:
    """Epoch seconds of a BSD stamp, or None when it names no real instant.

    The year is whichever of (receipt year - 1, same, + 1) in ``zone`` puts the stamp
    nearest to the receipt, which handles a December message read in January and a
    sender whose clock runs a little ahead across New Year. Candidates are ranked on
    wall-clock arithmetic that lets Feb 29 of a common year stand for Mar 1, then the
    winner is validated: "Feb 29" received in 2019 means a bad clock, not 2020.
    """
    month = MONTHS.get(month_name.lower())
    hour, minute, second = hms
    if month is None or not 1 <= day <= 31 or hour > 23 or minute > 59 or second > 59:
        return None
    receipt_year, receipt_wall = _receipt_wall(zone, recv_sec)
    clock = hour * 3600 + minute * 60 + second
    best_year = receipt_year
    best_distance = -1
    for year in (receipt_year - 1, receipt_year, receipt_year + 1):
        distance = abs(days_from_civil(year, month, day) * 86400 + clock - receipt_wall)
        if best_distance < 0 or distance < best_distance:
            best_year, best_distance = year, distance
    if day > days_in_month(best_year, month):
        return None
    return _wall_to_epoch(zone, best_year, month, day, hms)


def split_body(text: str, pos: int) -> tuple[str | None, str | None, str | None, str]:
    """Split what follows the stamp into (hostname, tag, pid, message).

    ``pos`` is the first character after the space that ends the stamp. RFC 3164 puts
    HOSTNAME first; the local /dev/log form (glibc syslog(3), logger -u, SysLogHandler
    with a formatter) has none. Heuristic: a first token that ends with ':' or contains
    '[' is the TAG, anything else is the host and the TAG (if any) follows it.

    TAG shapes: ``name[pid]: msg``, ``name[pid]:msg``, ``name[pid] msg``, ``name: msg``
    and ``: msg`` (name and pid without '[' or ']'). A bare ``name:`` must end its token,
    so "status:ok done" stays a message. No TAG shape means the rest is all message.
    Exactly one space after the TAG is dropped, so indentation the application meant
    stays in the message. Plain str.find and slicing: this runs for every local message.
    """
    size = len(text)
    space = text.find(" ", pos)
    end = size if space < 0 else space
    if end == pos:
        # Two spaces after the stamp: no host, no tag.
        return None, None, None, text[pos:]
    bracket = text.find("[", pos, end)
    host = None
    if bracket < 0 and text[end - 1] != ":":
        host = text[pos:end]
        if space < 0:
            return host, None, None, ""
        pos = space + 1
        space = text.find(" ", pos)
        end = size if space < 0 else space
        bracket = text.find("[", pos, end)
    if bracket >= 0:
        close = text.find("]", bracket + 1, end)
        if (
            close < 0
            or text.find("]", pos, bracket) >= 0
            or text.find("[", bracket + 1, close) >= 0
        ):
            return host, None, None, text[pos:]
        after = close + 1
        if after == end:
            body = end + 1
        elif text[after] == ":":
            body = after + 1
            if text.startswith(" ", body):
                body += 1
        else:
            return host, None, None, text[pos:]
        name = text[pos:bracket]
        pid = text[bracket + 1 : close]
        return host, name or None, pid or None, text[body:]
    if end > pos and text[end - 1] == ":" and text.find("]", pos, end) < 0:
        return host, text[pos : end - 1] or None, None, text[end + 1 :]
    return host, None, None, text[pos:]
