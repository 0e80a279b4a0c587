"""No network in tests: only loopback (127.0.0.0/8, ::1, ``localhost``) and AF_UNIX sockets.

``install()`` patches ``socket.socket.connect`` / ``connect_ex`` / ``sendto``,
``socket.create_connection``, ``socket.getaddrinfo`` and ``socket.gethostbyname(_ex)``. Anything
else raises :class:`NetworkBlocked` *and* is recorded in :data:`violations`, because libraries
(LiteLLM, HTTP clients) often catch exceptions and carry on: a conftest fixture should assert, after
each test, that nothing was recorded (:func:`check`, or the ``no_network`` fixture below).

``install()`` is idempotent and process-wide; :func:`expect_blocked` lets a test provoke a blocked
access on purpose without leaving a violation behind.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = [
    "NetworkBlocked",
    "check",
    "expect_blocked",
    "install",
    "installed",
    "is_allowed_host",
    "no_network",
    "take_violations",
    "uninstall",
    "violations",
]


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address."""


violations: list[str] = []
_lock = threading.Lock()
_originals: dict[str, Any] = {}

_ALLOWED_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# Wildcards are for binding a listening socket, not for reaching anything.
_WILDCARDS = {"", "0.0.0.0", "::", "<broadcast>"}


def is_allowed_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in _ALLOWED_NAMES or name in _WILDCARDS:
        return True
    name = name.split("%", 1)[0]  # IPv6 zone id
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _block(what: str, target: Any) -> NetworkBlocked:
    message = f"network access blocked in tests: {what} {target!r} (only loopback and AF_UNIX are allowed)"
    with _lock:
        violations.append(message)
    return NetworkBlocked(message)


def _check_address(sock: socket.socket, address: Any, what: str) -> None:
    family = getattr(sock, "family", None)
    if family == getattr(socket, "AF_UNIX", object()):
        return
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and address:
        if is_allowed_host(address[0]):
            return
        raise _block(what, address)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # netlink, packet... not a way out
    raise _block(what, address)


def install() -> bool:
    """Patch the socket module (once). Returns True when this call installed the guard."""
    with _lock:
        if _originals:
            return False
        _originals.update(
            connect=socket.socket.connect,
            connect_ex=socket.socket.connect_ex,
            sendto=socket.socket.sendto,
            create_connection=socket.create_connection,
            getaddrinfo=socket.getaddrinfo,
            gethostbyname=socket.gethostbyname,
            gethostbyname_ex=socket.gethostbyname_ex,
        )
    orig = dict(_originals)

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self, address, "connect to")
        return orig["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self, address, "connect to")
        return orig["connect_ex"](self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        address = args[-1] if args else None
        _check_address(self, address, "send to")
        return orig["sendto"](self, data, *args)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        host = address[0] if isinstance(address, tuple) and address else address
        if not is_allowed_host(host):
            raise _block("connection to", address)
        return orig["create_connection"](address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_allowed_host(host):
            raise _block("name lookup of", host)
        return orig["getaddrinfo"](host, *args, **kwargs)

    def gethostbyname(host: Any) -> str:
        if not is_allowed_host(host):
            raise _block("name lookup of", host)
        return orig["gethostbyname"](host)

    def gethostbyname_ex(host: Any) -> Any:
        if not is_allowed_host(host):
            raise _block("name lookup of", host)
        return orig["gethostbyname_ex"](host)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.create_connection = create_connection
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    return True


def installed() -> bool:
    return bool(_originals)


def uninstall() -> None:
    """Restore the socket module (for completeness; the test suite keeps the guard on)."""
    with _lock:
        if not _originals:
            return
        socket.socket.connect = _originals["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = _originals["connect_ex"]  # type: ignore[method-assign]
        socket.socket.sendto = _originals["sendto"]  # type: ignore[method-assign]
        socket.create_connection = _originals["create_connection"]
        socket.getaddrinfo = _originals["getaddrinfo"]
        socket.gethostbyname = _originals["gethostbyname"]
        socket.gethostbyname_ex = _originals["gethostbyname_ex"]
        _originals.clear()


def take_violations() -> list[str]:
    with _lock:
        taken = list(violations)
        violations.clear()
    return taken


def check() -> None:
    """Fail (AssertionError) if anything tried to leave the machine since the last check."""
    taken = take_violations()
    if taken:
        raise AssertionError("test tried to use the network:\n  " + "\n  ".join(taken))


@contextmanager
def expect_blocked() -> Iterator[list[str]]:
    """Provoke blocked accesses on purpose: yields the list of those that happened inside the block,
    and leaves the global :data:`violations` as it was."""
    with _lock:
        before = len(violations)
    caught: list[str] = []
    try:
        yield caught
    finally:
        with _lock:
            caught.extend(violations[before:])
            del violations[before:]


@pytest.fixture
def no_network() -> Iterator[None]:
    """Make it autouse in conftest: fails the test if it tried to reach a non-loopback address."""
    take_violations()
    yield
    check()
