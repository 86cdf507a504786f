"""Property tests for the config loader: any TOML document is a Settings or one ConfigError.

A config is input too: an operator's typo must come back as one line naming the key,
never as a traceback (tests/fuzz/fuzz_parsers.py config fuzzes the same promise with
coverage guidance, from raw text).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe import config
from logpipe.errors import ConfigError

PROPERTY = settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])

_CLASSES = {
    "service": config.ServiceSettings,
    "admin": config.AdminSettings,
    "queue": config.QueueSettings,
    "elasticsearch": config.ElasticsearchSettings,
}
_INPUT_CLASSES = (config.DevlogSettings, config.SyslogSettings, config.DockerSettings)

# Values of every TOML type, and strings that look like what settings want.
_scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["10s", "0ms", "64MiB", "-1", "0666", "127.0.0.1:514", "[::]:0", "UTC", ""]),
    st.sampled_from(["http://127.0.0.1:9200", "spill", "disk", "files", "(", "a" * 300]),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), _scalars, max_size=2),
)


def _table(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    names = [f.name for f in dataclasses.fields(cls) if f.name not in ("name", "type")]
    keys = st.one_of(st.sampled_from(names), st.text(max_size=8))
    return st.dictionaries(keys, _values, max_size=4)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section, cls in _CLASSES.items():
        if draw(st.booleans()):
            doc[section] = draw(_table(cls))
    if draw(st.booleans()):
        inputs = {}
        for n in range(draw(st.integers(0, 3))):
            cls = draw(st.sampled_from(_INPUT_CLASSES))
            table = draw(_table(cls))
            table["type"] = draw(st.one_of(st.just(cls().type), _values))
            inputs[f"in{n}"] = table
        doc["inputs"] = draw(st.one_of(st.just(inputs), _values))
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(max_size=8))] = draw(_values)
    return doc


@PROPERTY
@given(documents())
def test_any_document_is_settings_or_one_line_naming_a_key(doc: dict[str, Any]) -> None:
    try:
        loaded = config.from_dict(doc, "/etc/logpipe.toml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("/etc/logpipe.toml: "), message
        assert "\n" not in message
        return
    assert isinstance(loaded, config.Settings)
