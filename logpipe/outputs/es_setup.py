"""``logpipe setup``: install what the data streams need in Elasticsearch, idempotently.

Uses the official client (sync: this is a one-shot command). Per destination (the data
stream, or the daily indices of ``index``, and their dead-letter twin): component
templates for the settings and the mappings, and an index template composed of them.
The cluster is asked what it has rather than assumed to have it: the test distribution
has no ILM (setup says so, and that ``retention`` is then not enforced); a cluster with
ILM gets a policy (rollover for data streams, a delete phase for ``retention``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from elasticsearch import ApiError, Elasticsearch
from elasticsearch import TransportError as ClientTransportError

from logpipe.config import ElasticsearchSettings, Settings, duration_seconds, index_prefix
from logpipe.errors import OutputError
from logpipe.outputs.elasticsearch import destinations, search_target, template_name

# One policy per mode: a cluster may hold both kinds of logpipe destinations.
ILM_POLICY = "logpipe"
ILM_POLICY_DAILY = "logpipe-daily"
MANAGED = {"managed_by": "logpipe"}


def ilm_policy(retention_s: float, rollover: bool) -> dict[str, Any] | None:
    """The ILM policy for these settings, or None when there is nothing for ILM to do.

    Data streams roll over (a backing index per 30 days or 50 GB a shard); daily indices
    are already cut by day. ``retention``, if set, deletes an index that long after its
    rollover (data streams) or creation (daily indices).
    """
    phases: dict[str, Any] = {}
    if rollover:
        phases["hot"] = {
            "actions": {"rollover": {"max_primary_shard_size": "50gb", "max_age": "30d"}}
        }
    if retention_s > 0:
        phases["delete"] = {
            "min_age": f"{max(1, int(retention_s))}s",
            "actions": {"delete": {}},
        }
    return {"phases": phases, "_meta": MANAGED} if phases else None


def packaged_template(resource: str) -> dict[str, Any]:
    """A packaged template file: priority, data_stream, and the settings and mappings."""
    text = resources.files("logpipe").joinpath("data", resource).read_text()
    body = json.loads(text)
    body.pop("_comment", None)
    return body


def setup_plan(es: ElasticsearchSettings, ilm: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """What setup installs, in order: ("component" | "index", name, body).

    Per destination, two component templates (settings, mappings) and the index template
    composed of them, for a data stream or for daily indices (``index`` set).
    """
    daily = bool(es.index)
    plan: list[tuple[str, str, dict[str, Any]]] = []
    for resource, destination in zip(
        ("index-template.json", "dlq-index-template.json"), destinations(es), strict=True
    ):
        packaged = packaged_template(resource)
        name = template_name(destination)
        settings = dict(packaged["template"].get("settings", {}))
        if ilm:
            settings["index.lifecycle.name"] = ILM_POLICY_DAILY if daily else ILM_POLICY
        parts = {
            f"{name}@settings": {"template": {"settings": settings}, "_meta": MANAGED},
            f"{name}@mappings": {
                "template": {"mappings": packaged["template"]["mappings"]},
                "_meta": MANAGED,
            },
        }
        plan += [("component", part, body) for part, body in parts.items()]
        index_template: dict[str, Any] = {
            "index_patterns": [search_target(destination)],
            "priority": packaged["priority"],
            "composed_of": list(parts),
            "_meta": MANAGED,
        }
        if not daily:
            index_template["data_stream"] = {}
        plan.append(("index", name, index_template))
    return plan


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
    """Install the templates (and an ILM policy where there is ILM). Returns what changed."""
    es = client(settings)
    changed = 0
    wanted = settings.elasticsearch
    try:
        policy = ilm_policy(wanted.retention, rollover=not wanted.index)
        ilm = policy is not None and has_ilm(es)
        if policy is not None and ilm:
            name = ILM_POLICY_DAILY if wanted.index else ILM_POLICY
            current = _get_or_none(lambda: es.ilm.get_lifecycle(name=name))
            phases = current[name]["policy"]["phases"] if current else None
            if phases is None or _phases(phases) != _phases(policy["phases"]):
                es.ilm.put_lifecycle(name=name, policy=policy)
                say(f"ILM policy {name}: installed")
                changed += 1
            else:
                say(f"ILM policy {name}: unchanged")
        elif policy is None:
            say("ILM: nothing to do (daily indices, no retention)")
        elif wanted.retention > 0:
            say(
                f"ILM: this cluster has none; retention ({_days(wanted.retention)}) is NOT "
                f"enforced: delete old data yourself (DELETE /{_old_data(wanted)})"
            )
        else:
            say("ILM: this cluster has none; data streams are created without a policy")
        for kind, name, body in setup_plan(wanted, ilm):
            if kind == "component":
                current = _get_or_none(lambda n=name: es.cluster.get_component_template(name=n))
                existing = (
                    current["component_templates"][0]["component_template"] if current else None
                )
                what = f"component template {name}"
            else:
                current = _get_or_none(lambda n=name: es.indices.get_index_template(name=n))
                existing = current["index_templates"][0]["index_template"] if current else None
                what = f"index template {name} (for {body['index_patterns'][0]})"
            if existing is not None and _same_template(existing, body):
                say(f"{what}: unchanged")
                continue
            if kind == "component":
                es.cluster.put_component_template(name=name, **body)
            else:
                es.indices.put_index_template(name=name, **body)
            say(f"{what}: installed")
            changed += 1
    except ClientTransportError as exc:
        hosts = ", ".join(settings.elasticsearch.hosts)
        raise OutputError(f"cannot reach Elasticsearch at {hosts}: {exc}") from None
    except ApiError as exc:
        raise OutputError(f"Elasticsearch refused the setup: {exc}") from None
    finally:
        es.close()
    return changed


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds:g}s"


def _old_data(es: ElasticsearchSettings) -> str:
    """An example of what to delete by hand on a cluster without ILM."""
    if es.index:
        return f"{index_prefix(es.index)}<old days>"
    return f".ds-{es.data_stream}-<old generations>"


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
        template = body.get("template", {})
        return _normal(
            {
                "index_patterns": body.get("index_patterns"),
                "priority": body.get("priority"),
                "composed_of": body.get("composed_of"),
                "mappings": template.get("mappings"),
                "settings": _flat_settings(template.get("settings", {})),
                "data_stream": body.get("data_stream") is not None,
            }
        )

    return norm(existing) == norm(wanted)


def _phases(phases: dict[str, Any]) -> str:
    """ILM phases compared by meaning: Elasticsearch adds ``min_age: 0ms`` and may write
    an age in other units than we did."""
    normal = {}
    for phase, body in phases.items():
        age = body.get("min_age") or "0ms"
        seconds = duration_seconds(age)  # None: a unit we do not write, compared as written
        normal[phase] = {
            "min_age": age if seconds is None else seconds,
            "actions": body.get("actions"),
        }
    return _normal(normal)


def _normal(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_settings(value, f"{full}."))
        else:
            flat[full if full.startswith("index.") else f"index.{full}"] = str(value)
    return flat
