"""Playground sessions: open a trace, edit, run on real models, diff, save to the draft.

A session is stored as one JSON document with a revision counter; every change is a compare-and-set
on that revision (retried on a race), so concurrent calls never lose an edit. A session's runs are
its playground traces, written atomically with each call, so concurrent ``run_session`` calls never
overwrite each other and a crash never leaves a run without its trace.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import ValidationError

from ..compile_pool import check_content_async, compile_prompt_async
from ..compiler.pipeline import CompileResult
from ..compiler.values import check_values
from ..config import Settings
from ..diff import diff_content, diff_messages, diff_text, merge
from ..errors import AgntError, Conflict, InvalidArgument, NotFound, from_validation_error
from ..ids import ms_to_rfc3339, new_id, now_ms
from ..limits import DIFF_MAX_CHARS, check_max_chars
from ..llm.policy import ModelPolicy
from ..llm.providers import check_provider
from ..models import BLOCK_ID_RE, Block, ModelConfig, PromptContent, Trace, message_text
from ..playground_session import PlaygroundSession, SessionRun
from ..replayability import replay_problems
from ..store.base import PromptRecord, SessionRecord, Store
from .callcache import CachedCaller, SpendGuard, request_hash
from .playground_results import (
    CompiledSession,
    DeletedSession,
    DiffBody,
    ModelEstimate,
    ModelRunDiff,
    RunDeltas,
    RunOutcome,
    SavedSession,
    SessionDiff,
    SessionList,
    SessionListing,
    SessionVariables,
    SessionView,
    TraceDiff,
)
from .prompts import PromptService, check_prompt_name, parse_content
from .runner import CallContext
from .traces import TraceService

__all__ = ["PlaygroundService"]


logger = logging.getLogger(__name__)

Op = Literal["update", "insert", "delete", "move"]
ProgressFn = Callable[[int, int, str], Awaitable[None]]
MAX_MODELS = 8
CAS_ATTEMPTS = 8


def _literal_text(text: str) -> str:
    """Message text as a template that renders to exactly that text."""
    if "{{" in text or "{%" in text or "{#" in text:
        return "{% raw %}" + text.replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}") + "{% endraw %}"
    return text


def literal_content(trace: Trace, policy: ModelPolicy) -> PromptContent:
    """Blocks for a trace whose content is unknown: one per message, the system message first."""
    blocks = []
    if trace.manifest.system:
        blocks.append(Block(id="system", role="system", content=_literal_text(trace.manifest.system)))
    for i, message in enumerate(trace.messages, start=1):
        role = message.get("role")
        blocks.append(
            Block(
                id=f"m{i}",
                role=role if role in ("system", "user", "assistant") else "user",
                content=_literal_text(message_text(message.get("content"))),
            )
        )
    return PromptContent(blocks=blocks, model=_trace_model(trace, policy)[0], tools=trace.manifest.tools)


def _trace_model(trace: Trace, policy: ModelPolicy) -> tuple[ModelConfig, builtins.list[str]]:
    """The model a trace names, with only the params this server would send (a trace is data anyone
    could have posted: its api_base, headers or unknown params are left out, never called), and the
    names of the params left out."""
    params = trace.manifest.model.get("params") if isinstance(trace.manifest.model, dict) else None
    filtered = policy.filter_params(params if isinstance(params, dict) else {})
    model = ModelConfig(
        provider=trace.model.provider or "agnt-local",
        name=trace.model.name or "echo",
        params=filtered.params,
    )
    return model, sorted(filtered.dropped)


def _dropped_note(names: builtins.list[str]) -> str:
    return (
        f"the trace's model params {', '.join(map(repr, names))} are not allowed on this server and were left "
        "out of the session's model (keys, endpoints and headers are the server's choice; update_models sets "
        "allowed params)"
    )


class PlaygroundService:
    def __init__(self, store: Store, traces: TraceService, prompts: PromptService, settings: Settings) -> None:
        self.store = store
        self.traces = traces
        self.prompts = prompts
        self.settings = settings

    # -- loading and saving session documents ---------------------------------------------------------

    async def _load(self, tenant: str, session_id: str) -> SessionRecord:
        rec = await self.store.get_session(tenant, session_id)
        idle_ms = self.settings.session_idle_seconds * 1000
        if rec is not None and rec.updated_at < now_ms() - idle_ms:
            await self.store.delete_session(tenant, session_id)
            rec = None
        if rec is None:
            raise self._session_not_found(session_id)
        return rec

    def _session_not_found(self, session_id: str, outcome: str = "") -> NotFound:
        return NotFound(
            f"session {session_id!r} not found{outcome} (sessions expire after "
            f"{self.settings.session_idle_seconds / 3600:g} h idle): open_playground on a trace starts one",
            {"sessionId": session_id},
        )

    async def _mutate(
        self, tenant: str, session_id: str, change: Callable[[PlaygroundSession], Awaitable[None] | None]
    ) -> SessionRecord:
        """Apply ``change`` (a function or a coroutine function) to a copy of the session with
        compare-and-set, retrying on a race. Only the session's row is read: never its runs."""
        for _ in range(CAS_ATTEMPTS):
            rec = await self._load(tenant, session_id)
            session = rec.session.model_copy(deep=True)
            changed = change(session)
            if inspect.isawaitable(changed):
                await changed
            expected = rec.revision
            rec.session, rec.revision, rec.updated_at = session, expected + 1, now_ms()
            if await self.store.update_session(tenant, rec, expected):
                return rec
        raise Conflict(
            f"session {session_id!r} is being changed by other calls right now; try again",
            {"sessionId": session_id},
        )

    async def _view(self, tenant: str, rec: SessionRecord) -> SessionView:
        """The session as clients see it, with its runs (read here, once, without building traces)."""
        return self.view(rec, await self.store.session_runs(tenant, rec.id))

    @staticmethod
    def view(rec: SessionRecord, runs: builtins.list[SessionRun]) -> SessionView:
        session = rec.session
        content = session.content
        return SessionView.model_construct(
            id=rec.id,
            trace_id=rec.trace_id,
            prompt_name=session.prompt_name,
            literal=session.literal,
            base_etag=session.base_etag,
            base_version=session.base_version,
            base_revision=session.base_revision,
            etag=content.etag,
            blocks=content.blocks,
            variables=SessionVariables.model_construct(declarations=content.variables, values=session.values),
            models=session.models,
            tools=content.tools,
            input_messages=session.input_messages,
            runs=runs,
            notes=session.notes,
            replayable=not session.replay_issues,
            replay_issues=[text for _, text in session.replay_issues],
            revision=rec.revision,
            created_at=ms_to_rfc3339(rec.created_at),
            updated_at=ms_to_rfc3339(rec.updated_at),
        )

    # -- the tools --------------------------------------------------------------------------------------

    async def open(self, tenant: str, trace_id: str) -> SessionView:
        trace = await self.traces.get(tenant, trace_id)
        await self.store.expire_sessions(now_ms() - int(self.settings.session_idle_seconds * 1000))
        content = await self.store.get_content(tenant, trace.etag) if trace.etag else None
        base_revision = None
        base_version = trace.prompt_version
        if content is not None:
            # Exact version by etag; the trace's variables tell how many messages came from blocks.
            try:
                block_count = (await compile_prompt_async(content, trace.variables)).block_messages
            except Exception:
                block_count = 0
            input_messages = trace.messages[block_count:]
            literal = False
            if trace.prompt_name:
                prompt = await self.store.get_prompt(tenant, trace.prompt_name)
                if prompt is not None:
                    base_revision = prompt.draft_revision
                    base_version = await self.store.version_for_etag(tenant, prompt.name, content.etag) or base_version
        else:
            content = literal_content(trace, self.settings.policy())
            input_messages = []
            literal = True
        model, dropped = _trace_model(trace, self.settings.policy())
        now = now_ms()
        session = PlaygroundSession(
            prompt_name=trace.prompt_name,
            literal=literal,
            base_etag=trace.etag if not literal else None,
            base_version=base_version,
            base_revision=base_revision,
            content=content.model_copy(update={"model": model}),
            values=dict(trace.variables),
            models=[model],
            input_messages=input_messages,
            notes=[_dropped_note(dropped)] if dropped else [],
            replay_issues=builtins.list(replay_problems(trace)),
        )
        rec = SessionRecord(
            id=new_id(now), trace_id=trace.id, session=session, revision=1, created_at=now, updated_at=now
        )
        await self.store.create_session(tenant, rec)
        return self.view(rec, [])

    async def get(self, tenant: str, session_id: str) -> SessionView:
        return await self._view(tenant, await self._load(tenant, session_id))

    async def content_to_save(self, tenant: str, session_id: str) -> tuple[str | None, PromptContent]:
        """(the prompt the session edits, the content a save would write): the session's row alone."""
        session = (await self._load(tenant, session_id)).session
        return session.prompt_name, session.content_to_save()

    async def list(self, tenant: str, limit: int = 50) -> SessionList:
        cutoff = now_ms() - self.settings.session_idle_seconds * 1000
        rows = await self.store.list_sessions(tenant, limit)
        return SessionList.model_construct(
            sessions=[
                SessionListing.model_construct(
                    id=r.id,
                    trace_id=r.trace_id,
                    prompt_name=r.session.prompt_name,
                    models=[f"{m.provider}/{m.name}" for m in r.session.models],
                    run_count=r.run_count or 0,
                    updated_at=ms_to_rfc3339(r.updated_at),
                )
                for r in rows
                if r.updated_at >= cutoff
            ]
        )

    async def delete(self, tenant: str, session_id: str) -> DeletedSession:
        if not await self.store.delete_session(tenant, session_id):
            raise NotFound(f"session {session_id!r} not found", {"sessionId": session_id})
        return DeletedSession(id=session_id, deleted=True)

    async def edit_block(
        self,
        tenant: str,
        session_id: str,
        block_id: str,
        op: Op = "update",
        *,
        content: str | None = None,
        condition: str | None = None,
        role: str | None = None,
        after: str | None = None,
    ) -> SessionView:
        if op not in ("update", "insert", "delete", "move"):
            raise InvalidArgument(f"op {op!r} is invalid: use update, insert, delete or move", {"field": "op"})

        async def change(session: PlaygroundSession) -> None:
            blocks: builtins.list[dict[str, Any]] = [b.model_dump() for b in session.content.blocks]
            ids = [b["id"] for b in blocks]

            def index_of(bid: str, field: str = "block_id") -> int:
                if bid not in ids:
                    raise NotFound(
                        f"{field} {bid!r} is not a block of this session (blocks: {', '.join(ids) or 'none'})",
                        {"field": field, "blockId": bid},
                    )
                return ids.index(bid)

            def position_after(anchor: str | None) -> int:
                return 0 if anchor is None else index_of(anchor, "after") + 1

            if op == "update":
                if content is None and condition is None and role is None:
                    raise InvalidArgument("update needs content, condition or role", {"field": "content"})
                block = blocks[index_of(block_id)]
                if content is not None:
                    block["content"] = content
                if condition is not None:
                    block["condition"] = condition or None  # "" clears the condition
                if role is not None:
                    block["role"] = role
            elif op == "insert":
                if not BLOCK_ID_RE.match(block_id):
                    raise InvalidArgument(
                        f"block_id {block_id!r} is invalid: use 1-64 characters of a-z, 0-9, '_' or '-'",
                        {"field": "block_id"},
                    )
                if block_id in ids:
                    raise Conflict(
                        f"block {block_id!r} already exists: pick a new id, or use op 'update'", {"blockId": block_id}
                    )
                new = {"id": block_id, "role": role or "user", "content": content or "", "condition": condition or None}
                blocks.insert(position_after(after), new)
            elif op == "delete":
                blocks.pop(index_of(block_id))
            else:  # move
                block = blocks.pop(index_of(block_id))
                if after == block_id:
                    raise InvalidArgument("a block cannot be moved after itself", {"field": "after"})
                ids.remove(block_id)
                blocks.insert(position_after(after), block)
            new_content = parse_content({**session.content.canonical(), "blocks": blocks}, None)
            await check_content_async(new_content)
            session.set_content(new_content)  # the blocks are the caller's now: the run is theirs

        return await self._view(tenant, await self._mutate(tenant, session_id, change))

    async def update_variables(
        self,
        tenant: str,
        session_id: str,
        values: dict[str, Any],
        declarations: builtins.list[dict[str, Any]] | None = None,
    ) -> SessionView:
        """Set values (type-checked; null unsets) and, optionally, declare or redeclare variables by name."""
        if not isinstance(values, dict):
            raise InvalidArgument("values must be an object of variable name to value (null unsets)")
        if declarations is not None and not isinstance(declarations, list):
            raise InvalidArgument("declarations must be a list of {name, type, required, default, description}")

        async def change(session: PlaygroundSession) -> None:
            if declarations:
                by_name: dict[str, Any] = {v.name: v.model_dump(mode="json") for v in session.content.variables}
                for i, decl in enumerate(declarations):
                    if not isinstance(decl, dict) or not isinstance(decl.get("name"), str):
                        raise InvalidArgument(f"declarations[{i}] needs a name", {"field": f"declarations[{i}]"})
                    by_name[decl["name"]] = decl
                new_content = parse_content(
                    {**session.content.canonical(), "variables": builtins.list(by_name.values())}, None
                )
                await check_content_async(new_content)
                session.content = new_content
            content = session.content
            to_set = {k: v for k, v in values.items() if v is not None}
            declared = {v.name for v in content.variables}
            undeclared = sorted(set(to_set) - declared)
            if undeclared:
                raise InvalidArgument(
                    f"variable(s) {', '.join(map(repr, undeclared))} are not declared in this session "
                    f"(declared: {', '.join(sorted(declared)) or 'none'}): fix the name, or declare it with "
                    "declarations=[{name, type, ...}] in the same call",
                    {"field": "values", "undeclared": undeclared, "declared": sorted(declared)},
                )
            check_values(content.variables, to_set, partial=True)
            session.set_values(values)

        return await self._view(tenant, await self._mutate(tenant, session_id, change))

    async def update_models(self, tenant: str, session_id: str, models: builtins.list[Any]) -> SessionView:
        if not isinstance(models, list) or not 1 <= len(models) <= MAX_MODELS:
            raise InvalidArgument(f"models must be a list of 1 to {MAX_MODELS} models", {"field": "models"})
        parsed = []
        policy = self.settings.policy()
        for i, m in enumerate(models):
            try:
                model = ModelConfig.model_validate(m)
            except ValidationError as exc:
                raise from_validation_error(exc, f"models[{i}]") from None
            check_provider(model.provider, f"models[{i}].provider")
            policy.check_params(model.params, f"models[{i}].params")
            parsed.append(model)
        keys = [(m.provider, m.name, repr(sorted(m.model_dump(mode="json")["params"].items()))) for m in parsed]
        if len(set(keys)) != len(keys):
            raise InvalidArgument("models lists the same model twice", {"field": "models"})

        def change(session: PlaygroundSession) -> None:
            session.set_models(parsed)  # the models are the caller's now

        return await self._view(tenant, await self._mutate(tenant, session_id, change))

    @staticmethod
    async def _compile(session: PlaygroundSession) -> tuple[PromptContent, CompileResult]:
        """The session compiled off the event loop (see ``compile_pool``)."""
        content = session.content
        return content, await compile_prompt_async(content, session.values, session.input_messages)

    async def _compile_per_model(
        self, session: PlaygroundSession
    ) -> builtins.list[tuple[PromptContent, CompileResult]]:
        """The session's content and compiled prompt for each of its models. Templates cannot see the model,
        so the session is rendered once and only the manifest's model and etag differ between models."""
        content, compiled = await self._compile(session)
        plans = []
        for m in session.models:
            with_model = content.model_copy(update={"model": m})
            manifest = {**compiled.manifest, "model": with_model.model.model_dump(mode="json"), "etag": with_model.etag}
            plans.append((with_model, dataclasses.replace(compiled, manifest=manifest)))
        return plans

    async def compile(self, tenant: str, session_id: str) -> CompiledSession:
        from ..llm import estimate_cost, estimate_tokens, preload

        await preload()  # the token counter needs LiteLLM: load it off the event loop the first time
        rec = await self._load(tenant, session_id)
        _, compiled = await self._compile(rec.session)
        models = rec.session.models
        call_settings = self.prompts.runner.call_settings()

        def estimate() -> builtins.list[ModelEstimate]:  # token_counter is CPU-heavy: not on the loop
            estimates = []
            for model in models:
                tokens = estimate_tokens(model, compiled.manifest["system"], compiled.messages)
                estimates.append(
                    ModelEstimate.model_construct(
                        model=f"{model.provider}/{model.name}",
                        input_tokens=tokens,
                        input_cost=estimate_cost(model, tokens, 0, call_settings),
                    )
                )
            return estimates

        estimates = await asyncio.to_thread(estimate)
        return CompiledSession.model_construct(
            manifest=compiled.manifest,
            messages=compiled.messages,
            warnings=compiled.warnings,
            estimates=estimates,
            notes=rec.session.notes or None,
        )

    async def _guard(
        self,
        tenant: str,
        runs: builtins.list[SessionRun],
        caller: CachedCaller,
        plans: builtins.list[Any],
    ) -> None:
        """Refuse the whole run before any call when its estimate would take the session past its spend limit
        (what its runs spent so far, plus the estimate of each call that the cache will not answer).

        Raises:
            BudgetExceeded: naming the limit, what was spent and the estimate.
        """
        from ..llm import preload

        guard = SpendGuard(
            max_usd=self.settings.session_budget_usd,
            max_tokens=self.settings.session_budget_tokens,
            spent_usd=sum(r.cost or 0.0 for r in runs),
            spent_tokens=sum(r.total_tokens or 0 for r in runs if not r.cached),
            scope="this playground session",
            field_name="AGNT_TRACES_SESSION_BUDGET_USD",
        )
        await preload()
        for content, compiled in plans:
            if not caller.fresh and await self.store.cache_get(
                tenant, request_hash(self.prompts.runner, compiled, content.model)
            ):
                continue
            usd, tokens = caller.estimate(compiled, content.model, None)
            await guard.reserve(usd, tokens)

    async def run(
        self, tenant: str, session_id: str, progress: ProgressFn | None = None, *, fresh: bool = False
    ) -> RunOutcome:
        """Run the session on every model concurrently; each call is recorded as a trace. An identical request
        answered before reuses that answer unless ``fresh``; a run past the session's spend limit is refused.

        Raises:
            BudgetExceeded: the run's estimate would cross the session's limit; no call was made.
        """
        rec = await self._load(tenant, session_id)
        session = rec.session
        issues = [text for _, text in session.replay_issues]
        if issues:
            raise InvalidArgument(
                f"the trace this session was opened from cannot be replayed faithfully: {'; '.join(issues)}. "
                "Fix what the session lacks first (update_models for the model; edit_block for missing content)",
                {"sessionId": session_id, "replayIssues": issues},
            )
        plans = await self._compile_per_model(session)  # compile errors surface before any call
        caller = CachedCaller(self.store, self.prompts.runner, fresh=fresh)
        await self._guard(tenant, await self.store.session_runs(tenant, session_id), caller, plans)
        limit = asyncio.Semaphore(max(1, self.settings.max_concurrent_runs))
        done = 0

        async def one(content: PromptContent, compiled: CompileResult) -> SessionRun:
            nonlocal done
            label = f"{content.model.provider}/{content.model.name}"
            async with limit:
                await self.store.put_content(tenant, content)
                try:
                    trace, _ = await caller.call(
                        tenant,
                        compiled,
                        content.model,
                        CallContext(
                            prompt_name=session.prompt_name,
                            prompt_version=None,
                            source="playground",
                            session_id=session_id,
                            parent_trace_id=rec.trace_id,
                        ),
                    )
                    run = SessionRun.of_trace(trace)
                except Exception as exc:  # one model failing does not sink the others
                    # No traceback: a log line never carries file paths or what a provider sent.
                    logger.error("playground run on %s failed (%s)", label, type(exc).__name__)
                    run = SessionRun.failed(new_id(), label, type(exc).__name__, ms_to_rfc3339(now_ms()))
            done += 1
            if progress is not None:
                await progress(done, len(plans), f"{label}: {run.status}")
            return run

        runs = await asyncio.gather(*(one(c, comp) for c, comp in plans))
        return RunOutcome.model_construct(session_id=session_id, runs=builtins.list(runs))

    async def diff(self, tenant: str, session_id: str, max_chars: int | None = DIFF_MAX_CHARS) -> SessionDiff:
        check_max_chars(max_chars)
        rec = await self._load(tenant, session_id)
        session = rec.session
        trace = await self.traces.get(tenant, rec.trace_id)
        session_content = session.content
        if session.base_etag:
            base = await self.store.get_content(tenant, session.base_etag)
        else:
            base = literal_content(trace, self.settings.policy())
        assert base is not None
        base = base.model_copy(update={"model": _trace_model(trace, self.settings.policy())[0]})
        # Diffs are pure-Python difflib (seconds for large prompts): in a thread, so the loop keeps serving.
        parts = [await asyncio.to_thread(diff_content, base, session_content)]
        _, compiled = await self._compile(session)
        before = [{"role": "system", "content": trace.manifest.system}] if trace.manifest.system else []
        after = [{"role": "system", "content": compiled.manifest["system"]}] if compiled.manifest["system"] else []
        parts.append(await asyncio.to_thread(diff_messages, before + trace.messages, after + compiled.messages))
        models = []
        latest: dict[str, SessionRun] = {}
        for run in await self.store.session_runs(tenant, rec.id):
            latest[run.model] = run  # runs are oldest first: keep each model's latest
        for label, run in latest.items():
            out = await asyncio.to_thread(diff_text, trace.output, run.output, part="output", id=label)
            parts.append(out)
            models.append(
                ModelRunDiff.model_construct(
                    model=label,
                    trace_id=run.trace_id,
                    status=run.status,
                    output_changed=out.changed,
                    deltas=RunDeltas.model_construct(
                        input_tokens=_delta(run.input_tokens, trace.input_tokens),
                        output_tokens=_delta(run.output_tokens, trace.output_tokens),
                        total_tokens=_delta(run.total_tokens, trace.total_tokens),
                        cost=_delta(run.cost, trace.cost),
                        duration=_delta(run.duration, trace.duration),
                    ),
                )
            )
        body = DiffBody.of(merge(*parts), max_chars)
        return SessionDiff.model_construct(
            **{name: getattr(body, name) for name in DiffBody.model_fields},
            trace_id=trace.id,
            session_id=rec.id,
            models=models,
        )

    async def diff_trace(
        self, tenant: str, trace_id: str, against: str | int | None = None, max_chars: int | None = DIFF_MAX_CHARS
    ) -> TraceDiff:
        """The trace's content vs the prompt now, and what that change does to this very call.

        ``unified`` and ``summary`` hold both diffs once: the content files (``blocks/…``, ``variables``,
        ``model``, ``tools``) and then the rendered ``messages`` file. A trace whose prompt content is not
        stored (ingested from elsewhere) has no content diff — only the rendered one.
        """
        check_max_chars(max_chars)
        trace = await self.traces.get(tenant, trace_id)
        if not trace.prompt_name:
            raise InvalidArgument(
                f"trace {trace_id!r} names no prompt, so there is nothing to diff it against; "
                "open_playground on it and save_session with a prompt_name to make one",
                {"field": "trace_id"},
            )
        rec = await self.prompts.record(tenant, trace.prompt_name)
        version: int | None = None
        label: str | None = None
        if against is None:
            label = "production" if "production" in rec.labels else "draft"
        elif isinstance(against, int) or (isinstance(against, str) and against.isdigit()):
            version = int(against)
        else:
            label = against
        _, current, cur_version, selected = await self.prompts.resolve(tenant, rec.name, version=version, label=label)
        original = await self.store.get_content(tenant, trace.etag) if trace.etag else None
        parts = []
        content_info: dict[str, Any]
        if original is not None:
            content_diff = await asyncio.to_thread(diff_content, original, current)
            parts.append(content_diff)
            content_info = {"changed": content_diff.changed}
        else:
            content_info = {
                "changed": None,
                "note": "this trace's prompt content is not stored (it was ingested), so only the rendered "
                "diff is shown: the current prompt compiled with the trace's variables vs what the trace sent",
            }
        # Rendered: the current content with this call's own variables and input messages.
        try:
            blocks = (
                (await compile_prompt_async(original, trace.variables)).block_messages
                if original is not None
                else len(trace.messages)
            )
        except Exception:
            blocks = len(trace.messages)
        inputs = trace.messages[blocks:]
        before = [{"role": "system", "content": trace.manifest.system}] if trace.manifest.system else []
        rendered: dict[str, Any]
        try:
            compiled = await compile_prompt_async(current, trace.variables, inputs)
            after = [{"role": "system", "content": compiled.manifest["system"]}] if compiled.manifest["system"] else []
            rendered_diff = await asyncio.to_thread(diff_messages, before + trace.messages, after + compiled.messages)
            parts.append(rendered_diff)
            rendered = {"changed": rendered_diff.changed, "warnings": compiled.warnings}
        except AgntError as err:
            rendered = {"changed": None, "error": err.to_dict()["error"]}
        return TraceDiff.model_validate(
            {
                "traceId": trace.id,
                "prompt": rec.name,
                "trace": {"etag": trace.etag, "version": trace.prompt_version, "contentKnown": original is not None},
                "against": {"selected": selected, "etag": current.etag, "version": cur_version},
                **merge(*parts).to_dict(max_chars),
                "content": content_info,
                "rendered": rendered,
            }
        )

    async def save(
        self,
        tenant: str,
        session_id: str,
        *,
        force: bool = False,
        prompt_name: str | None = None,
        replace_draft: bool = False,
    ) -> SavedSession:
        """Save the session's content as the prompt's draft.

        ``force`` overwrites a draft that another edit moved since the session opened. A session whose
        content is not that prompt's (opened from a trace with unknown content, or saved under another
        prompt's name) replaces an existing draft only with ``replace_draft``.

        The draft write and the session update are one transaction that also checks the session is still
        there, unchanged: a ``delete_session`` racing this call either wins (the answer is ``not_found`` and
        the draft is untouched) or loses (the draft is saved and the answer says so). An edit racing it makes
        it start again with the edited session.

        Raises:
            NotFound: the session does not exist (nothing was saved).
            Conflict: the draft moved (unless ``force``), or saving would replace another content's draft.
        """
        for _ in range(CAS_ATTEMPTS):
            rec = await self._load(tenant, session_id)
            session = rec.session
            name = prompt_name or session.prompt_name
            if not name:
                raise InvalidArgument(
                    "this session was opened from a trace with no stored prompt: pass prompt_name to save it "
                    "as that prompt's draft",
                    {"field": "prompt_name"},
                )
            check_prompt_name(name, "prompt_name")
            content = session.content_to_save()
            current = await self.store.get_prompt(tenant, name)
            foreign = session.literal or name != session.prompt_name
            if current is not None and foreign and not replace_draft:
                raise self._replace_refused(rec.trace_id, session, name, current, content)
            expected = (
                None if (force or (foreign and replace_draft)) else self._expected_draft_revision(session, current)
            )
            if current is not None and expected is not None and expected != current.draft_revision:
                conflict = diff_content(current.draft, content)
                raise Conflict(
                    f"the draft of {name!r} changed since this session opened (revision {expected} → "
                    f"{current.draft_revision}); nothing was saved. Look at details.diff (draft → session), then "
                    "save_session with force=true to overwrite it, or open a new session from a fresh trace",
                    {"prompt": name, "draftRevision": current.draft_revision, "diff": conflict.to_dict(DIFF_MAX_CHARS)},
                )

            def update(stored: PlaygroundSession, saved: PromptRecord, name: str = name) -> PlaygroundSession:
                return stored.saved_as(name, saved.draft_revision)

            outcome = await self.store.save_session_draft(
                tenant, session_id, rec.revision, name, content, expected_revision=expected, update_session=update
            )
            if outcome.status == "session_moved":
                continue  # edited meanwhile: save what the session holds now
            if outcome.status == "session_gone" or outcome.prompt is None:
                raise self._session_not_found(session_id, "; nothing was saved")
            saved = outcome.prompt
            return SavedSession.model_construct(
                prompt=name,
                draft_revision=saved.draft_revision,
                etag=saved.draft_etag,
                created=current is None,
                diff=DiffBody.of(diff_content(current.draft, content), DIFF_MAX_CHARS) if current is not None else None,
            )
        raise Conflict(
            f"session {session_id!r} is being changed by other calls right now; nothing was saved: try again",
            {"sessionId": session_id},
        )

    @staticmethod
    def _replace_refused(
        trace_id: str, session: PlaygroundSession, name: str, current: PromptRecord, content: PromptContent
    ) -> Conflict:
        """Not a concurrent edit of the same draft (which force settles) but other content altogether:
        replacing it is a choice of its own, never a retry."""
        what = (
            f"opened from trace {trace_id!r}, whose prompt content is not stored: its blocks are the "
            f"trace's {len(content.blocks)} message(s), one block each"
            if session.literal
            else f"opened from prompt {session.prompt_name!r}, not {name!r}"
        )
        return Conflict(
            f"nothing was saved: this session was {what}. Saving it to {name!r} would replace that prompt's "
            f"draft ({len(current.draft.blocks)} blocks, {len(current.draft.variables)} variables) with this "
            f"session's {len(content.blocks)} blocks and {len(content.variables)} variables (details.diff "
            "shows the change). To keep the draft, save under a new prompt_name. To replace the draft with "
            "this content, call save_session with replace_draft=true.",
            {
                "prompt": name,
                "draftRevision": current.draft_revision,
                "field": "replace_draft",
                "diff": diff_content(current.draft, content).to_dict(DIFF_MAX_CHARS),
            },
        )

    @staticmethod
    def _expected_draft_revision(session: PlaygroundSession, current: PromptRecord | None) -> int:
        """The draft revision a save of the session's own prompt may overwrite: 0 for a new prompt, else the
        revision the session opened on (0 when the prompt did not exist then: someone created it since)."""
        if current is None:
            return 0
        base = session.base_revision
        return base if base is not None else 0


def _delta(new: float | None, old: float | None) -> float | None:
    if new is None or old is None:
        return None
    return round(new - old, 9)
