"""Timestamps as ECS wants them, without a datetime object per event.

Every event carries two timestamps (``@timestamp`` and ``event.created``) as
RFC 3339 UTC strings with nanoseconds. Building a datetime per event costs more
than parsing the whole syslog header, so the formatter caches the text of the
current second and only appends the nine fraction digits.
"""

from __future__ import annotations

import time

NS_PER_SECOND = 1_000_000_000

_cached_second = -1
_cached_prefix = ""


def iso_ns(ns: int) -> str:
    """Format nanoseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (UTC)."""
    global _cached_second, _cached_prefix
    second, fraction = divmod(ns, NS_PER_SECOND)
    if second != _cached_second:
        # One struct_time per distinct second, not per event.
        _cached_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _cached_second = second
    return f"{_cached_prefix}{fraction:09d}Z"
