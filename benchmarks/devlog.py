"""Benchmark: N RFC 3164 datagrams into logpipe's devlog socket, shipped to a counting sink.

    .venv/bin/python -m benchmarks.devlog [--messages 200000] [--senders 2] [--runs 3]

Prints delivered messages/s, CPU microseconds per message (user + sys of the logpipe
process, from /proc) and peak RSS, and appends a JSON line to
benchmarks/results/devlog.jsonl. The senders block like an app's syslog() does, and
the queue policy is ``block``, so every message is delivered and none is dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, Rig, append_result, cpu_seconds, peak_rss_mib, wait_for
from benchmarks.senders import DATAGRAM

RESULTS = ROOT / "benchmarks" / "results" / "devlog.jsonl"
PAYLOAD_BYTES = 120


SENDER = DATAGRAM


def run_once(
    messages: int, senders: int, event_loop: str, queue_toml: str = 'when_full = "block"'
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="logpipe-bench-"))
    sock_path = str(work / "dev-log")
    rig = Rig(
        work,
        f'[inputs.devlog]\ntype = "devlog"\npath = "{sock_path}"\n',
        f'event_loop = "{event_loop}"',
        queue_toml,
    )
    try:
        wait_for(lambda: os.path.exists(sock_path), 20)
        time.sleep(0.5)
        cpu0 = cpu_seconds(rig.lp.pid)
        t0 = time.perf_counter()
        per = messages // senders
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SENDER, sock_path, str(per), str(PAYLOAD_BYTES)]
            )
            for _ in range(senders)
        ]
        for p in procs:
            p.wait()
        wait_for(lambda: rig.delivered() >= per * senders, 300)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(rig.lp.pid) - cpu0
        delivered = rig.delivered()
        return {
            "messages": delivered,
            "seconds": round(elapsed, 3),
            "messages_per_second": round(delivered / elapsed),
            "cpu_us_per_message": round(cpu / delivered * 1e6, 2),
            "peak_rss_mib": round(peak_rss_mib(rig.lp.pid), 1),
        }
    finally:
        rig.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--senders", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--event-loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = p.parse_args()
    runs = [run_once(args.messages, args.senders, args.event_loop) for _ in range(args.runs)]
    best = max(runs, key=lambda r: r["messages_per_second"])
    print(f"{'run':>4} {'msgs':>8} {'msgs/s':>9} {'cpu us/msg':>11} {'peak RSS MiB':>13}")
    for n, r in enumerate(runs, 1):
        print(
            f"{n:>4} {r['messages']:>8} {r['messages_per_second']:>9} "
            f"{r['cpu_us_per_message']:>11} {r['peak_rss_mib']:>13}"
        )
    record = {
        "scenario": "devlog->sink",
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "event_loop": args.event_loop,
        "senders": args.senders,
        "payload_bytes": PAYLOAD_BYTES,
        "runs": runs,
        "best": best,
    }
    append_result(RESULTS, record)


if __name__ == "__main__":
    main()
