"""Which container an event came from, and what that container is called.

Two jobs, both cached so the per-event cost is a dict lookup:

- ``PidAttribution``: a datagram's sender pid (SO_PASSCRED) -> ``/proc/<pid>/cgroup`` ->
  container id. A pid's answer is re-read at most every ``PID_TTL_NS`` (pids are
  reused); a pid that has exited keeps the last container seen for it, and a pid never
  seen leaves the fields empty: it never guesses. logpipe must see the host's pid
  namespace (run on the host, ``--pid=host`` / ``hostPID``); otherwise the kernel
  reports pid 0 for senders outside its namespace and nothing is attributed.
- ``ContainerMetadata``: container id -> ECS fields from the Docker API's inspect,
  cached, fetched once per batch for the ids a batch has not seen before. A container
  already removed is named from its ``create`` event in the daemon's event log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from logpipe.enrich.docker_client import DockerAPIError, DockerClient, event_labels
from logpipe.parsers.cgroup import container_id_from_cgroup

log = logging.getLogger(__name__)

CONTAINER_ID = "container.id"
CONTAINER_NAME = "container.name"
CONTAINER_IMAGE = "container.image.name"
CONTAINER_LABELS = "container.labels"
CONTAINER_RUNTIME = "container.runtime"

PID_TTL_NS = 10 * 1_000_000_000
NEGATIVE_TTL_S = 30.0
# How far back a removed container's create event is looked for in the daemon's log.
EVENTS_LOOKBACK_S = 3600.0
EVENTS_UNTIL_AHEAD_S = (0.05, 1.0, 3.0)


class PidAttribution:
    """pid -> (container id, runtime), from /proc, cached per pid."""

    __slots__ = ("_cache", "proc")

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        # pid -> (checked_ns, container id or "", runtime)
        self._cache: dict[int, tuple[int, str, str]] = {}

    def lookup(self, pid: int, now_ns: int) -> tuple[str, str] | None:
        entry = self._cache.get(pid)
        if entry is not None and now_ns - entry[0] < PID_TTL_NS:
            return (entry[1], entry[2]) if entry[1] else None
        try:
            with open(f"{self.proc}/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            # Gone already (a short-lived `logger`): keep what we knew, if anything.
            if entry is not None:
                self._cache[pid] = (now_ns, entry[1], entry[2])
                return (entry[1], entry[2]) if entry[1] else None
            return None
        found = container_id_from_cgroup(text)
        if len(self._cache) > 65536:
            self._cache.clear()  # bounded: a fork bomb must not grow it forever
        self._cache[pid] = (now_ns, found[0], found[1]) if found else (now_ns, "", "")
        return found


def metadata_fields(inspect: dict[str, Any], runtime: str = "") -> dict[str, Any]:
    """ECS container fields from a ``/containers/{id}/json`` answer."""
    config = inspect.get("Config") or {}
    fields: dict[str, Any] = {
        CONTAINER_ID: inspect.get("Id", ""),
        CONTAINER_NAME: str(inspect.get("Name", "")).lstrip("/"),
    }
    image = config.get("Image") or inspect.get("ImageName") or ""
    if image:
        fields[CONTAINER_IMAGE] = image
    labels = config.get("Labels") or {}
    if labels:
        # Mapped as `flattened`: label keys keep their dots, no object conflicts.
        fields[CONTAINER_LABELS] = dict(labels)
    if runtime:
        fields[CONTAINER_RUNTIME] = runtime
    pod = labels.get("io.kubernetes.pod.name")
    if pod:
        # Set by the kubelet on every container it runs (dockershim, cri-dockerd).
        fields["orchestrator.type"] = "kubernetes"
        fields["orchestrator.resource.type"] = "pod"
        fields["orchestrator.resource.name"] = pod
        namespace = labels.get("io.kubernetes.pod.namespace")
        if namespace:
            fields["orchestrator.namespace"] = namespace
        k8s_container = labels.get("io.kubernetes.container.name")
        if k8s_container:
            fields[CONTAINER_NAME] = k8s_container
    return fields


class ContainerMetadata:
    """Container id -> ECS fields, from the Docker API, cached."""

    def __init__(self, client: DockerClient, runtime: str = "") -> None:
        self.client = client
        self.runtime = runtime
        self._fields: dict[str, dict[str, Any]] = {}
        self._missing: dict[str, float] = {}  # id -> when a lookup failed
        self._inflight: dict[str, asyncio.Future[dict[str, Any] | None]] = {}

    def cached(self, container_id: str) -> dict[str, Any] | None:
        return self._fields.get(container_id)

    def remember(self, container_id: str, inspect: dict[str, Any]) -> dict[str, Any]:
        fields = metadata_fields(inspect, self.runtime)
        self._fields[container_id] = fields
        self._missing.pop(container_id, None)
        return fields

    def forget(self, container_id: str) -> None:
        self._fields.pop(container_id, None)

    async def fetch(self, container_id: str) -> dict[str, Any] | None:
        fields = self._fields.get(container_id)
        if fields is not None:
            return fields
        failed_at = self._missing.get(container_id)
        if failed_at is not None and time.monotonic() - failed_at < NEGATIVE_TTL_S:
            return None
        pending = self._inflight.get(container_id)
        if pending is not None:
            return await asyncio.shield(pending)  # one lookup per id, however many ask
        task = asyncio.ensure_future(self._look_up(container_id))
        self._inflight[container_id] = task
        task.add_done_callback(lambda _: self._inflight.pop(container_id, None))
        return await asyncio.shield(task)

    async def _look_up(self, container_id: str) -> dict[str, Any] | None:
        try:
            inspect = await self.client.get_json(f"/containers/{container_id}/json")
        except DockerAPIError as exc:
            if exc.status != 0:
                # Removed already (a `--rm` container that wrote and exited): the
                # daemon's event log still holds its create event, name and labels.
                inspect = await self._from_create_event(container_id)
                if inspect is not None:
                    return self.remember(container_id, inspect)
            log.debug("Container lookup failed. id=%s error=%s", container_id[:12], exc)
            self._missing[container_id] = time.monotonic()
            return None
        return self.remember(container_id, inspect)

    async def _from_create_event(self, container_id: str) -> dict[str, Any] | None:
        """An inspect-like answer from the container's ``create`` event, if still logged."""
        events: list[dict[str, Any]] = []
        # podman answers an `until` already past with nothing at all; a moment ahead,
        # it replays its log and ends when `until` comes, read or not: a long log
        # needs longer, so a miss is asked again with more time (Docker does either).
        filters = json.dumps(
            {"type": ["container"], "container": [container_id], "event": ["create"]}
        )
        for ahead in EVENTS_UNTIL_AHEAD_S:
            now = time.time()
            params = {
                "since": f"{now - EVENTS_LOOKBACK_S:.0f}",
                "until": f"{now + ahead:.9f}",
                "filters": filters,
            }
            try:
                events = await self.client.get_json_lines("/events", params)
            except DockerAPIError as exc:
                log.debug("Container event lookup failed. id=%s error=%s", container_id[:12], exc)
                return None
            if events:
                break
        for event in events:
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            if attributes.get("name"):
                return {
                    "Id": container_id,
                    "Name": attributes["name"],
                    "Config": {
                        "Image": attributes.get("image", ""),
                        "Labels": event_labels(attributes),
                    },
                }
        return None

    async def enrich(self, events: list[dict[str, Any]]) -> None:
        """Fill the metadata of every event that has a container.id but no name yet."""
        wanted: dict[str, dict[str, Any] | None] = {}
        for event in events:
            cid = event.get(CONTAINER_ID)
            if cid and CONTAINER_NAME not in event and cid not in wanted:
                wanted[cid] = None
        if not wanted:
            return
        for cid in wanted:
            wanted[cid] = await self.fetch(cid)
        for event in events:
            cid = event.get(CONTAINER_ID)
            if cid and CONTAINER_NAME not in event:
                fields = wanted.get(cid)
                if fields:
                    for key, value in fields.items():
                        event.setdefault(key, value)
