"""Record every LiteLLM call an application makes as a trace (``source: "litellm"``).

In the app (import this module before ``litellm``, so that LiteLLM never fetches its price map from
the network at import)::

    from agnt_traces.integrations.litellm import AgntTracesCallback
    import litellm

    callback = AgntTracesCallback(url="http://127.0.0.1:8787", token=TOKEN, tenant="acme")
    litellm.callbacks = [callback]

    async def main() -> None:
        ...  # litellm.acompletion(...) calls
        await callback.aflush()  # before the event loop ends: LiteLLM logs async calls on that loop

    asyncio.run(main())

or ``AgntTracesCallback(db="traces.db")`` to write into a local database. Pass the prompt context in the
call's metadata (``metadata={"agnt_prompt_name": ..., "agnt_prompt_version": ..., "agnt_etag": ...,
"agnt_variables": {...}, "tags": [...]}``) and the trace carries it.

The callback never blocks or breaks the app's call: it only puts the trace on a bounded queue. A
background thread sends batches; when the store is unreachable it retries with backoff, then drops
the batch, counts it in ``dropped`` and logs a warning. A trace the server refuses (invalid) is
dropped alone, counted and logged with the reason; the rest of its batch is stored. Ids are made
here, so a retried batch that had in fact arrived is a no-op on the server, never a duplicate.

Every call is recorded or counted in ``dropped`` with a warning: ``aflush()`` (async code) or
``flush()`` (sync code) wait for LiteLLM's logging worker and for the sender; at interpreter exit the
callback runs LiteLLM's leftover logging work, sends what is queued, and counts every call that
started but whose logging event never arrived (its event loop closed first) as dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import queue
import random
import sys
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

_PRICE_MAP_SETTINGS = ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_OFFLINE_MODE")
#: LiteLLM already imported by the app (then its import-time price map fetch has happened already).
_LITELLM_IMPORTED_FIRST = "litellm" in sys.modules
_USER_CHOSE_PRICE_MAP = any(name in os.environ for name in _PRICE_MAP_SETTINGS)

# Through our loader: the offline price map, and LiteLLM kept off stdout, in the app's process too.
load_litellm()
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

__all__ = ["AgntTracesCallback", "trace_from_logging"]

log = logging.getLogger("agnt_traces.integrations.litellm")
_META_PREFIX = "agnt_"


def _explain_price_map() -> None:
    """Say once what happened when the app imported litellm before this module without choosing a price
    map: LiteLLM's import went to the network for it, before any code of ours could run."""
    try:
        from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info

        info: Any = get_model_cost_map_source_info()
    except Exception:  # another LiteLLM version: nothing to explain
        return
    if not info.get("url"):
        return  # LiteLLM stayed offline
    how = (
        "the fetch failed, so it uses its bundled map after all"
        if info.get("fallback_reason")
        else "it uses the downloaded map"
    )
    log.warning(
        "agnt-traces: litellm was imported before agnt_traces.integrations.litellm, so LiteLLM fetched its "
        "price map from the network during its import (%s); import agnt_traces.integrations.litellm first, "
        "or set LITELLM_LOCAL_MODEL_COST_MAP=True, to keep that import offline",
        how,
    )


if _LITELLM_IMPORTED_FIRST and not _USER_CHOSE_PRICE_MAP:
    _explain_price_map()


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
        exit_timeout: float = 5.0,
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
        self.exit_timeout = exit_timeout
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._progress = threading.Condition()  # guards the counters below, sent and dropped
        self._accepted = 0  # traces put on the queue
        self._handled = 0  # of those, delivered or dropped by the sender
        self._started: set[str] = set()  # LiteLLM call ids seen starting whose logging event has not come yet
        self._closed = False
        self._thread = threading.Thread(target=self._worker, name="agnt-traces-callback", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # -- LiteLLM hooks (called by keyword; names must stay as they are) ---------------------------------

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """Called in the app's call, before the request: note the call, so that a call whose logging
        event is lost later (the event loop closed first) is still counted."""
        call_id = _call_id(kwargs)
        if call_id is not None and not _internal(kwargs):
            with self._progress:
                self._started.add(call_id)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=False)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=True)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=False)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._enqueue(kwargs, response_obj, failed=True)

    def _enqueue(self, kwargs: Any, response: Any, *, failed: bool) -> None:
        call_id = _call_id(kwargs)
        with self._progress:
            if call_id is not None:
                self._started.discard(call_id)
        if _internal(kwargs):  # AGNT Traces' own calls are recorded by the server already
            return
        try:
            trace = trace_from_logging(kwargs, response, failed=failed)
        except Exception:
            log.warning("agnt-traces: could not build a trace from a LiteLLM call", exc_info=True)
            self._drop(1)
            return
        with self._progress:
            if self._closed:
                closed = True
            else:
                closed = False
                try:
                    self._queue.put_nowait(trace)
                    self._accepted += 1
                    return
                except queue.Full:
                    pass
        self._drop(1)
        if closed:
            log.warning(
                "agnt-traces: a call was logged after the callback closed; dropped it (%d so far)", self.dropped
            )
        else:
            log.warning(
                "agnt-traces: buffer full (%d traces), dropped one (%d so far)", self._queue.maxsize, self.dropped
            )

    def _drop(self, count: int) -> None:
        with self._progress:
            self.dropped += count
            self._progress.notify_all()

    # -- flushing -----------------------------------------------------------------------------------------

    async def aflush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - the same bound as flush()
        """Wait until every call made so far is recorded or dropped: LiteLLM's logging of async calls
        (which runs on this event loop), then our queue and the sender. Call it before the event loop
        ends (the end of ``asyncio.run``'s main). True if everything was handled within ``timeout``."""
        deadline = time.monotonic() + timeout
        await _drain_litellm_logging(deadline)
        while self._calls_pending() and time.monotonic() < deadline:  # calls finishing, or events in transit
            await asyncio.sleep(0.005)
            await _drain_litellm_logging(deadline)
        complete = not self._calls_pending()
        delivered = await asyncio.to_thread(self._wait_sender, max(0.0, deadline - time.monotonic()))
        return complete and delivered

    def _calls_pending(self) -> bool:
        with self._progress:
            return bool(self._started)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged so far is delivered or dropped (from synchronous code). After
        an event loop has ended, this also runs the logging LiteLLM had left queued on it. Inside a
        running event loop use ``await aflush()``. True if everything was handled within ``timeout``."""
        deadline = time.monotonic() + timeout
        _run_litellm_leftovers(timeout)
        return self._wait_sender(max(0.0, deadline - time.monotonic()))

    def _wait_sender(self, timeout: float) -> bool:
        with self._progress:
            target = self._accepted
            return self._progress.wait_for(lambda: self._handled >= target, timeout)

    def wait_handled(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` traces in all were delivered or dropped (for tests and shutdown)."""
        with self._progress:
            return self._progress.wait_for(lambda: self.sent + self.dropped >= count, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``) and stop the sender; later events are dropped."""
        with self._progress:
            self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _at_exit(self) -> None:
        """At interpreter exit (atexit runs this before LiteLLM's own exit flush, which would log into a
        closed callback): run LiteLLM's leftover logging, send, then count calls that never logged."""
        try:
            self.flush(self.exit_timeout)
        finally:
            self.close(self.exit_timeout)
            with self._progress:
                lost = len(self._started)
                self._started.clear()
            if lost:
                self._drop(lost)
                log.warning(
                    "agnt-traces: %d LiteLLM call(s) ended without their logging event (the event loop closed "
                    "before LiteLLM logged them); counted as dropped (%d in all). Call `await callback.aflush()` "
                    "before the event loop ends",
                    lost,
                    self.dropped,
                )

    # -- delivery ---------------------------------------------------------------------------------------

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
        finally:
            if store is not None:
                store.close()

    def _deliver(self, batch: list[dict[str, Any]], store: _LocalStore | None) -> None:
        sent = 0
        try:
            sent = self._try_deliver(batch, store)
        finally:
            with self._progress:
                self.sent += sent
                self.dropped += len(batch) - sent
                self._handled += len(batch)
                self._progress.notify_all()

    def _try_deliver(self, batch: list[dict[str, Any]], store: _LocalStore | None) -> int:
        """Deliver a batch; the number of traces stored (the rest were refused or undeliverable)."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                refused = store.write(batch) if store is not None else self._post(batch)
            except (_Permanent, AgntError) as exc:
                log.warning("agnt-traces: the server refused %d trace(s): %s", len(batch), exc)
                return 0
            except Exception as exc:
                if attempt == self.max_attempts:
                    log.warning("agnt-traces: store unreachable (%s); dropped %d trace(s)", exc, len(batch))
                    return 0
                time.sleep(min(8.0, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
                continue
            if refused:
                index, reason = refused[0]
                log.warning(
                    "agnt-traces: the server refused %d of %d trace(s) and stored the rest; dropped those "
                    "(first: #%d of the batch: %s)",
                    len(refused),
                    len(batch),
                    index,
                    reason,
                )
            return len(batch) - len(refused)
        return 0  # pragma: no cover - the loop always returns

    def _post(self, batch: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """POST a batch; the (index, reason) of each trace the server refused (answer 207)."""
        assert self.url is not None
        req = urllib.request.Request(
            f"{self.url}/api/v1/tenants/{self.tenant}/traces",
            data=json.dumps({"traces": batch}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 404, 409, 413, 422):
                raise _Permanent(f"HTTP {exc.code}") from None
            raise
        if status != 207:
            return []
        return _refusals(json.loads(body).get("results") or [])


def _call_id(kwargs: Any) -> str | None:
    value = kwargs.get("litellm_call_id") if isinstance(kwargs, dict) else None
    return value if isinstance(value, str) else None


def _internal(kwargs: Any) -> bool:
    meta = (kwargs.get("litellm_params") or {}).get("metadata") or {} if isinstance(kwargs, dict) else {}
    return bool(meta.get("agnt_internal"))


_MAX_REASON = 300


def _reason(error: Any) -> str:
    """One line naming why a trace was refused: the error's code and message, never the trace itself."""
    if isinstance(error, AgntError):
        code, message = error.code, error.message
    elif isinstance(error, dict):
        code, message = str(error.get("code") or "error"), str(error.get("message") or "")
    else:
        code, message = "error", str(error)
    text = " ".join(f"{code}: {message}".split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _refusals(results: list[Any]) -> list[tuple[int, str]]:
    return [
        (int(r.get("index", i)), _reason(r["error"]))
        for i, r in enumerate(results)
        if isinstance(r, dict) and r.get("error") is not None
    ]


# -- LiteLLM's logging worker ------------------------------------------------------------------------------


def _logging_worker() -> Any:
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # another LiteLLM version: it logs some other way
        return None
    return GLOBAL_LOGGING_WORKER


async def _drain_litellm_logging(deadline: float) -> None:
    """Await LiteLLM's pending logging on this event loop: the tasks that hand success events to its
    logging worker, then the worker's queue (which calls our hooks)."""
    try:
        from litellm.responses import streaming_iterator

        drain_logging_tasks: Any = getattr(streaming_iterator, "drain_logging_tasks", None)
    except ImportError:
        drain_logging_tasks = None
    worker = _logging_worker()
    try:
        if drain_logging_tasks is not None:
            await drain_logging_tasks(max(0.0, deadline - time.monotonic()))
        if worker is not None:
            await asyncio.wait_for(worker.flush(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("agnt-traces: LiteLLM's logging worker did not finish in time; some calls may be dropped")


def _run_litellm_leftovers(timeout: float) -> None:
    """Run the logging LiteLLM left queued on an event loop that has ended (e.g. after ``asyncio.run``),
    on a short-lived loop of our own. Does nothing inside a running loop, or while the worker's loop
    still runs (in another thread)."""
    try:
        asyncio.get_running_loop()
        return
    except RuntimeError:
        pass
    worker = _logging_worker()
    if worker is None or not getattr(worker, "pending_count", 0):
        return
    bound = getattr(worker, "_bound_loop", None)
    if bound is not None and bound.is_running():
        return
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_drain_litellm_logging(time.monotonic() + timeout))
        loop.run_until_complete(worker.stop())  # its worker task on our loop: stopped before the loop closes
    except Exception:  # best effort: what is left is counted by the caller
        log.debug("running LiteLLM's leftover logging failed", exc_info=True)
    finally:
        loop.close()


class _Permanent(Exception):
    """The server answered and refused: retrying the same batch cannot help."""


class _LocalStore:
    """A private event loop on the worker thread, holding the project's own store."""

    def __init__(self, path: str | None, tenant: str) -> None:
        from ..config import Settings

        self._loop = asyncio.new_event_loop()
        self._tenant = tenant
        self._settings = Settings(db_path=str(path), tenant=tenant)
        self._app: Any = None

    def write(self, batch: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Store a batch; the (index, reason) of each trace refused (the others are stored)."""
        return self._loop.run_until_complete(self._write(batch))

    async def _write(self, batch: list[dict[str, Any]]) -> list[tuple[int, str]]:
        if self._app is None:
            from ..app import App
            from ..services.traces import TraceService
            from ..store import open_store

            store = await open_store(self._settings.db_path)
            self._app = App(
                settings=self._settings, store=store, traces=TraceService(store, self._settings.price_overrides)
            )
        outcomes = await self._app.traces.ingest_each(self._tenant, batch)
        return [(i, _reason(o)) for i, o in enumerate(outcomes) if isinstance(o, AgntError)]

    def close(self) -> None:
        if self._app is not None:
            self._loop.run_until_complete(self._app.close())
        self._loop.close()
