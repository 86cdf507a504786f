"""What `logpipe setup` installs, pure: component templates, index templates, ILM policy."""

from __future__ import annotations

from logpipe import config
from logpipe.outputs.es_setup import ilm_policy, setup_plan


def test_data_streams_get_two_components_and_a_composed_template_each() -> None:
    es = config.from_dict({}).elasticsearch
    plan = setup_plan(es, ilm=False)
    assert [(kind, name) for kind, name, _ in plan] == [
        ("component", "logpipe-logs-logpipe-default@settings"),
        ("component", "logpipe-logs-logpipe-default@mappings"),
        ("index", "logpipe-logs-logpipe-default"),
        ("component", "logpipe-logs-logpipe.dlq-default@settings"),
        ("component", "logpipe-logs-logpipe.dlq-default@mappings"),
        ("index", "logpipe-logs-logpipe.dlq-default"),
    ]
    index = plan[2][2]
    assert index["index_patterns"] == ["logs-logpipe-default"]
    assert index["data_stream"] == {}
    assert index["composed_of"] == [plan[0][1], plan[1][1]]
    mappings = plan[1][2]["template"]["mappings"]
    assert mappings["properties"]["@timestamp"]["type"] == "date_nanos"
    assert "index.lifecycle.name" not in plan[0][2]["template"]["settings"]
    assert setup_plan(es, ilm=True)[0][2]["template"]["settings"]["index.lifecycle.name"]


def test_daily_indices_get_patterns_and_no_data_stream() -> None:
    es = config.from_dict({"elasticsearch": {"index": "logs-app-%Y.%m.%d"}}).elasticsearch
    plan = {name: body for kind, name, body in setup_plan(es, ilm=False) if kind == "index"}
    assert plan == {
        "logpipe-logs-app": {
            "index_patterns": ["logs-app-*"],
            "priority": 200,
            "composed_of": ["logpipe-logs-app@settings", "logpipe-logs-app@mappings"],
            "_meta": {"managed_by": "logpipe"},
        },
        "logpipe-logpipe.dlq": {
            "index_patterns": ["logpipe.dlq-*"],
            "priority": 200,
            "composed_of": ["logpipe-logpipe.dlq@settings", "logpipe-logpipe.dlq@mappings"],
            "_meta": {"managed_by": "logpipe"},
        },
    }


def test_ilm_rolls_data_streams_over_and_deletes_after_retention() -> None:
    assert ilm_policy(0, rollover=False) is None  # daily indices kept forever: no policy
    streams = ilm_policy(0, rollover=True)
    assert streams is not None and list(streams["phases"]) == ["hot"]
    both = ilm_policy(30 * 86400, rollover=True)
    assert both is not None
    assert both["phases"]["delete"] == {"min_age": "2592000s", "actions": {"delete": {}}}
    daily = ilm_policy(7 * 86400, rollover=False)
    assert daily is not None and list(daily["phases"]) == ["delete"]


def test_a_policy_read_back_in_elasticsearchs_units_is_unchanged() -> None:
    from logpipe.outputs.es_setup import _phases

    ours = ilm_policy(30 * 86400, rollover=True)
    assert ours is not None
    hot = ours["phases"]["hot"]["actions"]
    read_back = {
        "hot": {"min_age": "0ms", "actions": hot},
        "delete": {"min_age": "30d", "actions": {"delete": {}}},
    }
    assert _phases(read_back) == _phases(ours["phases"])
    read_back["delete"]["min_age"] = "29d"
    assert _phases(read_back) != _phases(ours["phases"])
