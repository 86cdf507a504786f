"""logpipe beside rsyslogd, same input, same sink, same run: one table of ratios.

    .venv/bin/python -m benchmarks [--messages 200000] [--senders 4] [--rounds 2]

Scenario ``devlog``: 120-byte RFC 3164 datagrams from ``--senders`` processes (blocking
sends, like an app's syslog()) into a unix datagram socket: logpipe's devlog input, or
rsyslog's imuxsock. Both ship in bulk to the same counting ``_bulk`` sink on loopback
(benchmarks/bulk_sink.py), with the same fields. Rounds alternate logpipe and rsyslog,
because this machine's speed drifts from minute to minute; the table shows each one's
best round and the ratios logpipe/rsyslog. CPU is user + sys of the shipper's process
(all its threads), from /proc. Results are appended to benchmarks/results/compare.jsonl
and to benchmarks/RESULTS.md.

Scenario ``tcp``: RFC 5424 with octet counting over TCP, one connection per sender,
into logpipe's syslog input or rsyslog's imtcp. Scenario ``forward``: PackedForward
frames of 1,000 entries into logpipe's forward input; rsyslog has no forward input, so
its row there is imtcp receiving the tcp scenario's stream. Scenario ``files``: a
Docker json-file of ``--file-lines`` lines (1,000,000), renamed into
``containers/<id>/<id>-json.log`` when the clock starts, read by logpipe's docker input
in files mode or by rsyslog's imfile with mmjsonparse; one logpipe row, because container
files are read by the first worker alone.

``--workers`` (repeatable) adds a logpipe row per ``service.workers`` value; ``--paced
e2e`` and ``--paced burst`` run logpipe alone at a fixed rate (benchmarks/paced.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import paced
from benchmarks.harness import (
    ROOT,
    Rig,
    append_result,
    cpu_seconds,
    dgram_qlen,
    free_port,
    peak_rss_mib,
    wait_for,
)
from benchmarks.rsyslog_rig import JSON_FILE_RULES, JSON_FILE_TEMPLATE, RsyslogRig
from benchmarks.senders import (
    DATAGRAM,
    FORWARD_PACKED,
    RENAME,
    TCP_OCTET_COUNTED,
    write_json_file,
)

PAYLOAD_BYTES = 120

RESULTS = ROOT / "benchmarks" / "results" / "compare.jsonl"
REPORT = ROOT / "benchmarks" / "RESULTS.md"


def _measure(
    pids: list[int], delivered: Callable[[], int], commands: list[list[str]], total: int
) -> dict[str, float]:
    """Run the sender ``commands`` at once; time until the sink has ``total`` messages.
    CPU is the sum over the shipper's ``pids``, peak RSS the largest of them."""
    time.sleep(0.5)
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(command) for command in commands]
    for p in procs:
        p.wait()
    sent_in = time.perf_counter() - t0
    wait_for(lambda: delivered() >= total, 300)
    elapsed = time.perf_counter() - t0
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
    got = delivered()
    return {
        "messages": got,
        "lost": total - got,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(got / elapsed),
        "cpu_us_per_message": round(cpu / got * 1e6, 2),
        "peak_rss_mib": round(max(peak_rss_mib(pid) for pid in pids), 1),
        # Blocking senders: the time to get every message accepted is the time the
        # apps spent in send(); beyond what sending itself costs, that is waiting.
        "sender_seconds": round(sent_in, 3),
    }


def _senders(script: str, target: str, messages: int, senders: int) -> tuple[list[list[str]], int]:
    per = messages // senders
    command = [sys.executable, "-c", script, target, str(per), str(PAYLOAD_BYTES)]
    return [command] * senders, per * senders


def _run(
    rig: Rig | RsyslogRig,
    pids: Callable[[], list[int]],
    ready: Callable[[], bool],
    senders: tuple[list[list[str]], int],
) -> dict[str, float]:
    """One measured round on a started rig (logpipe or rsyslog), which is closed after:
    ``senders`` is the commands to run and the messages they send in all."""
    try:
        wait_for(ready, 20)
        return _measure(pids(), rig.delivered, *senders)
    finally:
        rig.close()


def _listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    return check


def devlog_logpipe(messages: int, senders: int, workers: int = 1) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-lp-"))
    socket_path = str(work / "dev-log")
    toml = f'[inputs.devlog]\ntype = "devlog"\npath = "{socket_path}"\n'
    rig = Rig(work, toml, workers=workers)
    return _run(rig, rig.pids, lambda: os.path.exists(socket_path),
                _senders(DATAGRAM, socket_path, messages, senders))  # fmt: skip


def devlog_rsyslog(messages: int, senders: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-rs-"))
    socket_path = str(work / "dev-log")
    rig = RsyslogRig(work, RsyslogRig.imuxsock(socket_path), lambda: os.path.exists(socket_path))
    return _run(
        rig, lambda: [rig.pid], lambda: True, _senders(DATAGRAM, socket_path, messages, senders)
    )


def _stream_logpipe(
    input_toml: str, port: int, script: str, messages: int, senders: int, workers: int = 1
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-lp-"))
    rig = Rig(work, input_toml, workers=workers)
    return _run(rig, rig.pids, _listening(port), _senders(script, str(port), messages, senders))


def tcp_logpipe(messages: int, senders: int, workers: int = 1) -> dict[str, float]:
    port = free_port()
    toml = f'[inputs.net]\ntype = "syslog"\ntcp = "127.0.0.1:{port}"\n'
    return _stream_logpipe(toml, port, TCP_OCTET_COUNTED, messages, senders, workers)


def tcp_rsyslog(messages: int, senders: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-rs-"))
    port = free_port()
    rig = RsyslogRig(work, RsyslogRig.imtcp(port), _listening(port))
    return _run(
        rig,
        lambda: [rig.pid],
        lambda: True,
        _senders(TCP_OCTET_COUNTED, str(port), messages, senders),
    )


def forward_logpipe(messages: int, senders: int, workers: int = 1) -> dict[str, float]:
    port = free_port()
    toml = f'[inputs.fwd]\ntype = "forward"\nlisten = "127.0.0.1:{port}"\n'
    return _stream_logpipe(toml, port, FORWARD_PACKED, messages, senders, workers)


CONTAINER_ID = "b" * 64  # the files scenario's container, in Docker's layout


def _json_file(lines: int) -> str:
    """The files scenario's log, written once per size and reused by every round."""
    path = os.path.join(tempfile.gettempdir(), f"logpipe-bench-{lines}-json.log")
    if not os.path.exists(path):
        write_json_file(path, lines, PAYLOAD_BYTES)
    return path


def _json_file_round(work: Path, lines: int) -> tuple[Path, tuple[list[list[str]], int]]:
    """Where the log goes (``containers/<id>/<id>-json.log`` in ``work``), and the
    "sender": a rename of a hard link to the written log into that place."""
    directory = work / "containers" / CONTAINER_ID
    directory.mkdir(parents=True)
    target = directory / f"{CONTAINER_ID}-json.log"
    staging = work / "staging.log"
    os.link(_json_file(lines), staging)
    return target, ([[sys.executable, "-c", RENAME, str(staging), str(target)]], lines)


def files_logpipe(lines: int, senders: int, workers: int = 1) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-lp-"))
    target, rename = _json_file_round(work, lines)
    toml = (
        '[inputs.files]\ntype = "docker"\nmode = "files"\nsocket = ""\n'
        f'paths = ["{target.parent}/*-json.log"]\n'
    )
    rig = Rig(work, toml, workers=workers)
    return _run(rig, rig.pids, lambda: _ready(rig.admin), rename)


def files_rsyslog(lines: int, senders: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-rs-"))
    target, rename = _json_file_round(work, lines)
    rig = RsyslogRig(work, RsyslogRig.imfile(str(target)), lambda: True,
                     JSON_FILE_TEMPLATE, JSON_FILE_RULES)  # fmt: skip
    return _run(rig, lambda: [rig.pid], lambda: True, rename)


def _ready(admin: str) -> bool:
    with urllib.request.urlopen(f"{admin}/readyz", timeout=1) as resp:
        return resp.status == 200


# Each scenario: logpipe's run, and rsyslog's on the same input. rsyslog has no forward
# input: beside logpipe's forward row stands rsyslog receiving the tcp scenario's stream
# (imtcp), the way a host would send it the same messages.
SCENARIOS: dict[str, tuple[Callable[..., dict[str, float]], Callable[..., dict[str, float]]]] = {
    "devlog": (devlog_logpipe, devlog_rsyslog),
    "tcp": (tcp_logpipe, tcp_rsyslog),
    "forward": (forward_logpipe, tcp_rsyslog),
    "files": (files_logpipe, files_rsyslog),
}


def _versions() -> dict[str, str]:
    rsyslog = subprocess.run(["rsyslogd", "-v"], capture_output=True, text=True).stdout
    from logpipe import __version__

    return {
        "logpipe": __version__,
        "rsyslog": rsyslog.split()[1] if rsyslog else "?",
        "python": platform.python_version(),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | shipper | msgs/s | CPU µs/msg | peak RSS MiB | lost | sender s |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['scenario']} | {r['shipper']} | {r['messages_per_second']:,} | "
        f"{r['cpu_us_per_message']} | {r['peak_rss_mib']} | {r['lost']} | {r['sender_seconds']} |"
        for r in rows
    ]
    return head + "\n".join(lines)


def _compare(args: argparse.Namespace) -> tuple[str, str]:
    """The side-by-side scenarios: the table and the ratio lines."""
    rows: list[dict[str, Any]] = []
    ratio_lines: list[str] = []
    for name in args.scenario or sorted(SCENARIOS):
        ours, theirs = SCENARIOS[name]
        # Container log files are read by the first worker alone: one row.
        workers = [1] if name == "files" else args.workers
        count = args.file_lines if name == "files" else args.messages
        shippers = [f"logpipe w={w}" for w in workers] + ["rsyslog"]
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in shippers}
        for _ in range(args.rounds):  # interleaved: drift hits both alike
            for w in workers:
                runs[f"logpipe w={w}"].append(ours(count, args.senders, w))
            runs["rsyslog"].append(theirs(count, args.senders))
        best = {k: max(v, key=lambda r: r["messages_per_second"]) for k, v in runs.items()}
        for shipper, r in best.items():
            rows.append({"scenario": name, "shipper": shipper, **r})
        rs = best["rsyslog"]
        ratios = {
            shipper: {
                "messages_per_second": round(
                    r["messages_per_second"] / rs["messages_per_second"], 2
                ),
                "cpu_us_per_message": round(r["cpu_us_per_message"] / rs["cpu_us_per_message"], 2),
            }
            for shipper, r in best.items()
            if shipper != "rsyslog"
        }
        ratio_lines += [
            f"- {name}: {shipper}/rsyslog messages/s {r['messages_per_second']}x, "
            f"CPU per message {r['cpu_us_per_message']}x"
            for shipper, r in ratios.items()
        ]
        append_result(
            RESULTS,
            {
                "scenario": name,
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "cores": os.cpu_count(),
                **_versions(),
                "messages": count,
                "senders": args.senders,
                "runs": runs,
                "ratios": ratios,
            },
        )
    return _table(rows), "\n".join(ratio_lines)


def _paced(args: argparse.Namespace, sustainable: int) -> str:
    """e2e and burst, logpipe alone; the lines that report them."""
    lines = []
    if "e2e" in args.paced:
        r = paced.e2e(args.e2e_rate)
        append_result(RESULTS, {"scenario": "e2e", "date": time.strftime("%Y-%m-%d %H:%M"),
                                "cores": os.cpu_count(), **_versions(), **r})  # fmt: skip
        lines.append(
            f"- e2e (devlog -> Elasticsearch {r['rate']:,}/s, default flush_interval): "
            f"latency p50 {r['latency_p50_s']} s, p99 {r['latency_p99_s']} s; "
            f"{r['cpu_us_per_message']} µs CPU/msg; peak RSS {r['peak_rss_mib']} MiB; "
            f"lost {r['lost']}; sender blocked {r['sender_blocked_s']} s"
        )
    if "burst" in args.paced:
        r = paced.burst(sustainable)
        append_result(RESULTS, {"scenario": "burst", "date": time.strftime("%Y-%m-%d %H:%M"),
                                "cores": os.cpu_count(), **_versions(), **r})  # fmt: skip
        lines.append(
            f"- burst ({r['burst_rate']:,}/s asked, {r['burst_rate_sent']:,}/s sent, for 10 s, "
            f"default queue): sent {r['sent']:,}, "
            f"delivered {r['delivered']:,}, dropped and counted {r['dropped']:,} "
            f"({r['loss_markers']} loss markers), unaccounted {r['unaccounted']}; "
            f"sender blocked {r['sender_blocked_s']} s; queue empty again "
            f"{r['recovery_s']} s after the burst; peak RSS {r['peak_rss_mib']} MiB"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument(
        "--file-lines", type=int, default=1_000_000, help="lines in the files scenario's log"
    )
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    p.add_argument(
        "--workers", type=int, action="append", help="logpipe's service.workers (repeatable)"
    )
    p.add_argument(
        "--paced", action="append", choices=["e2e", "burst"], default=[], help="also run these"
    )
    p.add_argument("--e2e-rate", type=int, default=5000)
    p.add_argument(
        "--burst-base", type=int, default=0, help="sustainable msgs/s (default: the devlog row)"
    )
    p.add_argument(
        "--dgram-qlen",
        type=int,
        default=512,
        help="net.unix.max_dgram_qlen for the run (systemd's 512; the old kernel default 10)",
    )
    p.add_argument("--no-compare", action="store_true", help="only the --paced scenarios")
    args = p.parse_args()
    args.workers = args.workers or [1]
    with dgram_qlen(args.dgram_qlen) as qlen:
        table, ratio_lines = ("", "") if args.no_compare else _compare(args)
        sustainable = args.burst_base or 20_000
        if not args.burst_base and "| devlog | logpipe w=1" in table:
            first = next(line for line in table.splitlines() if "| devlog | logpipe w=1" in line)
            sustainable = int(first.split("|")[3].strip().replace(",", ""))
        paced_lines = _paced(args, sustainable)
    print(table)
    print(ratio_lines)
    print(paced_lines)
    v = _versions()
    with REPORT.open("a") as fh:
        fh.write(
            f"\n## {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores, logpipe "
            f"{v['logpipe']}, rsyslog {v['rsyslog']}, Python {v['python']}; "
            f"{args.messages:,} messages, {args.senders} senders, best of {args.rounds}, "
            f"net.unix.max_dgram_qlen {qlen}\n\n"
            f"{table}\n\n{ratio_lines}\n{paced_lines}\n"
        )


if __name__ == "__main__":
    main()
