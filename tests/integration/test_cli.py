"""The CLI as an operator meets it: bad configs, setup, run without a template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ES, wait_for

pytestmark = pytest.mark.integration

GOOD = Path(__file__).resolve().parents[2] / "config" / "logpipe.toml"


def logpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logpipe", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (("[queue]", "[queue]\nmax_evnts = 5"), "queue.max_evnts", "unknown key"),
        (("max_events = 100000", 'max_events = "lots"'), "queue.max_events", "expected an integer"),
        (('max_bytes  = "64MiB"', 'max_bytes  = "64 parsecs"'), "queue.max_bytes", "bad size"),
        (
            ('flush_interval   = "1s"', 'flush_interval   = "soon"'),
            "elasticsearch.flush_interval",
            "bad duration",
        ),
        (('listen = "127.0.0.1:9180"', 'listen = "localhost"'), "admin.listen", "bad address"),
        (
            ('when_full  = "drop_newest"', 'when_full  = "panic"'),
            "queue.when_full",
            "must be one of",
        ),
        (
            ('type = "devlog"', 'type = "carrier-pigeon"'),
            "inputs.devlog.type",
            "unknown input type",
        ),
        (
            ('hosts           = ["http://127.0.0.1:9200"]', 'hosts = "127.0.0.1:9200"'),
            "elasticsearch.hosts",
            "expected a list",
        ),
    ],
)
def test_config_mistake_exits_2_with_one_line_naming_the_key(tmp_path, change, key, problem):
    old, new = change
    text = GOOD.read_text()
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1))
    for command in ("check-config", "run", "setup"):
        result = logpipe(command, "-c", str(bad))
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"{bad}: {key}: "), lines[0]
        assert problem in lines[0]
        assert "Traceback" not in result.stderr


def test_missing_and_broken_files_exit_2(tmp_path):
    result = logpipe("check-config", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{tmp_path / 'nope.toml'}: no such file"
    broken = tmp_path / "broken.toml"
    broken.write_text("[queue\nmax_events = 1\n")
    result = logpipe("check-config", "-c", str(broken))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{broken}: not valid TOML")
    assert len(result.stderr.strip().splitlines()) == 1


def test_default_config_is_valid():
    result = logpipe("check-config", "-c", str(GOOD))
    assert result.returncode == 0, result.stderr
    assert logpipe("check-config").returncode == 0  # the packaged default


def test_setup_is_idempotent_and_run_waits_for_the_template(logpipe_factory, es: ES):
    lp = logpipe_factory(start=False)
    lp.start(wait_ready=False)
    wait_for(lambda: "logpipe setup -c" in lp.log_text(), 15, "the missing-template error")
    status, body = lp.get("/readyz")
    assert status == 503 and b"index template" in body

    first = lp.cli("setup", "-c", str(lp.config_path))
    assert "installed" in first.stdout
    assert "ILM: this cluster has none" in first.stdout
    second = lp.cli("setup", "-c", str(lp.config_path))
    assert "installed" not in second.stdout
    assert "nothing to change" in second.stdout

    wait_for(lambda: lp.get("/readyz")[0] == 200, 20, "ready once the template exists")
    name = f"logpipe-{lp.data_stream}"
    status, body = es.request("GET", f"/_index_template/{name}")
    template = body["index_templates"][0]["index_template"]
    assert template["composed_of"] == [f"{name}@settings", f"{name}@mappings"]
    status, body = es.request("GET", f"/_component_template/{name}@mappings")
    mapping = body["component_templates"][0]["component_template"]["template"]["mappings"]
    assert mapping["properties"]["@timestamp"]["type"] == "date_nanos"
    # What an index of the stream gets: the two parts composed.
    status, body = es.request("POST", f"/_index_template/_simulate_index/{lp.data_stream}")
    assert status == 200, body
    assert body["template"]["mappings"]["properties"]["message"]["type"] == "text"
    assert body["template"]["settings"]["index"]["codec"] == "best_compression"


def test_setup_without_elasticsearch_fails_clearly(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[elasticsearch]\nhosts = ["http://127.0.0.1:9"]\ntimeout = "2s"\n')
    result = logpipe("setup", "-c", str(cfg))
    assert result.returncode == 1
    assert "cannot reach Elasticsearch" in result.stderr
    assert "Traceback" not in result.stderr
