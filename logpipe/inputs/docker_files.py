"""The ``docker`` input, ``mode = "files"``: container log files tailed from disk.

Reads Docker's json-file logs (``/var/lib/docker/containers/<id>/<id>-json.log``) and
CRI-format logs (containerd and Kubernetes ``/var/log/pods/...``, podman's k8s-file
``.../overlay-containers/<id>/userdata/ctr.log``), detected per line. Files are found by
glob and watched by polling ``stat`` (one call per file per ``poll_interval``):

- a new file is read from its start (or from the checkpoint that names it: its
  directory, device and inode, see ``file_key``);
- rotation by rename: the open descriptor is read to its end before the new file at
  the path is opened, so the tail of the old file is not lost;
- copytruncate: a file that shrank below our offset is read again from 0.

Each event's id is ``<file_key>-<offset of its first byte>``, and the offset of
every file is checkpointed in ``data_dir`` whenever everything read has been delivered,
so a restart, or any re-read, lands on the same documents. Split lines (json-file
entries without "\\n", CRI ``P`` pieces) are joined by the shared reassembler. When the
queue is full this input stops reading; it never drops a line.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Hashable
from typing import Any

from logpipe import checkpoints, metrics
from logpipe.config import DockerSettings
from logpipe.enrich.containers import (
    CONTAINER_ID,
    CONTAINER_NAME,
    ContainerMetadata,
    metadata_fields,
)
from logpipe.event import EVENT_OVERHEAD_BYTES, TAGS, Stamper
from logpipe.parsers.docker import LogLine, parse_cri_line, parse_json_file_line
from logpipe.parsers.jsonline import merge_json_line
from logpipe.parsers.multiline import MultilineJoiner
from logpipe.parsers.partial import PartialReassembler
from logpipe.queue import EventQueue
from logpipe.timefmt import NS_PER_SECOND, iso_ns

log = logging.getLogger(__name__)

STREAM = "logpipe.stream"
LOG_FILE_PATH = "log.file.path"
TAG_TRUNCATED = "_message_truncated"
TAG_UNPARSED = "_docker_parse_failure"
FORGET_AFTER_SECONDS = 60.0
_CONTAINER_ID_RE = re.compile(r"(?:^|/)([0-9a-f]{64})(?:/|$)")
# /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
_K8S_POD_RE = re.compile(r"/pods/([^/_]+)_([^/_]+)_([^/]+)/([^/]+)/\d+\.log$")


def container_from_path(path: str) -> dict[str, Any]:
    """What the path alone says: the container id, and Kubernetes names for pod logs."""
    fields: dict[str, Any] = {}
    m = _CONTAINER_ID_RE.search(path)
    if m:
        fields[CONTAINER_ID] = m.group(1)
    k = _K8S_POD_RE.search(path)
    if k:
        namespace, pod, _uid, container = k.groups()
        fields["orchestrator.type"] = "kubernetes"
        fields["orchestrator.namespace"] = namespace
        fields["orchestrator.resource.type"] = "pod"
        fields["orchestrator.resource.name"] = pod
        fields["container.name"] = container
    return fields


def docker_config_fields(log_path: str) -> dict[str, Any]:
    """Docker's ``config.v2.json`` beside a json-file log, as ECS fields ({} if absent)."""
    try:
        with open(os.path.join(os.path.dirname(log_path), "config.v2.json"), "rb") as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict):
        return {}
    fields = metadata_fields(
        {
            "Id": config.get("ID", ""),
            "Name": config.get("Name", ""),
            "Config": config.get("Config") or {},
        },
        "docker",
    )
    return {k: v for k, v in fields.items() if v}


def file_key(path: str, st: os.stat_result) -> str:
    """A log file's identity: ``<directory hash>-<device>-<inode>`` (hex).

    The inode alone is not enough: a removed container's log inode is handed to the
    next new file at once, and that file would take the old one's checkpoint and event
    ids (its lines would be 409s, lost). The directory names the container (Docker's
    and podman's directories are per container, Kubernetes' per pod and container) and
    stays the same through rotation by rename.
    """
    directory = hashlib.blake2b(os.path.dirname(path).encode(), digest_size=6).hexdigest()
    return f"{directory}-{st.st_dev:x}-{st.st_ino:x}"


class _FileLineJoiner:
    """Multiline joining for files, keeping the offset of each event's first line (its id).

    The joiner carries one integer per event, the first line's "time"; here that is the
    line's offset, and the real timestamps wait beside it, keyed by offset.
    """

    __slots__ = ("joiner", "stamps")

    def __init__(self, joiner: MultilineJoiner) -> None:
        self.joiner = joiner
        self.stamps: dict[Hashable, dict[int, int]] = {}  # key -> {offset: time_ns}

    def feed(
        self, key: Hashable, offset: int, message: str, time_ns: int, now_ns: int
    ) -> list[tuple[str, int, int]]:
        """-> [(joined text, time_ns of its first line, offset of its first line)]."""
        stamps = self.stamps.setdefault(key, {})
        stamps[offset] = time_ns
        done = [
            (text, stamps.get(first, 0), first)
            for text, first, _split in self.joiner.feed(key, message, offset, now_ns)
        ]
        if done:
            self._forget_before(key)
        return done

    def expired(self, now_ns: int) -> list[tuple[Hashable, str, int, int]]:
        done = [
            (key, text, self.stamps.get(key, {}).get(first, 0), first)
            for key, text, first, _split in self.joiner.expired(now_ns)
        ]
        for key, *_rest in done:
            self._forget_before(key)
        return done

    def pending_offsets(self) -> list[tuple[Any, int]]:
        """Per key, the first offset of the event still being joined: a checkpoint must
        not pass it, or a restart would begin mid-event."""
        pending = []
        for key in self.stamps:
            first = self.joiner.pending_since(key)
            if first is not None:
                pending.append((key, first))
        return pending

    def _forget_before(self, key: Hashable) -> None:
        """Drop the stamps of lines that belong to completed events."""
        first = self.joiner.pending_since(key)
        stamps = self.stamps[key]
        if first is None:
            stamps.clear()
            return
        for offset in [o for o in stamps if o < first]:
            del stamps[offset]


class _Tail:
    """One open log file: where we are, and the bytes of a line not yet complete."""

    __slots__ = ("dev", "fh", "fields", "ino", "key", "offset", "path", "rest")

    def __init__(
        self, path: str, fh: Any, st: os.stat_result, offset: int, fields: dict[str, Any]
    ) -> None:
        self.path = path
        self.fh = fh
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.key = file_key(path, st)
        self.offset = offset  # of the first byte not yet turned into an event
        self.rest = b""
        self.fields = fields


class DockerFilesInput:
    """Tails container log files; never drops, pauses when the queue is full."""

    def __init__(
        self,
        settings: DockerSettings,
        queue: EventQueue,
        node: str,
        metadata: ContainerMetadata | None,
        data_dir: str,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.queue = queue
        self.metadata = metadata
        self.stamper = Stamper(node, settings.name, "docker")
        self.checkpoint_path = os.path.join(data_dir, f"docker-{settings.name}.files.json")
        # file_key -> offset of the first byte not yet delivered (when the output is idle)
        self.read_positions: dict[str, int] = checkpoints.load(self.checkpoint_path)
        self._tails: dict[str, _Tail] = {}
        # (file_key, stream) -> file offset of the first piece of a line being joined
        self._first_offsets: dict[tuple[int, int, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._prefetches: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.scanned = False
        self._lines = (
            _FileLineJoiner(
                MultilineJoiner(
                    mode="" if settings.multiline_start_pattern else settings.multiline,
                    start_pattern=settings.multiline_start_pattern,
                    timeout_ns=int(settings.multiline_timeout * NS_PER_SECOND),
                )
            )
            if settings.multiline or settings.multiline_start_pattern
            else None
        )
        self._reassembler = PartialReassembler(
            settings.max_line_bytes, int(settings.partial_flush_timeout * NS_PER_SECOND)
        )
        self._received = metrics.RECEIVED_EVENTS.labels(input=self.name)
        self._received_bytes = metrics.RECEIVED_BYTES.labels(input=self.name)
        self._truncated = metrics.TRUNCATED_EVENTS.labels(input=self.name)
        self._parse_failures = metrics.PARSE_FAILURES.labels(input=self.name, parser="docker")

    @property
    def bound(self) -> bool:
        return self.scanned

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.checkpoint_path), exist_ok=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run(), name=f"docker-files-{self.name}")

    def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        self.stop()
        for tail in self._tails.values():
            tail.fh.close()
        self._tails.clear()

    # -- checkpoints ---------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        """Per file, the offset before which every line has been queued.

        A line whose pieces are still being joined is not: its first piece's offset
        caps the position, so a restart reads the whole line again.
        """
        positions = {t.key: t.offset for t in self._tails.values()}
        pending = list(self._first_offsets.items())
        if self._lines is not None:
            pending += self._lines.pending_offsets()
        for (key, _stream), first in pending:
            if key in positions:
                positions[key] = min(positions[key], first)
        return positions

    def save_checkpoints(self) -> None:
        """Persist the read positions; call only when everything read has been delivered."""
        self.read_positions = self.positions()
        checkpoints.save(self.checkpoint_path, self.read_positions)

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        interval = self.settings.poll_interval
        while not self._stopping:
            self._discover()
            if not self.scanned:
                log.info(
                    "Tailing container log files. input=%s files=%d", self.name, len(self._tails)
                )
                self.scanned = True
            for path in list(self._tails):
                await self._poll(path)
            await self._flush_expired()
            await asyncio.sleep(interval)

    def _discover(self) -> None:
        for pattern in self.settings.paths:
            for path in glob.glob(pattern):
                if path not in self._tails:
                    self._open(path)

    def _open(self, path: str) -> None:
        try:
            fh = open(path, "rb")
            st = os.fstat(fh.fileno())
        except OSError as exc:
            log.debug("Cannot open log file yet. path=%s error=%s", path, exc)
            return
        offset = self.read_positions.get(file_key(path, st), 0)
        if offset > st.st_size:
            offset = 0  # truncated while we were away
        fh.seek(offset)
        fields = container_from_path(path)
        fields.update(docker_config_fields(path))
        tail = self._tails[path] = _Tail(path, fh, st, offset, fields)
        if self.metadata is not None and CONTAINER_ID in fields and CONTAINER_NAME not in fields:
            # Ask now, while the container exists: a `--rm` one may be gone by the
            # time its lines are shipped, and with it the name.
            task = asyncio.get_running_loop().create_task(self._prefetch(tail))
            self._prefetches.add(task)
            task.add_done_callback(self._prefetches.discard)

    async def _prefetch(self, tail: _Tail) -> None:
        assert self.metadata is not None
        found = await self.metadata.fetch(tail.fields[CONTAINER_ID])
        for key, value in (found or {}).items():
            tail.fields.setdefault(key, value)

    async def _poll(self, path: str) -> None:
        tail = self._tails[path]
        await self._read_to_end(tail)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != tail.ino or st.st_dev != tail.dev:
            # Rotated (renamed) or removed: the descriptor still reads the old file,
            # and we just read it to its end. Finish any line left without "\n".
            await self._read_to_end(tail)
            tail.fh.close()
            del self._tails[path]
            if st is not None:
                self._open(path)
            elif self.metadata is not None and CONTAINER_ID in tail.fields:
                # The container is gone; its cached metadata can go once the
                # enricher has had the last of its lines.
                asyncio.get_running_loop().call_later(
                    FORGET_AFTER_SECONDS, self.metadata.forget, tail.fields[CONTAINER_ID]
                )
            return
        if st.st_size < tail.offset:
            log.warning(
                "Log file was truncated (copytruncate); reading it from the start. path=%s", path
            )
            tail.fh.seek(0)
            tail.offset = 0
            tail.rest = b""

    async def _read_to_end(self, tail: _Tail) -> None:
        chunk_bytes = self.settings.read_chunk_bytes
        while not self._stopping:
            if self.queue.room() == 0:
                await self.queue.wait_for_room()  # pause reading: never drop
            data = tail.fh.read(chunk_bytes)
            if not data:
                return
            self._received_bytes.inc(len(data))
            buf = tail.rest + data
            start = 0
            lines: list[tuple[int, bytes]] = []
            base = tail.offset - len(tail.rest)
            while True:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                lines.append((base + start, buf[start:nl]))
                start = nl + 1
            tail.rest = buf[start:]
            await self._emit(tail, lines)
            tail.offset = base + start
            if len(data) < chunk_bytes:
                return

    async def _emit(self, tail: _Tail, lines: list[tuple[int, bytes]]) -> None:
        events: list[dict[str, Any]] = []
        sizes: list[int] = []
        failures = truncated = 0
        now_ns = time.time_ns()
        feed = self._reassembler.feed
        for offset, raw in lines:
            if not raw:
                continue
            parsed: LogLine | None = (
                parse_json_file_line(raw) if raw[:1] == b"{" else parse_cri_line(raw)
            )
            if parsed is None:
                failures += 1
                message = raw.decode("utf-8", "replace")
                event = self._event(tail, "", message, 0, offset, False, now_ns)
                event[TAGS] = [TAG_UNPARSED]
                events.append(event)
                sizes.append(len(raw) + EVENT_OVERHEAD_BYTES)
                continue
            key = (tail.key, parsed.stream)
            # The id of a joined line is the offset of its first piece.
            if not self._reassembler.pending(key):
                self._first_offsets[key] = offset
            done = feed(key, parsed.text, parsed.partial, parsed.time_ns, now_ns)
            if done is None:
                continue
            text, time_ns, cut = done
            first = self._first_offsets.pop(key, offset)
            message = text.decode("utf-8", "replace")
            truncated += cut
            if self._lines is None:
                events.append(
                    self._event(tail, parsed.stream, message, time_ns, first, cut, now_ns)
                )
                sizes.append(len(text) + EVENT_OVERHEAD_BYTES)
                continue
            for joined, joined_ns, joined_first in self._lines.feed(
                key, first, message, time_ns, now_ns
            ):
                events.append(
                    self._event(tail, parsed.stream, joined, joined_ns, joined_first, cut, now_ns)
                )
                sizes.append(len(joined) + EVENT_OVERHEAD_BYTES)
        await self._put(events, sizes)
        if failures:
            self._parse_failures.inc(failures)
        if truncated:
            self._truncated.inc(truncated)

    async def _flush_expired(self) -> None:
        now_ns = time.time_ns()
        tails = {t.key: t for t in self._tails.values()}
        events, sizes = [], []
        expired = [
            (key, text.decode("utf-8", "replace"), time_ns, self._first_offsets.pop(key, 0), cut)
            for key, text, time_ns, cut in self._reassembler.expired(now_ns)
        ]
        if self._lines is not None:
            joined = []
            for key, message, time_ns, first, cut in expired:
                joined += [
                    (key, m, t, f, cut)
                    for m, t, f in self._lines.feed(key, first, message, time_ns, now_ns)
                ]
            joined += [(key, m, t, f, False) for key, m, t, f in self._lines.expired(now_ns)]
            expired = joined
        for (key, stream), message, time_ns, first, cut in expired:
            tail = tails.get(key)
            if tail is not None:
                events.append(self._event(tail, stream, message, time_ns, first, cut, now_ns))
                sizes.append(len(message) + EVENT_OVERHEAD_BYTES)
        await self._put(events, sizes)

    def _event(
        self,
        tail: _Tail,
        stream: str,
        message: str,
        time_ns: int,
        offset: int,
        cut: bool,
        now_ns: int,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "@timestamp": iso_ns(time_ns or now_ns),
            "message": message,
            LOG_FILE_PATH: tail.path,
            **tail.fields,
        }
        if stream:
            event[STREAM] = stream
        if cut:
            event[TAGS] = [TAG_TRUNCATED]
        if self.settings.json_lines:
            merge_json_line(
                event, event["message"], self.settings.json_prefix, self.settings.keep_original
            )
        return self.stamper.stamp(event, now_ns, event_id=f"{tail.key}-{offset:x}")

    async def _put(self, events: list[dict[str, Any]], sizes: list[int]) -> None:
        if not events:
            return
        self._received.inc(len(events))
        await self.queue.put_blocking(events, sizes)
