"""Timestamps as ECS wants them, without a datetime object per event.

Every event carries two timestamps (``@timestamp`` and ``event.created``) as
RFC 3339 UTC strings with nanoseconds. Building a datetime per event costs more
than parsing the whole syslog header, so the formatter caches the text of the
current second and only appends the nine fraction digits.
"""

from __future__ import annotations

import calendar
import time

NS_PER_SECOND = 1_000_000_000
# What Elasticsearch's date_nanos (and a signed 64-bit count of nanoseconds, as msgpack
# and the spool keep it) can hold: 1970-01-01 to 2262-04-11T23:47:16.854775807Z. A
# time outside it cannot be stored as @timestamp, so parsers treat it as no time.
MAX_NS = 2**63 - 1

# Seconds -> "YYYY-MM-DDTHH:MM:SS." for recently seen seconds. Keyed, not a single
# slot: every event formats two times (its own and the receive time), which often
# fall in different seconds and would thrash a one-entry cache.
_prefixes: dict[int, str] = {}
_MAX_CACHED_SECONDS = 256


_last_ns = -1
_last_text = ""


def iso_ns(ns: int) -> str:
    """Format nanoseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (UTC)."""
    global _last_ns, _last_text
    if ns == _last_ns:
        # A local message stamped this second takes the receive time as @timestamp,
        # and event.created is the same receive time: format it once.
        return _last_text
    second, fraction = divmod(ns, NS_PER_SECOND)
    prefix = _prefixes.get(second)
    if prefix is None:
        if len(_prefixes) >= _MAX_CACHED_SECONDS:
            _prefixes.clear()
        prefix = _prefixes[second] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
    _last_ns = ns
    _last_text = f"{prefix}{fraction:09d}Z"
    return _last_text


def iso_to_ns(text: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` (as :func:`iso_ns` writes it) -> nanoseconds."""
    if not text.endswith("Z") or len(text) < 20 or text[10] != "T":
        raise ValueError(f"not a UTC RFC 3339 time: {text!r}")
    seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    fraction = text[19:-1]
    if fraction and (fraction[0] != "." or not fraction[1:].isdigit() or len(fraction) > 10):
        raise ValueError(f"not a UTC RFC 3339 time: {text!r}")
    return seconds * NS_PER_SECOND + int(fraction[1:].ljust(9, "0") if fraction else 0)
