"""The admin HTTP server: ``/metrics`` (Prometheus), ``/healthz``, ``/readyz``, ``/status``."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from logpipe import metrics
from logpipe.config import split_address

log = logging.getLogger(__name__)


class AdminServer:
    """Serves the endpoints; ``readiness`` returns (ready, reasons) on each request."""

    def __init__(
        self,
        listen: str,
        readiness: Callable[[], tuple[bool, list[str]]],
        status: Callable[[], dict[str, Any]],
        sock: socket.socket | None = None,
    ) -> None:
        self.listen = listen
        self._sock = sock  # bound by the supervisor: shared by old and new workers
        self._readiness = readiness
        self._status = status
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status_json)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(self._runner, self._sock)
        else:
            host, port = split_address(self.listen)
            site = web.TCPSite(self._runner, host, port)
        await site.start()
        log.info("Admin server listening. address=%s", self.listen)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reasons = self._readiness()
        return web.json_response({"ready": ready, "reasons": reasons}, status=200 if ready else 503)

    async def _status_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._status())
