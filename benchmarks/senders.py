"""The benchmarks' senders: small programs run as separate processes (``python -c``), so
that sending is not done on the shipper's cores' Python interpreter and several can run
at once. Each one sends ``count`` messages of ``size`` bytes numbered 0..count-1."""

from __future__ import annotations

import os

# Datagrams into a unix socket, one send() per message and blocking, like an app's
# syslog(): the time the senders take is the time apps would spend logging.
DATAGRAM = r"""
import socket, sys
path, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = b"<14>Nov 29 10:00:00 bench[4242]: "
body = b"x" * (size - len(head) - 8)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(path)
send = s.send
for n in range(count):
    send(head + body + b"%08d" % n)
"""

# RFC 5424 with octet counting (RFC 6587) over one TCP connection, as rsyslog's omfwd
# sends it: frames written a thousand at a time, as a forwarder's batches are.
TCP_OCTET_COUNTED = r"""
import socket, sys
port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
head = b"<14>1 2026-11-30T10:00:00.000000+00:00 benchhost bench 4242 - - "
body = b"x" * (size - len(head) - 8)
s = socket.create_connection(("127.0.0.1", port))
for start in range(0, count, 1000):
    frames = []
    for n in range(start, min(start + 1000, count)):
        m = head + body + b"%08d" % n
        frames.append(b"%d %s" % (len(m), m))
    s.sendall(b"".join(frames))
s.shutdown(socket.SHUT_WR)
s.recv(1)  # until the receiver closes: everything sent was read
"""

# The forward protocol's PackedForward mode, 1,000 entries per frame, as Fluent Bit's
# out_forward sends (no acknowledgement requested: its default).
FORWARD_PACKED = r"""
import socket, sys, msgpack
port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = "x" * (size - 8)
s = socket.create_connection(("127.0.0.1", port))
for start in range(0, count, 1000):
    entries = b"".join(
        msgpack.packb([1764496800, {"log": body + "%08d" % n}])
        for n in range(start, min(start + 1000, count))
    )
    s.sendall(msgpack.packb(["bench", entries, {"size": min(1000, count - start)}]))
s.shutdown(socket.SHUT_WR)
s.recv(1)
"""

# Scenario files: the whole log is written before the round, in a staging file beside
# the watched one, and "sent" by renaming it into place, so that both shippers find
# it complete the moment the clock starts.
RENAME = r"""
import os, sys
os.rename(sys.argv[1], sys.argv[2])
"""


def write_json_file(path: str, count: int, size: int) -> None:
    """A Docker json-file log (``{"log":...,"stream":...,"time":...}`` per line) of
    ``count`` messages of ``size`` bytes, stamped a microsecond apart."""
    body = "x" * (size - 8)
    with open(path + ".tmp", "w") as fh:
        for start in range(0, count, 10_000):
            fh.write(
                "".join(
                    f'{{"log":"{body}{n:08d}\\n","stream":"stdout",'
                    f'"time":"2026-11-30T10:{n // 60_000_000 % 60:02d}:'
                    f'{n // 1_000_000 % 60:02d}.{n % 1_000_000:06d}000Z"}}\n'
                    for n in range(start, min(start + 10_000, count))
                )
            )
    os.replace(path + ".tmp", path)
