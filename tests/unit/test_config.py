"""Config loading: defaults, conversions, and one-line errors naming the key."""

from __future__ import annotations

import pytest

from logpipe import config
from logpipe.errors import ConfigError


def test_packaged_default_loads_with_documented_defaults() -> None:
    s = config.load()
    assert s.queue.max_events == 100_000
    assert s.queue.max_bytes == 64 * 1024**2
    assert s.queue.when_full == "drop_newest"
    assert s.inputs[0].path == "/run/logpipe/dev-log"
    assert s.inputs[0].mode == 0o666
    assert s.elasticsearch.data_stream == "logs-logpipe-default"
    assert s.elasticsearch.flush_interval == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64MiB", 64 * 1024**2), ("512KB", 512_000), ("1.5KiB", 1536), (4096, 4096), ("10 B", 10)],
)
def test_sizes(text, expected) -> None:
    assert config.parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (3, 3.0)]
)
def test_durations(text, expected) -> None:
    assert config.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9180", ("127.0.0.1", 9180)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_addresses(value, expected) -> None:
    assert config.split_address(config.parse_address(value)) == expected


@pytest.mark.parametrize(
    ("doc", "key", "fragment"),
    [
        ({"nonsense": {}}, "nonsense", "unknown section"),
        ({"queue": {"max_events": 0}}, "queue.max_events", "at least 1"),
        ({"queue": {"max_events": True}}, "queue.max_events", "boolean"),
        ({"queue": {"max_bytes": "-5MiB"}}, "queue.max_bytes", "bad size"),
        ({"queue": {"loss_marker_interval": "0s"}}, "queue.loss_marker_interval", "positive"),
        ({"admin": {"listen": "host:99999"}}, "admin.listen", "port 0-65535"),
        ({"inputs": {"x": {"path": "/a"}}}, "inputs.x.type", "missing"),
        ({"inputs": {"x": {"type": "devlog", "mode": "777x"}}}, "inputs.x.mode", "octal"),
        (
            {"inputs": {"x": {"type": "devlog", "timezone": "Mars/Olympus"}}},
            "inputs.x.timezone",
            "unknown time zone",
        ),
        (  # found by tests/fuzz: a name too long for the file system was an OSError
            {"inputs": {"x": {"type": "devlog", "timezone": "under " + "x" * 300}}},
            "inputs.x.timezone",
            "unknown time zone",
        ),
        (
            {
                "inputs": {
                    "a": {"type": "devlog", "path": "/p"},
                    "b": {"type": "devlog", "path": "/p"},
                }
            },
            "inputs.b.path",
            "already used by inputs.a",
        ),
        ({"elasticsearch": {"hosts": ["ftp://x"]}}, "elasticsearch.hosts", "bad URL"),
        ({"elasticsearch": {"hosts": []}}, "elasticsearch.hosts", "at least one"),
        ({"service": {"workers": 0}}, "service.workers", "at least 1"),
        ({"service": {"workers": 65}}, "service.workers", "must be 1..64"),
        ({"elasticsearch": {"data_stream": "Logs-X"}}, "elasticsearch.data_stream", "bad data"),
        ({"elasticsearch": {"dlq_data_stream": "_x"}}, "elasticsearch.dlq_data_stream", "bad"),
        ({"elasticsearch": {"index": "logs-%H"}}, "elasticsearch.index", "%H is not a date"),
        ({"elasticsearch": {"index": "Logs-%Y"}}, "elasticsearch.index", "lower case"),
        ({"elasticsearch": {"index": "%Y.%m"}}, "elasticsearch.index", "fixed part"),
        ({"elasticsearch": {"index": "logs-%a"}}, "elasticsearch.index", "%a is not a date"),
        (
            {"elasticsearch": {"index": "logs-%Y", "dlq_index": "logs-dlq-%Y"}},
            "elasticsearch.dlq_index",
            "must not start one another",
        ),
        ({"elasticsearch": {"retention": "a month"}}, "elasticsearch.retention", ""),
        ({"queue": []}, "queue", "must be a table"),
        ({"inputs": {"n": {"type": "syslog"}}}, "inputs.n", "no listener"),
        # found by tests/fuzz: a list as the type was a TypeError (unhashable)
        ({"inputs": {"n": {"type": ["devlog"]}}}, "inputs.n.type", "unknown input type"),
        ({"inputs": {"n": {"type": "syslog", "tcp": "localhost:514"}}}, "inputs.n.tcp", "IP"),
        ({"inputs": {"n": {"type": "syslog", "udp": 514}}}, "inputs.n.udp", "address"),
        (
            {"inputs": {"n": {"type": "syslog", "tls": "[::]:6514"}}},
            "inputs.n.tls_cert",
            "required",
        ),
        (
            {
                "inputs": {
                    "n": {
                        "type": "syslog",
                        "tls": "[::]:6514",
                        "tls_cert": "/nope",
                        "tls_key": "/x",
                    }
                }
            },
            "inputs.n.tls_cert",
            "cannot read /nope",
        ),
        (
            {"inputs": {"n": {"type": "syslog", "tcp": "0.0.0.0:514", "tls": "0.0.0.0:514"}}},
            "inputs.n.tls",
            "already used by inputs.n.tcp",
        ),
        (
            {
                "admin": {"listen": "127.0.0.1:9180"},
                "inputs": {"n": {"type": "syslog", "tcp": "127.0.0.1:9180"}},
            },
            "inputs.n.tcp",
            "already used by admin.listen",
        ),
        (
            {"inputs": {"n": {"type": "syslog", "udp": ":514", "tls_min_version": "1.0"}}},
            "inputs.n.udp",
            "no host",
        ),
        (
            {"inputs": {"n": {"type": "syslog", "tcp": "[::]:514", "tls_min_version": "1.0"}}},
            "inputs.n.tls_min_version",
            "1.2",
        ),
    ],
)
def test_errors_name_file_and_key(doc, key, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        config.from_dict(doc, "/etc/logpipe.toml")
    message = str(info.value)
    assert message.startswith(f"/etc/logpipe.toml: {key}: "), message
    assert fragment in message
    assert "\n" not in message


def test_a_syslog_input_with_udp_and_tcp_on_the_same_port_is_fine() -> None:
    s = config.from_dict(
        {"inputs": {"net": {"type": "syslog", "udp": "[::]:514", "tcp": "[::]:514"}}}
    )
    (net,) = s.inputs
    assert isinstance(net, config.SyslogSettings)
    assert (net.udp, net.tcp, net.tls) == ("[::]:514", "[::]:514", "")
    assert net.max_message_bytes == 64 * 1024 and net.idle_timeout == 600.0


def test_elasticsearch_credentials_come_from_the_environment_unless_the_file_sets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from logpipe.config import from_dict

    monkeypatch.setenv("LOGPIPE_ELASTICSEARCH_USERNAME", "shipper")
    monkeypatch.setenv("LOGPIPE_ELASTICSEARCH_PASSWORD", "s3cret")
    es = from_dict({}).elasticsearch
    assert (es.username, es.password, es.api_key) == ("shipper", "s3cret", "")
    es = from_dict({"elasticsearch": {"password": "from-file"}}).elasticsearch
    assert es.password == "from-file" and es.username == "shipper"


def test_daily_index_mode_keeps_its_patterns_and_retention() -> None:
    es = config.from_dict(
        {"elasticsearch": {"index": "logs-app-%Y.%m.%d", "retention": "30d"}}
    ).elasticsearch
    assert (es.index, es.dlq_index, es.retention) == (
        "logs-app-%Y.%m.%d",
        "logpipe.dlq-%Y.%m.%d",
        30 * 86400,
    )
