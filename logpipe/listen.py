"""Listening sockets that outlive a worker: bound once, handed down by file descriptor.

Each socket is known by a key naming its kind and address (``unix-dgram:/run/x``,
``tcp:127.0.0.1:9180``, ``udp:[::]:514``): a worker finds the socket it would have
bound under the key its config gives, and a reload keeps every socket whose key is
unchanged. The map of keys to descriptor numbers travels in the environment
(``LOGPIPE_LISTEN_FDS``), from the supervisor to its workers and across the
supervisor's own re-exec.

systemd socket activation (``LISTEN_PID``, ``LISTEN_FDS``) is read here too: a passed
descriptor is matched by its address, so unit files need no names that mirror the
config.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import time

from logpipe.config import (
    DevlogSettings,
    ForwardSettings,
    Settings,
    SyslogSettings,
    split_address,
)

log = logging.getLogger(__name__)

ENV_FDS = "LOGPIPE_LISTEN_FDS"
SD_LISTEN_FDS_START = 3
ADDRESS_IN_USE_WAIT_SECONDS = 15.0


def devlog_key(path: str) -> str:
    return f"unix-dgram:{os.path.abspath(path)}"


def admin_key(listen: str) -> str:
    return f"tcp:{listen}"


def tcp_key(listen: str) -> str:
    return f"tcp:{listen}"


def udp_key(listen: str) -> str:
    return f"udp:{listen}"


def wanted_keys(settings: Settings) -> dict[str, tuple[str, str]]:
    """key -> (kind, address) for every socket this config listens on."""
    keys = {admin_key(settings.admin.listen): ("tcp", settings.admin.listen)}
    for inp in settings.inputs:
        if isinstance(inp, DevlogSettings):
            keys[devlog_key(inp.path)] = ("unix-dgram", inp.path)
        elif isinstance(inp, ForwardSettings):
            keys[tcp_key(inp.listen)] = ("tcp", inp.listen)
        elif isinstance(inp, SyslogSettings):
            if inp.udp:
                keys[udp_key(inp.udp)] = ("udp", inp.udp)
            for address in (inp.tcp, inp.tls):
                if address:
                    keys[tcp_key(address)] = ("tcp", address)
    return keys


def key_of(sock: socket.socket) -> str | None:
    """The key of a socket someone else bound (systemd), from its family, type and name."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX and sock.type == socket.SOCK_DGRAM and name:
        return devlog_key(name if isinstance(name, str) else name.decode())
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host, port = name[0], name[1]
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if sock.type == socket.SOCK_STREAM:
            return tcp_key(address)
        if sock.type == socket.SOCK_DGRAM:
            return udp_key(address)
    return None


def inherited() -> dict[str, int]:
    """Descriptors handed to this process: by a supervisor, or by systemd."""
    found: dict[str, int] = {}
    raw = os.environ.get(ENV_FDS, "")
    if raw:
        found.update({str(k): int(v) for k, v in json.loads(raw).items()})
    if os.environ.get("LISTEN_PID") == str(os.getpid()):
        for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(os.environ["LISTEN_FDS"])):
            sock = socket.socket(fileno=fd)
            key = key_of(sock)
            sock.detach()  # keep the descriptor; the socket object was only for asking
            if key is None:
                log.warning("Ignoring a socket systemd passed that logpipe cannot use. fd=%d", fd)
                continue
            found.setdefault(key, fd)
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)  # not for our children
    return found


def take(key: str, fds: dict[str, int]) -> socket.socket | None:
    """The inherited socket for ``key``, if there is one."""
    fd = fds.get(key)
    return None if fd is None else socket.socket(fileno=fd)


def bind_devlog(path: str, mode: int) -> socket.socket:
    """Bind a unix datagram socket at ``path``, replacing a stale socket file only."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket; refusing to replace it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_tcp(listen: str, wait: float = ADDRESS_IN_USE_WAIT_SECONDS) -> socket.socket:
    """Bind and listen; wait a while for a port still held by a draining old worker."""
    host, port = split_address(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(socket.SOMAXCONN)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            log.warning("Address in use; waiting (an old worker draining?). address=%s", listen)
            time.sleep(0.5)
        except BaseException:
            sock.close()
            raise


def bind_udp(listen: str) -> socket.socket:
    host, port = split_address(listen)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def bind(kind: str, address: str, settings: Settings) -> socket.socket:
    if kind == "tcp":
        return bind_tcp(address)
    if kind == "udp":
        return bind_udp(address)
    mode = next(i.mode for i in settings.inputs if i.type == "devlog" and i.path == address)
    return bind_devlog(address, mode)
