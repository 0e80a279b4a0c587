"""Requests in flight, so that a shutdown (SIGTERM, Ctrl-C) ends them cleanly within a grace period.

uvicorn's own ``timeout_graceful_shutdown`` cancels what is still running with an ERROR log line and a
traceback per request. Here the server's shutdown first waits up to the grace period, then cancels each
remaining request itself: one that has not answered yet gets a 503 in the one shape ("the server is
shutting down; retry"), one that is streaming (an MCP SSE stream) simply ends. A model call cancelled
this way records nothing: a trace is written in one transaction after the call, whole or not at all.
"""

from __future__ import annotations

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InternalError
from .errors import error_response

__all__ = ["InFlight", "InFlightMiddleware"]

logger = logging.getLogger("agnt_traces.http")


class InFlightMiddleware:
    """Starlette middleware: each request runs under ``tracker``'s watch."""

    def __init__(self, app: ASGIApp, tracker: InFlight) -> None:
        self.app = app
        self.tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.tracker.run(self.app, scope, receive, send)


class InFlight:
    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._idle = anyio.Event()
        self._idle.set()
        self.closing = False

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with anyio.CancelScope() as cancel_scope:
            self._scopes.add(cancel_scope)
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
            try:
                await app(scope, receive, tracked_send)
            finally:
                self._scopes.discard(cancel_scope)
                if not self._scopes:
                    self._idle.set()
        if cancel_scope.cancelled_caught and not started:
            err = InternalError("the server is shutting down; retry the request in a moment")
            response = error_response(err)
            response.status_code = 503
            response.headers["retry-after"] = "5"
            await response(scope, receive, send)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for requests in flight, then cancel the rest."""
        self.closing = True
        with anyio.move_on_after(grace):
            await self._idle.wait()
        if self._scopes:
            logger.warning("shutting down: ending %d request(s) still in flight", len(self._scopes))
        for cancel_scope in list(self._scopes):
            cancel_scope.cancel()
