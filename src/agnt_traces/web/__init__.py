"""The web page (``GET /`` on ``serve --http``; ``agnt-traces ui`` for one person on loopback).

sessions.py   signed-in browsers: an opaque cookie, CSRF tokens, notices
pages.py      every page and form action, over the App's services
diffview.py   unified diffs parsed (unidiff) into side-by-side rows
charts.py     server-drawn SVG charts
templates/    Jinja2 (autoescaped) HTML;  static/  our CSS and JS (no CDN, no build step)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..app import App
from .pages import Pages, WebOptions
from .sessions import WebSessions

__all__ = ["CSP", "WebOptions", "build_web_app"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
STATIC = Path(__file__).parent / "static"


class SecurityHeaders:
    """Every response of the web page carries the strict CSP and its companions."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_web_app(get_app: Callable[[], App], options: WebOptions | None = None) -> ASGIApp:
    """The page's routes as one ASGI app, to mount at ``/`` after every other route."""
    pages = Pages(get_app, options or WebOptions(), WebSessions())
    p = pages.page

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.error_page(None, 404, "Not found", "There is no page at this address.")

    routes = [
        Route("/", p(pages.traces), methods=["GET"]),
        Route("/signin", pages.signin_form, methods=["GET"]),
        Route("/signin", pages.signin, methods=["POST"]),
        Route("/signout", p(pages.signout), methods=["POST"]),
        Route("/traces/{trace_id}", p(pages.trace), methods=["GET"]),
        Route("/traces/{trace_id}/playground", p(pages.open_playground), methods=["POST"]),
        Route("/playground/{session_id}", p(pages.playground_page), methods=["GET"]),
        Route("/playground/{session_id}/blocks", p(pages.edit_block), methods=["POST"]),
        Route("/playground/{session_id}/variables", p(pages.update_variables), methods=["POST"]),
        Route("/playground/{session_id}/models", p(pages.update_models), methods=["POST"]),
        Route("/playground/{session_id}/run", p(pages.run), methods=["POST"]),
        Route("/playground/{session_id}/save", p(pages.save), methods=["POST"]),
        Route("/playground/{session_id}/delete", p(pages.delete_session), methods=["POST"]),
        Route("/prompts", p(pages.prompts), methods=["GET"]),
        Route("/prompts/{name}", p(pages.prompt), methods=["GET"]),
        Route("/prompts/{name}/publish", p(pages.publish), methods=["POST"]),
        Route("/stats", p(pages.stats), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.pages = pages
    return SecurityHeaders(app)
