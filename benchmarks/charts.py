"""Charts of the latest side-by-side run, for the README: messages/s and CPU per message
per scenario, each logpipe worker count beside rsyslog; and the worker-scaling curve
(messages/s by ``service.workers``, rsyslog's level as a dashed line).

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
SCENARIOS = ("devlog", "tcp", "forward", "files")


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
            # A scenario without this shipper (files: one worker) gets no bar, not a 0.
            present = [(x, s) for x, s in enumerate(scenarios) if shipper in records[s]["runs"]]
            values = [best(records[s]["runs"][shipper])[metric] for _, s in present]
            xs = [x + i * width for x, _ in present]
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
    _scaling(plt, records)


def _scaling(plt: Any, records: dict[str, dict[str, Any]]) -> None:
    """messages/s against service.workers, one line per scenario run with several."""
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for scenario, record in records.items():
        counts = sorted(int(k.split("=")[1]) for k in record["runs"] if k.startswith("logpipe w="))
        if len(counts) < 2:
            continue
        values = [best(record["runs"][f"logpipe w={w}"])["messages_per_second"] for w in counts]
        (line,) = ax.plot(counts, values, marker="o", label=f"{scenario}: logpipe")
        if "rsyslog" in record["runs"]:
            ax.axhline(best(record["runs"]["rsyslog"])["messages_per_second"],
                       color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"{scenario}: rsyslog")  # fmt: skip
        ax.set_xticks(counts)
    ax.set_xlabel("service.workers")
    ax.set_ylabel("delivered messages/s")
    first = next(iter(records.values()))
    ax.set_title(f"Scaling with workers, {first['date']}, {first['cores']} cores", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "scaling.png")
    print(OUT / "scaling.png")


if __name__ == "__main__":
    main()
