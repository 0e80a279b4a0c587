"""The network guard: loopback and AF_UNIX pass, everything else is blocked and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import anyio
import pytest

import netguard
from netguard import NetworkBlocked, expect_blocked

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _guard() -> Iterator[None]:
    netguard.install()  # idempotent: conftest normally did it already
    assert netguard.installed()
    netguard.take_violations()
    yield
    netguard.check()  # whatever a test provoked on purpose it took back with expect_blocked()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    yield srv
    srv.close()


def test_install_is_idempotent() -> None:
    assert netguard.install() is False


def test_loopback_connections_pass(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection((host, port), timeout=2):
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.connect(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", port)) == 0
    assert socket.getaddrinfo("localhost", port)
    assert socket.gethostbyname("localhost").startswith("127.")
    assert netguard.violations == []


def test_ipv6_loopback_passes() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        srv.listen()
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.connect(("::1", srv.getsockname()[1]))


def test_unix_sockets_pass(tmp_path: object) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"x")
        assert b.recv(1) == b"x"


def _with_socket(family: int, kind: int, action: str, *args: object) -> object:
    with socket.socket(family, kind) as s:
        return getattr(s, action)(*args)


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: socket.create_connection(("example.com", 80), timeout=1),
        lambda: socket.create_connection(("93.184.216.34", 80), timeout=1),
        lambda: socket.getaddrinfo("api.openai.com", 443),
        lambda: socket.gethostbyname("api.anthropic.com"),
        lambda: _with_socket(socket.AF_INET, socket.SOCK_STREAM, "connect", ("10.255.255.1", 80)),
        lambda: _with_socket(socket.AF_INET, socket.SOCK_STREAM, "connect_ex", ("192.0.2.1", 443)),
        lambda: _with_socket(socket.AF_INET6, socket.SOCK_STREAM, "connect", ("2001:db8::1", 443, 0, 0)),
        lambda: _with_socket(socket.AF_INET, socket.SOCK_DGRAM, "sendto", b"x", ("8.8.8.8", 53)),
    ],
    ids=[
        "create_connection-name",
        "create_connection-ip",
        "getaddrinfo",
        "gethostbyname",
        "connect",
        "connect_ex",
        "connect-ipv6",
        "udp-sendto",
    ],
)
def test_everything_else_is_blocked_and_recorded(attempt: object) -> None:
    with expect_blocked() as blocked, pytest.raises(NetworkBlocked, match="network access blocked"):
        attempt()  # type: ignore[operator]
    assert len(blocked) == 1
    assert netguard.violations == []  # taken back by expect_blocked


def test_blocked_is_not_an_oserror() -> None:
    """Code that retries on OSError (connection refused...) must not quietly swallow the block."""
    assert not issubclass(NetworkBlocked, OSError)


async def test_asyncio_connections_are_blocked_too() -> None:
    with expect_blocked() as blocked, pytest.raises(NetworkBlocked):
        with anyio.fail_after(5):
            await asyncio.open_connection("192.0.2.1", 443)
    with expect_blocked() as by_name, pytest.raises(NetworkBlocked):
        with anyio.fail_after(5):
            await anyio.connect_tcp("example.org", 443)
    assert len(blocked) == 1 and len(by_name) == 1


async def test_asyncio_loopback_passes(listener: socket.socket) -> None:
    with anyio.fail_after(5):
        stream = await anyio.connect_tcp("127.0.0.1", listener.getsockname()[1])
    await stream.aclose()


def test_a_swallowed_block_still_fails_the_check() -> None:
    with contextlib.suppress(Exception):  # what a library would do
        socket.create_connection(("example.net", 443), timeout=1)
    with pytest.raises(AssertionError, match=r"example\.net"):
        netguard.check()
    assert netguard.violations == []


def test_is_allowed_host() -> None:
    allowed = ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1", None, ""]
    blocked = ["10.0.0.1", "8.8.8.8", "example.com", "::ffff:8.8.8.8", "2001:db8::1", "169.254.169.254"]
    assert all(netguard.is_allowed_host(h) for h in allowed)
    assert not any(netguard.is_allowed_host(h) for h in blocked)
