"""config/kibana/logpipe.ndjson: every saved object parses, its references resolve, and
every field it names exists in the mapping ``logpipe setup`` installs, with a type
Kibana can use for what the object does with it."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from logpipe import kibana
from tests.integration.conftest import ES

pytestmark = pytest.mark.integration

NDJSON = Path(__file__).resolve().parents[2] / "config" / "kibana" / "logpipe.ndjson"
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
# What Kibana needs of a field for each use (date_nanos is a date to Kibana).
SUITS = {
    "time": {"date", "date_nanos"},
    "sort": {"date", "date_nanos", "keyword", "ip", "boolean"} | NUMERIC,
    "terms": {"keyword", "ip", "boolean"} | NUMERIC,
    "sum": NUMERIC,
}


def _fields(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            out |= _fields(spec["properties"], f"{prefix}{name}.")
        else:
            out[prefix + name] = spec
    return out


def test_saved_objects_parse_and_name_only_fields_the_mapping_serves(
    logpipe_factory, es: ES
) -> None:
    text = NDJSON.read_text()
    # The file is what logpipe.kibana makes (the README's regeneration command holds).
    assert text.encode() == kibana.ndjson(kibana.saved_objects())
    objects = [json.loads(line) for line in text.splitlines()]
    assert {o["type"] for o in objects} == {"index-pattern", "search", "dashboard"}
    by_id = {o["id"]: o for o in objects}
    assert len(by_id) == len(objects)
    for o in objects:
        assert o["attributes"]["title"] and isinstance(o["references"], list)
        for ref in o["references"]:
            assert by_id[ref["id"]]["type"] == ref["type"], (o["id"], ref)
    # The JSON that Kibana keeps as strings inside attributes parses too.
    for o in objects:
        meta = o["attributes"].get("kibanaSavedObjectMeta", {})
        if "searchSourceJSON" in meta:
            json.loads(meta["searchSourceJSON"])
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert len(panels) == 6

    lp = logpipe_factory(start=False)
    lp.cli("setup", "-c", str(lp.config_path))
    mappings = {}
    for view, stream in ((kibana.LOGS_VIEW, lp.data_stream),
                         (kibana.DLQ_VIEW, lp.dlq_data_stream)):  # fmt: skip
        assert fnmatch.fnmatch(stream, by_id[view]["attributes"]["title"]), (view, stream)
        # One document makes the stream (this build has no PUT _data_stream); it brings
        # no field of its own beyond @timestamp, so the mapping is the template's.
        status, _ = es.request("POST", f"/{stream}/_doc", {"@timestamp": "2026-11-30T10:00:00Z"})
        assert status == 201
        status, body = es.request("GET", f"/{stream}/_mapping")
        assert status == 200
        (index,) = body.values()
        mappings[view] = _fields(index["mappings"]["properties"])
    problems = []
    uses = kibana.field_uses(objects)
    assert len(uses) >= 30
    for where, view, field, use in uses:
        spec = mappings[view].get(field)
        if spec is None:
            problems.append(f"{where}: {field} is not in the {view} mapping")
        elif use in SUITS and spec.get("type") not in SUITS[use]:
            problems.append(f"{where}: {field} is {spec.get('type')}, no use for {use}")
        elif use == "filter" and spec.get("index") is False:
            problems.append(f"{where}: {field} is not indexed, cannot be filtered on")
    assert not problems, "\n".join(problems)
