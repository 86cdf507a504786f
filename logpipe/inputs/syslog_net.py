"""The ``syslog`` input: syslog over the network, as hosts' rsyslog and syslog-ng send it.

Three optional listeners share one parser and one event sequence:

* UDP: one message per datagram. UDP cannot push back on a sender, so a full queue
  means the datagram is read, dropped and counted (whatever the ``when_full`` policy),
  rather than left for the kernel to drop without a trace.
* TCP: octet counting or LF framing, decided per connection
  (:mod:`logpipe.parsers.syslog_framing`). With ``when_full = "block"`` a full queue
  stops reading the connection, and TCP's window pushes back on the sender.
* TLS (RFC 5425): TCP with a certificate, optionally requiring client certificates
  signed by a given CA (mutual TLS).

The sending host's address goes to ``source.ip``/``source.port``; the HOSTNAME of the
message to ``host.hostname``. ``max_message_bytes``: longer messages are cut and tagged.
A connection whose framing breaks is closed and counted, and the service goes on; the
connection limits, TLS and stopping are :mod:`logpipe.inputs.streams`'.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
import time
import zoneinfo
from typing import Any

from logpipe import listen, metrics
from logpipe.config import SyslogSettings
from logpipe.event import EVENT_OVERHEAD_BYTES, TAGS, Constants, Stamper
from logpipe.inputs.datagrams import drain_dropping, grow_receive_buffer
from logpipe.inputs.devlog import REASON_QUEUE_FULL, REASON_SPOOL_FULL, TAG_TRUNCATED
from logpipe.inputs.streams import (
    CLOSED_MALFORMED,
    StreamConnection,
    StreamServer,
    peer_fields,
    tls_server_context,
)
from logpipe.parsers.cee import apply_cee
from logpipe.parsers.syslog import SyslogParser
from logpipe.parsers.syslog_framing import FrameSplitter, TruncatedFrame
from logpipe.queue import EventQueue, LossTracker

log = logging.getLogger(__name__)

# Linux: each datagram then carries the socket's running count of datagrams the kernel
# dropped (receive buffer full) before it, so those losses are counted too.
SO_RXQ_OVFL = 40
_OVERFLOW_SPACE = socket.CMSG_SPACE(4)
SOL_SOCKET = int(socket.SOL_SOCKET)
MSG_TRUNC = int(socket.MSG_TRUNC)
MAX_DATAGRAMS_PER_WAKE = 2000
# An address cache for UDP senders: a handful of hosts send most datagrams, and one
# dict per sender beats building the same three fields per datagram.
MAX_CACHED_SENDERS = 4096

REASON_KERNEL_BUFFER = "kernel_buffer"  # UDP: dropped by the kernel before logpipe read it


class SyslogNetInput:
    """UDP, TCP and TLS syslog listeners feeding one queue."""

    def __init__(
        self, settings: SyslogSettings, queue: EventQueue, node: str, loss: LossTracker
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.queue = queue
        self.loss = loss
        self.stamper = Stamper(node, settings.name, "syslog")
        zone = zoneinfo.ZoneInfo(settings.timezone) if settings.timezone else None
        self.parser = SyslogParser(zone)
        # Sockets a supervisor or systemd bound, by listener key; used instead of binding.
        self.inherited: dict[str, socket.socket] = {}
        self.udp: socket.socket | None = None
        self.streams: list[tuple[str, socket.socket, ssl.SSLContext | None]] = []
        self.server = StreamServer(
            settings.name,
            queue,
            settings.max_connections,
            settings.idle_timeout,
            lambda server, listener, context: _Connection(self, server, listener, context),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._senders: dict[Any, dict[str, Any]] = {}
        self._kernel_drops = 0  # the last SO_RXQ_OVFL count seen
        self._scratch = bytearray(settings.max_message_bytes)
        self._received = metrics.RECEIVED_EVENTS.labels(input=self.name)
        self._received_bytes = metrics.RECEIVED_BYTES.labels(input=self.name)
        self._dropped = metrics.DROPPED_EVENTS.labels(input=self.name, reason=REASON_QUEUE_FULL)
        self._spool_refused = metrics.DROPPED_EVENTS.labels(
            input=self.name, reason=REASON_SPOOL_FULL
        )
        self._kernel_dropped = metrics.DROPPED_EVENTS.labels(
            input=self.name, reason=REASON_KERNEL_BUFFER
        )
        self._truncated = metrics.TRUNCATED_EVENTS.labels(input=self.name)
        self._parse_failures = metrics.PARSE_FAILURES.labels(input=self.name, parser="syslog")

    # -- lifecycle -------------------------------------------------------------------

    def listener_keys(self) -> list[str]:
        s = self.settings
        keys = [listen.udp_key(s.udp)] if s.udp else []
        keys += [listen.tcp_key(a) for a in (s.tcp, s.tls) if a]
        return keys

    @property
    def bound(self) -> bool:
        want = bool(self.settings.udp) + bool(self.settings.tcp) + bool(self.settings.tls)
        return (self.udp is not None) + len(self.streams) == want

    def open(self) -> None:
        """Bind the listeners, or take those a supervisor or systemd handed down."""
        s = self.settings
        try:
            if s.udp:
                self.udp = self._socket(listen.udp_key(s.udp), listen.bind_udp, s.udp)
                grow_receive_buffer(self.udp, s.receive_buffer_bytes)
                self.udp.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                self.udp.setblocking(False)
            if s.tcp:
                sock = self._socket(listen.tcp_key(s.tcp), listen.bind_tcp, s.tcp)
                self.streams.append(("tcp", sock, None))
            if s.tls:
                context = tls_server_context(
                    s.tls_cert, s.tls_key, s.tls_client_ca, s.tls_min_version
                )
                sock = self._socket(listen.tcp_key(s.tls), listen.bind_tcp, s.tls)
                self.streams.append(("tls", sock, context))
        except BaseException:
            self.close()
            raise
        for kind, address in (("udp", s.udp), ("tcp", s.tcp), ("tls", s.tls)):
            if address:
                log.info("Listening for syslog. input=%s %s=%s", self.name, kind, address)

    def _socket(self, key: str, bind: Any, address: str) -> socket.socket:
        sock = self.inherited.pop(key, None)
        return sock if sock is not None else bind(address)

    @property
    def connections(self) -> set[StreamConnection]:
        return self.server.connections

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.udp is not None:
            loop.add_reader(self.udp.fileno(), self._on_datagrams)
        self.server.start(loop, self.streams)

    def stop(self) -> None:
        """Stop reading datagrams and accepting connections; senders go elsewhere."""
        if self.udp is not None and self._loop is not None:
            self._loop.remove_reader(self.udp.fileno())
        self.server.stop()

    async def wait_closed(self, deadline: float) -> None:
        await self.server.wait_closed(deadline)

    def close(self) -> None:
        self.server.close()
        if self.udp is not None:
            self.udp.close()
            self.udp = None
        for _, sock, _ in self.streams:
            sock.close()
        self.streams = []

    # -- events ----------------------------------------------------------------------

    def _events(
        self, frames: list[bytes], constants: Constants | None, received_ns: int
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Parse and stamp; the counters for what was read are bumped here, per batch.
        ``constants``: a connection's (its peer fields with the input's constants)."""
        parse = self.parser.parse
        stamp = self.stamper.stamp
        parse_cee = self.settings.parse_cee
        events: list[dict[str, Any]] = []
        sizes: list[int] = []
        failures = truncated = 0
        for frame in frames:
            event = parse(frame, received_ns)
            if TAGS in event:
                failures += 1
            if type(frame) is TruncatedFrame:
                truncated += 1
                event.setdefault(TAGS, []).append(TAG_TRUNCATED)
            if parse_cee:
                message = event.get("message")
                if message and message.startswith("@cee:"):
                    apply_cee(event)
            # The peer's fields win over an @cee payload's: the kernel saw the peer.
            events.append(stamp(event, received_ns, None, constants))
            sizes.append(len(frame) + EVENT_OVERHEAD_BYTES)
        if failures:
            self._parse_failures.inc(failures)
        if truncated:
            self._truncated.inc(truncated)
        return events, sizes

    def _put(self, events: list[dict[str, Any]], sizes: list[int]) -> None:
        refused = self.queue.put_many(events, sizes)
        if refused:
            now = time.time_ns()
            self._spool_refused.inc(refused)
            self.loss.add(refused, REASON_SPOOL_FULL, now, now)

    def _drop(self, count: int, first_ns: int) -> None:
        self._dropped.inc(count)
        self.loss.add(count, REASON_QUEUE_FULL, first_ns, time.time_ns())

    def deliver(self, connection: _Connection, frames: list[bytes]) -> None:
        """Frames read from one stream connection: into the queue, or counted as dropped."""
        received_ns = time.time_ns()
        constants = connection.constants
        if constants is None:
            constants = connection.constants = self.stamper.with_fields(connection.fields)
        self._received.inc(len(frames))
        self._received_bytes.inc(sum(map(len, frames)))
        queue = self.queue
        if queue.when_full != "block":
            room = queue.room()
            if room < len(frames):
                self._drop(len(frames) - room, received_ns)
                frames = frames[:room]
            if frames:
                self._put(*self._events(frames, constants, received_ns))
            return
        # block: these bytes are already out of the kernel, so they are queued whatever
        # the bound says (one read's worth over it at most); then this sender waits.
        self._put(*self._events(frames, constants, received_ns))
        if queue.room() == 0:
            self.server.pause_until_room(connection)

    def _on_datagrams(self) -> None:
        """Drain the UDP socket; the datagrams of one wake-up go to the queue together."""
        sock = self.udp
        if sock is None:
            return
        room = self.queue.room()
        recvmsg = sock.recvmsg
        max_bytes = self.settings.max_message_bytes
        senders = self._senders
        frames: list[bytes] = []
        fields: list[dict[str, Any]] = []
        received = nbytes = dropped = kernel_dropped = 0
        first_drop_ns = 0
        while received < MAX_DATAGRAMS_PER_WAKE:
            if len(frames) >= room:
                first_drop_ns = time.time_ns()
                dropped, dropped_bytes = drain_dropping(
                    sock, self._scratch, MAX_DATAGRAMS_PER_WAKE - received
                )
                received += dropped
                nbytes += dropped_bytes
                break
            try:
                data, ancillary, flags, address = recvmsg(max_bytes, _OVERFLOW_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("Failed to read a datagram. error=%s input=%s", exc, self.name)
                break
            received += 1
            nbytes += len(data)
            if ancillary:
                overflow = self._kernel_overflow(ancillary)
                if overflow:
                    kernel_dropped += overflow
            if flags & MSG_TRUNC:
                data = TruncatedFrame(data)
            sender = senders.get(address)
            if sender is None:
                if len(senders) >= MAX_CACHED_SENDERS:
                    senders.clear()
                sender = senders[address] = peer_fields(address, "udp")
            frames.append(data)
            fields.append(sender)
        if received:
            self._received.inc(received)
            self._received_bytes.inc(nbytes)
        if dropped:
            self._drop(dropped, first_drop_ns)
        if kernel_dropped:
            now = time.time_ns()
            self._kernel_dropped.inc(kernel_dropped)
            self.loss.add(kernel_dropped, REASON_KERNEL_BUFFER, now, now)
            log.warning(
                "The kernel dropped UDP datagrams before logpipe could read them; raise "
                "receive_buffer_bytes (and net.core.rmem_max). input=%s dropped=%d",
                self.name,
                kernel_dropped,
            )
        if not frames:
            return
        received_ns = time.time_ns()
        events, sizes = self._events(frames, None, received_ns)
        for event, sender in zip(events, fields, strict=True):
            event.update(sender)
        self._put(events, sizes)

    def _kernel_overflow(self, ancillary: list[tuple[int, int, bytes]]) -> int:
        """New kernel drops since the last datagram, from its SO_RXQ_OVFL count."""
        for level, kind, data in ancillary:
            if level == SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
                total = int.from_bytes(data[:4], sys.byteorder)  # a native uint32
                new = (total - self._kernel_drops) % (1 << 32)  # the count wraps
                self._kernel_drops = total
                return new
        return 0


class _Connection(StreamConnection):
    """One TCP or TLS syslog sender."""

    def __init__(
        self,
        owner: SyslogNetInput,
        server: StreamServer,
        listener: str,
        context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(server, listener, context)
        self.owner = owner
        self.splitter = FrameSplitter(owner.settings.max_message_bytes)
        self.constants: Constants | None = None  # once the peer is known

    def received(self, data: bytes) -> None:
        owner, splitter = self.owner, self.splitter
        frames = splitter.feed(data)
        if frames:
            owner.deliver(self, frames)
        if splitter.error is not None:
            log.warning(
                "Closing a connection whose framing broke. input=%s peer=%s error=%s",
                owner.name,
                self.peer,
                splitter.error,
            )
            self.abort(CLOSED_MALFORMED)

    def ended(self) -> None:
        frames = self.splitter.flush()
        if frames:
            self.owner.deliver(self, frames)
