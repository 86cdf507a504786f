"""The Elasticsearch output: batches from the queue to ``_bulk``, retried until delivered.

Each of ``concurrency`` sender tasks takes a batch, encodes it once and sends it with
``op_type=create`` and the events' own ids, so a retry of a request that had in fact
landed is answered 409 and counted as delivered: no duplicates. Whole-request
failures (refused, timeout, 429, 5xx) are retried with capped exponential backoff
and jitter, host by host, while the queue holds the rest. Per-item outcomes are
classified by ``logpipe.outputs.bulk``: retriable items are sent again, refused ones
go to the dead-letter data stream, or to a local NDJSON file if that fails too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import orjson

from logpipe import metrics
from logpipe.config import ElasticsearchSettings, index_prefix
from logpipe.errors import BulkRequestError, OutputError, TransportError
from logpipe.event import AGENT_TYPE, ID
from logpipe.outputs import bulk
from logpipe.queue import EventQueue
from logpipe.timefmt import iso_ns

log = logging.getLogger(__name__)

# Only what classify() reads: each item's status and error. Elasticsearch then neither
# writes nor sends _index, _id, _version, _shards... for every document (measured in
# the e2e benchmark: the response of a 2,000-document batch goes from ~330 KB to ~50 KB).
BULK_FILTER_PATH = "errors,items.*.status,items.*.error"

OUTPUT = "elasticsearch"
# Events encoded between two turns of the event loop: a batch of 2,000 at once kept
# the inputs from reading for some 10 ms, in which a /dev/log sender at 250,000/s
# fills its 512-datagram kernel queue four times over and waits.
ENCODE_SLICE = 256
MAX_REPAIRS_PER_DOC = 5  # conflicts in one document; past that, a dead letter
TEMPLATE_RECHECK_SECONDS = 10.0
HEALTH_INTERVAL_SECONDS = 5.0


def destinations(settings: ElasticsearchSettings) -> tuple[str, str]:
    """Where events and dead letters go: two data streams, or two daily index names."""
    if settings.index:
        return settings.index, settings.dlq_index
    return settings.data_stream, settings.dlq_data_stream


def search_target(destination: str) -> str:
    """What to search for a destination: the data stream, or all its daily indices."""
    return f"{index_prefix(destination)}*" if "%" in destination else destination


def template_name(destination: str) -> str:
    """The index template that `logpipe setup` installs for a data stream or daily index."""
    if "%" in destination:
        destination = index_prefix(destination).rstrip("-._")
    return f"logpipe-{destination}"


def auth_headers(settings: ElasticsearchSettings) -> dict[str, str]:
    if settings.api_key:
        return {"Authorization": f"ApiKey {settings.api_key}"}
    if settings.username:
        token = base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


class ElasticsearchOutput:
    """Ships queued events to a data stream; owns retries, failover and dead letters."""

    def __init__(
        self,
        settings: ElasticsearchSettings,
        queue: EventQueue,
        node: str,
        dead_letter_file: str,
        config_file: str,
        enrichers: Sequence[Callable[[list[dict[str, Any]]], Awaitable[None]]] = (),
    ) -> None:
        self.enrichers = tuple(enrichers)
        self.settings = settings
        self.config_file = config_file
        self.queue = queue
        self.dead_letter_file = dead_letter_file
        self._dlq_constant = {"host.name": node, "agent.type": AGENT_TYPE, "agent.name": node}
        self._main, self._dlq = destinations(settings)
        # Index mode: each document names its index; the request path names none.
        self._daily = bulk.DailyIndex(settings.index) if settings.index else None
        self._dlq_daily = bulk.DailyIndex(settings.dlq_index) if settings.index else None
        self._host_index = 0
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        # Batches taken from the queue and not yet delivered, by a running number: what
        # a stop must hand back to the spool (their ids keep a re-send exactly-once).
        self._unfinished: dict[int, tuple[list[Any], list[bulk.Doc]]] = {}
        self._batch_number = 0
        self.reachable = False
        self.template_ok = asyncio.Event()
        self._up = metrics.OUTPUT_UP.labels(output=OUTPUT)
        self._indexed = metrics.INDEXED_EVENTS.labels(output=OUTPUT)
        self._duplicates = metrics.DUPLICATE_EVENTS.labels(output=OUTPUT)
        self._bulk_duration = metrics.BULK_DURATION.labels(output=OUTPUT)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers={**auth_headers(self.settings)},
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            connector=aiohttp.TCPConnector(limit=self.settings.concurrency * 2 + 2),
        )
        self._tasks.append(asyncio.create_task(self._watch_cluster(), name="es-watch"))
        for n in range(self.settings.concurrency):
            self._tasks.append(asyncio.create_task(self._send_loop(), name=f"es-sender-{n}"))

    @property
    def idle(self) -> bool:
        return self._in_flight == 0 and len(self.queue) == 0

    def undelivered(self) -> list[Any]:
        """After stop(): the events of batches that were taken but not delivered, oldest
        first (a stop with Elasticsearch away leaves them mid-retry)."""
        out: list[Any] = []
        for _, (events, docs) in sorted(self._unfinished.items()):
            # The encoded ones (a prefix: encoding goes slice by slice) had their ids
            # and constant fields popped into the documents, which hold exactly what
            # was being sent, enrichment included; the rest are events still.
            out.extend(orjson.loads(doc.source) | {ID: doc.id} for doc in docs)
            out.extend(events[len(docs) :])
        return out

    async def stop(self) -> None:
        """Cancel the senders (call after draining) and close connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # -- sending -------------------------------------------------------------------

    async def _send_loop(self) -> None:
        s = self.settings
        while True:
            await self.template_ok.wait()
            events = await self.queue.take(s.batch_max_events, s.batch_max_bytes, s.flush_interval)
            if not events:
                continue
            self._in_flight += 1
            token = getattr(events, "token", None)  # durability: acknowledges the spool
            self._batch_number = number = self._batch_number + 1
            self._unfinished[number] = (events, [])
            try:
                for enrich in self.enrichers:
                    # Per batch, not per event: one API lookup per new container.
                    await enrich(events)
                docs: list[bulk.Doc] = []
                self._unfinished[number] = (events, docs)
                for start in range(0, len(events), ENCODE_SLICE):
                    if start:
                        await asyncio.sleep(0)  # the inputs' turn
                    end = start + ENCODE_SLICE
                    # encode() pops each _id and the constants: the docs keep them for
                    # undelivered(), and the events encoded are let go of slice by slice.
                    docs += bulk.encode(events[start:end], self._daily)
                    events[start:end] = [None] * (len(docs) - start)
                del events
                await self._deliver(self._main, docs)
                self.queue.done(token)
                del self._unfinished[number]
            except Exception:
                # A bug, not a delivery failure (those are retried inside _deliver): say
                # so loudly and keep this sender alive; the batch stays in _unfinished,
                # and a stop spools it with the rest.
                log.exception("Sending a batch failed unexpectedly; the sender goes on.")
                metrics.FAILED_EVENTS.labels(output=OUTPUT, reason="internal_error").inc(
                    len(self._unfinished[number][0])
                )
                await asyncio.sleep(1.0)
            finally:
                self._in_flight -= 1

    async def _deliver(self, destination: str, docs: list[bulk.Doc]) -> None:
        """Send until every doc is delivered or rejected; dead-letter the rejects."""
        attempt = 0
        pending = docs
        repairs: dict[str, int] = {}  # id -> conflicts repaired in it so far
        while pending:
            try:
                answer = await self._post_bulk(destination, bulk.body(pending))
            except BulkRequestError as exc:
                if exc.status == 413:
                    # Too large for the cluster's http.max_content_length: halve the
                    # batch; a single document that is still too large is refused.
                    await self._deliver_too_large(destination, pending, exc)
                    return
                attempt += 1
                # 401/403/404 will not heal by themselves, but an operator can fix
                # them; nothing is dropped meanwhile, and the log says so loudly.
                metrics.RETRIES.labels(output=OUTPUT, reason=f"status_{exc.status}").inc(
                    len(pending)
                )
                self._log_retry(exc, len(pending), attempt, loud=not exc.retriable)
                await self._backoff(attempt)
                continue
            except OutputError as exc:
                attempt += 1
                metrics.RETRIES.labels(output=OUTPUT, reason="transport").inc(len(pending))
                self._log_retry(exc, len(pending), attempt)
                await self._backoff(attempt)
                continue
            outcome = bulk.classify(pending, answer)
            self._indexed.inc(outcome.delivered)
            if outcome.duplicates:
                self._duplicates.inc(outcome.duplicates)
            rejected, repaired = outcome.rejected, []
            if rejected and self.settings.repair_conflicts:
                rejected, repaired = self._repair(rejected, repairs)
            if rejected:
                await self._dead_letter(destination, rejected)
            pending = outcome.retry + repaired
            if pending:
                attempt += 1
                for reason, count in outcome.retry_reasons.items():
                    metrics.RETRIES.labels(output=OUTPUT, reason=reason).inc(count)
                await self._backoff(attempt)

    def _repair(
        self, rejected: list[bulk.Rejection], repairs: dict[str, int]
    ) -> tuple[list[bulk.Rejection], list[bulk.Doc]]:
        """Split rejects into those still for the dead-letter stream and repaired docs."""
        still: list[bulk.Rejection] = []
        repaired: list[bulk.Doc] = []
        for rejection in rejected:
            done = repairs.get(rejection.doc.id, 0)
            doc = bulk.repair_conflict(rejection) if done < MAX_REPAIRS_PER_DOC else None
            if doc is None:
                still.append(rejection)
                continue
            repairs[doc.id] = done + 1
            repaired.append(doc)
            metrics.REPAIRED_EVENTS.inc()
        return still, repaired

    async def _deliver_too_large(
        self, destination: str, docs: list[bulk.Doc], exc: BulkRequestError
    ) -> None:
        if len(docs) > 1:
            metrics.BULK_SPLITS.labels(output=OUTPUT).inc()
            log.warning("Request too large for the cluster; splitting it. events=%d", len(docs))
            half = len(docs) // 2
            await self._deliver(destination, docs[:half])
            await self._deliver(destination, docs[half:])
            return
        reason = f"the document alone is larger than the cluster accepts: {exc}"
        await self._dead_letter(
            destination, [bulk.Rejection(docs[0], 413, "request_entity_too_large", reason)]
        )

    async def _post_bulk(self, destination: str, body: bytes) -> bytes:
        """POST one _bulk body to the current host; fail over to the next on transport errors."""
        assert self._session is not None
        hosts = self.settings.hosts
        host = hosts[self._host_index % len(hosts)]
        path = "" if self._daily is not None else f"/{destination}"
        url = f"{host}{path}/_bulk?filter_path={BULK_FILTER_PATH}"
        started = time.perf_counter()
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/x-ndjson"}
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._mark_reachable(False)
            self._host_index += 1  # fail over: the next attempt tries the next host
            raise TransportError(f"{host}: {type(exc).__name__}: {exc}") from exc
        self._bulk_duration.observe(time.perf_counter() - started)
        self._mark_reachable(True)
        if status != 200:
            if status >= 500 and len(hosts) > 1:
                self._host_index += 1
            raise BulkRequestError(status, payload.decode("utf-8", "replace"))
        return payload

    def _mark_reachable(self, up: bool) -> None:
        if up != self.reachable:
            if up:
                log.info("Elasticsearch is reachable. hosts=%s", ",".join(self.settings.hosts))
            else:
                log.warning("Elasticsearch is unreachable; events wait in the queue.")
        self.reachable = up
        self._up.set(1 if up else 0)

    def _log_retry(self, exc: Exception, count: int, attempt: int, loud: bool = False) -> None:
        level = logging.WARNING if attempt in (1, 10) or attempt % 50 == 0 else logging.DEBUG
        if loud and level == logging.WARNING:
            level = logging.ERROR
        log.log(
            level,
            "Bulk request failed; will retry. error=%s events=%d attempt=%d",
            exc,
            count,
            attempt,
        )

    async def _backoff(self, attempt: int) -> None:
        s = self.settings
        ceiling = min(s.retry_max_backoff, s.retry_initial_backoff * (2 ** min(attempt, 30)))
        # Equal jitter: at least half the ceiling, so retries still back off, and a
        # random other half, so many nodes do not retry in step.
        await asyncio.sleep(ceiling / 2 + random.uniform(0, ceiling / 2))

    # -- dead letters --------------------------------------------------------------

    async def _dead_letter(self, destination: str, rejected: list[bulk.Rejection]) -> None:
        created = iso_ns(time.time_ns())
        by_reason: dict[str, int] = {}
        for r in rejected:
            by_reason[r.error_type] = by_reason.get(r.error_type, 0) + 1
        for reason, count in by_reason.items():
            metrics.FAILED_EVENTS.labels(output=OUTPUT, reason=reason).inc(count)
        log.warning(
            "Elasticsearch refused documents; dead-lettering them. count=%d reasons=%s",
            len(rejected),
            by_reason,
        )
        if destination == self._dlq:
            # The dead-letter stream itself refused them: keep them on disk.
            self._write_dead_letter_file([(r, destination) for r in rejected])
            return
        letters = [bulk.dead_letter(r, destination, self._dlq_constant, created) for r in rejected]
        docs = bulk.encode(letters, self._dlq_daily)
        sent = await self._deliver_dead_letters(docs, rejected, destination)
        metrics.DEAD_LETTERED.labels(output=OUTPUT, destination="data_stream").inc(sent)

    async def _deliver_dead_letters(
        self, docs: list[bulk.Doc], rejected: list[bulk.Rejection], destination: str
    ) -> int:
        """Index dead letters; those the DLQ stream refuses too go to the local file."""
        attempt = 0
        pending = docs
        delivered = 0
        originals = {r.doc.id: r for r in rejected}
        while pending:
            try:
                answer = await self._post_bulk(self._dlq, bulk.body(pending))
            except OutputError as exc:
                attempt += 1
                self._log_retry(exc, len(pending), attempt)
                await self._backoff(attempt)
                continue
            outcome = bulk.classify(pending, answer)
            delivered += outcome.delivered
            if outcome.rejected:
                self._write_dead_letter_file(
                    [(originals[r.doc.id], destination) for r in outcome.rejected]
                )
            pending = outcome.retry
            if pending:
                attempt += 1
                await self._backoff(attempt)
        return delivered

    def _write_dead_letter_file(self, items: list[tuple[bulk.Rejection, str]]) -> None:
        path = self.dead_letter_file
        created = iso_ns(time.time_ns())
        lines = [
            orjson.dumps(bulk.dead_letter(r, ds, self._dlq_constant, created)) + b"\n"
            for r, ds in items
        ]
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "ab") as fh:
                fh.writelines(lines)
        except OSError as exc:
            metrics.DROPPED_EVENTS.labels(input="output", reason="dead_letter_failed").inc(
                len(items)
            )
            log.error(
                "Failed to write dead letters; they are lost. error=%s path=%s count=%d",
                exc,
                path,
                len(items),
            )
            return
        metrics.DEAD_LETTERED.labels(output=OUTPUT, destination="file").inc(len(items))
        log.error("Dead letters written to the local file. path=%s count=%d", path, len(items))

    # -- cluster state -------------------------------------------------------------

    async def _watch_cluster(self) -> None:
        """Check the index template until it is there, then keep an eye on reachability."""
        warned = False
        name = template_name(self._main)
        while True:
            status = await self._get_status(f"/_index_template/{name}")
            if status == 200 and not self.template_ok.is_set():
                log.info("Index template found; shipping. template=%s", name)
                self.template_ok.set()
            elif status == 404 and not warned:
                log.error(
                    "Index template is missing; events wait in the queue until it is "
                    "installed. Run: logpipe setup -c %s  template=%s",
                    self.config_file,
                    name,
                )
                warned = True
            delay = (
                HEALTH_INTERVAL_SECONDS
                if self.template_ok.is_set()
                else (TEMPLATE_RECHECK_SECONDS if status == 404 else 1.0)
            )
            await asyncio.sleep(delay)

    async def _get_status(self, path: str) -> int:
        assert self._session is not None
        hosts = self.settings.hosts
        host = hosts[self._host_index % len(hosts)]
        try:
            async with self._session.get(
                f"{host}{path}", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                await resp.read()
                self._mark_reachable(True)
                return resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            self._mark_reachable(False)
            if self._in_flight == 0:
                self._host_index += 1
            return 0
