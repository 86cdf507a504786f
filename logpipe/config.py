"""TOML config -> frozen, validated settings.

Every setting is a field of a frozen dataclass whose docstring-like ``help`` metadata
is the user documentation (``config/logpipe.toml`` shows each with its default).
The loader rejects unknown keys and bad values with a ``ConfigError`` that renders
as one line, ``FILE: key.path: what is wrong``, which the CLI prints and exits 2 on.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import time
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logpipe.errors import ConfigError
from logpipe.parsers.multiline import MODES as MULTILINE_MODES

DEFAULT_CONFIG = Path(__file__).parent / "data" / "logpipe.toml"

WHEN_FULL_POLICIES = ("drop_newest", "block", "spill")
INPUT_TYPES = ("devlog", "syslog", "forward", "docker")
TLS_VERSIONS = ("1.2", "1.3")
MAX_WORKERS = 64

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def _setting(default: Any, kind: str, help: str, **extra: Any) -> Any:
    """A dataclass field carrying how to validate it and what it means."""
    meta = {"kind": kind, "help": help, **extra}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    node_name: str = _setting("", "str", "The node's name in host.name; default: the host name.")
    data_dir: str = _setting("/var/lib/logpipe", "str", "Dead letters and, later, spool files.")
    workers: int = _setting(
        1,
        "int",
        "Worker processes sharing the sockets, each with its own queue and shipper; "
        "about one per core.",
    )
    event_loop: str = _setting(
        "asyncio",
        "enum",
        "asyncio | uvloop (see the README's performance notes)",
        choices=("asyncio", "uvloop"),
    )
    shutdown_timeout: float = _setting(
        10.0, "duration", "On SIGTERM, how long to keep shipping what is queued."
    )


@dataclass(frozen=True, slots=True)
class AdminSettings:
    listen: str = _setting("127.0.0.1:9180", "address", "host:port of /metrics, /healthz, /readyz.")


@dataclass(frozen=True, slots=True)
class DevlogSettings:
    name: str = _setting("devlog", "internal", "The table name under [inputs].")
    type: str = _setting("devlog", "str", "The input type.")
    path: str = _setting("/run/logpipe/dev-log", "str", "Socket path; mount its directory.")
    mode: int = _setting(0o666, "mode", "Socket file permissions, octal string.")
    max_message_bytes: int = _setting(64 * 1024, "size", "Longer datagrams are cut and tagged.")
    receive_buffer_bytes: int = _setting(
        8 * 1024 * 1024, "size", "SO_RCVBUF(FORCE) asked of the kernel for bursts."
    )
    timezone: str = _setting("", "timezone", "Zone of RFC 3164 stamps; default: the host's.")
    parse_cee: bool = _setting(True, "bool", "Parse '@cee: {json}' messages into logpipe.cee.*.")
    shed_when_behind: bool = _setting(
        False,
        "bool",
        "When senders outpace the reader, drop what waits (counted, reason reader_behind, "
        "loss markers) so apps never wait; off: apps wait in send() for the reader.",
    )
    attribute_containers: bool = _setting(
        True, "bool", "Sender pid -> /proc/<pid>/cgroup -> container.id (needs the host pid ns)."
    )
    docker_socket: str = _setting(
        "/var/run/docker.sock", "str", "Docker/podman API for container names; '' for ids only."
    )
    per_container_sockets: bool = _setting(
        False, "bool", "Also a socket per container: <per_container_dir>/<name>/log."
    )
    per_container_dir: str = _setting(
        "/run/logpipe/containers", "str", "Where the per-container socket directories live."
    )


@dataclass(frozen=True, slots=True)
class SyslogSettings:
    name: str = _setting("syslog", "internal", "The table name under [inputs].")
    type: str = _setting("syslog", "str", "The input type.")
    udp: str = _setting("", "listen", "host:port for UDP datagrams; '' = none.")
    tcp: str = _setting("", "listen", "host:port for TCP (octet counting or LF); '' = none.")
    tls: str = _setting("", "listen", "host:port for TLS (RFC 5425); '' = none.")
    tls_cert: str = _setting("", "str", "tls: the server's certificate chain (PEM file).")
    tls_key: str = _setting("", "str", "tls: its private key (PEM file).")
    tls_client_ca: str = _setting(
        "", "str", "tls: CA (PEM) that client certificates must chain to; '' = no client certs."
    )
    tls_min_version: str = _setting(
        "1.2", "enum", "tls: the oldest TLS version accepted: 1.2 | 1.3", choices=TLS_VERSIONS
    )
    max_message_bytes: int = _setting(64 * 1024, "size", "Longer messages are cut and tagged.")
    max_connections: int = _setting(
        4096, "int", "tcp + tls: connections at once; one more is closed at once and counted."
    )
    idle_timeout: float = _setting(
        600.0, "duration", "tcp + tls: a connection that sends nothing for this long is closed."
    )
    receive_buffer_bytes: int = _setting(
        8 * 1024 * 1024, "size", "udp: SO_RCVBUF(FORCE) asked of the kernel for bursts."
    )
    timezone: str = _setting("", "timezone", "Zone of RFC 3164 stamps; default: the host's.")
    parse_cee: bool = _setting(True, "bool", "Parse '@cee: {json}' messages into logpipe.cee.*.")


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    name: str = _setting("forward", "internal", "The table name under [inputs].")
    type: str = _setting("forward", "str", "The input type.")
    listen: str = _setting("0.0.0.0:24224", "listen", "host:port for the Forward protocol (TCP).")
    tls_cert: str = _setting("", "str", "A certificate chain (PEM): the listener speaks TLS.")
    tls_key: str = _setting("", "str", "tls: its private key (PEM file).")
    tls_client_ca: str = _setting(
        "", "str", "tls: CA (PEM) that client certificates must chain to; '' = no client certs."
    )
    tls_min_version: str = _setting(
        "1.2", "enum", "tls: the oldest TLS version accepted: 1.2 | 1.3", choices=TLS_VERSIONS
    )
    shared_key: str = _setting("", "str", "Clients must prove this key (HELO/PING/PONG); '' = off.")
    self_hostname: str = _setting("", "str", "Our name in the handshake; default: the node name.")
    max_message_bytes: int = _setting(
        16 * 1024**2, "size", "A larger message (chunk) closes the connection, counted."
    )
    max_connections: int = _setting(
        4096, "int", "Connections at once; one more is closed at once and counted."
    )
    idle_timeout: float = _setting(
        600.0, "duration", "A connection that sends nothing for this long is closed."
    )


@dataclass(frozen=True, slots=True)
class DockerSettings:
    name: str = _setting("docker", "internal", "The table name under [inputs].")
    type: str = _setting("docker", "str", "The input type.")
    mode: str = _setting(
        "api", "enum", "api (Engine API) | files (json-file/CRI logs)", choices=("api", "files")
    )
    socket: str = _setting(
        "/var/run/docker.sock", "str", "Docker/podman API; files mode: names by id ('' = off)."
    )
    paths: tuple[str, ...] = _setting(
        (
            "/var/lib/docker/containers/*/*-json.log",
            "/var/log/pods/*/*/*.log",
            "/var/lib/containers/storage/overlay-containers/*/userdata/ctr.log",
        ),
        "strs",
        "files mode: globs of the log files to tail.",
    )
    poll_interval: float = _setting(
        0.25, "duration", "How often files (files) or containers and their logs (api) are read."
    )
    read_chunk_bytes: int = _setting(256 * 1024, "size", "files mode: bytes read at a time.")
    include_names: tuple[str, ...] = _setting((), "strs", "Only containers whose name matches.")
    exclude_names: tuple[str, ...] = _setting((), "strs", "Never containers whose name matches.")
    include_labels: tuple[str, ...] = _setting((), "strs", "Only containers with key or key=value.")
    exclude_labels: tuple[str, ...] = _setting((), "strs", "Never containers with these labels.")
    opt_out_label: str = _setting("logpipe.exclude", "str", "Label a container sets to opt out.")
    max_line_bytes: int = _setting(1024 * 1024, "size", "Longer lines are cut, tagged, counted.")
    partial_flush_timeout: float = _setting(
        5.0, "duration", "files mode: a split line whose end never comes ships after this."
    )
    attach_on_create: bool = _setting(
        True, "bool", "api: hold a new container's log file open (or attach), for --rm ones."
    )
    multiline: str = _setting(
        "",
        "multiline",
        "java | python | indented: join continuation lines (label: logpipe.multiline).",
    )
    multiline_start_pattern: str = _setting(
        "", "regex", "Instead of a mode: a line matching this regex starts a new event."
    )
    multiline_timeout: float = _setting(
        2.0, "duration", "A joined event is shipped once no line has come for this long."
    )
    json_lines: bool = _setting(
        False, "bool", "Merge JSON-object lines into the event (label: logpipe.json=true)."
    )
    json_prefix: str = _setting("logpipe.json", "str", "Where a JSON line's other keys go.")
    keep_original: bool = _setting(False, "bool", "Keep a JSON line's text in event.original.")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    max_events: int = _setting(100_000, "int", "Events held in memory at most.")
    max_bytes: int = _setting(64 * 1024**2, "size", "Approximate bytes held in memory at most.")
    when_full: str = _setting(
        "drop_newest", "enum", "drop_newest | block | spill", choices=WHEN_FULL_POLICIES
    )
    spill_max_bytes: int = _setting(
        1024**3, "size", "spill, durability: the disk spool's bound; past it, drops."
    )
    durability: str = _setting(
        "memory",
        "enum",
        "memory | disk: spool every event before it counts as received",
        choices=("memory", "disk"),
    )
    fsync_interval: float = _setting(
        1.0, "duration", "durability = disk: how often the spool is fsynced (power loss)."
    )
    loss_marker_interval: float = _setting(
        10.0, "duration", "How often a loss-marker event sums up the drops of each input."
    )


@dataclass(frozen=True, slots=True)
class ElasticsearchSettings:
    hosts: tuple[str, ...] = _setting(
        ("http://127.0.0.1:9200",), "urls", "Tried in order; failover."
    )
    data_stream: str = _setting("logs-logpipe-default", "stream", "Where events go.")
    dlq_data_stream: str = _setting("logs-logpipe.dlq-default", "stream", "Where rejects go.")
    index: str = _setting(
        "",
        "daily_index",
        "Classic indices instead of data streams, named from each event's @timestamp "
        '(UTC) by strftime date codes, e.g. "logpipe-%Y.%m.%d"; empty: data streams.',
    )
    dlq_index: str = _setting(
        "logpipe.dlq-%Y.%m.%d", "daily_index", "index mode: where rejects go."
    )
    retention: float = _setting(
        0.0,
        "retention",
        "Delete data older than this (an ILM delete phase; clusters without ILM are told "
        "so by setup). 0: keep everything.",
    )
    repair_conflicts: bool = _setting(
        False, "bool", "Re-send a mapping conflict with the value under logpipe.conflicts."
    )
    batch_max_events: int = _setting(2000, "int", "Events in one _bulk request at most.")
    batch_max_bytes: int = _setting(5 * 1024**2, "size", "Bytes in one _bulk request at most.")
    flush_interval: float = _setting(1.0, "duration", "A partial batch waits this long at most.")
    concurrency: int = _setting(2, "int", "_bulk requests in flight at once.")
    timeout: float = _setting(30.0, "duration", "One request's deadline.")
    retry_initial_backoff: float = _setting(0.1, "duration", "First retry delay (doubles).")
    retry_max_backoff: float = _setting(10.0, "duration", "Retry delays are capped here.")
    username: str = _setting("", "str", "Basic auth user (optional).")
    password: str = _setting("", "str", "Basic auth password (optional).")
    api_key: str = _setting("", "str", "Encoded API key (optional; wins over basic auth).")
    dead_letter_file: str = _setting(
        "",
        "str",
        "NDJSON file for rejects the DLQ stream refused; default data_dir/dead-letters.ndjson.",
    )


@dataclass(frozen=True, slots=True)
class ForwardOutputSettings:
    hosts: tuple[str, ...] = _setting(
        (), "addresses", "host:port of forward receivers; set = ship here, not to Elasticsearch."
    )
    tag: str = _setting("logpipe", "str", "The tag of every chunk sent.")
    tls: bool = _setting(False, "bool", "Connect with TLS.")
    tls_ca: str = _setting("", "str", "tls: CA (PEM) the receivers' certificates chain to.")
    tls_cert: str = _setting("", "str", "tls: our client certificate (PEM), for mutual TLS.")
    tls_key: str = _setting("", "str", "tls: its private key (PEM).")
    shared_key: str = _setting("", "str", "The receivers' shared key (HELO/PING/PONG).")
    self_hostname: str = _setting("", "str", "Our name in the handshake; default: the node name.")
    compress: bool = _setting(True, "bool", "Send CompressedPackedForward (gzip).")
    batch_max_events: int = _setting(2000, "int", "Events in one chunk at most.")
    batch_max_bytes: int = _setting(5 * 1024**2, "size", "Bytes in one chunk at most (about).")
    flush_interval: float = _setting(1.0, "duration", "A partial chunk waits this long at most.")
    concurrency: int = _setting(2, "int", "Chunks in flight at once (one per connection).")
    ack_timeout: float = _setting(30.0, "duration", "No ack by then: re-send (same chunk id).")
    connect_timeout: float = _setting(5.0, "duration", "One connection attempt's deadline.")
    retry_initial_backoff: float = _setting(0.2, "duration", "First retry delay (doubles).")
    retry_max_backoff: float = _setting(10.0, "duration", "Retry delays are capped here.")


@dataclass(frozen=True, slots=True)
class Settings:
    file: str
    service: ServiceSettings
    admin: AdminSettings
    inputs: tuple[DevlogSettings | SyslogSettings | ForwardSettings | DockerSettings, ...]
    queue: QueueSettings
    elasticsearch: ElasticsearchSettings
    forward: ForwardOutputSettings = ForwardOutputSettings()

    @property
    def node_name(self) -> str:
        return self.service.node_name or socket.gethostname()

    @property
    def dead_letter_file(self) -> str:
        return self.elasticsearch.dead_letter_file or os.path.join(
            self.service.data_dir, "dead-letters.ndjson"
        )


_INPUT_CLASSES: dict[str, type] = {
    "devlog": DevlogSettings,
    "syslog": SyslogSettings,
    "forward": ForwardSettings,
    "docker": DockerSettings,
}


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate a config file; raise ConfigError naming the key on any problem."""
    file = str(path) if path is not None else str(DEFAULT_CONFIG)
    try:
        with open(file, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(file, "", "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(file, "", "permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    return from_dict(raw, file)


def from_dict(raw: dict[str, Any], file: str = "<config>") -> Settings:
    """Validate an already parsed TOML document."""
    known = {"service", "admin", "inputs", "queue", "elasticsearch", "forward"}
    for key in raw:
        if key not in known:
            raise ConfigError(file, key, f"unknown section (known: {', '.join(sorted(known))})")
    inputs_raw = _table(raw, "inputs", file)
    inputs = []
    for name, table in inputs_raw.items():
        key = f"inputs.{name}"
        if not isinstance(table, dict):
            raise ConfigError(file, key, "must be a table")
        kind = table.get("type")
        if kind is None:
            raise ConfigError(file, f"{key}.type", f"missing; one of: {', '.join(INPUT_TYPES)}")
        if not isinstance(kind, str) or kind not in _INPUT_CLASSES:
            raise ConfigError(
                file,
                f"{key}.type",
                f"unknown input type {kind!r}; one of: {', '.join(INPUT_TYPES)}",
            )
        inputs.append(_build(_INPUT_CLASSES[kind], {**table, "name": name}, key, file))
    settings = Settings(
        file=file,
        service=_build(ServiceSettings, _table(raw, "service", file), "service", file),
        admin=_build(AdminSettings, _table(raw, "admin", file), "admin", file),
        inputs=tuple(inputs),
        queue=_build(QueueSettings, _table(raw, "queue", file), "queue", file),
        elasticsearch=_build(
            ElasticsearchSettings,
            {**_credentials_from_environment(), **_table(raw, "elasticsearch", file)},
            "elasticsearch",
            file,
        ),
        forward=_build(ForwardOutputSettings, _table(raw, "forward", file), "forward", file),
    )
    _check_relations(settings)
    return settings


# Credentials kept out of the config file (a Kubernetes Secret, a systemd credential):
# each fills its key when the file does not set it.
CREDENTIAL_ENV = {
    "username": "LOGPIPE_ELASTICSEARCH_USERNAME",
    "password": "LOGPIPE_ELASTICSEARCH_PASSWORD",
    "api_key": "LOGPIPE_ELASTICSEARCH_API_KEY",
}


def _credentials_from_environment() -> dict[str, str]:
    return {key: os.environ[var] for key, var in CREDENTIAL_ENV.items() if os.environ.get(var)}


def _check_relations(s: Settings) -> None:
    """Rules that span several keys."""
    if not 1 <= s.service.workers <= MAX_WORKERS:
        raise ConfigError(s.file, "service.workers", f"must be 1..{MAX_WORKERS}")
    paths: dict[str, str] = {}
    for inp in s.inputs:
        if not isinstance(inp, DevlogSettings):
            continue
        if inp.path in paths:
            raise ConfigError(
                s.file, f"inputs.{inp.name}.path", f"already used by inputs.{paths[inp.path]}"
            )
        paths[inp.path] = inp.name
    listeners: dict[str, str] = {f"tcp:{s.admin.listen}": "admin.listen"}
    for inp in s.inputs:
        if isinstance(inp, SyslogSettings):
            _check_syslog(s.file, inp, listeners)
        elif isinstance(inp, ForwardSettings):
            _check_forward(s.file, inp, listeners)
    if s.elasticsearch.data_stream == s.elasticsearch.dlq_data_stream:
        raise ConfigError(s.file, "elasticsearch.dlq_data_stream", "must differ from data_stream")
    main, dlq = index_prefix(s.elasticsearch.index), index_prefix(s.elasticsearch.dlq_index)
    if s.elasticsearch.index and (main.startswith(dlq) or dlq.startswith(main)):
        # One would match the other's pattern ("logpipe-*"): searches of the events
        # would show the dead letters, and the two templates would overlap.
        raise ConfigError(
            s.file,
            "elasticsearch.dlq_index",
            f"its fixed part {dlq!r} and index's {main!r} must not start one another",
        )


def _check_syslog(file: str, inp: SyslogSettings, listeners: dict[str, str]) -> None:
    prefix = f"inputs.{inp.name}"
    if not (inp.udp or inp.tcp or inp.tls):
        raise ConfigError(file, prefix, "no listener; set at least one of udp, tcp, tls")
    for kind, setting, address in (
        ("udp", "udp", inp.udp),
        ("tcp", "tcp", inp.tcp),
        ("tcp", "tls", inp.tls),
    ):
        if not address:
            continue
        key = f"{kind}:{address}"
        which = f"{prefix}.{setting}"
        if key in listeners:
            raise ConfigError(file, which, f"{address} is already used by {listeners[key]}")
        listeners[key] = which
    _check_tls_files(file, prefix, inp.tls_cert, inp.tls_key, inp.tls_client_ca, inp.tls != "")


def _check_forward(file: str, inp: ForwardSettings, listeners: dict[str, str]) -> None:
    prefix = f"inputs.{inp.name}"
    if not inp.listen:
        raise ConfigError(file, f"{prefix}.listen", "required: host:port to listen on")
    key = f"tcp:{inp.listen}"
    if key in listeners:
        raise ConfigError(
            file, f"{prefix}.listen", f"{inp.listen} is already used by {listeners[key]}"
        )
    listeners[key] = f"{prefix}.listen"
    _check_tls_files(file, prefix, inp.tls_cert, inp.tls_key, inp.tls_client_ca, inp.tls_cert != "")


def _check_tls_files(
    file: str, prefix: str, cert: str, key: str, client_ca: str, wanted: bool
) -> None:
    if not wanted:
        return
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if not path:
            raise ConfigError(file, f"{prefix}.{name}", "required when tls is set")
        if not os.access(path, os.R_OK):
            raise ConfigError(file, f"{prefix}.{name}", f"cannot read {path}")
    if client_ca and not os.access(client_ca, os.R_OK):
        raise ConfigError(file, f"{prefix}.tls_client_ca", f"cannot read {client_ca}")


def _table(raw: dict[str, Any], key: str, file: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(file, key, "must be a table")
    return value


def _build(cls: type, table: dict[str, Any], prefix: str, file: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None or (f.metadata["kind"] == "internal" and key != "name"):
            allowed = ", ".join(n for n, g in fields.items() if g.metadata["kind"] != "internal")
            raise ConfigError(file, f"{prefix}.{key}", f"unknown key (allowed: {allowed})")
        values[key] = _convert(value, f.metadata, f"{prefix}.{key}", file)
    return cls(**values)


def _convert(value: Any, meta: dict[str, Any], key: str, file: str) -> Any:
    kind = meta["kind"]
    try:
        return _CONVERTERS[kind](value, meta)
    except (TypeError, ValueError) as exc:
        raise ConfigError(file, key, str(exc)) from None


def _want(value: Any, types: type | tuple[type, ...], what: str) -> None:
    # bool is an int in Python; a config that says `workers = true` is still wrong.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TypeError(f"expected {what}, got a boolean")
    if not isinstance(value, types):
        raise TypeError(f"expected {what}, got {type(value).__name__} {value!r}")


def _to_str(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "a string")
    return value


def _to_int(value: Any, meta: dict[str, Any]) -> int:
    _want(value, int, "an integer")
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _to_bool(value: Any, meta: dict[str, Any]) -> bool:
    _want(value, bool, "true or false")
    return value


def parse_size(value: Any, meta: dict[str, Any] | None = None) -> int:
    """'64MiB', '512KB', '1000' or an integer -> bytes."""
    _want(value, (int, str), "a size such as 64MiB")
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        m = _SIZE_RE.match(value)
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(
                f"bad size {value!r}; use a number with B, KB, KiB, MB, MiB, GB or GiB"
            )
        number, unit = float(m.group(1)), m.group(2).lower()
    size = int(number * _SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


def duration_seconds(text: str) -> float | None:
    """'30d', '500ms', '0ms' -> seconds; None where ``text`` is not a duration."""
    m = _DURATION_RE.match(text)
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)] if m else None


def parse_duration(value: Any, meta: dict[str, Any] | None = None) -> float:
    """'10s', '500ms', '2m', '1h' or a number of seconds -> seconds."""
    _want(value, (int, float, str), "a duration such as 10s or 500ms")
    if isinstance(value, str):
        seconds = duration_seconds(value)
        if seconds is None:
            raise ValueError(f"bad duration {value!r}; use a number with ms, s, m, h or d")
    else:
        seconds = float(value)
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def _to_retention(value: Any, meta: dict[str, Any]) -> float:
    """A duration, or 0 (also "0" or ""): keep everything."""
    if value in (0, "0", ""):
        return 0.0
    return parse_duration(value, meta)


def parse_address(value: Any, meta: dict[str, Any] | None = None) -> str:
    """'host:port' or '[v6]:port'; returned unchanged once valid."""
    _want(value, str, "an address host:port")
    host, _port = split_address(value)
    if not host:
        raise ValueError(f"bad address {value!r}: no host; use host:port")
    return value


def _to_listen(value: Any, meta: dict[str, Any]) -> str:
    """An optional listener: '' for none, else a host:port with an IP literal host
    (the socket's key must read the same as the address the kernel reports)."""
    _want(value, str, "an address host:port, or '' for none")
    if not value:
        return value
    parse_address(value)
    host, _port = split_address(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"bad address {value!r}: use an IP address (0.0.0.0, [::], 127.0.0.1), not a name"
        ) from None
    return value


def split_address(value: str) -> tuple[str, int]:
    """Split a validated 'host:port' / '[v6]:port' into its parts."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad address {value!r}; use host:port with a port 0-65535")
    return host, int(port)


def _to_mode(value: Any, meta: dict[str, Any]) -> int:
    _want(value, str, 'an octal mode string such as "0666"')
    if not re.fullmatch(r"0?[0-7]{3}", value):
        raise ValueError(f'bad mode {value!r}; use an octal string such as "0666"')
    return int(value, 8)


def _to_enum(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "a string")
    if value not in meta["choices"]:
        raise ValueError(f"must be one of {', '.join(meta['choices'])}, got {value!r}")
    return value


def _to_addresses(value: Any, meta: dict[str, Any]) -> tuple[str, ...]:
    _want(value, list, "a list of host:port strings")
    return tuple(parse_address(v) for v in value)


def _to_urls(value: Any, meta: dict[str, Any]) -> tuple[str, ...]:
    _want(value, list, "a list of URLs")
    if not value:
        raise ValueError("needs at least one URL")
    for url in value:
        _want(url, str, "a URL string")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            raise ValueError(f"bad URL {url!r}; use http://host:port or https://host:port")
    return tuple(u.rstrip("/") for u in value)


def _to_strs(value: Any, meta: dict[str, Any]) -> tuple[str, ...]:
    _want(value, list, "a list of strings")
    for item in value:
        _want(item, str, "a string")
    return tuple(value)


def _to_multiline(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "a string")
    if value and value not in MULTILINE_MODES:
        raise ValueError(f"must be one of {', '.join(MULTILINE_MODES)} or empty, got {value!r}")
    return value


def _to_regex(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "a regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r}: {exc}") from None
    return value


def _to_timezone(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "a zone name such as UTC or Europe/Berlin")
    if value:
        try:
            zoneinfo.ZoneInfo(value)
        # OSError: a name the file system refuses outright (too long, a NUL in it).
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r}") from None
    return value


# Elasticsearch's rules for index (and so data stream) names.
_STREAM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _to_stream(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "a data stream name")
    if not _STREAM_NAME_RE.match(value) or len(value.encode()) > 255 or value.startswith(".ds-"):
        raise ValueError(
            f"bad data stream name {value!r}: lower case letters, digits, '.', '_' and '-', "
            "not starting with '-', '_' or '.'"
        )
    return value


# strftime codes that depend on the date alone: an event's index follows its day.
_DATE_CODES = frozenset("YymdjGVUW%")
_INDEX_BAD_CHARS = frozenset('\\/*?"<>| ,#:')


def index_prefix(index: str) -> str:
    """The part of a daily index name before its first date code ("logpipe-")."""
    return index.split("%", 1)[0]


def _to_daily_index(value: Any, meta: dict[str, Any]) -> str:
    _want(value, str, "an index name with strftime date codes")
    if not value:
        return value
    codes = re.findall(r"%(.?)", value)
    bad = [c for c in codes if c not in _DATE_CODES]
    if bad:
        raise ValueError(
            f"bad index name {value!r}: %{bad[0]} is not a date code "
            "(use %Y %m %d %j %V and the like: an index is chosen by the event's day)"
        )
    sample = time.strftime(value, time.gmtime(0))
    prefix = index_prefix(value)
    if (
        not prefix
        or sample != sample.lower()
        or any(c in _INDEX_BAD_CHARS for c in sample)
        or sample[0] in "-_+."
        or len(sample.encode()) > 255
    ):
        raise ValueError(
            f'bad index name {value!r}: lower case, no spaces or any of \\/*?"<>|,#:, '
            "not starting with '-', '_', '+' or '.', and with a fixed part before the first %"
        )
    return value


_CONVERTERS = {
    "str": _to_str,
    "listen": _to_listen,
    "internal": _to_str,
    "int": _to_int,
    "bool": _to_bool,
    "size": parse_size,
    "duration": parse_duration,
    "address": parse_address,
    "mode": _to_mode,
    "enum": _to_enum,
    "urls": _to_urls,
    "addresses": _to_addresses,
    "timezone": _to_timezone,
    "stream": _to_stream,
    "daily_index": _to_daily_index,
    "retention": _to_retention,
    "strs": _to_strs,
    "multiline": _to_multiline,
    "regex": _to_regex,
}
