"""Every atheris target in tests/fuzz runs, and holds for its seeds and a few hundred inputs.

The long runs (ten minutes a target) are for people, outside CI; this keeps the script
from rotting and re-checks the seeds every time the parsers change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_parsers.py"
TARGETS = [
    "syslog",
    "syslog_framing",
    "json_file",
    "cri",
    "multiplexed",
    "raw_stream",
    "structured_text",
    "forward",
    "config",
]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(target: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), target, "-runs=500", "-seed=1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # where libFuzzer would write a crash-* file
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Done 500 runs" in result.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_every_target_is_listed_here() -> None:
    usage = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60
    ).stderr
    assert usage.strip().endswith(f"{{{'|'.join(TARGETS)}|all}} [libFuzzer options] [corpus]")
