"""What every network input that accepts connections shares (syslog over TCP and TLS,
the forward protocol): listening within limits, TLS handshakes that are seen and
counted, idle timeouts, pausing senders, and a stop that lets them go elsewhere.

An input makes a :class:`StreamServer` with a factory for its own
:class:`StreamConnection` subclass, which implements :meth:`StreamConnection.received`
(bytes in) and :meth:`StreamConnection.ended` (the peer closed its side).

* ``max_connections``: one more is closed at once and counted.
* ``idle_timeout``: a connection that sends nothing for this long is closed.
* TLS: the handshake runs in ``loop.start_tls`` rather than in a server created with
  ``ssl=``, which drops failed handshakes without a word; here each is logged and
  counted (``reason="tls_handshake"``).
* On stop the listeners stop accepting and each plain TCP connection is half-closed
  (FIN): a sender that checks its connection before writing, as rsyslog and Fluent Bit
  do, reconnects to the next worker, and everything it sent until then is still read.
  A connection that then stays quiet for ``STOP_QUIET_SECONDS`` is closed: rsyslog
  does not close on a FIN, it only notices it at its next write, and a stop should not
  wait ``shutdown_timeout`` for every idle host.

Every connection logpipe closes is counted in ``logpipe_connections_closed_total``
with its reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from logpipe import metrics
from logpipe.queue import EventQueue

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT_SECONDS = 30.0
STOP_QUIET_SECONDS = 2.0

CLOSED_MAX_CONNECTIONS = "max_connections"
CLOSED_IDLE = "idle_timeout"
CLOSED_MALFORMED = "malformed_frame"
CLOSED_TLS = "tls_handshake"
CLOSED_AUTH = "auth"
CLOSED_STOPPING = "stopping"

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def tls_server_context(cert: str, key: str, client_ca: str, min_version: str) -> ssl.SSLContext:
    """A listener's TLS context: our certificate, and the client CA if one is set."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[min_version]
    # No TLS 1.3 session tickets. Senders such as rsyslog never read: tickets would sit
    # unread in the sender's socket, its close() would become a RST, and a RST discards
    # whatever we had not read yet (measured: 22,353 of 40,000 lines arrived). Log
    # senders keep their connections long; resumption buys them nothing.
    context.num_tickets = 0
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
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


class StreamServer:
    """The listeners and connections of one input."""

    def __init__(
        self,
        input_name: str,
        queue: EventQueue,
        max_connections: int,
        idle_timeout: float,
        connection: Callable[[StreamServer, str, ssl.SSLContext | None], StreamConnection],
    ) -> None:
        self.name = input_name
        self.queue = queue
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._connection = connection
        self.connections: set[StreamConnection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._paused: set[StreamConnection] = set()
        self._resume_task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        listeners: list[tuple[str, socket.socket, ssl.SSLContext | None]],
    ) -> None:
        self.loop = loop
        for listener, sock, context in listeners:
            self._tasks.append(loop.create_task(self._serve(listener, sock, context)))
        self._tasks.append(loop.create_task(self._close_idle(), name=f"{self.name}-idle"))

    async def _serve(
        self, listener: str, sock: socket.socket, context: ssl.SSLContext | None
    ) -> None:
        assert self.loop is not None
        server = await self.loop.create_server(
            lambda: self._connection(self, listener, context), sock=sock, backlog=socket.SOMAXCONN
        )
        self._servers.append(server)

    def stop(self) -> None:
        """Stop accepting; ask each sender to go elsewhere (FIN), and keep reading."""
        self._stopping = True
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        for connection in list(self.connections):
            connection.half_close()

    async def wait_closed(self, deadline: float) -> None:
        """After stop(): give senders until ``deadline`` (monotonic) to close their side,
        so nothing they wrote before they saw our FIN is cut off by our close."""
        assert self.loop is not None
        quiet_since = self.loop.time()  # the FIN went out at stop()
        # Polling, as in Pipeline._drain: one short wait at shutdown.
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            # Sent nothing since the FIN, for a while: nothing is lost by closing now. A
            # paused connection is not quiet, it is unread: it waits for the deadline.
            quiet = self.loop.time() - STOP_QUIET_SECONDS
            for connection in list(self.connections - self._paused):
                if max(connection.last_active, quiet_since) < quiet:
                    connection.close(CLOSED_STOPPING)
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
        if self._resume_task is not None:
            self._resume_task.cancel()

    async def _close_idle(self) -> None:
        timeout = self.idle_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            assert self.loop is not None
            deadline = self.loop.time() - timeout
            for connection in [c for c in self.connections if c.last_active < deadline]:
                log.info(
                    "Closing an idle connection. input=%s peer=%s idle_timeout=%ss",
                    self.name,
                    connection.peer,
                    timeout,
                )
                connection.abort(CLOSED_IDLE)

    def pause_until_room(self, connection: StreamConnection) -> None:
        """Stop reading ``connection`` until the queue has room: TCP pushes back."""
        connection.pause()
        self._paused.add(connection)
        if self._resume_task is None or self._resume_task.done():
            assert self.loop is not None
            self._resume_task = self.loop.create_task(self._resume_when_room())

    async def _resume_when_room(self) -> None:
        await self.queue.wait_for_room()
        paused, self._paused = self._paused, set()
        for connection in paused:
            connection.resume()


class StreamConnection(asyncio.Protocol):
    """One sender on a stream listener; subclasses read its bytes."""

    def __init__(self, server: StreamServer, listener: str, context: ssl.SSLContext | None) -> None:
        self.server = server
        self.listener = listener
        self.context = context
        self.transport: asyncio.Transport | None = None
        self.fields: dict[str, Any] = {}
        self.peer = "?"
        self.last_active = 0.0
        self.open = False
        self.eof_sent = False  # half_close() shut our side
        self._labels = {"input": server.name, "listener": listener}

    # -- for subclasses --------------------------------------------------------------

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def ended(self) -> None:
        """The peer closed its side; what was buffered is complete now."""

    def established(self) -> None:
        """Accepted, and past the TLS handshake where there is one."""

    def write(self, data: bytes) -> None:
        # After half_close() our side is shut: an ack that comes later is not sent (the
        # sender re-sends that chunk elsewhere; its ids make the copy land on the same
        # documents).
        if self.transport is not None and not self.transport.is_closing() and not self.eof_sent:
            self.transport.write(data)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.server
        loop = server.loop
        assert loop is not None and isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.last_active = loop.time()
        self.fields = peer_fields(transport.get_extra_info("peername"), "tcp")
        self.peer = f"{self.fields.get('source.ip', '?')}:{self.fields.get('source.port', '?')}"
        metrics.CONNECTIONS_ACCEPTED.labels(**self._labels).inc()
        if len(server.connections) >= server.max_connections:
            log.warning(
                "Refusing a connection: max_connections reached. input=%s peer=%s max=%d",
                server.name,
                self.peer,
                server.max_connections,
            )
            metrics.CONNECTIONS_CLOSED.labels(**self._labels, reason=CLOSED_MAX_CONNECTIONS).inc()
            transport.abort()
            return
        self.open = True
        server.connections.add(self)
        metrics.CONNECTIONS.labels(**self._labels).inc()
        if self.context is None:
            self.established()
            return
        transport.pause_reading()  # nothing is read until start_tls takes over
        loop.create_task(self._start_tls(transport, self.context))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = self.server.loop
        assert loop is not None
        try:
            tls = await loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=min(TLS_HANDSHAKE_TIMEOUT_SECONDS, self.server.idle_timeout),
            )
        except (TimeoutError, OSError, RuntimeError) as exc:  # ssl.SSLError is an OSError
            log.warning(
                "TLS handshake failed; connection closed. input=%s peer=%s error=%s",
                self.server.name,
                self.peer,
                exc,
            )
            self.abort(CLOSED_TLS)
            return
        if tls is None:  # the connection went away during the handshake
            self.abort(CLOSED_TLS)
            return
        self.transport = tls
        self.established()

    def data_received(self, data: bytes) -> None:
        loop = self.server.loop
        assert loop is not None
        self.last_active = loop.time()
        self.received(data)

    def eof_received(self) -> bool:
        self.ended()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    # -- control ---------------------------------------------------------------------

    def _forget(self) -> None:
        if self.open:
            self.open = False
            self.server.connections.discard(self)
            self.server._paused.discard(self)
            metrics.CONNECTIONS.labels(**self._labels).dec()

    def abort(self, reason: str) -> None:
        """Close at once, dropping what is buffered either way; counted under ``reason``."""
        self._end(reason, flush=False)

    def close(self, reason: str) -> None:
        """Close after what we wrote is flushed (an ack, a PONG, a TLS close_notify)."""
        self._end(reason, flush=True)

    def _end(self, reason: str, flush: bool) -> None:
        if self.open:
            metrics.CONNECTIONS_CLOSED.labels(**self._labels, reason=reason).inc()
        self._forget()
        if self.transport is not None:
            if flush:
                self.transport.close()
            else:
                self.transport.abort()

    def half_close(self) -> None:
        """Tell the sender we are going (FIN), and keep reading what it still sends."""
        transport = self.transport
        if transport is not None and transport.can_write_eof():
            self.eof_sent = True
            try:
                transport.write_eof()
            except OSError:
                pass

    def pause(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.open and self.transport is not None:
            self.transport.resume_reading()
