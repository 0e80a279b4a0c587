"""``agnt-traces ui``: the web page for one person, on 127.0.0.1, with no token.

Everything shown is the ``--tenant``'s. Only requests addressed to this server's own loopback address
are answered (``Host`` checked), so a web site cannot reach the page by rebinding a name to 127.0.0.1;
forms still carry a CSRF token and the cookie is SameSite=Strict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount

from .. import __version__
from ..app import App, open_app
from ..config import Settings
from . import WebOptions, build_web_app

__all__ = ["LOOPBACK", "build_ui_app", "serve_ui"]

LOOPBACK = "127.0.0.1"


class _Holder:
    app: App | None = None

    def get(self) -> App:
        assert self.app is not None, "the app is opened in the server's lifespan"
        return self.app


def build_ui_app(settings: Settings, port: int) -> Starlette:
    holder = _Holder()
    hosts = frozenset({f"{LOOPBACK}:{port}", f"localhost:{port}"})
    web = build_web_app(holder.get, WebOptions(local_tenant=settings.tenant, allowed_hosts=hosts))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_app(settings) as app:
            holder.app = app
            try:
                yield
            finally:
                holder.app = None

    return Starlette(routes=[Mount("/", app=web)], lifespan=lifespan)


def serve_ui(settings: Settings, port: int) -> None:
    """Serve until interrupted; one line with the URL goes to stderr."""
    from ..dburls import describe_url
    from ..http.app import _listen, run_server

    sock = _listen(LOOPBACK, port)
    port = sock.getsockname()[1]
    url = f"http://{LOOPBACK}:{port}/"
    run_server(
        build_ui_app(settings, port),
        sock,
        f"agnt-traces {__version__}: web page for tenant {settings.tenant!r} on {url} "
        f"(this machine only, no token; db: {describe_url(settings.db_path)})",
    )
