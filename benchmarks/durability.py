"""Benchmark: the cost of spill and of durability = "disk", as ratios to memory only.

    .venv/bin/python -m benchmarks.durability [--messages 200000] [--runs 2]

The devlog benchmark (benchmarks/devlog.py: senders flooding /dev/log, a counting sink)
run three ways in one process, on one machine: the memory queue (``block``); ``spill``
with a memory queue of 2,000 events, so bursts go through the spool; and
``durability = "disk"`` (every event spooled before receipt, fsync every second). Prints
messages/s and CPU µs per message for each and the ratios to memory, and appends a JSON
line to benchmarks/results/durability.jsonl.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.devlog import run_once
from benchmarks.harness import ROOT, append_result

RESULTS = ROOT / "benchmarks" / "results" / "durability.jsonl"
VARIANTS = {
    "memory": 'when_full = "block"',
    "spill": 'when_full = "spill"\nmax_events = 2000',
    "disk": 'durability = "disk"\nfsync_interval = "1s"',
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--senders", type=int, default=2)
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    best: dict[str, dict[str, float]] = {}
    for name, queue_toml in VARIANTS.items():
        runs = [
            run_once(args.messages, args.senders, "asyncio", queue_toml) for _ in range(args.runs)
        ]
        best[name] = max(runs, key=lambda r: r["messages_per_second"])
    base = best["memory"]
    print(f"{'queue':>7} {'msgs/s':>9} {'cpu us/msg':>11} {'rss MiB':>8} {'x memory':>9}")
    for name, r in best.items():
        ratio = r["messages_per_second"] / base["messages_per_second"]
        print(
            f"{name:>7} {r['messages_per_second']:>9} {r['cpu_us_per_message']:>11} "
            f"{r['peak_rss_mib']:>8} {ratio:>9.2f}"
        )
    record = {
        "scenario": "devlog->sink, queue variants",
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "best": best,
    }
    append_result(RESULTS, record)


if __name__ == "__main__":
    main()
