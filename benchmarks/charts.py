"""Charts of the latest side-by-side run, for the README: messages/s and CPU per message
per scenario, each logpipe worker count beside rsyslog.

    .venv/bin/pip install -e '.[bench]'      # matplotlib
    .venv/bin/python -m benchmarks.charts    # -> benchmarks/charts/*.png

Reads benchmarks/results/compare.jsonl: for each scenario, its most recent run.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.harness import ROOT

RESULTS = ROOT / "benchmarks" / "results" / "compare.jsonl"
OUT = ROOT / "benchmarks" / "charts"
SCENARIOS = ("devlog", "tcp", "forward")


def latest_runs() -> dict[str, dict[str, Any]]:
    """Each scenario's newest record that has per-shipper runs."""
    latest: dict[str, dict[str, Any]] = {}
    for line in RESULTS.read_text().splitlines():
        record = json.loads(line)
        if record.get("scenario") in SCENARIOS and "runs" in record:
            latest[record["scenario"]] = record
    return latest


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return max(runs, key=lambda r: r["messages_per_second"])


def main() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("benchmarks.charts needs matplotlib: .venv/bin/pip install -e '.[bench]'")
    records = latest_runs()
    scenarios = [s for s in SCENARIOS if s in records]
    shippers = sorted({k for s in scenarios for k in records[s]["runs"]}, key=lambda k: k[0] == "r")
    OUT.mkdir(parents=True, exist_ok=True)
    for metric, label, name in (
        ("messages_per_second", "delivered messages/s (higher is better)", "throughput.png"),
        ("cpu_us_per_message", "CPU µs per message (lower is better)", "cpu.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
        width = 0.8 / len(shippers)
        for i, shipper in enumerate(shippers):
            values = [
                best(records[s]["runs"][shipper])[metric] if shipper in records[s]["runs"] else 0
                for s in scenarios
            ]
            xs = [x + i * width for x in range(len(scenarios))]
            bars = ax.bar(xs, values, width, label=shipper)
            ax.bar_label(bars, fmt="{:,.0f}" if metric == "messages_per_second" else "{:.1f}",
                         fontsize=7)  # fmt: skip
        ax.set_xticks([x + width * (len(shippers) - 1) / 2 for x in range(len(scenarios))])
        ax.set_xticklabels(scenarios)
        ax.set_ylabel(label)
        first = records[scenarios[0]]
        ax.set_title(
            f"logpipe beside rsyslog, {first['date']}, {first['cores']} cores "
            "(forward: rsyslog's row is imtcp)",
            fontsize=9,
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(OUT / name)
        print(OUT / name)


if __name__ == "__main__":
    main()
