"""The ``logpipe`` command: run, worker, check-config, setup, tail, status.

Exit codes: 0 fine; 1 a runtime failure (Elasticsearch unreachable for setup, a
socket that cannot be bound); 2 a bad config or bad arguments, always as one line
``FILE: key.path: what is wrong`` and never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from logpipe import __version__
from logpipe import config as config_mod
from logpipe.errors import ConfigError, LogpipeError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
GC_GEN0_THRESHOLD = 50_000  # allocations between young-generation collections (default 700)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logpipe", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"logpipe {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run the service (a supervisor holding the sockets, and its worker)"),
        ("worker", "run the pipeline in this process, without a supervisor"),
        ("check-config", "validate a config file and exit"),
        ("setup", "install index templates in Elasticsearch"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument(
            "-c", "--config", help="TOML config file (default: the packaged config/logpipe.toml)"
        )
        if name in ("run", "worker"):
            cmd.add_argument(
                "--log-level",
                default="info",
                type=str.lower,
                choices=["debug", "info", "warning", "error"],
            )
    tail = sub.add_parser(
        "tail", help="follow the fleet's logs from Elasticsearch, like docker logs -f"
    )
    tail.add_argument(
        "-c", "--config", help="TOML config file: Elasticsearch and the data stream to read"
    )
    tail.add_argument("--container", default="", help="only this container (container.name)")
    tail.add_argument("--host", default="", help="only this host (host.name or host.hostname)")
    tail.add_argument("--severity", default="", help="this log.level and worse (e.g. warning)")
    tail.add_argument("--since", default="", help="from this long ago (10m, 2h, 1d) or a time")
    tail.add_argument("--until", default="", help="up to this long ago or this time")
    tail.add_argument("-n", "--lines", type=int, default=10, help="lines of backlog (10)")
    tail.add_argument(
        "--no-follow", dest="follow", action="store_false", help="print the backlog and exit"
    )
    tail.add_argument("--json", action="store_true", help="one JSON document per line")
    tail.add_argument("text", nargs="*", help="free text to match in the message")
    status = sub.add_parser("status", help="print the live counters of a running logpipe")
    status.add_argument(
        "--admin", default="http://127.0.0.1:9180", help="admin URL (default: %(default)s)"
    )
    status.add_argument(
        "--interval", type=float, default=1.0, help="seconds between the two samples of the rates"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "status":
        return _status(args.admin, args.interval)
    try:
        settings = config_mod.load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"{settings.file}: ok ({len(settings.inputs)} inputs)")
        return EXIT_OK
    if args.command == "setup":
        return _setup(settings)
    if args.command == "tail":
        return _tail(settings, args)
    _configure_logging(args.log_level)
    if args.command == "worker":
        return _worker(settings)
    return _supervise(settings, list(sys.argv[1:] if argv is None else argv), args.log_level)


def _setup(settings: config_mod.Settings) -> int:
    from logpipe.outputs.es_setup import run_setup

    try:
        changed = run_setup(settings, print)
    except LogpipeError as exc:
        print(f"logpipe setup: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print("setup: done" if changed else "setup: nothing to change")
    return EXIT_OK


def _tail(settings: config_mod.Settings, args: argparse.Namespace) -> int:
    from logpipe import tail

    filters = tail.Filters(
        container=args.container,
        host=args.host,
        severity=args.severity,
        text=" ".join(args.text),
        since=args.since,
        until=args.until,
    )
    try:
        if filters.severity:
            tail.levels_at_least(filters.severity)
    except ValueError as exc:
        print(f"logpipe tail: --severity: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return tail.run(settings, filters, args.lines, args.follow, args.json)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _supervise(settings: config_mod.Settings, argv: list[str], level: str) -> int:
    from logpipe.supervisor import Supervisor

    supervisor = Supervisor(settings, argv, level)
    try:
        supervisor.bind_sockets()
    except OSError as exc:
        logging.getLogger("logpipe").error("Failed to start. error=%s", exc)
        return EXIT_FAILURE
    return supervisor.run()


def _raise_open_files_limit() -> None:
    """Every client connection is a descriptor: take the hard limit, not the soft 1024
    many systems start a process with."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tune_garbage_collector() -> None:
    """Events are acyclic dicts, made and dropped by the hundred thousand, and a full
    queue holds 100,000 of them: with the default thresholds the cyclic collector keeps
    walking them all (measured: parsing into a held list cost 16.3 µs per message with
    the defaults, 10.5 with these). Reference counting frees the events; the collector
    only has to catch rare cycles, so it runs far less often. What was loaded at start
    (modules, config) is frozen out of its scans."""
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)


def _worker(settings: config_mod.Settings) -> int:
    from logpipe.pipeline import Pipeline

    # The supervisor's signals, should a process group get them, are not ours.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    _raise_open_files_limit()
    _tune_garbage_collector()
    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.service.event_loop)) as runner:
            runner.run(Pipeline(settings).run())
    except OSError as exc:
        logging.getLogger("logpipe").error("Failed to start. error=%s", exc)
        return EXIT_FAILURE
    return EXIT_OK


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    # The stdlib selector loop wakes the devlog reader sooner after each datagram
    # burst than uvloop's poll handles: measured, a flooding sender spent 0.02 s
    # blocked per 100k datagrams on it, against 0.7 s on uvloop (README, Performance).
    return asyncio.new_event_loop


def _status(admin: str, interval: float) -> int:
    from logpipe import status

    try:
        print(status.fetch(admin, interval))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"logpipe status: cannot read the admin endpoint at {admin}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
