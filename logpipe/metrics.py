"""Every metric logpipe exports, in one place.

Names follow ``logpipe_<what>_<unit>_total``; labels are bounded (input, output,
reason, destination), never a container id or a raw error text. Counters are bumped
by a count once per read or per batch, not inside per-event loops.

With ``service.workers`` > 1 the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` and
prometheus-client keeps every worker's values in files there; :func:`exposition` sums
them, so any worker's /metrics shows the whole service. Gauges then say how to combine
(``multiprocess_mode``), and values that would be callbacks are set on a timer.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))


def exposition() -> bytes:
    """The text /metrics serves: this process's metrics, or every worker's summed."""
    if not MULTIPROCESS:
        return _generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return _generate_latest(registry)


RECEIVED_EVENTS = Counter(
    "logpipe_received_events_total", "Events read from an input, dropped ones included.", ["input"]
)
RECEIVED_BYTES = Counter(
    "logpipe_received_bytes_total", "Bytes of event data read from an input.", ["input"]
)
DROPPED_EVENTS = Counter(
    "logpipe_dropped_events_total",
    "Events received but not kept, by input and reason (queue_full, ...).",
    ["input", "reason"],
)
TRUNCATED_EVENTS = Counter(
    "logpipe_truncated_events_total", "Events cut at max_message_bytes and tagged.", ["input"]
)
PARSE_FAILURES = Counter(
    "logpipe_parse_failures_total",
    "Events whose text could not be parsed; kept as text and tagged.",
    ["input", "parser"],
)
LOSS_MARKERS = Counter(
    "logpipe_loss_markers_total", "Loss-marker events queued to record drops.", ["input"]
)
CONNECTIONS = Gauge(
    "logpipe_connections",
    "Client connections open now, by input and listener.",
    ["input", "listener"],
    multiprocess_mode="livesum",
)
CONNECTIONS_ACCEPTED = Counter(
    "logpipe_connections_accepted_total", "Client connections accepted.", ["input", "listener"]
)
CONNECTIONS_CLOSED = Counter(
    "logpipe_connections_closed_total",
    "Client connections logpipe closed, by reason (max_connections, idle_timeout, "
    "malformed_frame, tls_handshake, stopping).",
    ["input", "listener", "reason"],
)
FORWARD_ACKS = Counter(
    "logpipe_forward_acks_total", "Forward chunks acknowledged (their events queued).", ["input"]
)

QUEUE_EVENTS = Gauge(
    "logpipe_queue_events", "Events waiting in the memory queue.", multiprocess_mode="livesum"
)
QUEUE_BYTES = Gauge(
    "logpipe_queue_bytes",
    "Approximate bytes waiting in the memory queue.",
    multiprocess_mode="livesum",
)
QUEUE_PUSHED = Counter("logpipe_queue_pushed_events_total", "Events put into the memory queue.")
QUEUE_POPPED = Counter("logpipe_queue_popped_events_total", "Events taken out by the output.")
SPILLED_EVENTS = Counter(
    "logpipe_spilled_events_total", "Events written to the disk spool (memory queue full)."
)
UNSPILLED_EVENTS = Counter(
    "logpipe_unspilled_events_total", "Events read back from the disk spool into memory."
)
REPAIRED_EVENTS = Counter(
    "logpipe_repaired_events_total",
    "Documents re-sent with a conflicting value moved under logpipe.conflicts.",
)
SPOOL_BYTES = Gauge(
    "logpipe_spool_bytes", "Bytes in the disk spool not yet read back.", multiprocess_mode="livesum"
)

INDEXED_EVENTS = Counter(
    "logpipe_indexed_events_total",
    "Documents the output delivered (created, or found already there: 409).",
    ["output"],
)
DUPLICATE_EVENTS = Counter(
    "logpipe_duplicate_events_total",
    "Deliveries answered 409: a retried document that had already landed.",
    ["output"],
)
FAILED_EVENTS = Counter(
    "logpipe_failed_events_total",
    "Documents refused by the output, by reason (rejected: dead-lettered).",
    ["output", "reason"],
)
RETRIES = Counter(
    "logpipe_retries_total",
    "Documents sent again, by reason (transport, status_503, rejected_execution...).",
    ["output", "reason"],
)
DEAD_LETTERED = Counter(
    "logpipe_dead_lettered_events_total",
    "Refused documents kept elsewhere, by destination (data_stream or file).",
    ["output", "destination"],
)
BULK_DURATION = Histogram(
    "logpipe_bulk_request_duration_seconds",
    "Time from sending a _bulk request to its full answer.",
    ["output"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BULK_SPLITS = Counter(
    "logpipe_bulk_splits_total",
    "Requests answered 413 (too large) and sent again as two halves.",
    ["output"],
)
OUTPUT_UP = Gauge(
    "logpipe_output_up",
    "1 when the output's last request got an answer, else 0 (with several workers: the lowest).",
    ["output"],
    multiprocess_mode="livemin",
)
