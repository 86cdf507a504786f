"""``pip install .`` into a fresh virtual environment gives a working ``logpipe``: the
command, its packaged default config, and the index templates ``setup`` installs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def test_pip_install_gives_a_working_logpipe(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)]
    subprocess.run(pip, check=True, timeout=600)
    logpipe = str(venv / "bin" / "logpipe")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # From elsewhere than the checkout: the installed package, not the source tree.
        return subprocess.run([logpipe, *args], capture_output=True, text=True, cwd=tmp_path)

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("logpipe ")
    check = run("check-config")
    assert check.returncode == 0, check.stderr
    assert "site-packages/logpipe/data/logpipe.toml: ok" in check.stdout
    templates = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "from logpipe.outputs.es_setup import packaged_template as t;"
         "print(t('index-template.json')['template']['mappings']"
         "['properties']['@timestamp']['type'])"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert templates.stdout.strip() == "date_nanos", templates.stderr
