"""What the datagram inputs share (devlog's unix socket, syslog over UDP): a receive
buffer big enough for bursts, and draining a socket that has no room to give."""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import sys
from collections.abc import Callable

SO_RCVBUFFORCE = 33  # Linux; not exported by Python's socket module


def grow_receive_buffer(sock: socket.socket, want: int) -> None:
    """Ask for ``want`` bytes of kernel buffer; FORCE lifts net.core.rmem_max for a
    privileged process, the plain option is capped by it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)


def drain_dropping(sock: socket.socket, scratch: bytearray, limit: int) -> tuple[int, int]:
    """Read up to ``limit`` datagrams as cheaply as the kernel allows, to be counted as
    dropped by the caller; return (count, bytes). Stops at the first error; the next
    wake-up reads on.

    Where libc has recvmmsg(2), up to 512 datagrams go per call into no buffer at all
    (MSG_TRUNC still reports each one's length); else one recv_into ``scratch`` each.
    Either way the bytes counted are the datagrams' own lengths.
    """
    if _RECVMMSG is not None:
        return _drain_recvmmsg(sock.fileno(), limit)
    recv_into = sock.recv_into
    count = nbytes = 0
    while count < limit:
        try:
            nbytes += recv_into(scratch, 0, _MSG_TRUNC)  # the length sent, not kept
        except OSError:  # BlockingIOError: drained; anything else: try next wake-up
            break
        count += 1
    return count, nbytes


# recvmmsg(2) through ctypes: the socket module has no binding for it. Dropping a
# datagram this way costs the kernel's work alone; one recv_into per datagram costs a
# Python call too, and a sender that outpaces the reader waits on the difference.
_MMSG_BATCH = 512
_MSG_DONTWAIT = 0x40
_MSG_TRUNC = 0x20


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("hdr", _MsgHdr), ("len", ctypes.c_uint))


def _recvmmsg() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        recvmmsg = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    recvmmsg.restype = ctypes.c_int
    return recvmmsg


_RECVMMSG = _recvmmsg()
# Zeroed headers: no name, no iovec, no control buffer; only msg_len is written back.
_HEADERS = (_MMsgHdr * _MMSG_BATCH)()
_HEADERS_ADDRESS = ctypes.addressof(_HEADERS)
# msg_len of each header, as one strided view: summed in C.
_LENGTHS = (
    memoryview(_HEADERS)
    .cast("B")
    .cast("I")[_MMsgHdr.len.offset // 4 :: ctypes.sizeof(_MMsgHdr) // 4]
)


def _drain_recvmmsg(fd: int, limit: int) -> tuple[int, int]:
    assert _RECVMMSG is not None
    count = nbytes = 0
    while count < limit:
        n = _RECVMMSG(fd, _HEADERS_ADDRESS, min(_MMSG_BATCH, limit - count),
                      _MSG_DONTWAIT | _MSG_TRUNC, None)  # fmt: skip
        if n <= 0:  # -1: drained (EAGAIN) or an error the next wake-up meets again
            break
        count += n
        nbytes += sum(_LENGTHS[:n])
        if n < _MMSG_BATCH:
            break
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
