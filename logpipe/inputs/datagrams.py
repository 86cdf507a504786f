"""What the datagram inputs share (devlog's unix socket, syslog over UDP): a receive
buffer big enough for bursts, and draining a socket that has no room to give."""

from __future__ import annotations

import socket

SO_RCVBUFFORCE = 33  # Linux; not exported by Python's socket module


def grow_receive_buffer(sock: socket.socket, want: int) -> None:
    """Ask for ``want`` bytes of kernel buffer; FORCE lifts net.core.rmem_max for a
    privileged process, the plain option is capped by it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)


def drain_dropping(sock: socket.socket, scratch: bytearray, limit: int) -> tuple[int, int]:
    """Read up to ``limit`` datagrams into one scratch buffer, as cheaply as the kernel
    allows (no ancillary data, no allocation); return (count, bytes). The caller counts
    them as dropped. Stops at the first error; the next wake-up reads on."""
    recv_into = sock.recv_into
    count = nbytes = 0
    while count < limit:
        try:
            nbytes += recv_into(scratch)
        except OSError:  # BlockingIOError: drained; anything else: try next wake-up
            break
        count += 1
    return count, nbytes


DGRAM_QLEN_PATH = "/proc/sys/net/unix/max_dgram_qlen"
# What systemd sets at boot (and Linux's own default since 6.5); the old default is 10.
RECOMMENDED_DGRAM_QLEN = 512


def unix_dgram_qlen() -> int | None:
    """net.unix.max_dgram_qlen: how many datagrams a unix socket queues before its
    senders block. Read when a socket is made (it is fixed per socket then)."""
    try:
        with open(DGRAM_QLEN_PATH) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None
