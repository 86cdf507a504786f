"""Coverage-guided fuzzing (atheris, libFuzzer) of every parser logpipe feeds untrusted bytes.

Run outside CI, ten minutes per target:

    .venv/bin/python tests/fuzz/fuzz_parsers.py syslog            # -max_total_time=600
    .venv/bin/python tests/fuzz/fuzz_parsers.py all -max_total_time=60
    .venv/bin/python tests/fuzz/fuzz_parsers.py config tests/fuzz/corpus/config  # a corpus

Each target states what must hold for ANY input: the parser raises nothing but its
documented error, and what it returns can be encoded as the output would (orjson).
A crash prints the input and writes it to ``crash-<sha1>``; turn each into a test in
tests/unit (the fuzz tests there hold the ones found so far). The suite runs every
target for a few hundred inputs (tests/unit/test_fuzz_targets.py) so this script keeps
working; the long runs are for people.

"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import atheris

# Import logpipe from this checkout through the plain path finder: atheris instruments
# what that finder loads, not what the editable install's own finder does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["logpipe"]):
    import orjson

    from logpipe import config
    from logpipe.errors import ConfigError
    from logpipe.parsers import forward
    from logpipe.parsers.cee import apply_cee
    from logpipe.parsers.docker import (
        FrameError,
        LogLine,
        MultiplexedDecoder,
        RawStreamDecoder,
        parse_cri_line,
        parse_json_file_line,
    )
    from logpipe.parsers.jsonline import merge_json_line
    from logpipe.parsers.syslog import SyslogParser
    from logpipe.parsers.syslog_framing import FrameSplitter

RECEIVED_NS = 1_764_410_000_123_456_789  # a fixed receive time: runs must be repeatable
_syslog = SyslogParser()


def _chunks(fdp: atheris.FuzzedDataProvider) -> list[bytes]:
    """The rest of the input as reads of fuzzer-chosen sizes."""
    pieces = []
    while fdp.remaining_bytes():
        pieces.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512)))
    return pieces


def fuzz_syslog(data: bytes) -> None:
    event = _syslog.parse(data, RECEIVED_NS)
    assert isinstance(event.get("message"), str), event
    orjson.dumps(event)


def fuzz_syslog_framing(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limit = fdp.ConsumeIntInRange(1, 300)
    splitter = FrameSplitter(limit)
    frames = [f for chunk in _chunks(fdp) for f in splitter.feed(chunk)] + splitter.flush()
    assert all(0 < len(f) <= limit for f in frames)
    for frame in frames:
        orjson.dumps(_syslog.parse(frame, RECEIVED_NS))


def _encode(line: LogLine) -> None:
    """As the container inputs make an event of a line."""
    message = line.text.decode("utf-8", "replace")
    orjson.dumps({"message": message, "stream": line.stream, "t": line.time_ns})


def fuzz_json_file(data: bytes) -> None:
    line = parse_json_file_line(data)
    if line is not None:
        _encode(line)


def fuzz_cri(data: bytes) -> None:
    line = parse_cri_line(data)
    if line is not None:
        _encode(line)


def fuzz_multiplexed(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    decoder = MultiplexedDecoder(
        timestamps=fdp.ConsumeBool(),
        max_frame_bytes=fdp.ConsumeIntInRange(1, 4096),
        skip_stray_newlines=fdp.ConsumeBool(),
    )
    for chunk in _chunks(fdp):
        try:
            lines = decoder.feed(chunk)
        except FrameError:
            return
        for line in lines:
            _encode(line)


def fuzz_raw_stream(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    decoder = RawStreamDecoder(
        timestamps=fdp.ConsumeBool(), max_line_bytes=fdp.ConsumeIntInRange(1, 4096)
    )
    for chunk in _chunks(fdp):
        for line in decoder.feed(chunk):
            _encode(line)


def fuzz_structured_text(data: bytes) -> None:
    """@cee: payloads and JSON log lines: text an app controls, merged into the event."""
    text = data.decode("utf-8", "replace")
    event = {"message": "@cee:" + text}
    apply_cee(event)
    orjson.dumps(event)
    line_event = {"message": text}
    merge_json_line(line_event, text, keep_original=True)
    orjson.dumps(line_event)


def fuzz_forward(data: bytes) -> None:
    """What a forward client sends, in fuzzer-chosen reads: chunks and PINGs or a
    ForwardError, and every record becomes an event orjson can encode."""
    fdp = atheris.FuzzedDataProvider(data)
    decoder = forward.ForwardDecoder(max_message_bytes=fdp.ConsumeIntInRange(16, 1 << 16))
    for piece in _chunks(fdp):
        try:
            messages = decoder.feed(piece)
        except forward.ForwardError:
            return
        for message in messages:
            if isinstance(message, forward.Chunk):
                for _time_ns, record in message.entries:
                    event, _partial = forward.record_to_event(message.tag, record)
                    orjson.dumps(event)


def fuzz_config(data: bytes) -> None:
    try:
        raw = tomllib.loads(data.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError:
        return
    try:
        config.from_dict(raw, "fuzz.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc), exc  # the one-line promise


TARGETS: dict[str, Callable[[bytes], None]] = {
    "syslog": fuzz_syslog,
    "syslog_framing": fuzz_syslog_framing,
    "json_file": fuzz_json_file,
    "cri": fuzz_cri,
    "multiplexed": fuzz_multiplexed,
    "raw_stream": fuzz_raw_stream,
    "structured_text": fuzz_structured_text,
    "forward": fuzz_forward,
    "config": fuzz_config,
}


ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "unit" / "data"


def seeds(name: str) -> list[bytes]:
    """Real inputs to start from (the parsers are mostly regexes and slicing, which
    coverage guidance sees little of): the test vectors and samples in tests/unit/data."""
    import base64
    import json
    import re

    if name in ("syslog", "syslog_framing"):
        out = []
        for path in sorted((DATA / "syslog_vectors").glob("*.jsonl")):
            for line in path.read_text().splitlines():
                case = json.loads(line)
                raw = case.get("raw")
                out.append(raw.encode() if raw is not None else base64.b64decode(case["raw_b64"]))
        if name == "syslog_framing":
            out = [b"\x05" + b"%d %s" % (len(m), m) for m in out[:200]]
        return out
    if name == "json_file":
        return (DATA / "docker" / "json-file.sample.log").read_bytes().splitlines()
    if name == "cri":
        return (DATA / "docker" / "cri.sample.log").read_bytes().splitlines()
    if name == "forward":
        examples = ROOT.parent / "shared" / "data" / "forward" / "docker_fluentd_examples.jsonl"
        found = []
        if examples.exists():
            found = [bytes.fromhex(json.loads(x)["hex"]) for x in examples.read_text().splitlines()]
        return [b"\x05\x00" + frame for frame in found]  # a size, then the frame
    if name == "config":
        text = (ROOT / "config" / "logpipe.toml").read_text()
        return [text.encode(), re.sub(r"^# ?", "", text, flags=re.M).encode()]
    return []


def _corpus_dir(name: str) -> str:
    import hashlib
    import tempfile

    directory = tempfile.mkdtemp(prefix=f"logpipe-fuzz-{name}-")
    for seed in seeds(name):
        (Path(directory) / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return directory


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in (*TARGETS, "all"):
        sys.exit(f"usage: {argv[0]} {{{'|'.join(TARGETS)}|all}} [libFuzzer options] [corpus]")
    name, options = argv[1], argv[2:]
    if not any(o.startswith(("-max_total_time=", "-runs=")) for o in options):
        options.append("-max_total_time=600")
    if name == "all":
        import subprocess

        for each in TARGETS:
            print(f"== {each}", flush=True)
            subprocess.run([sys.executable, argv[0], each, *options], check=True)
        return
    if not any(not o.startswith("-") for o in options):
        options.append(_corpus_dir(name))  # seeded from tests/unit/data
    atheris.Setup([argv[0], *options], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
