"""A small Docker Engine API client over the unix socket (aiohttp).

Only what logpipe needs: JSON GETs, and streamed GETs for ``/containers/{id}/logs`` and
``/events``. Works against Docker and against podman's Docker-compatible service.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

API_VERSION = "v1.41"  # podman 4 and Docker 20.10+ both speak it
_BASE = f"http://docker/{API_VERSION}"


def parse_event(line: bytes) -> tuple[str, str, dict[str, str]] | None:
    """One line of ``/events`` -> (action, container id, actor attributes), or None.

    Docker and podman both send ``Action`` and ``Actor``; older daemons only
    ``status`` and ``id``.
    """
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    actor = event.get("Actor") or {}
    cid = event.get("id") or actor.get("ID") or ""
    if not cid:
        return None
    action = event.get("Action") or event.get("status") or ""
    return str(action), str(cid), dict(actor.get("Attributes") or {})


# Attributes of a container event that are not the container's labels: podman adds the
# first three to every event, Docker adds the exit code to ``die``.
_NOT_LABELS = frozenset(("name", "image", "containerExitCode", "exitCode", "podId"))


def event_labels(attributes: dict[str, str]) -> dict[str, str]:
    """The container's labels among a container event's actor attributes."""
    return {k: v for k, v in attributes.items() if k not in _NOT_LABELS}


class DockerAPIError(Exception):
    """The API answered with an error status, or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"Docker API {status}: {message}" if status else message)


class DockerClient:
    """One connection pool to one Docker (or podman) API socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None

    def _ensure(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket_path),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str, params: dict[str, str] | None) -> bytes:
        """The body of a finite GET; DockerAPIError on an error status or no answer."""
        try:
            async with self._ensure().get(
                f"{_BASE}{path}", params=params, timeout=aiohttp.ClientTimeout(total=15)
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise DockerAPIError(resp.status, body.decode("utf-8", "replace")[:300])
                return body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DockerAPIError(0, f"{self.socket_path}: {type(exc).__name__}: {exc}") from exc

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        return json.loads(await self._get(path, params))

    async def get_json_lines(
        self, path: str, params: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """A finite newline-delimited JSON answer (``/events`` with ``until``), parsed."""
        body = await self._get(path, params)
        found = []
        for line in body.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                found.append(item)
        return found

    async def stream(
        self, path: str, params: dict[str, str] | None = None, method: str = "GET"
    ) -> AsyncIterator[bytes]:
        """Yield body chunks of a long-lived request until the server ends it."""
        try:
            async with self._ensure().request(method, f"{_BASE}{path}", params=params) as resp:
                if resp.status != 200:
                    body = await resp.read()
                    raise DockerAPIError(resp.status, body.decode("utf-8", "replace")[:300])
                async for chunk in resp.content.iter_any():
                    yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise DockerAPIError(0, f"{self.socket_path}: {type(exc).__name__}: {exc}") from exc
