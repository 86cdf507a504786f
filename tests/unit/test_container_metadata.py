"""Container metadata from inspect answers and from log paths (pure mappings)."""

from __future__ import annotations

import os

from logpipe.enrich.containers import PidAttribution, metadata_fields
from logpipe.inputs.docker_files import container_from_path, file_key

CID = "a" * 64


def test_inspect_to_ecs_fields() -> None:
    fields = metadata_fields(
        {
            "Id": CID,
            "Name": "/web-1",
            "Config": {"Image": "nginx:1.27", "Labels": {"com.docker.compose.service": "web"}},
        },
        "docker",
    )
    assert fields == {
        "container.id": CID,
        "container.name": "web-1",
        "container.image.name": "nginx:1.27",
        "container.labels": {"com.docker.compose.service": "web"},
        "container.runtime": "docker",
    }


def test_kubernetes_labels_name_the_pod_and_namespace() -> None:
    labels = {
        "io.kubernetes.pod.name": "api-7d9f",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.container.name": "api",
    }
    fields = metadata_fields({"Id": CID, "Name": "/k8s_api_api-7d9f", "Config": {"Labels": labels}})
    assert fields["orchestrator.resource.name"] == "api-7d9f"
    assert fields["orchestrator.namespace"] == "shop"
    assert fields["container.name"] == "api"


def test_paths_give_ids_and_pod_names() -> None:
    assert container_from_path(f"/var/lib/docker/containers/{CID}/{CID}-json.log") == {
        "container.id": CID
    }
    assert container_from_path(
        f"/var/lib/containers/storage/overlay-containers/{CID}/userdata/ctr.log"
    ) == {"container.id": CID}
    k8s = container_from_path("/var/log/pods/shop_api-7d9f_0c1d-22/api/3.log")
    assert k8s["orchestrator.namespace"] == "shop"
    assert k8s["orchestrator.resource.name"] == "api-7d9f"
    assert k8s["container.name"] == "api"
    assert container_from_path("/var/log/syslog") == {}


def test_a_reused_inode_in_another_directory_is_another_file(tmp_path) -> None:
    # A removed container's log inode goes to the next new file: ids and checkpoints
    # keyed by inode alone would give the second container's lines the first one's ids.
    first = tmp_path / "a" / "ctr.log"
    first.parent.mkdir()
    first.write_bytes(b"x\n")
    st = os.stat(first)
    assert file_key(str(first), st) != file_key(str(tmp_path / "b" / "ctr.log"), st)
    # Rotation by rename stays in the directory: the same file keeps its key.
    assert file_key(str(first), st) == file_key(str(tmp_path / "a" / "ctr.log.1"), st)
    assert file_key(str(first), st).endswith(f"-{st.st_dev:x}-{st.st_ino:x}")


def test_pid_attribution_reads_cgroup_and_keeps_the_answer_after_exit(tmp_path) -> None:
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(f"0::/system.slice/docker-{CID}.scope\n")
    (proc / "7").mkdir()
    (proc / "7" / "cgroup").write_text("0::/init.scope\n")
    attribution = PidAttribution(str(proc))
    assert attribution.lookup(42, 0) == (CID, "docker")
    assert attribution.lookup(7, 0) is None  # a host process: nothing, never a guess
    (proc / "42" / "cgroup").unlink()  # the sender exited
    assert attribution.lookup(42, 20 * 10**9) == (CID, "docker")  # the last answer for it
    assert attribution.lookup(99, 0) is None  # never seen, already gone
