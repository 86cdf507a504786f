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

Not yet here (issue 6): the tcp, files, e2e and burst scenarios, charts, and workers > 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.devlog import PAYLOAD_BYTES, SENDER
from benchmarks.harness import ROOT, Rig, append_result, cpu_seconds, peak_rss_mib, wait_for
from benchmarks.rsyslog_rig import RsyslogRig

RESULTS = ROOT / "benchmarks" / "results" / "compare.jsonl"
REPORT = ROOT / "benchmarks" / "RESULTS.md"


def _measure(
    pid: int, delivered: Callable[[], int], socket_path: str, messages: int, senders: int
) -> dict[str, float]:
    """Send ``messages`` from ``senders`` processes; time until the sink has them all."""
    per = messages // senders
    total = per * senders
    time.sleep(0.5)
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", SENDER, socket_path, str(per), str(PAYLOAD_BYTES)])
        for _ in range(senders)
    ]
    for p in procs:
        p.wait()
    sent_in = time.perf_counter() - t0
    wait_for(lambda: delivered() >= total, 300)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    got = delivered()
    return {
        "messages": got,
        "lost": total - got,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(got / elapsed),
        "cpu_us_per_message": round(cpu / got * 1e6, 2),
        "peak_rss_mib": round(peak_rss_mib(pid), 1),
        # Blocking senders: the time to get every datagram accepted is the time the
        # apps spent in send(); beyond what sending itself costs, that is waiting.
        "sender_seconds": round(sent_in, 3),
    }


def devlog_logpipe(messages: int, senders: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-lp-"))
    socket_path = str(work / "dev-log")
    rig = Rig(work, f'[inputs.devlog]\ntype = "devlog"\npath = "{socket_path}"\n')
    try:
        wait_for(lambda: os.path.exists(socket_path), 20)
        return _measure(rig.lp.pid, rig.delivered, socket_path, messages, senders)
    finally:
        rig.close()


def devlog_rsyslog(messages: int, senders: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-rs-"))
    socket_path = str(work / "dev-log")
    rig = RsyslogRig(work, socket_path)
    try:
        return _measure(rig.pid, rig.delivered, socket_path, messages, senders)
    finally:
        rig.close()


SCENARIOS: dict[str, tuple[Callable[..., dict[str, float]], Callable[..., dict[str, float]]]] = {
    "devlog": (devlog_logpipe, devlog_rsyslog),
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    args = p.parse_args()
    rows: list[dict[str, Any]] = []
    ratios: dict[str, dict[str, float]] = {}
    for name in args.scenario or sorted(SCENARIOS):
        ours, theirs = SCENARIOS[name]
        runs: dict[str, list[dict[str, float]]] = {"logpipe": [], "rsyslog": []}
        for _ in range(args.rounds):  # interleaved: drift hits both alike
            runs["logpipe"].append(ours(args.messages, args.senders))
            runs["rsyslog"].append(theirs(args.messages, args.senders))
        best = {k: max(v, key=lambda r: r["messages_per_second"]) for k, v in runs.items()}
        for shipper, r in best.items():
            rows.append({"scenario": name, "shipper": shipper, **r})
        lp, rs = best["logpipe"], best["rsyslog"]
        ratios[name] = {
            "messages_per_second": round(lp["messages_per_second"] / rs["messages_per_second"], 2),
            "cpu_us_per_message": round(lp["cpu_us_per_message"] / rs["cpu_us_per_message"], 2),
        }
        append_result(
            RESULTS,
            {
                "scenario": name,
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "cores": os.cpu_count(),
                **_versions(),
                "messages": args.messages,
                "senders": args.senders,
                "runs": runs,
                "ratios": ratios[name],
            },
        )
    table = _table(rows)
    ratio_lines = "\n".join(
        f"- {name}: logpipe/rsyslog messages/s {r['messages_per_second']}x, "
        f"CPU per message {r['cpu_us_per_message']}x"
        for name, r in ratios.items()
    )
    print(table)
    print(ratio_lines)
    v = _versions()
    with REPORT.open("a") as fh:
        fh.write(
            f"\n## {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} cores, logpipe "
            f"{v['logpipe']}, rsyslog {v['rsyslog']}, Python {v['python']}; "
            f"{args.messages:,} messages, {args.senders} senders, best of {args.rounds}\n\n"
            f"{table}\n\n{ratio_lines}\n"
        )


if __name__ == "__main__":
    main()
