"""charts/logpipe: ``helm lint`` and ``helm template`` (helm built from the Go module
proxy), every rendered manifest validated against the Kubernetes schemas
(kubernetes-validate), and what the DaemonSet must get right: the socket's directory
mounted, never the socket file; hostPID only with attribution; container logs read-only;
credentials from a Secret, never in the ConfigMap; a config logpipe accepts."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import ROOT

# Building helm cold (module downloads and a compile) took 3.5 min on 2 cores: more than
# the suite's 300 s per test, which counts the fixture's time too.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

HELM_VERSION = "v3.22.0"
CHART = ROOT / "charts" / "logpipe"
SCRIPTS = ROOT / "scripts"


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm, built once per version into the dev cache (go install, the module proxy)."""
    sys.path.insert(0, str(SCRIPTS))
    from es_local import cache_dir

    gobin = cache_dir() / f"helm-{HELM_VERSION}"
    binary = gobin / "helm"
    if not binary.exists():
        gobin.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
            env={**os.environ, "GOBIN": str(gobin)},
            check=True,
            timeout=1200,
        )
    return binary


def _render(helm: Path, tmp_path: Path, *sets: str) -> list[dict[str, Any]]:
    args = [str(helm), "template", "t", str(CHART)]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rendered = tmp_path / f"rendered-{len(sets)}.yaml"
    rendered.write_text(out)
    # Every core manifest against the Kubernetes 1.37 schemas (the PodMonitor is the
    # Prometheus Operator's CRD, which the schemas do not have).
    core = tmp_path / f"core-{len(sets)}.yaml"
    docs = [d for d in yaml.safe_load_all(out) if d]
    core.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "PodMonitor"]))
    validate = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", str(core)],
        capture_output=True,
        text=True,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    return docs


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def test_chart_lints_renders_and_validates(helm: Path, tmp_path: Path) -> None:
    lint = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    docs = _render(helm, tmp_path)
    assert {d["kind"] for d in docs} == {"ConfigMap", "DaemonSet"}
    pod = _one(docs, "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # The socket's directory, created on the node if missing; never the socket file.
    assert volumes["socket-dir"]["hostPath"] == {
        "path": "/run/logpipe",
        "type": "DirectoryOrCreate",
    }
    assert mounts["socket-dir"]["mountPath"] == "/run/logpipe"
    assert not any(
        v.get("hostPath", {}).get("path", "").endswith("dev-log") for v in pod["volumes"]
    )
    assert not any(v.get("hostPath", {}).get("type") == "Socket" for v in pod["volumes"])
    assert pod["hostPID"] is False
    assert mounts["pod-logs"]["readOnly"] and mounts["docker-containers"]["readOnly"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert "env" not in container  # no Secret asked for
    # The rendered config is one logpipe accepts, and names the socket in that directory.
    config = tmp_path / "logpipe.toml"
    config.write_text(_one(docs, "ConfigMap")["data"]["logpipe.toml"])
    check = subprocess.run(
        [sys.executable, "-m", "logpipe", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert 'path = "/run/logpipe/dev-log"' in config.read_text()


def test_chart_options_attribution_secret_aggregator_podmonitor(helm: Path, tmp_path: Path) -> None:
    docs = _render(
        helm,
        tmp_path,
        "attribution=true",
        "dockerSocket=/var/run/docker.sock",
        "elasticsearch.existingSecret=es-creds",
        "aggregator.enabled=true",
        "podMonitor.enabled=true",
        "elasticsearch.index=logpipe-%Y.%m.%d",
        "elasticsearch.retention=30d",
    )
    assert {d["kind"] for d in docs} == {
        "ConfigMap", "DaemonSet", "Deployment", "Service", "PodMonitor",
    }  # fmt: skip
    pod = _one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    (container,) = pod["containers"]
    socket = [v for v in pod["volumes"] if v["name"] == "runtime-socket"]
    assert socket[0]["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["LOGPIPE_ELASTICSEARCH_PASSWORD"] == {
        "name": "es-creds", "key": "password", "optional": True,
    }  # fmt: skip
    assert set(env) == {
        "LOGPIPE_ELASTICSEARCH_USERNAME", "LOGPIPE_ELASTICSEARCH_PASSWORD",
        "LOGPIPE_ELASTICSEARCH_API_KEY",
    }  # fmt: skip
    data = _one(docs, "ConfigMap")["data"]
    assert "es-creds" not in str(data) and "password" not in str(data)
    aggregator = tmp_path / "aggregator.toml"
    aggregator.write_text(data["aggregator.toml"])
    check = subprocess.run(
        [sys.executable, "-m", "logpipe", "check-config", "-c", str(aggregator)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    for config in (data["aggregator.toml"], data["logpipe.toml"]):
        es = tomllib.loads(config)["elasticsearch"]
        assert (es["index"], es["retention"]) == ("logpipe-%Y.%m.%d", "30d")
    assert _one(docs, "Service")["spec"]["ports"][0]["port"] == 24224
    assert _one(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "admin"
