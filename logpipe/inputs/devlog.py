"""The ``devlog`` input: a unix datagram socket that apps reach as ``/dev/log``.

Mount the socket's *directory* into containers, not the socket file: a bind mount of
the file keeps pointing at the old inode when the socket is re-created.

The receive loop is the one place that must never fall behind. A unix datagram
sender blocks as soon as the receiver's queue holds ``net.unix.max_dgram_qlen``
datagrams (10 by default), so this loop drains the socket on every wake-up, asks
the queue for room *before* parsing (a datagram that will be dropped is only
counted), and leaves encoding and shipping to other tasks.

Each datagram comes with the sender's pid/uid/gid (SO_PASSCRED) and the kernel's
receive time in nanoseconds (SO_TIMESTAMPNS).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import zoneinfo
from typing import Any

from logpipe import listen, metrics
from logpipe.config import DevlogSettings
from logpipe.enrich.containers import CONTAINER_ID, CONTAINER_RUNTIME, PidAttribution
from logpipe.event import (
    EVENT_OVERHEAD_BYTES,
    GROUP_ID,
    PROCESS_PID,
    TAGS,
    USER_ID,
    Stamper,
)
from logpipe.inputs.datagrams import (
    RECOMMENDED_DGRAM_QLEN,
    drain_dropping,
    grow_receive_buffer,
    unix_dgram_qlen,
)
from logpipe.parsers.cee import apply_cee
from logpipe.parsers.syslog import SyslogParser
from logpipe.queue import EventQueue, LossTracker

log = logging.getLogger(__name__)

# Linux values; Python's socket module does not export all of them.
SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)
SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
# Plain ints: the socket module's constants are enum members, and enum arithmetic
# per datagram showed up in profiles.
MSG_TRUNC = int(socket.MSG_TRUNC)
SOL_SOCKET = int(socket.SOL_SOCKET)

_UCRED = struct.Struct("iII")  # pid, uid, gid
_TIMESPEC = struct.Struct("qq")  # tv_sec, tv_nsec
_ANCILLARY_BYTES = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(_TIMESPEC.size)

# Datagrams read per wake-up before yielding to the loop, so the output tasks get
# a turn even under a flood; the socket stays readable and we are woken again.
MAX_DATAGRAMS_PER_WAKE = 2000
# shed_when_behind: datagrams parsed per wake-up. A sender at 250,000 datagrams/s fills
# net.unix.max_dgram_qlen (512) in 2 ms, and parsing takes some 35 µs a datagram: 8
# leave the wake-up time to drain the rest. Measured in the burst benchmark (2 cores,
# 280,000/s asked): the sender waited 8.6 s in all with 64, 1.7 s with 8.
SHED_PARSE_BATCH = 8

TAG_TRUNCATED = "_message_truncated"
REASON_QUEUE_FULL = "queue_full"
REASON_SPOOL_FULL = "spool_full"  # when_full = "spill", and the spool is at its bound
REASON_BEHIND = "reader_behind"  # shed_when_behind: more waiting than the reader keeps up with


class DevlogInput:
    """Receives datagrams on a unix socket and queues stamped events."""

    def __init__(
        self, settings: DevlogSettings, queue: EventQueue, node: str, loss: LossTracker
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.queue = queue
        self.loss = loss
        self.stamper = Stamper(node, settings.name, "devlog")
        zone = zoneinfo.ZoneInfo(settings.timezone) if settings.timezone else None
        self.parser = SyslogParser(zone)
        self.sock: socket.socket | None = None
        # A socket bound by the supervisor (or systemd), used instead of binding one.
        self.inherited: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False
        self._resume_task: asyncio.Task[None] | None = None
        self._scratch = bytearray(settings.max_message_bytes)
        self.attribution = PidAttribution() if settings.attribute_containers else None
        # Set for a per-container socket: the fields every event on it carries.
        self.container: dict[str, Any] | None = None
        self._received = metrics.RECEIVED_EVENTS.labels(input=self.name)
        self._received_bytes = metrics.RECEIVED_BYTES.labels(input=self.name)
        self._dropped = metrics.DROPPED_EVENTS.labels(input=self.name, reason=REASON_QUEUE_FULL)
        self._shed = metrics.DROPPED_EVENTS.labels(input=self.name, reason=REASON_BEHIND)
        self._behind = 0  # consecutive wake-ups that left datagrams waiting
        self._spool_refused = metrics.DROPPED_EVENTS.labels(
            input=self.name, reason=REASON_SPOOL_FULL
        )
        self._truncated = metrics.TRUNCATED_EVENTS.labels(input=self.name)
        self._parse_failures = metrics.PARSE_FAILURES.labels(input=self.name, parser="syslog")

    @property
    def bound(self) -> bool:
        return self.sock is not None

    def open(self) -> None:
        """Bind the socket, or take the one a supervisor or systemd handed down."""
        path = self.settings.path
        sock, self.inherited = self.inherited, None
        how = "Serving the inherited socket" if sock is not None else "Listening"
        if sock is None:
            sock = listen.bind_devlog(path, self.settings.mode)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            grow_receive_buffer(sock, self.settings.receive_buffer_bytes)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        log.info("%s for /dev/log datagrams. path=%s input=%s", how, path, self.name)
        qlen = unix_dgram_qlen()
        if qlen is not None and qlen < RECOMMENDED_DGRAM_QLEN:
            # With 10, a pause of 2 ms at 5,000 lines/s makes every app's syslog() wait.
            log.warning(
                "net.unix.max_dgram_qlen is %d: apps block as soon as that many datagrams "
                "wait. Set it to %d (config/sysctl/50-logpipe.conf, as systemd does) before "
                "logpipe starts. input=%s",
                qlen,
                RECOMMENDED_DGRAM_QLEN,
                self.name,
            )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.sock is not None, "open() first"
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def stop(self) -> None:
        """Stop reading; the socket file stays so clients do not see it vanish mid-restart."""
        if self.sock is not None and self._loop is not None and not self._paused:
            self._loop.remove_reader(self.sock.fileno())
        self._paused = True
        if self._resume_task is not None:
            self._resume_task.cancel()

    def close(self) -> None:
        self.stop()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _on_readable(self) -> None:
        """Drain the socket: the only code between the kernel queue and our memory queue."""
        sock = self.sock
        if sock is None:
            return
        queue = self.queue
        room = queue.room()
        if room == 0 and queue.when_full == "block":
            self._pause_until_room()
            return
        recvmsg = sock.recvmsg
        max_bytes = self.settings.max_message_bytes
        parse = self.parser.parse
        stamp = self.stamper.stamp
        attribution = self.attribution
        container = self.container
        events: list[dict[str, Any]] = []
        spool_refused = 0
        sizes: list[int] = []
        received = received_bytes = dropped = truncated = failures = 0
        drop_first_ns = 0
        shedding = self.settings.shed_when_behind
        limit = SHED_PARSE_BATCH if shedding else MAX_DATAGRAMS_PER_WAKE
        emptied = False
        while received < limit:
            if room == 0:
                # Full, and nothing frees room while this callback runs: drain the rest
                # of this wake-up as cheaply as the kernel allows (no ancillary data, no
                # allocation), counting each datagram as dropped.
                drop_first_ns = time.time_ns()
                n_dropped, n_bytes = drain_dropping(
                    sock, self._scratch, MAX_DATAGRAMS_PER_WAKE - received
                )
                received += n_dropped
                received_bytes += n_bytes
                dropped += n_dropped
                break
            try:
                data, ancillary, flags, _ = recvmsg(max_bytes, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                emptied = True
                break
            except OSError as exc:
                log.warning("Failed to read datagram. error=%s input=%s", exc, self.name)
                break
            received += 1
            received_bytes += len(data)
            pid = -1
            uid = gid = 0
            received_ns = 0
            for level, kind, cdata in ancillary:
                if level == SOL_SOCKET:
                    if kind == SCM_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
                        sec, nsec = _TIMESPEC.unpack_from(cdata)
                        received_ns = sec * 1_000_000_000 + nsec
                    elif kind == SCM_CREDENTIALS and len(cdata) >= _UCRED.size:
                        pid, uid, gid = _UCRED.unpack_from(cdata)
            if not received_ns:
                received_ns = time.time_ns()
            event = parse(data, received_ns)
            if TAGS in event:
                failures += 1
            if flags & MSG_TRUNC:
                truncated += 1
                event.setdefault(TAGS, []).append(TAG_TRUNCATED)
            if pid > 0:
                # The kernel's word, in logpipe's pid namespace (the tag's pid, if any,
                # stays in log.syslog.procid): this is what attribution will use.
                event[PROCESS_PID] = pid
                event[USER_ID] = str(uid)
                event[GROUP_ID] = str(gid)
                if attribution is not None:
                    found = attribution.lookup(pid, received_ns)
                    if found is not None:
                        event[CONTAINER_ID], event[CONTAINER_RUNTIME] = found
            if container is not None:
                # A per-container socket: every datagram on it is that container's.
                event.update(container)
            message = event.get("message")
            if message and message.startswith("@cee:") and self.settings.parse_cee:
                apply_cee(event)
            events.append(stamp(event, received_ns))
            sizes.append(len(data) + EVENT_OVERHEAD_BYTES)
            room -= 1
            if room == 0:
                # Re-check: the byte bound may allow fewer than the event bound said.
                spool_refused += queue.put_many(events, sizes)
                events, sizes = [], []
                room = queue.room()
                if room == 0 and queue.when_full == "block":
                    self._pause_until_room()
                    break
        spool_refused += queue.put_many(events, sizes)
        if shedding and received == limit and not emptied:
            # A whole batch and still more waiting. Twice in a row is no pause but a
            # sender faster than we parse: drop what waits now, counted, rather than let
            # it block in send() until we get to it.
            self._behind += 1
            if self._behind >= 2:
                shed_first_ns = time.time_ns()
                n_shed, n_bytes = drain_dropping(sock, self._scratch, MAX_DATAGRAMS_PER_WAKE)
                received += n_shed
                received_bytes += n_bytes
                if n_shed:
                    self._shed.inc(n_shed)
                    self.loss.add(n_shed, REASON_BEHIND, shed_first_ns, time.time_ns())
        elif emptied:
            self._behind = 0
        if spool_refused:
            self._spool_refused.inc(spool_refused)
            self.loss.add(spool_refused, REASON_SPOOL_FULL, time.time_ns(), time.time_ns())
        if received:
            self._received.inc(received)
            self._received_bytes.inc(received_bytes)
        if dropped:
            self._dropped.inc(dropped)
            self.loss.add(dropped, REASON_QUEUE_FULL, drop_first_ns, time.time_ns())
        if truncated:
            self._truncated.inc(truncated)
        if failures:
            self._parse_failures.inc(failures)

    def _pause_until_room(self) -> None:
        """``block`` policy: stop reading; the kernel queue then pushes back on senders."""
        if self._paused or self._loop is None or self.sock is None:
            return
        self._paused = True
        self._loop.remove_reader(self.sock.fileno())
        self._resume_task = self._loop.create_task(self._resume_when_room())

    async def _resume_when_room(self) -> None:
        await self.queue.wait_for_room()
        if self.sock is not None and self._loop is not None and self._paused:
            self._paused = False
            self._loop.add_reader(self.sock.fileno(), self._on_readable)
