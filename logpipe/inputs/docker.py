"""The ``docker`` input, ``mode = "api"``: every container's stdout and stderr, from the Engine API.

Containers are found three ways, because each alone misses some: the ``/events``
stream (subscribed first, with ``since`` a moment back), the list of running containers
at start, and a list of all containers every ``poll_interval`` (podman's events arrive
late under load, sometimes after a ``--rm`` container is gone). One follower task per
container reads ``/containers/{id}/logs`` with plain (not ``follow``) reads each
``poll_interval``, decoding multiplexed frames or a TTY's raw stream, and makes one last
read once the container has stopped. With ``attach_on_create`` (the default) a container
seen at ``create`` is also attached to; what the attach saw beyond the follower's last
read is shipped if the container is removed before that read.

Event ids are ``<container id>-<timestamp ns>-<ordinal>`` (the ordinal counts lines
that share one timestamp, from the second a read starts at), so any re-read lands on
the same documents. A checkpoint per container (the last timestamp read) is saved in
``data_dir`` whenever everything read has been delivered; after a restart each
container is read again from one second before it, and the ids turn the overlap into
409s, not duplicates.

When the queue is full this input waits (Docker keeps the logs); it never drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import os
import time
from collections import deque
from typing import Any, BinaryIO

from logpipe import checkpoints, metrics
from logpipe.config import DockerSettings
from logpipe.enrich.containers import CONTAINER_ID, ContainerMetadata
from logpipe.enrich.docker_client import DockerAPIError, event_labels, parse_event
from logpipe.event import EVENT_OVERHEAD_BYTES, TAGS, Stamper
from logpipe.parsers.docker import (
    FrameError,
    LogLine,
    MultiplexedDecoder,
    RawStreamDecoder,
    parse_cri_line,
    parse_json_file_line,
    parse_timestamp,
)
from logpipe.parsers.jsonline import merge_json_line
from logpipe.parsers.multiline import MultilineJoiner
from logpipe.parsers.partial import PartialReassembler
from logpipe.queue import EventQueue
from logpipe.timefmt import NS_PER_SECOND, iso_ns

log = logging.getLogger(__name__)

STREAM = "logpipe.stream"
TAG_TRUNCATED = "_message_truncated"
RECONNECT_SECONDS = 2.0
# Container labels that override the input's settings for that container.
LABEL_MULTILINE = "logpipe.multiline"  # java | python | indented
LABEL_JSON = "logpipe.json"  # true: merge JSON-object lines into the event
_TRUE = ("true", "1", "yes")
GUARD_MAX_BYTES = 8 * 1024 * 1024  # per container: only short-lived ones need the guard
GUARD_WAIT_SECONDS = 2.0
EVENTS_REPLAY_SECONDS = 2.0
FINISHED_REMEMBERED = 4096
LOG_FILE_WAIT_SECONDS = 0.05  # how often a created container's log file is looked for


class DockerInput:
    """Follows the logs of every selected container through the Docker Engine API."""

    def __init__(
        self,
        settings: DockerSettings,
        queue: EventQueue,
        node: str,
        metadata: ContainerMetadata,
        data_dir: str,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.queue = queue
        self.metadata = metadata
        self.client = metadata.client
        self.stamper = Stamper(node, settings.name, "docker")
        self.checkpoint_path = os.path.join(data_dir, f"docker-{settings.name}.checkpoints.json")
        self.read_positions: dict[str, int] = checkpoints.load(self.checkpoint_path)
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._follows: dict[str, _Follow] = {}
        self._guards: dict[str, _Guard] = {}
        self._watch: asyncio.Task[None] | None = None
        self._discovery: asyncio.Task[None] | None = None
        # id -> state, for every container the discovery list or an event has shown
        self._known: dict[str, str] = {}
        # id -> when its last read ran to the end (oldest first, bounded)
        self._finished: dict[str, int] = {}
        self._expiry: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = False
        self._received = metrics.RECEIVED_EVENTS.labels(input=self.name)
        self._received_bytes = metrics.RECEIVED_BYTES.labels(input=self.name)
        self._truncated = metrics.TRUNCATED_EVENTS.labels(input=self.name)

    @property
    def bound(self) -> bool:
        return self.connected

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.checkpoint_path), exist_ok=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watch = loop.create_task(self._watch_events(), name=f"docker-{self.name}-events")
        self._expiry = loop.create_task(self._flush_expired(), name=f"docker-{self.name}-partials")
        self._discovery = loop.create_task(self._discover(), name=f"docker-{self.name}-list")

    def stop(self) -> None:
        """Stop reading: cancel the event watch and every follower."""
        self._stopping = True
        for task in (self._watch, self._expiry, self._discovery):
            if task is not None:
                task.cancel()
        for task in self._followers.values():
            task.cancel()
        for guard in self._guards.values():
            guard.close()

    def close(self) -> None:
        self.stop()

    # -- checkpoints ---------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        return dict(self.read_positions)

    def save_checkpoints(self) -> None:
        """Persist the read positions; call only when everything read has been delivered."""
        checkpoints.save(self.checkpoint_path, self.read_positions)

    # -- discovery -----------------------------------------------------------------

    async def _watch_events(self) -> None:
        since = time.time() - EVENTS_REPLAY_SECONDS
        while not self._stopping:
            try:
                # `since` replays what happened while the subscription was being set up
                # (podman tails its events file only after it has answered) or while
                # the API was away; a replayed event for a container already followed is
                # ignored.
                params = {"filters": json.dumps({"type": ["container"]}), "since": f"{since:.0f}"}
                events = self.client.stream("/events", params=params)
                # Subscribe first, then list: a container that starts in between is
                # seen by one or the other (a second follow of it is ignored).
                first = asyncio.ensure_future(anext(events))
                containers = await self.client.get_json("/containers/json")
                if not self.metadata.runtime:
                    version = await self.client.get_json("/version")
                    self.metadata.runtime = (
                        "podman" if "podman" in json.dumps(version).lower() else "docker"
                    )
                if not self.connected:
                    log.info(
                        "Following container logs. input=%s socket=%s containers=%d",
                        self.name,
                        self.client.socket_path,
                        len(containers),
                    )
                self.connected = True
                for c in containers:
                    self._follow(c["Id"], c.get("Names", [""])[0], c.get("Labels") or {})
                buffer = b""
                chunk = await first
                while True:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self._on_event(line)
                    since = time.time() - EVENTS_REPLAY_SECONDS
                    chunk = await anext(events)
            except (DockerAPIError, StopAsyncIteration) as exc:
                if self.connected:
                    log.warning("Lost the Docker API; reconnecting. error=%s", exc)
                self.connected = False
                await asyncio.sleep(RECONNECT_SECONDS)

    def _on_event(self, line: bytes) -> None:
        parsed = parse_event(line)
        if parsed is None:
            return
        action, cid, attributes = parsed
        if action == "create":
            labels = event_labels(attributes)
            self._known.setdefault(cid, "created")
            self._guard(cid, attributes.get("name", ""), labels)
        elif action == "start":
            labels = event_labels(attributes)
            self._known[cid] = "running"
            self._follow(cid, attributes.get("name", ""), labels)
        elif action == "destroy" or action == "remove":
            self.metadata.forget(cid)
            self._known.pop(cid, None)
            guard = self._guards.get(cid)
            if guard is not None and cid not in self._followers:
                guard.close()  # created, never started: nothing will read it
                del self._guards[cid]
            task = self._followers.get(cid)
            if task is None or task.done():
                self.read_positions.pop(cid, None)

    async def _discover(self) -> None:
        """List every container, each ``poll_interval``, beside the event stream.

        podman's ``/events`` is read from a file it polls, and under load arrives seconds
        late: a ``--rm`` container can have started, exited and been removed before its
        ``create`` event is read. The list sees it while it exists: ``created`` (attach
        now), then running or exited (read its logs now, before it is removed).
        Containers that had stopped before logpipe started are not read again.
        """
        first = True
        while not self._stopping:
            try:
                listed = await self.client.get_json("/containers/json", params={"all": "1"})
            except DockerAPIError:
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            present: set[str] = set()
            for c in listed:
                cid, state = c.get("Id", ""), str(c.get("State", "")).lower()
                present.add(cid)
                before = self._known.get(cid)
                self._known[cid] = state
                if (first and state != "running") or before == state:
                    continue
                name = (c.get("Names") or [""])[0]
                labels = c.get("Labels") or {}
                if state == "created":
                    self._guard(cid, name, labels)
                elif state == "running" or before in (None, "created"):
                    self._follow(cid, name, labels)  # a no-op while one follows it
            for cid in [k for k in self._known if k not in present]:
                del self._known[cid]
            first = False
            await asyncio.sleep(self.settings.poll_interval)

    def _guard(self, cid: str, name: str, labels: dict[str, str]) -> None:
        """A container was created: attach now, in case it is gone before it is read."""
        if (
            not self.settings.attach_on_create
            or self._stopping
            or cid in self._guards
            or cid in self._followers
            or not self.selected(name, labels)
        ):
            return
        guard = _Guard()
        guard.task = asyncio.get_running_loop().create_task(
            self._guard_output(cid, guard), name=f"docker-guard-{cid[:12]}"
        )
        self._guards[cid] = guard

    def selected(self, name: str, labels: dict[str, str]) -> bool:
        s = self.settings
        name = name.lstrip("/")
        if labels.get(s.opt_out_label, "").lower() in _TRUE:
            return False
        if s.include_names and not any(fnmatch.fnmatchcase(name, p) for p in s.include_names):
            return False
        if any(fnmatch.fnmatchcase(name, p) for p in s.exclude_names):
            return False
        if s.include_labels and not any(_label_matches(labels, x) for x in s.include_labels):
            return False
        return not any(_label_matches(labels, x) for x in s.exclude_labels)

    def _follow(self, cid: str, name: str, labels: dict[str, str]) -> None:
        task = self._followers.get(cid)
        if self._stopping or (task is not None and not task.done()):
            return
        if not self.selected(name, labels):
            log.debug("Container not selected. id=%s name=%s", cid[:12], name)
            return
        self._followers[cid] = asyncio.get_running_loop().create_task(
            self._follow_logs(cid), name=f"docker-follow-{cid[:12]}"
        )

    # -- following -----------------------------------------------------------------

    async def _follow_logs(self, cid: str) -> None:
        """Read a container's logs by polling ``/logs`` without ``follow``.

        A ``follow`` stream was seen (podman 4.3) to drop lines when its reader is not
        instant, and to end before the last lines of a container that exits. A plain
        read of the log is complete and in order, so each poll reads from a boundary
        second and skips, per stream, the lines it already emitted from that boundary
        on; the boundary moves up as time passes. The read after the container has
        stopped is the last one.
        """
        position = self.read_positions.get(cid, 0)
        boundary = max(0, position // NS_PER_SECOND - 1) if position else 0
        window: dict[str, deque[int]] = {}  # stream -> stamps of lines emitted >= boundary
        # The metadata first (cached from the `create` event when attach_on_create is
        # on), then read at once: a short-lived container may be removed any moment.
        try:
            inspect = await self.client.get_json(f"/containers/{cid}/json")
        except DockerAPIError:
            inspect = None
        state = (inspect or {}).get("State") or {}
        running = bool(state.get("Running"))
        finished_ns = self._finished.get(cid)
        if finished_ns and not running:
            started_ns = parse_timestamp(str(state.get("StartedAt") or ""))
            if started_ns < finished_ns:
                return  # a late or replayed event: this run was read to its end already
        follow = self._follow_state(cid, inspect)
        follow.tty = bool(((inspect or {}).get("Config") or {}).get("Tty"))
        self._follows[cid] = follow
        guard = self._guards.get(cid)
        if boundary == 0 and inspect is not None and self.settings.attach_on_create:
            # Reading from the first line: the runtime's log file, held open, lets the
            # last lines be read even if the container is removed before its last read.
            if guard is None:
                guard = self._guards[cid] = _Guard()
            if guard.log_file is None:
                guard.open_log_file(inspect.get("LogPath"))
        complete = False
        while not self._stopping:
            last_ns, complete = await self._read_once(follow, boundary, window, not running)
            if guard is not None:
                guard.trim(follow.lines)
                guard.drop_rotated_log_file()
            if inspect is None or not running:
                break
            last_sec = last_ns // NS_PER_SECOND
            if last_sec - 2 > boundary:
                boundary = last_sec - 1
                for stamps in window.values():
                    while stamps and stamps[0] < boundary * NS_PER_SECOND:
                        stamps.popleft()
            await asyncio.sleep(self.settings.poll_interval)
            try:
                inspect = await self.client.get_json(f"/containers/{cid}/json")
            except DockerAPIError:
                inspect = None
            running = bool(((inspect or {}).get("State") or {}).get("Running"))
        self._guards.pop(cid, None)
        if guard is not None:
            usable = guard.log_file is not None or not guard.overflow
            if not complete and usable and not self._stopping:
                await self._emit_from_guard(follow, guard)
            guard.close()
        elif not complete and not self._stopping and cid not in self._finished:
            log.warning(
                "Container was removed before its logs could be read; its last lines are "
                "lost (attach_on_create keeps them). id=%s",
                cid[:12],
            )
        await self._emit_pending(follow)
        self._follows.pop(cid, None)
        if complete:
            # A late or replayed `start` event may follow it again once it is gone.
            self._finished[cid] = time.time_ns()
            while len(self._finished) > FINISHED_REMEMBERED:
                del self._finished[next(iter(self._finished))]

    async def _read_once(
        self, follow: _Follow, since: int, window: dict[str, deque[int]], final: bool
    ) -> tuple[int, bool]:
        """One plain read from ``since``: emit the lines past ``window``.

        Returns the last stamp read and whether the read ran to its end (a container
        removed while it is read ends it early, with an error inside the stream).
        """
        cid = follow.cid
        params = {
            "follow": "0",
            "stdout": "1",
            "stderr": "1",
            "timestamps": "1",
            "since": str(since),
        }
        decoder: MultiplexedDecoder | RawStreamDecoder = (
            RawStreamDecoder(True, self.settings.max_line_bytes)
            if follow.tty
            else MultiplexedDecoder(True, max(self.settings.max_line_bytes, 1 << 20))
        )
        # Pieces of a line still being written are left for the next read: a fresh
        # joiner per read, and what it still holds at the end is dropped unless final.
        joiner = PartialReassembler(self.settings.max_line_bytes)
        seen: dict[str, int] = {}
        last_ns = since * NS_PER_SECOND
        events: list[dict[str, Any]] = []
        now_ns = time.time_ns()

        def take(lines: list[LogLine]) -> None:
            nonlocal last_ns
            for line in lines:
                done = joiner.feed(line.stream, line.text, line.partial, line.time_ns, now_ns)
                if done is None:
                    continue
                text, time_ns, cut = done
                index = seen.get(line.stream, 0)
                seen[line.stream] = index + 1
                last_ns = max(last_ns, time_ns)
                stamps = window.setdefault(line.stream, deque())
                if index < len(stamps):
                    continue  # emitted by an earlier read
                stamps.append(time_ns)
                if cut:
                    self._truncated.inc()
                self._line_events(follow, line.stream, text, time_ns, cut, now_ns, events)

        complete = False
        try:
            async for chunk in self.client.stream(f"/containers/{cid}/logs", params=params):
                self._received_bytes.inc(len(chunk))
                take(decoder.feed(chunk))
            complete = True
        except FrameError as exc:
            log.debug("Log read ended on a bad frame. id=%s error=%s", cid[:12], exc)
        except DockerAPIError as exc:
            log.debug("Log read failed. id=%s error=%s", cid[:12], exc)
        if isinstance(decoder, RawStreamDecoder) and final:
            take(decoder.flush())
        if final:
            for stream in ("stdout", "stderr", "tty"):
                done = joiner.flush(stream)
                if done is not None:
                    take([LogLine(stream, done[1], "", done[0], False)])
        await self._put(events)
        return last_ns, complete

    async def _guard_output(self, cid: str, guard: _Guard) -> None:
        """From ``create``, keep a way to a short-lived container's last lines.

        A ``--rm`` container can be removed before its logs are read. Where this host's
        log files are readable (inspect's ``LogPath`` directory exists), the file is held
        open as soon as the runtime creates it, at start: a descriptor reads it even
        after the container is gone. Otherwise this attaches while the container is
        still ``created``, and keeps whole lines until the follower has read them, up to
        GUARD_MAX_BYTES. Never an attach after that: podman re-initialises an exited
        container that an attach reaches, and truncates its log.
        """
        try:
            inspect = await self.client.get_json(f"/containers/{cid}/json")
            self.metadata.remember(cid, inspect)
            path = inspect.get("LogPath") or ""
            if _directory_exists(path):
                while not guard.open_log_file(path):
                    if not _directory_exists(path):
                        return  # removed before it ever started
                    await asyncio.sleep(LOG_FILE_WAIT_SECONDS)
                return
            if (inspect.get("State") or {}).get("Status") != "created":
                return
            tty = bool((inspect.get("Config") or {}).get("Tty"))
            decoder: MultiplexedDecoder | RawStreamDecoder = (
                RawStreamDecoder(False)
                if tty
                else MultiplexedDecoder(False, skip_stray_newlines=True)
            )
            joiner = PartialReassembler(self.settings.max_line_bytes)
            params = {"logs": "1", "stream": "1", "stdout": "1", "stderr": "1"}
            async for chunk in self.client.stream(
                f"/containers/{cid}/attach", params=params, method="POST"
            ):
                now_ns = time.time_ns()
                for line in decoder.feed(chunk):
                    done = joiner.feed(line.stream, line.text, line.partial, now_ns, now_ns)
                    if done is not None:
                        guard.add(line.stream, done[0], now_ns)
                if guard.size > GUARD_MAX_BYTES:
                    guard.overflow = True
                    return
        except (DockerAPIError, FrameError) as exc:
            log.debug("Attach ended. id=%s error=%s", cid[:12], exc)

    async def _emit_from_guard(self, follow: _Follow, guard: _Guard) -> None:
        """The container is gone before its logs were all read: ship the rest from the
        log file held open, or else from what the attach saw."""
        if guard.task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(guard.task), GUARD_WAIT_SECONDS)
        if guard.log_file is not None:
            count = await self._emit_from_log_file(follow, guard.log_file)
            log.info(
                "Container was gone before its logs were read; shipped the rest from its "
                "log file. id=%s lines=%d",
                follow.cid[:12],
                count,
            )
            return
        events: list[dict[str, Any]] = []
        guard.trim(follow.lines)
        now_ns = time.time_ns()
        for stream, lines in guard.lines.items():
            for _index, text, received_ns in lines:
                self._line_events(follow, stream, text, received_ns, False, now_ns, events)
        if events:
            log.info(
                "Container was gone before its logs were read; shipped what attach "
                "saw. id=%s lines=%d",
                follow.cid[:12],
                len(events),
            )
        await self._put(events)

    async def _emit_from_log_file(self, follow: _Follow, log_file: BinaryIO) -> int:
        """Ship the lines of the runtime's log file past those the follower emitted."""
        skip = dict(follow.lines)  # per stream: the file holds the same lines, in order
        joiner = PartialReassembler(self.settings.max_line_bytes)
        rest = b""
        shipped = 0
        log_file.seek(0)
        while data := log_file.read(self.settings.read_chunk_bytes):
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            events: list[dict[str, Any]] = []
            now_ns = time.time_ns()
            for raw in lines:
                line = parse_json_file_line(raw) if raw[:1] == b"{" else parse_cri_line(raw)
                if line is None:
                    continue
                stream = "tty" if follow.tty else line.stream
                done = joiner.feed(stream, line.text, line.partial, line.time_ns, now_ns)
                if done is None:
                    continue
                if skip.get(stream, 0) > 0:
                    skip[stream] -= 1
                    continue
                text, time_ns, cut = done
                self._line_events(follow, stream, text, time_ns, cut, now_ns, events)
            shipped += len(events)
            await self._put(events)
        return shipped

    def _follow_state(self, cid: str, inspect: dict[str, Any] | None) -> _Follow:
        """Per-container options: the input's, overridden by the container's labels."""
        s = self.settings
        if inspect:
            fields = self.metadata.remember(cid, inspect)
        else:
            fields = self.metadata.cached(cid) or {CONTAINER_ID: cid}
        labels = ((inspect or {}).get("Config") or {}).get("Labels") or {}
        mode = labels.get(LABEL_MULTILINE, s.multiline)
        pattern = "" if LABEL_MULTILINE in labels else s.multiline_start_pattern
        joiner = None
        if mode or pattern:
            try:
                joiner = MultilineJoiner(
                    mode=mode if not pattern else "",
                    start_pattern=pattern,
                    timeout_ns=int(s.multiline_timeout * NS_PER_SECOND),
                )
            except ValueError as exc:
                log.warning(
                    "Ignoring the container's multiline label. id=%s error=%s", cid[:12], exc
                )
        json_lines = labels.get(LABEL_JSON, "true" if s.json_lines else "").lower() in _TRUE
        return _Follow(cid, fields, joiner, json_lines)

    def _line_events(
        self,
        follow: _Follow,
        stream: str,
        text: bytes,
        time_ns: int,
        cut: bool,
        now_ns: int,
        out: list[dict[str, Any]],
    ) -> None:
        """One whole line -> zero or more events (multiline may hold it, or complete one)."""
        follow.lines[stream] = follow.lines.get(stream, 0) + 1
        message = text.decode("utf-8", "replace")
        if follow.joiner is None:
            out.append(self._event(follow, stream, message, time_ns, cut))
            return
        for joined, first_ns, _split in follow.joiner.feed(stream, message, time_ns, now_ns):
            out.append(self._event(follow, stream, joined, first_ns, cut))

    async def _flush_expired(self) -> None:
        """Multiline events whose burst is over are shipped without waiting for more."""
        while True:
            await asyncio.sleep(0.5)
            now_ns = time.time_ns()
            events: list[dict[str, Any]] = []
            for follow in list(self._follows.values()):
                if follow.joiner is not None:
                    for stream, text, time_ns, _split in follow.joiner.expired(now_ns):
                        events.append(self._event(follow, str(stream), text, time_ns, False))
            await self._put(events)

    async def _emit_pending(self, follow: _Follow) -> None:
        """At the end of a container, a multiline event still being joined is shipped."""
        if follow.joiner is None:
            return
        events: list[dict[str, Any]] = []
        for stream in ("stdout", "stderr", "tty"):
            joined = follow.joiner.flush(stream)
            if joined is not None:
                events.append(self._event(follow, stream, joined[0], joined[1], False))
        await self._put(events)

    def _event(
        self, follow: _Follow, stream: str, message: str, time_ns: int, cut: bool
    ) -> dict[str, Any]:
        cid = follow.cid
        received_ns = time.time_ns()
        stamp_ns = time_ns or received_ns
        ordinal = follow.ordinal + 1 if stamp_ns == follow.last_ns else 0
        follow.last_ns, follow.ordinal = stamp_ns, ordinal
        event: dict[str, Any] = {
            "@timestamp": iso_ns(stamp_ns),
            "message": message,
            STREAM: stream,
            **follow.fields,
        }
        if cut:
            event[TAGS] = [TAG_TRUNCATED]
        if follow.json_lines:
            merge_json_line(event, message, self.settings.json_prefix, self.settings.keep_original)
        if time_ns:
            self.read_positions[cid] = max(self.read_positions.get(cid, 0), time_ns)
        return self.stamper.stamp(event, received_ns, event_id=f"{cid}-{stamp_ns:x}-{ordinal}")

    async def _put(self, events: list[dict[str, Any]]) -> None:
        """Queue events, waiting for room: this input pushes back, it never drops."""
        if not events:
            return
        self._received.inc(len(events))
        sizes = [len(e["message"]) + EVENT_OVERHEAD_BYTES for e in events]
        await self.queue.put_blocking(events, sizes)


class _Guard:
    """Whole lines an attach saw that the follower has not read yet, per stream."""

    __slots__ = ("lines", "log_file", "log_path", "overflow", "read", "seen", "size", "task")

    def __init__(self) -> None:
        # stream -> (index of the line in its stream, text, receipt time)
        self.lines: dict[str, deque[tuple[int, bytes, int]]] = {}
        self.seen: dict[str, int] = {}  # lines the attach saw, per stream
        self.read: dict[str, int] = {}  # lines the follower emitted, per stream
        self.size = 0
        self.overflow = False
        self.task: asyncio.Task[None] | None = None
        self.log_file: BinaryIO | None = None
        self.log_path = ""

    def open_log_file(self, path: str | None) -> bool:
        """Hold the runtime's log file (inspect's ``LogPath``) open, where we can read it.

        An open descriptor reads the file even after the runtime has deleted it with the
        container. Not for a container that rotates its log: only short lives need this.
        """
        if self.log_file is not None:
            return True
        if not path:
            return False
        try:
            self.log_file = open(path, "rb")  # closed with the guard
        except OSError:
            return False
        self.log_path = path
        return True

    def drop_rotated_log_file(self) -> None:
        """A log rotated away from our descriptor no longer lines up with the reads."""
        if self.log_file is None:
            return
        try:
            rotated = os.stat(self.log_path).st_ino != os.fstat(self.log_file.fileno()).st_ino
        except FileNotFoundError:
            return  # removed with the container: exactly when the descriptor is needed
        if rotated:
            self.log_file.close()
            self.log_file = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def add(self, stream: str, text: bytes, received_ns: int) -> None:
        index = self.seen.get(stream, 0)
        self.seen[stream] = index + 1
        if index >= self.read.get(stream, 0):
            self.lines.setdefault(stream, deque()).append((index, text, received_ns))
            self.size += len(text) + 64

    def trim(self, read: dict[str, int]) -> None:
        """The follower has emitted ``read`` lines per stream: forget those."""
        for stream, count in read.items():
            self.read[stream] = count
            lines = self.lines.get(stream)
            while lines and lines[0][0] < count:
                self.size -= len(lines.popleft()[1]) + 64


class _Follow:
    """What one followed container's lines need: its fields and its per-label options."""

    __slots__ = (
        "cid",
        "fields",
        "joiner",
        "json_lines",
        "last_ns",
        "lines",
        "ordinal",
        "tty",
    )

    def __init__(
        self, cid: str, fields: dict[str, Any], joiner: MultilineJoiner | None, json_lines: bool
    ) -> None:
        self.cid = cid
        self.fields = fields
        self.joiner = joiner
        self.json_lines = json_lines
        self.tty = False
        # Whole lines emitted per stream (attach_on_create ships only what lies beyond).
        self.lines: dict[str, int] = {}
        # The ordinal counts lines that share a stamp, from the second this follower
        # starts reading at: any later read from that second gives each line its id again.
        self.last_ns = 0
        self.ordinal = -1


def _directory_exists(path: str) -> bool:
    """Whether the directory of ``path`` exists here (a local stat: never slow)."""
    return bool(path) and os.path.isdir(os.path.dirname(path))


def _label_matches(labels: dict[str, str], selector: str) -> bool:
    key, sep, value = selector.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value
