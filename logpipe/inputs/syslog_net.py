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
message to ``host.hostname``. Limits hold per input: ``max_message_bytes`` (longer
messages are cut and tagged), ``max_connections`` (one more is closed at once),
``idle_timeout``. A connection whose framing breaks is closed; every cut-off is counted
in ``logpipe_connections_closed_total`` with its reason, and the service goes on.

On stop, the listeners stop accepting and each plain TCP connection is half-closed
(FIN): a sender that checks its connection before writing, as rsyslog does, closes it
and reconnects to the next worker, and logpipe reads everything it sent up to then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
import zoneinfo
from typing import Any

from logpipe import listen, metrics
from logpipe.config import SyslogSettings
from logpipe.event import EVENT_OVERHEAD_BYTES, TAGS, Stamper
from logpipe.parsers.cee import apply_cee
from logpipe.parsers.syslog import SyslogParser
from logpipe.parsers.syslog_framing import FrameSplitter, TruncatedFrame
from logpipe.queue import EventQueue, LossTracker

log = logging.getLogger(__name__)

SO_RCVBUFFORCE = 33
MSG_TRUNC = int(socket.MSG_TRUNC)
MAX_DATAGRAMS_PER_WAKE = 2000
TLS_HANDSHAKE_TIMEOUT_SECONDS = 30.0
# An address cache for UDP senders: a handful of hosts send most datagrams, and one
# dict per sender beats building the same three fields per datagram.
MAX_CACHED_SENDERS = 4096

TAG_TRUNCATED = "_message_truncated"
REASON_QUEUE_FULL = "queue_full"
REASON_SPOOL_FULL = "spool_full"

CLOSED_MAX_CONNECTIONS = "max_connections"
CLOSED_IDLE = "idle_timeout"
CLOSED_MALFORMED = "malformed_frame"
CLOSED_TLS = "tls_handshake"
CLOSED_STOPPING = "stopping"

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def tls_server_context(settings: SyslogSettings) -> ssl.SSLContext:
    """The TLS listener's context: our certificate, and the client CA if one is set."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[settings.tls_min_version]
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(cafile=settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_fields(address: Any, transport: str) -> dict[str, Any]:
    """source.ip / source.port of a sender; IPv4 seen through a dual-stack socket as IPv4."""
    if not isinstance(address, tuple) or len(address) < 2:
        return {"network.transport": transport}
    host = address[0]
    if host.startswith("::ffff:"):
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
        if mapped is not None:
            host = str(mapped)
    return {"source.ip": host, "source.port": address[1], "network.transport": transport}


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
        self.connections: set[_Connection] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._paused: set[_Connection] = set()
        self._resume_task: asyncio.Task[None] | None = None
        self._senders: dict[Any, dict[str, Any]] = {}
        self._scratch = bytearray(settings.max_message_bytes)
        self._received = metrics.RECEIVED_EVENTS.labels(input=self.name)
        self._received_bytes = metrics.RECEIVED_BYTES.labels(input=self.name)
        self._dropped = metrics.DROPPED_EVENTS.labels(input=self.name, reason=REASON_QUEUE_FULL)
        self._spool_refused = metrics.DROPPED_EVENTS.labels(
            input=self.name, reason=REASON_SPOOL_FULL
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
                self._grow_receive_buffer(self.udp)
                self.udp.setblocking(False)
            if s.tcp:
                sock = self._socket(listen.tcp_key(s.tcp), listen.bind_tcp, s.tcp)
                self.streams.append(("tcp", sock, None))
            if s.tls:
                context = tls_server_context(s)
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

    def _grow_receive_buffer(self, sock: socket.socket) -> None:
        want = self.settings.receive_buffer_bytes
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.udp is not None:
            loop.add_reader(self.udp.fileno(), self._on_datagrams)
        for listener, sock, context in self.streams:
            self._tasks.append(loop.create_task(self._serve(listener, sock, context)))
        self._tasks.append(loop.create_task(self._close_idle(), name=f"{self.name}-idle"))

    async def _serve(self, listener: str, sock: socket.socket, context: ssl.SSLContext | None):
        assert self._loop is not None
        server = await self._loop.create_server(
            lambda: _Connection(self, listener, context), sock=sock, backlog=socket.SOMAXCONN
        )
        self._servers.append(server)

    def stop(self) -> None:
        """Stop accepting and reading new datagrams; ask TCP senders to go elsewhere."""
        self._stopping = True
        if self.udp is not None and self._loop is not None:
            self._loop.remove_reader(self.udp.fileno())
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        for connection in list(self.connections):
            connection.half_close()

    async def wait_closed(self, deadline: float) -> None:
        """After stop(): give senders until ``deadline`` (monotonic) to close their side,
        so nothing they wrote before they saw our FIN is cut off by our close."""
        # Polling, as in Pipeline._drain: one short wait at shutdown.
        while self.connections and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.connections:
            log.info(
                "Closing connections still open at the deadline. input=%s connections=%d",
                self.name,
                len(self.connections),
            )

    def close(self) -> None:
        if not self._stopping:
            self.stop()
        for connection in list(self.connections):
            connection.abort(CLOSED_STOPPING)
        if self.udp is not None:
            self.udp.close()
            self.udp = None
        for _, sock, _ in self.streams:
            sock.close()
        self.streams = []
        if self._resume_task is not None:
            self._resume_task.cancel()

    async def _close_idle(self) -> None:
        timeout = self.settings.idle_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            assert self._loop is not None
            deadline = self._loop.time() - timeout
            for connection in [c for c in self.connections if c.last_active < deadline]:
                log.info(
                    "Closing an idle connection. input=%s peer=%s idle_timeout=%ss",
                    self.name,
                    connection.peer,
                    timeout,
                )
                connection.abort(CLOSED_IDLE)

    # -- events ----------------------------------------------------------------------

    def _events(
        self, frames: list[bytes], extra: dict[str, Any], received_ns: int
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Parse and stamp; the counters for what was read are bumped here, per batch."""
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
            event.update(extra)
            if parse_cee:
                message = event.get("message")
                if message and message.startswith("@cee:"):
                    apply_cee(event)
            events.append(stamp(event, received_ns))
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
        self._received.inc(len(frames))
        self._received_bytes.inc(sum(map(len, frames)))
        queue = self.queue
        if queue.when_full != "block":
            room = queue.room()
            if room < len(frames):
                self._drop(len(frames) - room, received_ns)
                frames = frames[:room]
            if frames:
                self._put(*self._events(frames, connection.fields, received_ns))
            return
        # block: these bytes are already out of the kernel, so they are queued whatever
        # the bound says (one read's worth over it at most); then this sender waits.
        self._put(*self._events(frames, connection.fields, received_ns))
        if queue.room() == 0:
            self._pause(connection)

    def _pause(self, connection: _Connection) -> None:
        connection.pause()
        self._paused.add(connection)
        if self._resume_task is None or self._resume_task.done():
            assert self._loop is not None
            self._resume_task = self._loop.create_task(self._resume_when_room())

    async def _resume_when_room(self) -> None:
        await self.queue.wait_for_room()
        paused, self._paused = self._paused, set()
        for connection in paused:
            connection.resume()

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
        received = nbytes = dropped = 0
        first_drop_ns = 0
        while received < MAX_DATAGRAMS_PER_WAKE:
            if len(frames) >= room:
                first_drop_ns = time.time_ns()
                dropped, dropped_bytes = self._drain_dropping(MAX_DATAGRAMS_PER_WAKE - received)
                received += dropped
                nbytes += dropped_bytes
                break
            try:
                data, _, flags, address = recvmsg(max_bytes)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("Failed to read a datagram. error=%s input=%s", exc, self.name)
                break
            received += 1
            nbytes += len(data)
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
        if not frames:
            return
        received_ns = time.time_ns()
        events, sizes = self._events(frames, {}, received_ns)
        for event, sender in zip(events, fields, strict=True):
            event.update(sender)
        self._put(events, sizes)

    def _drain_dropping(self, limit: int) -> tuple[int, int]:
        assert self.udp is not None
        recv_into = self.udp.recv_into
        scratch = self._scratch
        count = nbytes = 0
        while count < limit:
            try:
                nbytes += recv_into(scratch)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            count += 1
        return count, nbytes


class _Connection(asyncio.Protocol):
    """One TCP or TLS sender."""

    def __init__(
        self, owner: SyslogNetInput, listener: str, context: ssl.SSLContext | None
    ) -> None:
        self.owner = owner
        self.listener = listener
        self.context = context
        self.splitter = FrameSplitter(owner.settings.max_message_bytes)
        self.transport: asyncio.BaseTransport | None = None
        self.fields: dict[str, Any] = {}
        self.peer = "?"
        self.last_active = 0.0
        self.open = False
        self._labels = {"input": owner.name, "listener": listener}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self.owner
        loop = owner._loop
        assert loop is not None and isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.last_active = loop.time()
        address = transport.get_extra_info("peername")
        self.fields = peer_fields(address, "tcp")
        self.peer = f"{self.fields.get('source.ip', '?')}:{self.fields.get('source.port', '?')}"
        metrics.CONNECTIONS_ACCEPTED.labels(**self._labels).inc()
        if len(owner.connections) >= owner.settings.max_connections:
            log.warning(
                "Refusing a connection: max_connections reached. input=%s peer=%s max=%d",
                owner.name,
                self.peer,
                owner.settings.max_connections,
            )
            metrics.CONNECTIONS_CLOSED.labels(**self._labels, reason=CLOSED_MAX_CONNECTIONS).inc()
            transport.abort()
            return
        self.open = True
        owner.connections.add(self)
        metrics.CONNECTIONS.labels(**self._labels).inc()
        if self.context is not None:
            # The handshake runs in start_tls, so that a failed one can be seen and counted
            # (a server created with ssl= drops those without a word).
            transport.pause_reading()
            loop.create_task(self._start_tls(transport, self.context))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = self.owner._loop
        assert loop is not None
        try:
            tls = await loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=min(
                    TLS_HANDSHAKE_TIMEOUT_SECONDS, self.owner.settings.idle_timeout
                ),
            )
        except (TimeoutError, OSError, RuntimeError) as exc:  # ssl.SSLError is an OSError
            log.warning(
                "TLS handshake failed; connection closed. input=%s peer=%s error=%s",
                self.owner.name,
                self.peer,
                exc,
            )
            self.abort(CLOSED_TLS)
            return
        if tls is None:  # the connection went away during the handshake
            self.abort(CLOSED_TLS)
            return
        self.transport = tls

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        assert owner._loop is not None
        self.last_active = owner._loop.time()
        splitter = self.splitter
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

    def eof_received(self) -> bool:
        frames = self.splitter.flush()
        if frames:
            self.owner.deliver(self, frames)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def _forget(self) -> None:
        if self.open:
            self.open = False
            self.owner.connections.discard(self)
            self.owner._paused.discard(self)
            metrics.CONNECTIONS.labels(**self._labels).dec()

    def abort(self, reason: str) -> None:
        if self.open:
            metrics.CONNECTIONS_CLOSED.labels(**self._labels, reason=reason).inc()
        self._forget()
        if self.transport is not None:
            self.transport.abort()

    def half_close(self) -> None:
        """Tell the sender we are going (FIN), and keep reading what it still sends."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:
                pass

    def pause(self) -> None:
        if isinstance(self.transport, asyncio.ReadTransport):
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.open and isinstance(self.transport, asyncio.ReadTransport):
            self.transport.resume_reading()
