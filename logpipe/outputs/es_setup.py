"""``logpipe setup``: install what the data streams need in Elasticsearch, idempotently.

Uses the official client (sync: this is a one-shot command). The cluster is asked what
it has rather than assumed to have it: the test distribution has no ILM, and a
cluster with ILM gets a rollover policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from elasticsearch import ApiError, Elasticsearch
from elasticsearch import TransportError as ClientTransportError

from logpipe.config import Settings
from logpipe.errors import OutputError
from logpipe.outputs.elasticsearch import template_name

ILM_POLICY = "logpipe"
_ILM_BODY = {
    "phases": {
        "hot": {"actions": {"rollover": {"max_primary_shard_size": "50gb", "max_age": "30d"}}}
    }
}


def load_template(resource: str, pattern: str, ilm: bool) -> dict[str, Any]:
    """The packaged template body, pointed at one data stream name."""
    text = resources.files("logpipe").joinpath("data", resource).read_text()
    body = json.loads(text)
    body.pop("_comment", None)
    body["index_patterns"] = [pattern]
    body["_meta"] = {"managed_by": "logpipe"}
    if ilm:
        body["template"].setdefault("settings", {})["index.lifecycle.name"] = ILM_POLICY
    return body


def client(settings: Settings) -> Elasticsearch:
    es = settings.elasticsearch
    kwargs: dict[str, Any] = {"request_timeout": es.timeout}
    if es.api_key:
        kwargs["api_key"] = es.api_key
    elif es.username:
        kwargs["basic_auth"] = (es.username, es.password)
    return Elasticsearch(list(es.hosts), **kwargs)


def has_ilm(es: Elasticsearch) -> bool:
    """True when the cluster answers the ILM status API (absent in the OSS/test builds)."""
    try:
        es.ilm.get_status()
    except ApiError as exc:
        if exc.meta.status in (400, 404, 405):
            return False
        raise
    return True


def run_setup(settings: Settings, say: Callable[[str], None]) -> int:
    """Install templates (and an ILM policy where there is ILM). Returns what changed."""
    es = client(settings)
    changed = 0
    try:
        ilm = has_ilm(es)
        if ilm:
            current = _get_or_none(lambda: es.ilm.get_lifecycle(name=ILM_POLICY))
            if current is None or current[ILM_POLICY]["policy"]["phases"] != _ILM_BODY["phases"]:
                es.ilm.put_lifecycle(name=ILM_POLICY, policy=_ILM_BODY)
                say(f"ILM policy {ILM_POLICY}: installed")
                changed += 1
            else:
                say(f"ILM policy {ILM_POLICY}: unchanged")
        else:
            say("ILM: this cluster has none; data streams are created without a policy")
        targets = (
            ("index-template.json", settings.elasticsearch.data_stream),
            ("dlq-index-template.json", settings.elasticsearch.dlq_data_stream),
        )
        for resource, stream in targets:
            name = template_name(stream)
            body = load_template(resource, stream, ilm)
            current = _get_or_none(lambda n=name: es.indices.get_index_template(name=n))
            existing = current["index_templates"][0]["index_template"] if current else None
            if existing is not None and _same_template(existing, body):
                say(f"index template {name} (for {stream}): unchanged")
                continue
            es.indices.put_index_template(name=name, **body)
            say(f"index template {name} (for {stream}): installed")
            changed += 1
    except ClientTransportError as exc:
        hosts = ", ".join(settings.elasticsearch.hosts)
        raise OutputError(f"cannot reach Elasticsearch at {hosts}: {exc}") from None
    except ApiError as exc:
        raise OutputError(f"Elasticsearch refused the setup: {exc}") from None
    finally:
        es.close()
    return changed


def _get_or_none(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ApiError as exc:
        if exc.meta.status == 404:
            return None
        raise


def _same_template(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Compare what matters; Elasticsearch normalises some values (e.g. settings to strings)."""

    def norm(body: dict[str, Any]) -> str:
        return json.dumps(
            {
                "index_patterns": body.get("index_patterns"),
                "priority": body.get("priority"),
                "mappings": body.get("template", {}).get("mappings"),
                "settings": _flat_settings(body.get("template", {}).get("settings", {})),
                "data_stream": bool(body.get("data_stream") is not None),
            },
            sort_keys=True,
        )

    return norm(existing) == norm(wanted)


def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_settings(value, f"{full}."))
        else:
            flat[full if full.startswith("index.") else f"index.{full}"] = str(value)
    return flat
