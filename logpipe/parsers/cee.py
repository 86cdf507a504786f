"""CEE/Lumberjack structured messages: ``@cee: {json}`` (rsyslog's mmjsonparse convention).

The JSON object goes under ``logpipe.cee`` with its own types, so it can be searched
field by field; its ``msg`` (if any) becomes the message. Because apps choose these
fields freely, two apps can disagree on a field's type: Elasticsearch then refuses
the second document, and the shipper dead-letters it with the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

CEE_COOKIE = "@cee:"
CEE_FIELD = "logpipe.cee"
TAG_CEE_FAILURE = "_cee_parse_failure"


def apply_cee(event: dict[str, Any]) -> None:
    """Move a ``@cee:`` JSON payload of ``event["message"]`` into ``logpipe.cee`` in place."""
    text = event["message"][len(CEE_COOKIE) :]
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        event.setdefault("tags", []).append(TAG_CEE_FAILURE)
        return
    msg = payload.get("msg")
    if isinstance(msg, str):
        event["message"] = msg
    event[CEE_FIELD] = payload
