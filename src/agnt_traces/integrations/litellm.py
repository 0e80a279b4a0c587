"""Record every LiteLLM call an application makes as a trace (``source: "litellm"``).

Three lines in the app::

    import litellm
    from agnt_traces.integrations.litellm import AgntTracesCallback
    litellm.callbacks = [AgntTracesCallback(url="http://127.0.0.1:8787", token=TOKEN, tenant="acme")]

or ``AgntTracesCallback(db="traces.db")`` to write into a local database. Pass the prompt context in the
call's metadata (``metadata={"agnt_prompt_name": ..., "agnt_prompt_version": ..., "agnt_etag": ...,
"agnt_variables": {...}, "tags": [...]}``) and the trace carries it.

The callback never blocks or breaks the app's call: it only puts the trace on a bounded queue. A
background thread sends batches; when the store is unreachable it retries with backoff, then drops
the batch, counts it in ``dropped`` and logs a warning. Ids are made here, so a retried batch that
had in fact arrived is a no-op on the server, never a duplicate.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from ..errors import AgntError
from ..ids import ms_to_rfc3339, new_id
from ..llm._runtime import load_litellm
from ..models import message_text

# Through our loader: the offline price map, and LiteLLM kept off stdout, in the app's process too.
load_litellm()
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

__all__ = ["AgntTracesCallback", "trace_from_logging"]

log = logging.getLogger("agnt_traces.integrations.litellm")
_META_PREFIX = "agnt_"


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value * 1000) if value < 1e11 else int(value)
    return int(time.time() * 1000)


def trace_from_logging(kwargs: dict[str, Any], response: Any, *, failed: bool) -> dict[str, Any]:
    """A trace (the POST body of ``/traces``) from LiteLLM's callback arguments."""
    slo: dict[str, Any] = kwargs.get("standard_logging_object") or {}
    meta = dict((kwargs.get("litellm_params") or {}).get("metadata") or {})
    messages = [dict(m) for m in (slo.get("messages") or kwargs.get("messages") or []) if isinstance(m, dict)]
    system = "\n\n".join(message_text(m.get("content")) for m in messages if m.get("role") == "system")
    chat = [m for m in messages if m.get("role") != "system"]
    output, tool_calls = None, []
    try:
        choice = response.choices[0]
        output = choice.message.content
        tool_calls = [
            tc.model_dump() if hasattr(tc, "model_dump") else dict(tc) for tc in (choice.message.tool_calls or [])
        ]
    except Exception:
        pass
    provider = slo.get("custom_llm_provider") or kwargs.get("custom_llm_provider") or ""
    model = str(slo.get("model") or kwargs.get("model") or "")
    if provider and model.startswith(provider + "/"):
        model = model[len(provider) + 1 :]
    start, end = (
        _ms(slo.get("startTime") or kwargs.get("start_time")),
        _ms(slo.get("endTime") or kwargs.get("end_time")),
    )
    tags = [str(t) for t in (slo.get("request_tags") or meta.get("tags") or [])]
    trace: dict[str, Any] = {
        "id": new_id(start),
        "createdAt": ms_to_rfc3339(start),
        "manifest": {
            "system": system,
            "tools": kwargs.get("tools") or [],
            "model": {"provider": provider, "name": model},
        },
        "messages": chat,
        "output": output if not failed else None,
        "toolCalls": tool_calls,
        "inputTokens": int(slo.get("prompt_tokens") or 0),
        "outputTokens": int(slo.get("completion_tokens") or 0),
        "cost": slo.get("response_cost"),
        "duration": max(0.0, (end - start) / 1000),
        "model": {"provider": provider, "name": model},
        "status": "error" if failed else "success",
        "tags": list(dict.fromkeys(tags)),
        "source": "litellm",
    }
    if failed:
        trace["error"] = _error_of(kwargs, slo, provider, model)
    for key, field in (
        ("prompt_name", "promptName"),
        ("prompt_version", "promptVersion"),
        ("etag", "etag"),
        ("variables", "variables"),
    ):
        value = meta.get(_META_PREFIX + key)
        if value is not None:
            trace[field] = value
            if key == "etag":
                trace["manifest"]["etag"] = value
    extra = {k: v for k, v in meta.items() if k.startswith(_META_PREFIX + "meta_")}
    if extra:
        trace["metadata"] = {k[len(_META_PREFIX + "meta_") :]: v for k, v in extra.items()}
    return trace


def _error_of(kwargs: dict[str, Any], slo: dict[str, Any], provider: str, model: str) -> dict[str, str]:
    """The error of a failed call in the server's own words: type and status, never LiteLLM's prefixes
    (``litellm.BadRequestError: OpenAIException - ``) or the provider's response body."""
    from ..llm.failures import describe

    exc = kwargs.get("exception")
    if isinstance(exc, BaseException):
        kind, message = describe(exc, provider, model)
        return {"type": kind, "message": message}
    info = slo.get("error_information") or {}
    kind = str(info.get("error_class") or "APIError")
    kind = kind if kind.isidentifier() and len(kind) <= 64 else "APIError"
    code = str(info.get("error_code") or "")
    status = f" ({code})" if code.isdigit() and len(code) == 3 else ""
    name = f"{provider}/{model}" if provider else model or "the model"
    return {"type": kind, "message": f"calling {name} failed{status}"}


class AgntTracesCallback(CustomLogger):
    """A LiteLLM callback that records calls to a team server (``url`` + ``token`` + ``tenant``) or a
    local database (``db``)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        tenant: str = "default",
        db: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 200,
        max_attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        if (url is None) == (db is None):
            raise ValueError("pass url= (with token= and tenant=) for a team server, or db= for a local file")
        self.url = url.rstrip("/") if url else None
        self.token = token
        self.tenant = tenant
        self.db = db
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._idle = threading.Event()
        self._idle.set()
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._worker, name="agnt-traces-callback", daemon=True)
        self._thread.start()
        atexit.register(self.close, 2.0)

    # -- LiteLLM hooks (called by keyword; names must stay as they are) ---------------------------------

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=False)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=True)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=False)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=True)

    def _enqueue(self, kwargs: Any, response: Any, *, failed: bool) -> None:
        meta = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        if meta.get("agnt_internal"):  # AGNT Traces' own calls are recorded by the server already
            return
        try:
            trace = trace_from_logging(kwargs, response, failed=failed)
        except Exception:
            log.warning("agnt-traces: could not build a trace from a LiteLLM call", exc_info=True)
            self.dropped += 1
            return
        try:
            self._idle.clear()
            self._queue.put_nowait(trace)
        except queue.Full:
            self.dropped += 1
            log.warning(
                "agnt-traces: buffer full (%d traces), dropped one (%d so far)", self._queue.maxsize, self.dropped
            )

    # -- delivery ---------------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered or dropped. True if it finished in time."""
        return self._idle.wait(timeout)

    def wait_handled(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` traces in all were delivered or dropped (for tests and shutdown)."""
        with self._progress:
            return self._progress.wait_for(lambda: self.sent + self.dropped >= count, timeout)

    def close(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _worker(self) -> None:
        store = _LocalStore(self.db, self.tenant) if self.db else None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                batch = [item]
                while len(batch) < self.batch_size:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._deliver(batch, store)
                        return
                    batch.append(nxt)
                self._deliver(batch, store)
                if self._queue.empty():
                    self._idle.set()
        finally:
            if store is not None:
                store.close()
            self._idle.set()

    def _deliver(self, batch: list[dict[str, Any]], store: _LocalStore | None) -> None:
        try:
            self._try_deliver(batch, store)
        finally:
            with self._progress:
                self._progress.notify_all()

    def _try_deliver(self, batch: list[dict[str, Any]], store: _LocalStore | None) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                if store is not None:
                    store.write(batch)
                else:
                    self._post(batch)
                self.sent += len(batch)
                return
            except (_Permanent, AgntError) as exc:
                log.warning("agnt-traces: the server refused %d trace(s): %s", len(batch), exc)
                break
            except Exception as exc:
                if attempt == self.max_attempts:
                    log.warning("agnt-traces: store unreachable (%s); dropped %d trace(s)", exc, len(batch))
                    break
                time.sleep(min(8.0, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        self.dropped += len(batch)

    def _post(self, batch: list[dict[str, Any]]) -> None:
        assert self.url is not None
        req = urllib.request.Request(
            f"{self.url}/api/v1/tenants/{self.tenant}/traces",
            data=json.dumps({"traces": batch}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 404, 409, 413, 422):
                raise _Permanent(f"HTTP {exc.code}") from None
            raise


class _Permanent(Exception):
    """The server answered and refused: retrying the same batch cannot help."""


class _LocalStore:
    """A private event loop on the worker thread, holding the project's own store."""

    def __init__(self, path: str | None, tenant: str) -> None:
        import asyncio

        from ..config import Settings

        self._loop = asyncio.new_event_loop()
        self._tenant = tenant
        self._settings = Settings(db_path=str(path), tenant=tenant)
        self._app: Any = None

    def write(self, batch: list[dict[str, Any]]) -> None:
        self._loop.run_until_complete(self._write(batch))

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        if self._app is None:
            from ..app import App
            from ..services.traces import TraceService
            from ..store.sqlite import SqliteStore

            store = await SqliteStore.open(self._settings.db_path)
            self._app = App(settings=self._settings, store=store, traces=TraceService(store))
        await self._app.traces.ingest_many(self._tenant, batch)

    def close(self) -> None:
        if self._app is not None:
            self._loop.run_until_complete(self._app.close())
        self._loop.close()
