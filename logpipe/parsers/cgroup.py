"""Which container a process runs in, from the text of ``/proc/<pid>/cgroup``.

The input modules read the file (a peer's pid from ``SO_PEERCRED`` on /dev/log); this
module only reads the text. Each line is ``hierarchy-id:controllers:path`` (cgroup v1,
one line per hierarchy) or the single ``0::path`` of cgroup v2. Runtimes name the
container's cgroup after its 64-hex id:

=========================  ==================================================================
docker (cgroupfs)          ``/docker/<id>``
docker (systemd)           ``/system.slice/docker-<id>.scope``
podman                     ``/libpod_parent/libpod-<id>``, ``/machine.slice/libpod-<id>.scope``
                           (``libpod-conmon-<id>`` is podman's monitor process, not the
                           container)
containerd / kubernetes    ``/kubepods/burstable/pod<uid>/<id>``,
                           ``.../kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope``
cri-o                      ``.../crio-<id>.scope`` (``crio-conmon-<id>`` is its monitor)
=========================  ==================================================================

Not hot: looked up once per process and cached by the caller, so clarity wins here.
"""

from __future__ import annotations

import re

__all__ = ["container_id_from_cgroup"]

# One path component: an optional runtime prefix, exactly 64 lower-case hex digits
# (docker/containerd ids; 32-hex names such as a sandbox's "/process_api/<32 hex>" are
# not containers), an optional ".scope". "libpod-conmon-<id>" and "crio-conmon-<id>"
# fail because "conmon-" is not hex.
_COMPONENT_RE = re.compile(r"(?:(docker|libpod|cri-containerd|crio)-)?([0-9a-f]{64})(?:\.scope)?")
_PREFIX_RUNTIME = {
    "docker": "docker",
    "libpod": "podman",
    "cri-containerd": "containerd",
    "crio": "cri-o",
}


def _bare_id_runtime(ancestors: list[str]) -> str:
    """Runtime of a bare ``<id>`` component, from the nearest telling ancestor."""
    for name in reversed(ancestors):
        if name == "docker":
            return "docker"
        if name.startswith("kubepods"):
            # cgroupfs kubelet layout; containerd writes bare ids there (CRI-O uses
            # "crio-<id>", which has its own prefix).
            return "containerd"
        if name == "libpod_parent" or name.startswith("libpod"):
            return "podman"
    # A bare id under a parent we do not know: docker's --cgroup-parent and ECS
    # ("/ecs/<task>/<id>") are where these come from.
    return "docker"


def _from_path(path: str) -> tuple[str, str] | None:
    """(id, runtime) from the last container-like component of one cgroup path."""
    components = path.split("/")
    for index in range(len(components) - 1, -1, -1):
        match = _COMPONENT_RE.fullmatch(components[index])
        if match is None:
            continue
        prefix, container_id = match.groups()
        if prefix is not None:
            return container_id, _PREFIX_RUNTIME[prefix]
        return container_id, _bare_id_runtime(components[:index])
    return None


def container_id_from_cgroup(text: str) -> tuple[str, str] | None:
    """(64-hex container id, runtime) from the contents of /proc/<pid>/cgroup, or None.

    Works on cgroup v1 (several lines), v2 (``0::/...``) and hybrid files. runtime is
    ``"docker"``, ``"podman"``, ``"containerd"`` or ``"cri-o"``. Within a path the last
    (most specific) container component wins, so nested containers resolve to the inner
    one; across lines the first line with a container wins (they agree in practice).
    None for a host process (``0::/``, ``0::/init.scope``, ``1:name=systemd:/user.slice/...``),
    for a process in a private cgroup namespace (its paths read ``/``), and for text
    that is not a cgroup file.
    """
    for line in text.splitlines():
        fields = line.strip().split(":", 2)
        if len(fields) != 3:
            continue
        found = _from_path(fields[2])
        if found is not None:
            return found
    return None
