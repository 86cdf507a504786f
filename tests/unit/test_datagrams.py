"""Dropping datagrams counted: recvmmsg(2) where libc has it, recv_into otherwise."""

from __future__ import annotations

import socket

import pytest

from logpipe.inputs import datagrams


@pytest.mark.parametrize("path", ["recvmmsg", "recv_into"])
def test_drain_dropping_counts_every_datagram_and_its_real_length(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "recv_into":
        monkeypatch.setattr(datagrams, "_RECVMMSG", None)
    else:
        assert datagrams._RECVMMSG is not None, "this Linux libc has recvmmsg"
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with sender, receiver:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        receiver.setblocking(False)
        sizes = [1 + n % 3000 for n in range(1200)]  # past one 512-datagram call
        for size in sizes:
            sender.send(b"x" * size)
        scratch = bytearray(64)  # smaller than most: lengths are the datagrams' own
        assert datagrams.drain_dropping(receiver, scratch, 700) == (700, sum(sizes[:700]))
        assert datagrams.drain_dropping(receiver, scratch, 2000) == (500, sum(sizes[700:]))
        assert datagrams.drain_dropping(receiver, scratch, 2000) == (0, 0)
        sender.send(b"after")  # the socket still works: nothing was left half-read
        assert receiver.recv(100) == b"after"
