"""Wires inputs -> queue -> output, runs them, and stops them in order.

Lifecycle (SIGTERM or SIGINT): stop reading inputs, let the output drain the queue
within ``service.shutdown_timeout``, then cancel it, and log what was left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from logpipe import listen, metrics
from logpipe.admin import AdminServer
from logpipe.config import DockerSettings, ForwardSettings, Settings, SyslogSettings
from logpipe.enrich.containers import ContainerMetadata
from logpipe.enrich.docker_client import DockerClient
from logpipe.event import Stamper, loss_marker
from logpipe.inputs.devlog import DevlogInput
from logpipe.inputs.devlog_sockets import ContainerSockets
from logpipe.inputs.docker import DockerInput
from logpipe.inputs.docker_files import DockerFilesInput
from logpipe.inputs.forward import ForwardInput
from logpipe.inputs.syslog_net import SyslogNetInput
from logpipe.outputs.elasticsearch import ElasticsearchOutput
from logpipe.outputs.forward import ForwardOutput
from logpipe.queue import EventQueue, LossTracker
from logpipe.spool import Spool

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 1.0
SPILL_FSYNC_SECONDS = 5.0  # spill guards memory; durability = "disk" is the crash-proof one
READY_FD_ENV = "LOGPIPE_READY_FD"  # set by the supervisor: a pipe to say "reading"
WORKER_SLOT_ENV = "LOGPIPE_WORKER_SLOT"  # set by the supervisor: 0..service.workers-1
GAUGE_INTERVAL_SECONDS = 0.5  # how fresh the queue gauges are under multiprocess metrics


class Pipeline:
    """One worker's whole data path."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        node = settings.node_name
        # Slot 0 runs every input; the other workers run only the ones whose sockets the
        # kernel shares out (a docker input or per-container sockets run twice would
        # read everything twice).
        self.slot = int(os.environ.get(WORKER_SLOT_ENV, "0"))
        q = settings.queue
        self.queue = EventQueue(q.max_events, q.max_bytes, q.when_full)
        self.spool: Spool | None = None
        if q.when_full == "spill" or q.durability == "disk":
            durable = q.durability == "disk"
            spool = self.spool = Spool(
                os.path.join(
                    settings.service.data_dir,
                    "spool",
                    "queue" if self.slot == 0 else f"queue-{self.slot}",
                ),
                q.spill_max_bytes,
                fsync_interval=q.fsync_interval if durable else SPILL_FSYNC_SECONDS,
            )
            if durable:
                self.queue.make_durable(spool)
            else:
                self.queue.spool = spool
            if not metrics.MULTIPROCESS:
                metrics.SPOOL_BYTES.set_function(lambda: spool.pending_bytes)
            if spool.pending_events:
                log.info(
                    "Spool holds events from before; they ship first. events=%d bytes=%d",
                    spool.pending_events,
                    spool.pending_bytes,
                )
        self.losses: dict[str, tuple[LossTracker, Stamper]] = {}
        self.inputs: list[
            DevlogInput | SyslogNetInput | ForwardInput | DockerInput | DockerFilesInput
        ] = []
        self.docker_inputs: list[DockerInput | DockerFilesInput] = []
        # One metadata cache per Docker API socket, shared by the inputs that use it.
        self.metadata: dict[str, ContainerMetadata] = {}
        self.container_sockets: list[ContainerSockets] = []
        fds = listen.inherited()  # sockets a supervisor or systemd bound for us
        for inp in settings.inputs:
            if self.slot > 0 and isinstance(inp, DockerSettings):
                continue
            if isinstance(inp, DockerSettings):
                docker: DockerInput | DockerFilesInput
                if inp.mode == "files":
                    docker = DockerFilesInput(
                        inp,
                        self.queue,
                        node,
                        self._metadata_for(inp.socket) if inp.socket else None,
                        settings.service.data_dir,
                    )
                else:
                    docker = DockerInput(
                        inp,
                        self.queue,
                        node,
                        self._metadata_for(inp.socket),
                        settings.service.data_dir,
                    )
                self.inputs.append(docker)
                self.docker_inputs.append(docker)
                continue
            tracker = LossTracker(inp.name)
            if isinstance(inp, SyslogSettings | ForwardSettings):
                net: SyslogNetInput | ForwardInput
                if isinstance(inp, SyslogSettings):
                    net = SyslogNetInput(inp, self.queue, node, tracker)
                else:
                    net = ForwardInput(inp, self.queue, node, tracker)
                for key in net.listener_keys():
                    sock = listen.take(key, fds)
                    if sock is not None:
                        net.inherited[key] = sock
                self.inputs.append(net)
                self.losses[inp.name] = (tracker, net.stamper)
                continue
            devlog = DevlogInput(inp, self.queue, node, tracker)
            devlog.inherited = listen.take(listen.devlog_key(inp.path), fds)
            self.inputs.append(devlog)
            self.losses[inp.name] = (tracker, devlog.stamper)
            if inp.attribute_containers and inp.docker_socket:
                self._metadata_for(inp.docker_socket)
            if inp.per_container_sockets and inp.docker_socket and self.slot == 0:
                self.container_sockets.append(
                    ContainerSockets(
                        inp, self.queue, node, tracker, self._metadata_for(inp.docker_socket)
                    )
                )
        enrichers = [m.enrich for m in self.metadata.values()]
        self.output: ElasticsearchOutput | ForwardOutput
        if settings.forward.hosts:
            self.output = ForwardOutput(settings.forward, self.queue, node, enrichers)
        else:
            self.output = ElasticsearchOutput(
                settings.elasticsearch,
                self.queue,
                node,
                settings.dead_letter_file,
                settings.file,
                enrichers=enrichers,
            )
        self.admin = AdminServer(
            settings.admin.listen,
            self.readiness,
            self.status,
            listen.take(listen.admin_key(settings.admin.listen), fds),
        )
        self._stop = asyncio.Event()
        self._started_at = time.time()

    def _metadata_for(self, socket_path: str) -> ContainerMetadata:
        if socket_path not in self.metadata:
            self.metadata[socket_path] = ContainerMetadata(DockerClient(socket_path))
        return self.metadata[socket_path]

    def readiness(self) -> tuple[bool, list[str]]:
        reasons = [f"input {i.name} is not bound" for i in self.inputs if not i.bound]
        if not self.output.reachable:
            reasons.append("Elasticsearch is unreachable")
        if not self.output.template_ok.is_set():
            reasons.append("index template not confirmed (run logpipe setup)")
        return not reasons, reasons

    def status(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.time() - self._started_at, 1),
            "queue": {
                "events": len(self.queue),
                "bytes": self.queue.bytes,
                "max_events": self.queue.max_events,
                "max_bytes": self.queue.max_bytes,
            },
            "inputs": [
                {"name": i.name, "type": i.settings.type, "bound": i.bound} for i in self.inputs
            ],
            "elasticsearch": {
                "reachable": self.output.reachable,
                "template": self.output.template_ok.is_set(),
            },
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        for inp in self.inputs:
            inp.open()
        await self.admin.start()
        await self.output.start()
        for inp in self.inputs:
            inp.start(loop)
        for sockets in self.container_sockets:
            sockets.start(loop)
        markers = asyncio.create_task(self._loss_markers(), name="loss-markers")
        syncs = asyncio.create_task(self._sync_spool(), name="spool-sync")
        checkpoints = asyncio.create_task(self._checkpoints(), name="checkpoints")
        gauges = asyncio.create_task(self._gauges(), name="gauges")
        log.info(
            "logpipe is running. inputs=%s node=%s slot=%d",
            len(self.inputs),
            self.settings.node_name,
            self.slot,
        )
        _tell_supervisor_ready()
        await self._stop.wait()
        log.info("Stopping: inputs closed, draining the queue. queued=%d", len(self.queue))
        for inp in self.inputs:
            inp.stop()
        for sockets in self.container_sockets:
            sockets.stop()
        markers.cancel()
        checkpoints.cancel()
        syncs.cancel()
        gauges.cancel()
        deadline = time.monotonic() + self.settings.service.shutdown_timeout
        for inp in self.inputs:
            if isinstance(inp, SyslogNetInput | ForwardInput):
                await inp.wait_closed(deadline)
        self._emit_loss_markers()
        await self._drain(deadline)
        idle = self.output.idle
        await self.output.stop()
        if self.queue.spool is not None:
            undelivered = self.output.undelivered()
            left = len(undelivered) + len(self.queue)
            spooled = self.queue.spool_memory(undelivered)
            if spooled:
                log.info(
                    "Spooled what was not delivered; it ships first next time. events=%d", spooled
                )
            elif left and not self.queue.durable:
                log.error("The spool refused what was left; it is lost. events=%d", left)
            self.queue.spool.close()
        if idle:
            for docker in self.docker_inputs:
                docker.save_checkpoints()
        await self.admin.stop()
        for meta in self.metadata.values():
            await meta.client.close()
        for inp in self.inputs:
            inp.close()
        for sockets in self.container_sockets:
            sockets.close()

    async def _drain(self, deadline: float) -> None:
        # Polling: "idle" spans the queue and the requests in flight, and a short
        # poll at shutdown is simpler than an event for each of them.
        while not self.output.idle and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.output.idle:
            log.info("Stopped cleanly: queue drained.")
        else:
            log.error(
                "Stopped with events undelivered%s. queued=%d",
                " (spooled below)" if self.queue.spool is not None else " (no spool configured)",
                len(self.queue),
            )

    async def _checkpoints(self) -> None:
        """Save read positions whenever everything read so far has been delivered."""
        saved: dict[str, dict[str, int]] = {}
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_SECONDS)
            if not self.output.idle:
                continue
            for docker in self.docker_inputs:
                positions = docker.positions()
                if saved.get(docker.name) != positions:
                    docker.save_checkpoints()
                    saved[docker.name] = positions

    async def _gauges(self) -> None:
        """Multiprocess metrics read values from files, not callbacks: set them here."""
        if not metrics.MULTIPROCESS:
            return
        while True:
            metrics.QUEUE_EVENTS.set(len(self.queue))
            metrics.QUEUE_BYTES.set(self.queue.bytes)
            if self.spool is not None:
                metrics.SPOOL_BYTES.set(self.spool.pending_bytes)
            await asyncio.sleep(GAUGE_INTERVAL_SECONDS)

    async def _sync_spool(self) -> None:
        """fsync the spool on a timer too: the last appends before a lull must not wait
        for the next append to reach the disk."""
        spool = self.queue.spool
        if spool is None:
            return
        while True:
            await asyncio.sleep(max(self.settings.queue.fsync_interval, 0.05))
            spool.sync()

    async def _loss_markers(self) -> None:
        interval = self.settings.queue.loss_marker_interval
        while True:
            await asyncio.sleep(interval)
            self._emit_loss_markers()

    def _emit_loss_markers(self) -> None:
        now = time.time_ns()
        for name, (tracker, stamper) in self.losses.items():
            if not tracker.count:
                continue
            count, reason, first_ns, last_ns = tracker.take()
            self.queue.put_marker(loss_marker(stamper, name, reason, count, first_ns, last_ns, now))
            metrics.LOSS_MARKERS.labels(input=name).inc()
            log.warning(
                "Events were dropped; loss marker queued. input=%s count=%d reason=%s",
                name,
                count,
                reason,
            )


def _tell_supervisor_ready() -> None:
    """Reading on every socket: the supervisor may now stop the worker this one replaces."""
    fd = os.environ.pop(READY_FD_ENV, "")
    if fd:
        with contextlib.suppress(OSError):
            os.write(int(fd), b"ready\n")
            os.close(int(fd))
