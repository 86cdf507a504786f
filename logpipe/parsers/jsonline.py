"""JSON log lines: the structured output of zap, logrus, pino, structlog and the like.

A container that logs one JSON object per line gets its well-known keys mapped onto
the ECS fields (``log.level``, ``message``, ``log.logger``, ``error.message``,
``trace.id``, ``span.id``) and every other key kept, with its JSON type, under one
object (``logpipe.json`` by default) so it can be searched field by field. As with
``@cee:`` payloads (:mod:`logpipe.parsers.cee`), apps choose these keys freely: when
two apps give one key different types, Elasticsearch refuses the second document and
the shipper dead-letters it with the reason.

Pure: a dict and a string in, the dict updated in place.
"""

from __future__ import annotations

from typing import Any

import orjson

from logpipe.event import ERROR_MESSAGE, EVENT_ORIGINAL, MESSAGE

__all__ = ["JSON_FIELD", "merge_json_line"]

JSON_FIELD = "logpipe.json"
LOG_LEVEL = "log.level"
LOG_LOGGER = "log.logger"
TRACE_ID = "trace.id"
SPAN_ID = "span.id"

# (the keys apps use, in order of preference; the ECS field). The first key whose value
# is a string wins; the others stay under the prefix object, so nothing is lost.
_LEVEL_KEYS = ("level", "severity", "lvl", "log.level")
_MAPPING: tuple[tuple[tuple[str, ...], str], ...] = (
    (("msg", "message"), MESSAGE),
    (("logger", "logger_name"), LOG_LOGGER),
    (("error", "err"), ERROR_MESSAGE),
    (("trace_id",), TRACE_ID),
    (("span_id",), SPAN_ID),
)


def merge_json_line(
    event: dict[str, Any],
    text: str,
    prefix: str = JSON_FIELD,
    keep_original: bool = False,
) -> bool:
    """Merge ``text`` into the flat ECS ``event`` in place if it is a JSON object.

    ``text`` is stripped of surrounding whitespace first. On a JSON object: the level
    (``level``, ``severity``, ``lvl``, ``log.level``) goes to ``log.level`` lower-cased;
    ``msg`` / ``message`` to ``message``; ``logger`` / ``logger_name`` to ``log.logger``;
    ``error`` / ``err`` to ``error.message``; ``trace_id`` / ``span_id`` to ``trace.id`` /
    ``span.id`` (first key present with a string value wins, case-sensitive). Every
    other key, including a mapped key whose value is not a string (pino's numeric
    ``level``, an ``err`` object), goes to ``event[prefix]`` as one nested dict with the
    values as JSON gave them and dotted keys kept as they are; no other keys, no
    ``event[prefix]``. Without a message key, ``event["message"]`` is left as it was
    (the raw JSON text). ``keep_original`` sets ``event.original`` to ``text``.

    Returns True when merged; else leaves ``event`` untouched and returns False.
    Never raises.
    """
    stripped = text.strip()
    # Most lines are not JSON: a cheap look at the first character spares the parser.
    if not stripped.startswith("{"):
        return False
    try:
        payload = orjson.loads(stripped)
    except orjson.JSONDecodeError:  # also lone surrogates, depth over 1024, 1e400
        return False
    if not isinstance(payload, dict):
        return False
    # The parsed dict becomes the prefix object: mapped keys are popped off it, so no
    # second dict is built per line.
    for key in _LEVEL_KEYS:
        value = payload.get(key)
        if isinstance(value, str):
            event[LOG_LEVEL] = value.lower()
            del payload[key]
            break
    for keys, field in _MAPPING:
        for key in keys:
            value = payload.get(key)
            if isinstance(value, str):
                event[field] = value
                del payload[key]
                break
    if payload:
        event[prefix] = payload
    if keep_original:
        event[EVENT_ORIGINAL] = text
    return True
