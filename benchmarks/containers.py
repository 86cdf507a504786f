"""Benchmark: container logs to the counting sink, files mode and api mode.

    .venv/bin/python -m benchmarks.containers [--lines 1000000] [--containers 4]

files: a generated Docker json-file of N lines (Docker's layout, with config.v2.json),
tailed by ``mode = "files"``. api: containers (podman's Docker-compatible API) writing
as fast as busybox can, followed by ``mode = "api"``. Prints lines/s and CPU µs per
line of the logpipe process, and appends JSON lines to benchmarks/results/containers.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, Rig, append_result, cpu_seconds, peak_rss_mib, wait_for

RESULTS = ROOT / "benchmarks" / "results" / "containers.jsonl"
CID = "b" * 64


def measure(rig: Rig, expected: int, start: float, cpu0: float) -> dict[str, float]:
    wait_for(lambda: rig.delivered() >= expected, 900)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(rig.lp.pid) - cpu0
    delivered = rig.delivered()
    return {
        "lines": delivered,
        "seconds": round(elapsed, 2),
        "lines_per_second": round(delivered / elapsed),
        "cpu_us_per_line": round(cpu / delivered * 1e6, 2),
        "peak_rss_mib": round(peak_rss_mib(rig.lp.pid), 1),
    }


def files_mode(lines: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="logpipe-bench-files-"))
    cdir = work / "containers" / CID
    cdir.mkdir(parents=True)
    (cdir / "config.v2.json").write_text(json.dumps({"ID": CID, "Name": "/bench"}))
    with open(cdir / f"{CID}-json.log", "w") as fh:
        for n in range(lines):
            second, fraction = n // 100_000 % 60, n % 1_000_000_000
            fh.write(
                f'{{"log":"GET /api/v1/items?page={n} 200 1532 bytes in 3.2 ms\\n",'
                f'"stream":"stdout","time":"2026-11-29T10:00:{second:02d}.{fraction:09d}Z"}}\n'
            )
    rig = Rig(
        work,
        f'[inputs.docker]\ntype = "docker"\nmode = "files"\nsocket = ""\n'
        f'paths = ["{work}/containers/*/*-json.log"]\n',
    )
    try:
        time.sleep(0.3)
        return measure(rig, lines, time.perf_counter(), cpu_seconds(rig.lp.pid))
    finally:
        rig.close()


def api_mode(containers: int, per_container: int) -> dict[str, float]:
    from tests.containers.podman import IMAGE, Podman

    work = Path(tempfile.mkdtemp(prefix="logpipe-bench-api-"))
    podman = Podman(work)
    podman.start()
    rig = Rig(
        work, f'[inputs.docker]\ntype = "docker"\nmode = "api"\nsocket = "{podman.socket_path}"\n'
    )
    try:
        time.sleep(2)
        cpu0, start = cpu_seconds(rig.lp.pid), time.perf_counter()
        for n in range(containers):
            podman.run(
                "--name",
                f"bench-{n}-{os.getpid()}",
                IMAGE,
                "sh",
                "-c",
                f"seq 1 {per_container} | sed 's/^/GET \\/api\\/v1\\/items?page=/'",
            )
        return measure(rig, containers * per_container, start, cpu0)
    finally:
        rig.close()
        podman.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--containers", type=int, default=4)
    p.add_argument("--per-container", type=int, default=50_000)
    p.add_argument("--only", choices=["files", "api"], default=None)
    args = p.parse_args()
    results = {}
    if args.only in (None, "files"):
        results["files"] = files_mode(args.lines)
    if args.only in (None, "api"):
        results["api"] = api_mode(args.containers, args.per_container)
    print(f"{'mode':>6} {'lines':>9} {'lines/s':>9} {'cpu us/line':>12} {'peak RSS MiB':>13}")
    for mode, r in results.items():
        print(
            f"{mode:>6} {r['lines']:>9} {r['lines_per_second']:>9} {r['cpu_us_per_line']:>12} "
            f"{r['peak_rss_mib']:>13}"
        )
    append_result(RESULTS, {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), **results})


if __name__ == "__main__":
    main()
