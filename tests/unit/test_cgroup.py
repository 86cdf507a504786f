"""container_id_from_cgroup on /proc/<pid>/cgroup texts: v1, v2, hybrid, host processes."""

from __future__ import annotations

import pytest

from logpipe.parsers.cgroup import container_id_from_cgroup

ID = "5407e7f44324920e93c806b389fcc87b2adff8be9c2580efd1eff7e73629fe39"
INNER = "9c2580efd1eff7e73629fe395407e7f44324920e93c806b389fcc87b2adff8be"
POD = "pod4b3f0fe8-1b6c-4a0e-9b55-1d0c3a8e0f11"
POD_SLICE = "pod4b3f0fe8_1b6c_4a0e_9b55_1d0c3a8e0f11"

CASES: list[tuple[str, str, tuple[str, str] | None]] = [
    ("v1 docker", f"12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n", (ID, "docker")),
    (
        "v1 docker, systemd driver",
        f"1:name=systemd:/system.slice/docker-{ID}.scope\n",
        (ID, "docker"),
    ),
    ("v2 docker, systemd driver", f"0::/system.slice/docker-{ID}.scope\n", (ID, "docker")),
    ("v2 docker, cgroupfs driver", f"0::/docker/{ID}\n", (ID, "docker")),
    (
        "this machine: podman v1, with the host's 32-hex sandbox line",
        "4:memory:/process_api/cd266720f9c9fa2179c33a23ab571a3b\n"
        f"9:name=systemd:/libpod_parent/libpod-{ID}\n",
        (ID, "podman"),
    ),
    ("podman v2", f"0::/machine.slice/libpod-{ID}.scope\n", (ID, "podman")),
    (
        "podman v2, the container's own sub-cgroup",
        f"0::/machine.slice/libpod-{ID}.scope/container\n",
        (ID, "podman"),
    ),
    (
        "podman rootless",
        f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n",
        (ID, "podman"),
    ),
    ("podman conmon is not the container", f"0::/machine.slice/libpod-conmon-{ID}.scope\n", None),
    ("podman conmon, cgroupfs", f"1:name=systemd:/libpod_parent/libpod-conmon-{ID}\n", None),
    (
        "kubernetes cgroupfs (containerd)",
        f"12:memory:/kubepods/burstable/{POD}/{ID}\n",
        (ID, "containerd"),
    ),
    (
        "kubernetes besteffort cgroupfs v2",
        f"0::/kubepods/besteffort/{POD}/{ID}\n",
        (ID, "containerd"),
    ),
    (
        "kubernetes systemd (containerd)",
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-{POD_SLICE}.slice/cri-containerd-{ID}.scope\n",
        (ID, "containerd"),
    ),
    (
        "cri-o systemd",
        f"0::/kubepods.slice/kubepods-{POD_SLICE}.slice/crio-{ID}.scope\n",
        (ID, "cri-o"),
    ),
    ("cri-o cgroupfs", f"0::/kubepods/{POD}/crio-{ID}\n", (ID, "cri-o")),
    ("cri-o conmon", f"0::/kubepods.slice/crio-conmon-{ID}.scope\n", None),
    (
        "docker under kubernetes (dockershim, systemd)",
        f"0::/kubepods.slice/kubepods-{POD_SLICE}.slice/docker-{ID}.scope\n",
        (ID, "docker"),
    ),
    (
        "docker in docker: the inner container",
        f"0::/docker/{ID}/docker/{INNER}\n",
        (INNER, "docker"),
    ),
    (
        "systemd inside a container, no cgroup namespace",
        f"0::/system.slice/docker-{ID}.scope/system.slice/nginx.service\n",
        (ID, "docker"),
    ),
    ("docker --cgroup-parent / ECS", f"0::/ecs/5f3a2b/{ID}\n", (ID, "docker")),
    (
        "hybrid v1+v2",
        f"12:pids:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/docker/{ID}\n",
        (ID, "docker"),
    ),
    ("CRLF and spaces", f"  0::/docker/{ID}  \r\n", (ID, "docker")),
    # Host processes and look-alikes.
    ("v2 host root", "0::/\n", None),
    ("v2 init", "0::/init.scope\n", None),
    ("v1 user session", "1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n", None),
    ("host service", "0::/system.slice/docker.service\n", None),
    (
        "32-hex is not a container id",
        "4:memory:/process_api/cd266720f9c9fa2179c33a23ab571a3b\n",
        None,
    ),
    ("63 hex", f"0::/docker/{ID[:-1]}\n", None),
    ("65 hex", f"0::/docker/{ID}0\n", None),
    ("upper-case hex", f"0::/docker/{ID.upper()}\n", None),
    ("id inside a longer name", f"0::/system.slice/my-{ID}-thing.service\n", None),
    ("private cgroup namespace, v1", "12:memory:/\n1:name=systemd:/\n", None),
    ("not a cgroup file", f"/docker/{ID}\n", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_container_id_from_cgroup(text: str, expected: tuple[str, str] | None) -> None:
    assert container_id_from_cgroup(text) == expected
