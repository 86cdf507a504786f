"""Per-container /dev/log sockets: ``<per_container_dir>/<container name>/log``.

Attribution by pid needs logpipe in the host's pid namespace and a sender that is
still alive when its datagram is read. A socket per container needs neither: every
datagram on it is that container's. logpipe watches the Docker (or podman) API's
events, creates the socket when a container is created or started, and removes it
when the container is destroyed. A container mounts its directory (which may exist
before the container does: the operator or the runtime creates it) and points
``/dev/log`` at ``log`` inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re

from logpipe.config import DevlogSettings
from logpipe.enrich.containers import CONTAINER_ID, ContainerMetadata
from logpipe.enrich.docker_client import DockerAPIError, parse_event
from logpipe.inputs.devlog import DevlogInput
from logpipe.queue import EventQueue, LossTracker

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 2.0
# Container names are [a-zA-Z0-9][a-zA-Z0-9_.-]*; anything else never becomes a path.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")


class ContainerSockets:
    """Creates and removes one devlog socket per container, following API events."""

    def __init__(
        self,
        settings: DevlogSettings,
        queue: EventQueue,
        node: str,
        loss: LossTracker,
        metadata: ContainerMetadata,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.queue = queue
        self.node = node
        self.loss = loss
        self.metadata = metadata
        self.sockets: dict[str, DevlogInput] = {}  # container id -> its socket
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        os.makedirs(self.settings.per_container_dir, exist_ok=True)
        self._loop = loop
        self._task = loop.create_task(self._watch(), name=f"devlog-{self.name}-containers")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for sock in self.sockets.values():
            sock.stop()

    def close(self) -> None:
        """Close the sockets but leave their files: a restarted logpipe binds them again,
        and the containers (which mount the directory) see the new socket at once."""
        self.stop()
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    async def _watch(self) -> None:
        client = self.metadata.client
        while True:
            try:
                events = client.stream(
                    "/events", params={"filters": json.dumps({"type": ["container"]})}
                )
                first = asyncio.ensure_future(anext(events))
                for c in await client.get_json("/containers/json", params={"all": "1"}):
                    self._add(c["Id"], (c.get("Names") or [""])[0].lstrip("/"))
                buffer = b""
                chunk = await first
                while True:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        self._on_event(line)
                    chunk = await anext(events)
            except (DockerAPIError, StopAsyncIteration) as exc:
                log.warning("Lost the Docker API; per-container sockets wait. error=%s", exc)
                await asyncio.sleep(RECONNECT_SECONDS)

    def _on_event(self, line: bytes) -> None:
        parsed = parse_event(line)
        if parsed is None:
            return
        action, cid, attributes = parsed
        if action in ("create", "start"):
            self._add(cid, attributes.get("name", ""))
        elif action in ("destroy", "remove"):
            self._remove(cid)

    def _add(self, cid: str, name: str) -> None:
        if cid in self.sockets or not _SAFE_NAME.match(name) or self._loop is None:
            return
        directory = os.path.join(self.settings.per_container_dir, name)
        path = os.path.join(directory, "log")
        sock = DevlogInput(
            dataclasses.replace(self.settings, path=path, attribute_containers=False),
            self.queue,
            self.node,
            self.loss,
        )
        sock.container = {CONTAINER_ID: cid}
        try:
            os.makedirs(directory, exist_ok=True)
            sock.open()
        except OSError as exc:
            log.warning("Failed to create a container's socket. name=%s error=%s", name, exc)
            return
        sock.start(self._loop)
        self.sockets[cid] = sock
        log.info("Container socket created. name=%s path=%s", name, path)

    def _remove(self, cid: str) -> None:
        sock = self.sockets.pop(cid, None)
        if sock is None:
            return
        path = sock.settings.path
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # only if empty: it may hold the operator's files
        log.info("Container socket removed. path=%s", path)
