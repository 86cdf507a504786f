"""Kibana saved objects for logpipe's data: data views, saved searches, a dashboard.

``config/kibana/logpipe.ndjson`` is this module's output, in the NDJSON form of Kibana's
saved-objects export (Stack Management > Saved objects > Import, or
``POST /api/saved_objects/_import``). Regenerate it with::

    .venv/bin/python -m logpipe.kibana > config/kibana/logpipe.ndjson

The dashboard's panels are Lens visualizations stored by value. Every field an object
names is listed by :func:`field_uses` with what it is used for, so that a test can check
each one against the mapping ``logpipe setup`` installs.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

LOGS_VIEW = "logpipe-logs"
DLQ_VIEW = "logpipe-dead-letters"
LOGS_PATTERN = "logs-logpipe-*"
DLQ_PATTERN = "logs-logpipe.dlq-*"
ERROR_LEVELS = ("emerg", "emergency", "fatal", "alert", "crit", "critical", "err", "error")
# Kibana 8.x migration versions of the object types written here.
_CORE_MIGRATION = "8.8.0"
_MIGRATIONS = {"index-pattern": "8.0.0", "search": "8.0.0", "dashboard": "8.9.0"}

# (object, data view id, field, use): use is one of time, column, sort, filter, terms, sum.
FieldUse = tuple[str, str, str, str]


def _object(
    kind: str, oid: str, attributes: dict[str, Any], refs: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "type": kind,
        "id": oid,
        "attributes": attributes,
        "references": refs,
        "coreMigrationVersion": _CORE_MIGRATION,
        "typeMigrationVersion": _MIGRATIONS[kind],
        "managed": False,
    }


def _data_view(oid: str, name: str, pattern: str) -> dict[str, Any]:
    return _object(
        "index-pattern",
        oid,
        {"title": pattern, "name": name, "timeFieldName": "@timestamp", "allowHidden": False},
        [],
    )


def _search(
    oid: str, title: str, view: str, kql: str, columns: list[str], description: str
) -> dict[str, Any]:
    source = {
        "query": {"query": kql, "language": "kuery"},
        "filter": [],
        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
    }
    return _object(
        "search",
        oid,
        {
            "title": title,
            "description": description,
            "columns": columns,
            "sort": [["@timestamp", "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": orjson.dumps(source).decode()},
        },
        [
            {
                "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
                "type": "index-pattern",
                "id": view,
            }
        ],
    )


def _lens_xy(
    title: str,
    view: str,
    metric: dict[str, Any],
    breakdown: str | None,
    kql: str = "",
    series: str = "bar_stacked",
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A Lens bar chart over @timestamp: ``metric`` per interval, split by ``breakdown``."""
    columns: dict[str, Any] = {
        "time": {
            "label": "@timestamp",
            "dataType": "date",
            "operationType": "date_histogram",
            "sourceField": "@timestamp",
            "isBucketed": True,
            "scale": "interval",
            "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
        },
        "metric": {"isBucketed": False, "scale": "ratio", **metric},
    }
    order = ["time", "metric"]
    if breakdown is not None:
        columns["split"] = _terms_column(breakdown, 8)
        order = ["split", "time", "metric"]
    layer = {"columns": columns, "columnOrder": order, "incompleteColumns": {}}
    visualization = {
        "legend": {"isVisible": True, "position": "right"},
        "preferredSeriesType": series,
        "layers": [
            {
                "layerId": "layer1",
                "layerType": "data",
                "seriesType": series,
                "xAccessor": "time",
                "accessors": ["metric"],
                **({"splitAccessor": "split"} if breakdown is not None else {}),
            }
        ],
    }
    return _lens(title, "lnsXY", view, layer, visualization, kql)


def _lens_top(title: str, view: str, field: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A Lens horizontal bar chart: the 10 values of ``field`` with the most events."""
    layer = {
        "columns": {
            "top": _terms_column(field, 10),
            "metric": {
                "label": "Events",
                "dataType": "number",
                "operationType": "count",
                "sourceField": "___records___",
                "isBucketed": False,
                "scale": "ratio",
            },
        },
        "columnOrder": ["top", "metric"],
        "incompleteColumns": {},
    }
    visualization = {
        "legend": {"isVisible": False, "position": "right"},
        "preferredSeriesType": "bar_horizontal",
        "layers": [
            {
                "layerId": "layer1",
                "layerType": "data",
                "seriesType": "bar_horizontal",
                "xAccessor": "top",
                "accessors": ["metric"],
            }
        ],
    }
    return _lens(title, "lnsXY", view, layer, visualization, "")


def _terms_column(field: str, size: int) -> dict[str, Any]:
    return {
        "label": f"Top {size} {field}",
        "dataType": "string",
        "operationType": "terms",
        "sourceField": field,
        "isBucketed": True,
        "scale": "ordinal",
        "params": {
            "size": size,
            "orderBy": {"type": "column", "columnId": "metric"},
            "orderDirection": "desc",
            "otherBucket": True,
            "missingBucket": False,
        },
    }


def _lens(
    title: str,
    kind: str,
    view: str,
    layer: dict[str, Any],
    visualization: dict[str, Any],
    kql: str,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    refs = [{"type": "index-pattern", "id": view, "name": "indexpattern-datasource-layer-layer1"}]
    attributes = {
        "title": title,
        "visualizationType": kind,
        "state": {
            "datasourceStates": {"formBased": {"layers": {"layer1": layer}}},
            "visualization": visualization,
            "query": {"query": kql, "language": "kuery"},
            "filters": [],
        },
        "references": refs,
    }
    return attributes, refs


def _dashboard() -> dict[str, Any]:
    count = {"label": "Events", "dataType": "number", "operationType": "count",
             "sourceField": "___records___"}  # fmt: skip
    dropped = {"label": "Events dropped", "dataType": "number", "operationType": "sum",
               "sourceField": "logpipe.loss.count"}  # fmt: skip
    panels = [
        (_lens_xy("Events over time by container", LOGS_VIEW, count, "container.name"), 0, 0),
        (_lens_xy("Events over time by severity", LOGS_VIEW, count, "log.level"), 24, 0),
        (_lens_top("Top containers", LOGS_VIEW, "container.name"), 0, 15),
        (_lens_top("Top hosts", LOGS_VIEW, "host.name"), 24, 15),
        (
            _lens_xy(
                "Events dropped (loss markers)",
                LOGS_VIEW,
                dropped,
                "logpipe.loss.reason",
                'event.action : "dropped"',
            ),
            0,
            30,
        ),
        (_lens_xy("Dead letters", DLQ_VIEW, count, "error.type"), 24, 30),
    ]
    panels_json = []
    references = []
    for n, ((attributes, refs), x, y) in enumerate(panels, start=1):
        panel = f"panel{n}"
        panels_json.append(
            {
                "type": "lens",
                "panelIndex": panel,
                "gridData": {"x": x, "y": y, "w": 24, "h": 15, "i": panel},
                "embeddableConfig": {"attributes": attributes, "enhancements": {}},
            }
        )
        references += [{**r, "name": f"{panel}:{r['name']}"} for r in refs]
    return _object(
        "dashboard",
        "logpipe-overview",
        {
            "title": "logpipe: overview",
            "description": "Events by container, severity and host; drops and dead letters.",
            "timeRestore": False,
            "panelsJSON": orjson.dumps(panels_json).decode(),
            "optionsJSON": orjson.dumps({"useMargins": True, "syncColors": False}).decode(),
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": orjson.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []}
                ).decode()
            },
        },
        references,
    )


def saved_objects(
    logs_pattern: str = LOGS_PATTERN, dlq_pattern: str = DLQ_PATTERN
) -> list[dict[str, Any]]:
    """Every object, data views first (Kibana resolves references in file order).

    The patterns default to the data streams'; daily indices (``elasticsearch.index``)
    want theirs, e.g. ``logpipe-*`` and ``logpipe.dlq-*``.
    """
    levels = " or ".join(ERROR_LEVELS)
    return [
        _data_view(LOGS_VIEW, "logpipe logs", logs_pattern),
        _data_view(DLQ_VIEW, "logpipe dead letters", dlq_pattern),
        _search(
            "logpipe-all-logs",
            "logpipe: all logs",
            LOGS_VIEW,
            "",
            ["host.name", "container.name", "process.name", "log.level", "message"],
            "Every event, newest first, with where it came from.",
        ),
        _search(
            "logpipe-errors",
            "logpipe: errors and worse",
            LOGS_VIEW,
            f"log.level : ({levels})",
            ["host.name", "container.name", "process.name", "log.level", "message"],
            "Severity err (error) and worse, from syslog and from JSON lines.",
        ),
        _search(
            "logpipe-loss-markers",
            "logpipe: loss markers",
            LOGS_VIEW,
            'event.action : "dropped"',
            [
                "logpipe.loss.input",
                "logpipe.loss.reason",
                "logpipe.loss.count",
                "event.start",
                "event.end",
                "host.name",
            ],
            "Where logpipe dropped events: how many, why, and when.",
        ),
        _search(
            "logpipe-dead-letters-search",
            "logpipe: dead letters",
            DLQ_VIEW,
            "",
            [
                "logpipe.dlq.data_stream",
                "logpipe.dlq.status",
                "error.type",
                "error.message",
                "event.original",
            ],
            "Events Elasticsearch refused, kept with the reason.",
        ),
        _dashboard(),
    ]


def ndjson(objects: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(o, option=orjson.OPT_SORT_KEYS) + b"\n" for o in objects)


def field_uses(objects: list[dict[str, Any]]) -> list[FieldUse]:
    """Every field the objects name: (where, data view id, field, use), the use being
    time, column, sort, filter, terms or sum; for checking against a mapping."""
    uses: list[FieldUse] = []
    for o in objects:
        a, oid = o["attributes"], o["id"]
        if o["type"] == "index-pattern":
            uses.append((oid, oid, a["timeFieldName"], "time"))
        elif o["type"] == "search":
            view = o["references"][0]["id"]
            uses += [(oid, view, c, "column") for c in a["columns"]]
            uses += [(oid, view, field, "sort") for field, _ in a["sort"]]
            query = orjson.loads(a["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]
            uses += [(oid, view, f, "filter") for f in kql_fields(query["query"])]
        elif o["type"] == "dashboard":
            for panel in orjson.loads(a["panelsJSON"]):
                lens = panel["embeddableConfig"]["attributes"]
                state, view = lens["state"], lens["references"][0]["id"]
                pid = f"{oid}/{panel['panelIndex']}"
                uses += [(pid, view, f, "filter") for f in kql_fields(state["query"]["query"])]
                for layer in state["datasourceStates"]["formBased"]["layers"].values():
                    for column in layer["columns"].values():
                        field = column["sourceField"]
                        if field == "___records___":  # Lens's name for "count of events"
                            continue
                        use = {"date_histogram": "time", "terms": "terms", "sum": "sum"}
                        uses.append((pid, view, field, use[column["operationType"]]))
    return uses


def kql_fields(kql: str) -> list[str]:
    """The field names of ``field : value`` clauses in a KQL query."""
    return [part.rsplit(None, 1)[-1].lstrip("(") for part in kql.split(" : ")[:-1]]


def main(argv: list[str]) -> None:
    """``python -m logpipe.kibana [-c CONFIG]``: the objects, with the data views'
    patterns taken from CONFIG's destinations when one is given."""
    patterns: tuple[str, ...] = ()
    if argv[:1] == ["-c"] and len(argv) == 2:
        from logpipe.config import load
        from logpipe.outputs.elasticsearch import destinations, search_target

        es = load(argv[1]).elasticsearch
        patterns = tuple(
            search_target(d) if "%" in d else d.rsplit("-", 1)[0] + "-*" for d in destinations(es)
        )
    elif argv:
        sys.exit("usage: python -m logpipe.kibana [-c CONFIG]")
    sys.stdout.buffer.write(ndjson(saved_objects(*patterns)))


if __name__ == "__main__":
    main(sys.argv[1:])
