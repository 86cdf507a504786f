"""Timestamps as ECS wants them, without a datetime object per event.

Every event carries two timestamps (``@timestamp`` and ``event.created``) as
RFC 3339 UTC strings with nanoseconds. Building a datetime per event costs more
than parsing the whole syslog header, so the formatter caches the text of the
current second and only appends the nine fraction digits.
"""

from __future__ import annotations

import time

NS_PER_SECOND = 1_000_000_000

# Seconds -> "YYYY-MM-DDTHH:MM:SS." for recently seen seconds. Keyed, not a single
# slot: every event formats two times (its own and the receive time), which often
# fall in different seconds and would thrash a one-entry cache.
_prefixes: dict[int, str] = {}
_MAX_CACHED_SECONDS = 256


def iso_ns(ns: int) -> str:
    """Format nanoseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (UTC)."""
    second, fraction = divmod(ns, NS_PER_SECOND)
    prefix = _prefixes.get(second)
    if prefix is None:
        if len(_prefixes) >= _MAX_CACHED_SECONDS:
            _prefixes.clear()
        prefix = _prefixes[second] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
    return f"{prefix}{fraction:09d}Z"
