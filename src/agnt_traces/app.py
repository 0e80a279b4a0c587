"""The application: settings, the store and the services, opened and closed together.

Front ends (MCP over stdio or HTTP, REST, CLI) hold one ``App`` and call its services.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import Settings
from .errors import AgntError
from .services.traces import TraceService
from .store import open_store
from .store.base import Store

if TYPE_CHECKING:
    from .services.golden import GoldenService
    from .services.playground import PlaygroundService
    from .services.prompts import PromptService
    from .services.tokens import TokenService

__all__ = ["App", "open_app", "start_app"]

logger = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    store: Store
    traces: TraceService
    _prompts: PromptService | None = field(default=None, repr=False)
    _playground: PlaygroundService | None = field(default=None, repr=False)
    _golden: GoldenService | None = field(default=None, repr=False)
    _tokens: TokenService | None = field(default=None, repr=False)

    @property
    def prompts(self) -> PromptService:
        # Imported on first use: the compiler and model calls stay out of server start-up.
        if self._prompts is None:
            from .services.prompts import PromptService

            self._prompts = PromptService(self.store, self.traces, self.settings)
        return self._prompts

    @property
    def playground(self) -> PlaygroundService:
        if self._playground is None:
            from .services.playground import PlaygroundService

            self._playground = PlaygroundService(self.store, self.traces, self.prompts, self.settings)
        return self._playground

    @property
    def golden(self) -> GoldenService:
        if self._golden is None:
            from .services.golden import GoldenService

            self._golden = GoldenService(self.store, self.traces, self.prompts, self.settings)
            self._golden.playground = self.playground
        return self._golden

    @property
    def tokens(self) -> TokenService:
        if self._tokens is None:
            from .services.tokens import TokenService

            self._tokens = TokenService(self.store)
        return self._tokens

    async def health(self) -> str | None:
        """None when the database takes writes; otherwise why not (the file is gone, the disk is full, …)."""
        return await self.store.health()

    async def close(self) -> None:
        if self._golden is not None:
            await self._golden.close()  # running replays are marked error, not left running
        if "agnt_traces.llm" in sys.modules:  # only if a model was ever called: never import LiteLLM here
            from .llm import aclose

            await aclose()  # LiteLLM's HTTP clients belong to this event loop
        await self.traces.aclose()  # grouped trace writes still queued are committed first
        await self.store.close()


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    app = await start_app(settings)
    try:
        yield app
    finally:
        await app.close()


async def start_app(settings: Settings) -> App:
    """The opened App, for a caller that closes it itself (``await app.close()``); :func:`open_app` otherwise.

    Raises:
        InvalidArgument: the database cannot be opened (the message names it).
    """
    store = await open_store(settings.db_path)
    app = App(settings=settings, store=store, traces=TraceService(store, settings.price_overrides))
    try:
        await _recover_replays(app)
    except BaseException:
        await app.close()
        raise
    return app


async def _recover_replays(app: App) -> None:
    """Replays a restart interrupted are marked ``error`` (only when there are any: the golden service and
    its imports stay out of start-up otherwise)."""
    from .golden_models import ReplayError, ReplayRecord

    found: list[ReplayRecord] = []

    def probe(rec: ReplayRecord) -> bool:
        found.append(rec)
        return False

    try:
        await app.store.fail_running_replays(probe, ReplayError(code="internal"))
        if found:
            await app.golden.recover()
    except AgntError as err:  # a read-only or full database still opens for reading
        logger.warning("could not check for interrupted replays: %s", err.message)
