"""Telling systemd what the supervisor is doing, when systemd runs it (``Type=notify``).

Two things go over ``$NOTIFY_SOCKET`` (sd_notify(3), a datagram per message):

* readiness: ``READY=1`` once a worker is reading, ``RELOADING=1`` during a reload,
  ``STOPPING=1`` on the way out, and a ``STATUS=`` line for ``systemctl status``;
* the file-descriptor store: every listening socket logpipe bound itself is handed to
  systemd with ``FDSTORE=1`` (the unit needs ``FileDescriptorStoreMax=``). If the
  supervisor itself dies, systemd passes them back on the next start (``LISTEN_FDS``,
  which :func:`logpipe.listen.inherited` matches by address), so even a crash of the
  supervisor does not re-create a socket that containers have mounted.

Without ``$NOTIFY_SOCKET`` every call here does nothing.
"""

from __future__ import annotations

import array
import logging
import os
import socket
from collections.abc import Sequence

log = logging.getLogger(__name__)

NOTIFY_ENV = "NOTIFY_SOCKET"


def _address() -> str | None:
    path = os.environ.get(NOTIFY_ENV, "")
    if not path or path[0] not in "/@":
        return None
    return "\0" + path[1:] if path[0] == "@" else path  # "@": the abstract namespace


def enabled() -> bool:
    return _address() is not None


def notify(state: str, fds: Sequence[int] = ()) -> bool:
    """Send one sd_notify message; True if systemd's socket took it."""
    address = _address()
    if address is None:
        return False
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendmsg([state.encode()], ancillary, 0, address)
    except OSError as exc:
        log.warning("Could not notify systemd. state=%s error=%s", state.split("\n")[0], exc)
        return False
    return True


def fd_name(key: str) -> str:
    """A listener key as an FDNAME: printable ASCII without ':' (systemd's rule)."""
    name = "".join(c if c.isascii() and c.isprintable() and c != ":" else "_" for c in key)
    return name[:255]


def store(sockets: dict[str, socket.socket]) -> int:
    """Hand each socket to systemd's file-descriptor store; returns how many it took.

    Storing the same socket again is harmless: systemd keeps one entry per socket."""
    stored = 0
    for key, sock in sockets.items():
        if notify(f"FDSTORE=1\nFDNAME={fd_name(key)}", [sock.fileno()]):
            stored += 1
    return stored


def forget(keys: Sequence[str]) -> None:
    """Drop sockets the config no longer names from the store, so a restart after a
    crash does not bring them back."""
    for key in keys:
        notify(f"FDSTOREREMOVE=1\nFDNAME={fd_name(key)}")
