"""Golden cases, replays and the gate inside publish.

* A **golden case** pins a trace of a prompt: its exact compile context (variables, input messages, model,
  the content etag and version it ran on), its answer as the reference, and expectations (``required``,
  checks, an optional judge).
* A **replay** re-runs a prompt's golden cases with candidate content (the draft, a version, or a playground
  session) on one or more models, ``trials`` times each, in a background task with bounded concurrency.
  Every call is a trace (``source: "replay"``, ``metadata.replayId`` / ``caseId``); the report gives per
  case the checks, the output diff against the reference and token / cost / latency deltas, and per run
  pass rate, regressions, improvements, flaky cases, cost and p95 latency against the references.
  Replays live in the database: ``get_replay`` long-polls one, a restart marks an interrupted one ``error``.
* A **gate** (``set_gate``) makes ``publish`` of the draft need a passing replay of exactly the draft's
  etag; ``run_gate`` runs one, ``override_reason`` publishes without one (recorded on the version).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..compile_pool import compile_prompt_async
from ..config import Settings
from ..diff import diff_text
from ..errors import AgntError, Conflict, InvalidArgument, NotFound, from_validation_error
from ..golden_models import (
    Baseline,
    CompileContext,
    Deltas,
    DiffPreview,
    GatePolicy,
    GateRecord,
    GateSetting,
    GateVerdict,
    GoldenCaseDetail,
    GoldenCaseView,
    GoldenList,
    GoldenRecord,
    Judge,
    ModelRef,
    Outcome,
    PinResult,
    Reference,
    ReplayBudget,
    ReplayCaseResult,
    ReplayCaseView,
    ReplayError,
    ReplayListing,
    ReplayListItem,
    ReplayProgress,
    ReplayRecord,
    ReplayStarted,
    ReplaySummary,
    ReplayView,
    StoredDiff,
    TrialResult,
    UnpinResult,
)
from ..ids import ms_to_rfc3339, new_id, now_ms
from ..llm.providers import check_provider
from ..logs import log_failure
from ..models import Block, ModelConfig, PromptContent, Trace, VariableDecl
from ..store.base import Store
from .callcache import BudgetExceeded, CachedCaller, SpendGuard
from .checks import Answer, evaluate_checks_async, parse_checks, parse_judge
from .prompt_results import PublishResult
from .prompts import PromptService, check_prompt_name
from .queries import TraceQuery, validate_query
from .runner import CallContext
from .traces import TraceService

__all__ = ["GatePolicy", "GoldenService", "gate_failures"]  # GatePolicy: from golden_models, kept importable here

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], Awaitable[None]]

MAX_PIN = 500  # traces pinned by one call
MAX_CASES = 2_000  # golden cases of one prompt
MAX_TRIALS = 5
MAX_MODELS = 8
MAX_CALLS = 10_000  # cases x models x trials of one replay
MAX_WAIT = 50  # seconds get_replay may wait
REPLAY_CONCURRENCY = 4
REPORT_CASES = 25  # cases get_replay returns (worst first)
REPORT_DIFF_CHARS = 1_500  # per case, in a report
STORED_DIFF_CHARS = 4_000  # per case, stored
HEARTBEAT_MS = 5_000  # a running replay's row is touched at least this often
STALE_MS = 60_000  # a running replay not touched for this long, by a process that is gone, is dead
DEFAULT_BUDGET_USD = 10.0
DEFAULT_BUDGET_TOKENS = 5_000_000

_JUDGE_CONTENT = PromptContent(
    blocks=[
        Block(
            id="grader",
            role="system",
            content="You grade one answer of an AI model against a rubric. Reply with PASS or FAIL on the first "
            "line, then one sentence saying why.",
        ),
        Block(
            id="task",
            role="user",
            content="Rubric: {{ rubric }}\n\nThe conversation the answer replies to:\n{{ conversation }}\n\n"
            "The answer to grade:\n{{ answer }}",
        ),
    ],
    variables=[
        VariableDecl(name="rubric", type="string", required=True),
        VariableDecl(name="conversation", type="string", required=True),
        VariableDecl(name="answer", type="string", required=True),
    ],
)


def gate_failures(policy: GatePolicy, summary: ReplaySummary | None) -> list[str]:
    """Why a replay with this summary does not pass the policy (empty: it passes; no summary counts as an
    empty one)."""
    summary = summary or ReplaySummary()
    out = []
    if summary.stopped:
        out.append(f"the replay did not finish ({summary.stopped})")
    if policy.required_pass and summary.required_failed:
        out.append(f"{summary.required_failed} required case(s) failed")
    if policy.no_regressions and summary.regressions:
        out.append(f"{summary.regressions} case(s) regressed (passed on their reference, fail now)")
    rate = summary.pass_rate
    if policy.min_pass_rate is not None and (rate is None or rate < policy.min_pass_rate):
        out.append(f"pass rate {rate} is below {policy.min_pass_rate}")
    cost_delta = summary.cost_delta
    if policy.max_cost_increase is not None and cost_delta is not None and cost_delta > policy.max_cost_increase:
        out.append(f"cost per call changed by {cost_delta:+.1%}, more than {policy.max_cost_increase:+.1%}")
    p95_delta = summary.p95_delta
    if policy.max_p95_increase is not None and p95_delta is not None and p95_delta > policy.max_p95_increase:
        out.append(f"p95 latency changed by {p95_delta:+.1%}, more than {policy.max_p95_increase:+.1%}")
    return out


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], 6)


def _fraction(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old <= 0:
        return None
    return round(new / old - 1, 6)


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(new - old, 9)


def _token_delta(new: int | None, old: int | None) -> int | None:
    return None if new is None or old is None else new - old


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(slots=True)
class _Unit:
    """One call of a replay: a case on a model, one trial."""

    case: GoldenRecord
    model: ModelConfig
    trial: int


class GoldenService:
    def __init__(self, store: Store, traces: TraceService, prompts: PromptService, settings: Settings) -> None:
        self.store = store
        self.traces = traces
        self.prompts = prompts
        self.settings = settings
        self.owner = _owner()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self.playground: Any = None  # set by App: sessions as replay candidates

    # -- golden cases -------------------------------------------------------------------------------------

    async def _traces_for_filter(self, tenant: str, name: str, raw: Any) -> list[Trace]:
        if not isinstance(raw, dict):
            raise InvalidArgument("filter must be an object of list_traces arguments", {"field": "filter"})
        args = dict(raw)
        if args.get("prompt_name", name) != name:
            raise InvalidArgument(
                f"filter.prompt_name is {args['prompt_name']!r}: golden cases of {name!r} are pinned from its own "
                "traces; omit prompt_name",
                {"field": "filter.prompt_name"},
            )
        args["prompt_name"] = name
        wanted = args.pop("limit", 50)
        if isinstance(wanted, bool) or not isinstance(wanted, int) or not 1 <= wanted <= MAX_PIN:
            raise InvalidArgument(f"filter.limit must be 1 to {MAX_PIN} (default 50)", {"field": "filter.limit"})
        if "cursor" in args:
            raise InvalidArgument("filter takes no cursor: it pins the first `limit` matches", {"field": "filter"})
        found: list[Trace] = []
        cursor = None
        while len(found) < wanted:
            query = validate_query(TraceQuery, {**args, "limit": min(200, wanted - len(found)), "cursor": cursor})
            page = await self.store.list_traces(tenant, query.to_filter())
            for row in page.rows:
                trace = await self.store.get_trace(tenant, row.id)
                if trace is not None:
                    found.append(trace)
            cursor = page.next_cursor
            if cursor is None or not page.rows:
                break
        return found

    async def _traces_by_id(self, tenant: str, name: str, trace_ids: Any) -> list[Trace]:
        if not isinstance(trace_ids, list) or not trace_ids or not all(isinstance(t, str) for t in trace_ids):
            raise InvalidArgument("trace_ids must be a non-empty list of trace ids", {"field": "trace_ids"})
        if len(trace_ids) > MAX_PIN:
            raise InvalidArgument(
                f"at most {MAX_PIN} trace_ids per call; got {len(trace_ids)}: pin them in several calls",
                {"field": "trace_ids"},
            )
        found, missing = [], []
        for trace_id in dict.fromkeys(trace_ids):
            trace = await self.store.get_trace(tenant, trace_id) if len(trace_id) <= 64 else None
            if trace is None:
                missing.append(trace_id)
            else:
                found.append(trace)
        if missing:
            shown = ", ".join(repr(m[:64]) for m in missing[:5]) + (" …" if len(missing) > 5 else "")
            raise NotFound(
                f"{len(missing)} trace(s) not found ({shown}); nothing was pinned: list_traces shows the ids",
                {"field": "trace_ids", "missing": [m[:64] for m in missing[:20]]},
            )
        others = [t.id for t in found if t.prompt_name != name]
        if others:
            raise InvalidArgument(
                f"{len(others)} trace(s) are not calls of prompt {name!r} (e.g. {others[0]!r}); nothing was pinned",
                {"field": "trace_ids", "traceIds": others[:20]},
            )
        return found

    async def _context_of(self, tenant: str, trace: Trace, draft: PromptContent) -> CompileContext:
        """The trace's exact compile context: which of its messages came from blocks is known from the
        content it was compiled from (kept by etag), else from the draft compiled with its variables."""
        content = await self.store.get_content(tenant, trace.etag) if trace.etag else None
        try:
            blocks = (await compile_prompt_async(content or draft, trace.variables)).block_messages
        except AgntError:
            blocks = len(trace.messages)
        model = ModelRef(
            provider=trace.model.provider or draft.model.provider,
            name=trace.model.name or draft.model.name,
            params=self.settings.policy().filter_params(dict(trace.manifest.model.get("params") or {})).params,
        )
        return CompileContext(
            variables=trace.variables,
            input_messages=trace.messages[blocks:],
            model=model,
            etag=trace.etag,
            version=trace.prompt_version,
            content_known=content is not None,
        )

    @staticmethod
    def _reference(trace: Trace) -> Reference:
        return Reference(
            output=trace.output,
            tool_calls=trace.tool_calls,
            status=trace.status,
            input_tokens=trace.input_tokens,
            output_tokens=trace.output_tokens,
            total_tokens=trace.total_tokens,
            cost=trace.cost,
            duration=trace.duration,
            model=f"{trace.model.provider}/{trace.model.name}",
        )

    @staticmethod
    def case_view(rec: GoldenRecord) -> GoldenCaseView:
        """A case's expectations."""
        return GoldenCaseView(
            id=rec.id, trace_id=rec.trace_id, required=rec.required, checks=rec.checks, judge=rec.judge
        )

    @staticmethod
    def case_detail(rec: GoldenRecord) -> GoldenCaseDetail:
        """A case's expectations, model, reference preview and times."""
        model = rec.context.model
        return GoldenCaseDetail(
            id=rec.id,
            trace_id=rec.trace_id,
            required=rec.required,
            checks=rec.checks,
            judge=rec.judge,
            version=rec.context.version,
            model=f"{model.provider}/{model.name}",
            reference_preview=(rec.reference.output or "")[:120],
            created_at=ms_to_rfc3339(rec.created_at),
            updated_at=ms_to_rfc3339(rec.updated_at),
        )

    async def pin(
        self,
        tenant: str,
        name: str,
        *,
        trace_ids: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        required: bool = False,
        checks: Any = None,
        judge: Any = None,
    ) -> PinResult:
        """Pin traces (by id, or the first matches of a ``list_traces`` filter) as golden cases of ``name``.

        Raises:
            NotFound: the prompt, or a trace id of this tenant, does not exist (nothing is pinned).
            InvalidArgument: a bad check, judge or filter; a trace of another prompt; too many cases.
        """
        rec = await self.prompts.record(tenant, name)
        if (trace_ids is None) == (filter is None):
            raise InvalidArgument("pass trace_ids or filter (one of them)", {"field": "trace_ids"})
        if not isinstance(required, bool):
            raise InvalidArgument("required must be true or false", {"field": "required"})
        parsed_checks = parse_checks(checks)
        parsed_judge = parse_judge(judge, self.settings.policy())
        traces = (
            await self._traces_by_id(tenant, name, trace_ids)
            if trace_ids is not None
            else await self._traces_for_filter(tenant, name, filter)
        )
        if not traces:
            raise NotFound("no trace matches the filter; nothing was pinned", {"field": "filter"})
        now = now_ms()
        records = [
            GoldenRecord(
                id=new_id(now),
                prompt_name=name,
                trace_id=t.id,
                required=required,
                checks=parsed_checks,
                judge=parsed_judge,
                context=await self._context_of(tenant, t, rec.draft),
                reference=self._reference(t),
                created_at=now,
                updated_at=now,
            )
            for t in traces
        ]
        try:
            stored = await self.store.pin_golden(tenant, records, MAX_CASES)
        except OverflowError:
            raise InvalidArgument(
                f"prompt {name!r} would have more than {MAX_CASES} golden cases; unpin some first",
                {"field": "trace_ids"},
            ) from None
        return PinResult(cases=[self.case_view(r) for r in stored])

    async def list_cases(self, tenant: str, name: str) -> GoldenList:
        """A prompt's golden cases and its gate.

        Raises:
            NotFound: no such prompt.
        """
        await self.prompts.record(tenant, name)
        cases = await self.store.list_golden(tenant, name)
        return GoldenList(
            prompt=name, cases=[self.case_detail(r) for r in cases], gate=await self.store.get_gate(tenant, name)
        )

    async def update(
        self,
        tenant: str,
        name: str,
        case_id: str,
        *,
        required: bool | None = None,
        checks: Any = None,
        judge: Any = None,
    ) -> GoldenCaseView:
        """Change a case's expectations; None keeps a field, ``judge={}`` removes the judge."""
        check_prompt_name(name)
        cases = {r.id: r for r in await self.store.list_golden(tenant, name)}
        rec = cases.get(case_id)
        if rec is None:
            raise NotFound(
                f"prompt {name!r} has no golden case {case_id!r}: list_golden shows its cases",
                {"caseId": case_id[:64]},
            )
        changes: dict[str, Any] = {"updated_at": now_ms()}
        if required is not None:
            if not isinstance(required, bool):
                raise InvalidArgument("required must be true or false", {"field": "required"})
            changes["required"] = required
        if checks is not None:
            changes["checks"] = parse_checks(checks)
        if judge is not None:
            changes["judge"] = None if judge == {} else parse_judge(judge, self.settings.policy())
        changed = rec.model_copy(update=changes)
        if not await self.store.update_golden(tenant, changed):
            raise NotFound(f"golden case {case_id!r} was unpinned meanwhile", {"caseId": case_id})
        return self.case_view(changed)

    async def unpin(self, tenant: str, name: str, case_ids: Any) -> UnpinResult:
        check_prompt_name(name)
        if not isinstance(case_ids, list) or not case_ids or not all(isinstance(c, str) for c in case_ids):
            raise InvalidArgument("case_ids must be a non-empty list of case ids", {"field": "case_ids"})
        if len(case_ids) > MAX_CASES:
            raise InvalidArgument(f"at most {MAX_CASES} case_ids per call", {"field": "case_ids"})
        wanted = list(dict.fromkeys(case_ids))
        removed = await self.store.unpin_golden(tenant, name, wanted)
        gone = set(removed)
        return UnpinResult(removed=len(removed), not_found=[c[:64] for c in wanted if c not in gone][:20])

    # -- the gate -----------------------------------------------------------------------------------------

    async def set_gate(self, tenant: str, name: str, policy: GatePolicy | dict[str, Any] | None) -> GateSetting:
        """Set the prompt's gate (a policy object, camelCase or snake_case names), or remove it with None.

        Raises:
            NotFound: no such prompt.
            InvalidArgument: a policy that is not an object, or with unknown or out-of-range fields.
        """
        await self.prompts.record(tenant, name)
        if policy is None:
            await self.store.set_gate(tenant, name, None)
            return GateSetting(prompt=name, gate=None)
        if not isinstance(policy, GatePolicy | dict):
            raise InvalidArgument("policy must be an object, or null to remove the gate", {"field": "policy"})
        try:
            parsed = policy if isinstance(policy, GatePolicy) else GatePolicy.model_validate(policy)
        except ValidationError as exc:
            raise from_validation_error(exc, "policy") from None
        await self.store.set_gate(tenant, name, parsed)
        return GateSetting(prompt=name, gate=parsed)

    async def get_gate(self, tenant: str, name: str) -> GateSetting:
        await self.prompts.record(tenant, name)
        return GateSetting(prompt=name, gate=await self.store.get_gate(tenant, name))

    async def _policy(self, tenant: str, name: str) -> tuple[GatePolicy, bool]:
        stored = await self.store.get_gate(tenant, name)
        return (stored, True) if stored is not None else (GatePolicy(), False)

    # -- replays ------------------------------------------------------------------------------------------

    async def _candidate(self, tenant: str, name: str, against: Any) -> tuple[PromptContent, str, int | None]:
        """(content, what was selected, its version number when it is one)."""
        if against is None or against == "draft":
            rec = await self.prompts.record(tenant, name)
            version = await self.store.version_for_etag(tenant, name, rec.draft_etag)
            return rec.draft, "draft", version
        if isinstance(against, str) and against.startswith("session:"):
            if self.playground is None:  # pragma: no cover - App wires it
                raise InvalidArgument("sessions are not available here", {"field": "against"})
            session_id = against.removeprefix("session:")
            prompt_name, content = await self.playground.content_to_save(tenant, session_id)
            if prompt_name != name:
                raise InvalidArgument(
                    f"session {session_id!r} edits prompt {prompt_name!r}, not {name!r}", {"field": "against"}
                )
            return content, against, None
        if (isinstance(against, int) and not isinstance(against, bool)) or (
            isinstance(against, str) and against.isdigit()
        ):
            _, content, version, selected = await self.prompts.resolve(tenant, name, version=int(against))
            return content, selected, version
        if isinstance(against, str):
            _, content, version, selected = await self.prompts.resolve(tenant, name, label=against)
            return content, selected, version
        raise InvalidArgument(
            "against must be 'draft', a version number, a label or 'session:<id>'", {"field": "against"}
        )

    def _models(self, raw: Any, default: ModelConfig) -> list[ModelConfig]:
        if raw is None:
            return [default]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_MODELS:
            raise InvalidArgument(f"models must be a list of 1 to {MAX_MODELS} models", {"field": "models"})
        policy = self.settings.policy()
        out = []
        for i, m in enumerate(raw):
            if isinstance(m, str):
                provider, _, model_name = m.partition("/")
                m = {"provider": provider, "name": model_name}
            try:
                model = ModelConfig.model_validate(m)
            except ValidationError as exc:
                raise from_validation_error(exc, f"models[{i}]") from None
            check_provider(model.provider, f"models[{i}].provider")
            policy.check_params(model.params, f"models[{i}].params")
            out.append(model)
        return out

    @staticmethod
    def _check_budget(value: Any, name: str, integer: bool = False) -> None:
        if value is None:
            return
        bad = isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0
        if bad or (integer and not float(value).is_integer()):
            raise InvalidArgument(f"{name} must be a positive number, got {value!r}", {"field": name})

    async def run(
        self,
        tenant: str,
        name: str,
        *,
        against: Any = "draft",
        models: Any = None,
        case_ids: Any = None,
        trials: int = 1,
        budget_usd: float | None = None,
        budget_tokens: int | None = None,
        fresh: bool = False,
    ) -> ReplayStarted:
        """Start a replay in the background; returns ``{id, status: "running", etag, progress}`` at once.

        Raises:
            NotFound: the prompt, a version, a session or a case id does not exist.
            InvalidArgument: no golden cases, bad models, trials or budget.
        """
        check_prompt_name(name)
        content, selected, version = await self._candidate(tenant, name, against)
        chosen_models = self._models(models, content.model)
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
            raise InvalidArgument(f"trials must be 1 to {MAX_TRIALS}", {"field": "trials"})
        self._check_budget(budget_usd, "budget_usd")
        self._check_budget(budget_tokens, "budget_tokens", integer=True)
        cases = await self.store.list_golden(tenant, name)
        if case_ids is not None:
            if not isinstance(case_ids, list) or not all(isinstance(c, str) for c in case_ids):
                raise InvalidArgument("case_ids must be a list of case ids", {"field": "case_ids"})
            by_id = {c.id: c for c in cases}
            missing = [c[:64] for c in case_ids if c not in by_id]
            if missing:
                raise NotFound(
                    f"{len(missing)} case id(s) are not golden cases of {name!r} (e.g. {missing[0]!r}): "
                    "list_golden shows them",
                    {"field": "case_ids", "missing": missing[:20]},
                )
            cases = [by_id[c] for c in dict.fromkeys(case_ids)]
        if not cases:
            raise InvalidArgument(
                f"prompt {name!r} has no golden cases to replay: pin_golden pins some of its traces first",
                {"field": "case_ids"},
            )
        total = len(cases) * len(chosen_models) * trials
        if total > MAX_CALLS:
            raise InvalidArgument(
                f"this replay would make {total:,} calls (cases x models x trials); at most {MAX_CALLS:,}",
                {"field": "trials"},
            )
        await self.store.put_content(tenant, content)  # every replayed content stays reopenable by etag
        now = now_ms()
        guard = SpendGuard(
            max_usd=float(budget_usd) if budget_usd is not None else DEFAULT_BUDGET_USD,
            max_tokens=int(budget_tokens) if budget_tokens is not None else DEFAULT_BUDGET_TOKENS,
        )
        rec = ReplayRecord(
            id=new_id(now),
            prompt_name=name,
            etag=content.etag,
            status="running",
            owner=self.owner,
            created_at=now,
            updated_at=now,
            against=selected,
            version=version,
            models=[f"{m.provider}/{m.name}" for m in chosen_models],
            trials=trials,
            fresh=bool(fresh),
            case_ids=[c.id for c in cases],
            all_cases=case_ids is None,
            budget=ReplayBudget.model_validate(guard.figures()),
            progress=ReplayProgress(done=0, total=total),
        )
        await self.store.save_replay(tenant, rec)
        event = asyncio.Event()
        self._finished[rec.id] = event
        task = asyncio.create_task(
            self._execute(tenant, rec, content, version, cases, chosen_models, trials, bool(fresh), guard)
        )
        self._tasks[rec.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(rec.id, None))
        assert rec.progress is not None
        return ReplayStarted(id=rec.id, status="running", etag=content.etag, progress=rec.progress)

    async def _execute(
        self,
        tenant: str,
        rec: ReplayRecord,
        content: PromptContent,
        version: int | None,
        cases: list[GoldenRecord],
        models: list[ModelConfig],
        trials: int,
        fresh: bool,
        guard: SpendGuard,
    ) -> None:
        caller = CachedCaller(self.store, self.prompts.runner, fresh=fresh, guard=guard)
        units = [_Unit(c, m, t) for c in cases for m in models for t in range(trials)]
        results: dict[tuple[str, int, int], _UnitResult] = {}
        limit = asyncio.Semaphore(REPLAY_CONCURRENCY)
        stop: dict[str, Any] = {}
        done = 0
        last_beat = now_ms()
        model_index = {id(m): i for i, m in enumerate(models)}

        async def one(unit: _Unit) -> None:
            nonlocal done, last_beat
            async with limit:
                if stop:
                    return
                try:
                    results[(unit.case.id, model_index[id(unit.model)], unit.trial)] = await self._replay_unit(
                        tenant, rec, content, version, unit, caller
                    )
                except BudgetExceeded as exc:
                    stop.setdefault("budget", {"message": exc.message, **exc.details})
                    return
            done += 1
            if now_ms() - last_beat >= HEARTBEAT_MS:
                last_beat = now_ms()
                rec.progress = ReplayProgress(done=done, total=len(units))
                rec.updated_at = last_beat
                await self.store.save_replay(tenant, rec)

        try:
            await asyncio.gather(*(one(u) for u in units))
            await self._report(tenant, rec, cases, models, trials, results, caller, guard, stop)
            rec.progress = ReplayProgress(done=done, total=len(units))
        except asyncio.CancelledError:
            rec.status = "error"
            rec.error = _INTERRUPTED
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.save_replay(tenant, rec))
            self._finished.pop(rec.id, asyncio.Event()).set()
            raise
        except Exception:
            log_failure(logger, "replay %s failed", rec.id)
            rec.status = "error"
            rec.error = ReplayError(code="internal", message="internal error; see the server log")
        rec.updated_at = now_ms()
        rec.finished_at = ms_to_rfc3339(rec.updated_at)
        try:
            await self.store.save_replay(tenant, rec)
        finally:
            self._finished.pop(rec.id, asyncio.Event()).set()

    async def _replay_unit(
        self,
        tenant: str,
        rec: ReplayRecord,
        content: PromptContent,
        version: int | None,
        unit: _Unit,
        caller: CachedCaller,
    ) -> _UnitResult:
        """One call of one case on one model: compile, call (or reuse), check, judge."""
        case = unit.case
        candidate = content.model_copy(update={"model": unit.model})
        try:
            compiled = await compile_prompt_async(candidate, case.context.variables, case.context.input_messages)
        except AgntError as err:
            return _UnitResult(None, False, _COMPILE_FAILED, [Outcome("compile", False, err.message[:300])])
        metadata: dict[str, Any] = {"replayId": rec.id, "caseId": unit.case.id, "goldenTraceId": unit.case.trace_id}
        if unit.trial:
            metadata["trial"] = unit.trial
        trace, cached = await caller.call(
            tenant,
            compiled,
            unit.model,
            CallContext(prompt_name=rec.prompt_name, prompt_version=version, source="replay", metadata=metadata),
            salt=f"trial:{unit.trial}" if unit.trial else "",
            expected_output_tokens=case.reference.output_tokens or None,
        )
        answer = Answer(
            output=trace.output,
            status=trace.status,
            error=trace.error.model_dump() if trace.error else None,
            input_tokens=trace.input_tokens,
            output_tokens=trace.output_tokens,
            total_tokens=trace.total_tokens,
            # A cached answer is judged as the call it reuses: what it cost and took then.
            cost=trace.metadata.get("originalCost") if cached else trace.cost,
            duration=trace.metadata.get("originalDuration") if cached else trace.duration,
            spent=trace.cost or 0.0,
        )
        outcomes = await evaluate_checks_async(case.checks, answer)
        if case.judge is not None and trace.status == "success":
            outcomes.append(await self._judge(tenant, rec, unit, case.judge, compiled, trace, caller))
        return _UnitResult(trace.id, cached, answer, outcomes)

    async def _judge(
        self,
        tenant: str,
        rec: ReplayRecord,
        unit: _Unit,
        judge: Judge,
        compiled: Any,
        trace: Trace,
        caller: CachedCaller,
    ) -> Outcome:
        model = judge.model
        conversation = "\n".join(
            f"{m.get('role')}: {m.get('content')}"
            for m in [{"role": "system", "content": compiled.manifest["system"]}, *compiled.messages]
        )[-8000:]
        graded = await compile_prompt_async(
            _JUDGE_CONTENT.model_copy(update={"model": model}),
            {"rubric": judge.rubric, "conversation": conversation, "answer": trace.output or ""},
        )
        verdict_trace, _ = await caller.call(
            tenant,
            graded,
            model,
            CallContext(
                prompt_name=None,
                prompt_version=None,
                source="judge",
                parent_trace_id=trace.id,
                metadata={"replayId": rec.id, "caseId": unit.case.id, "judgedTraceId": trace.id},
            ),
            salt=f"trial:{unit.trial}" if unit.trial else "",
            expected_output_tokens=30,
        )
        if verdict_trace.status != "success":
            return Outcome("judge", False, f"the judge call failed (trace {verdict_trace.id})")
        first_line = (verdict_trace.output or "").strip().splitlines()[0] if verdict_trace.output else ""
        words = [w.strip(".,:;!*\"'()") for w in first_line.split()]
        verdict = next((w for w in words if w in ("PASS", "FAIL")), None)
        if verdict is None:
            return Outcome("judge", False, f"the judge gave no PASS/FAIL verdict (trace {verdict_trace.id})")
        return Outcome("judge", verdict == "PASS", f"{verdict} (judge trace {verdict_trace.id})")

    async def _report(
        self,
        tenant: str,
        rec: ReplayRecord,
        cases: list[GoldenRecord],
        models: list[ModelConfig],
        trials: int,
        results: dict[tuple[str, int, int], _UnitResult],
        caller: CachedCaller,
        guard: SpendGuard,
        stop: dict[str, Any],
    ) -> None:
        """Fill ``rec`` with the finished replay's report: its cases worst first, summary, gate verdict,
        budget and status."""
        entries: list[ReplayCaseResult] = []
        costs: list[float] = []
        ref_costs: list[float] = []
        durations: list[float] = []
        ref_durations: list[float] = []
        for case in cases:
            ref = case.reference
            baseline = all(o.passed for o in await evaluate_checks_async(case.checks, ref))
            for mi, model in enumerate(models):
                runs = [results[(case.id, mi, t)] for t in range(trials) if (case.id, mi, t) in results]
                if not runs:
                    continue
                passes = [all(o.passed for o in r.outcomes) for r in runs]
                passed = all(passes)
                shown = next((r for r, p in zip(runs, passes, strict=True) if not p), runs[-1])
                answer = shown.answer
                for r in runs:
                    a = r.answer
                    if a.cost is not None and ref.cost is not None:
                        costs.append(a.cost)
                        ref_costs.append(ref.cost)
                    if a.duration is not None and ref.duration is not None:
                        durations.append(a.duration)
                        ref_durations.append(ref.duration)
                diff = diff_text(ref.output, answer.output, part="output", id=case.id)
                entries.append(
                    ReplayCaseResult(
                        case_id=case.id,
                        golden_trace_id=case.trace_id,
                        trace_id=shown.trace_id,
                        model=f"{model.provider}/{model.name}",
                        status="passed" if passed else "failed",
                        required=case.required,
                        baseline_passed=baseline,
                        regression=baseline and not passed,
                        improvement=not baseline and passed,
                        flaky=len(set(passes)) > 1,
                        cached=all(r.cached for r in runs),
                        checks=shown.outcomes,
                        diff=StoredDiff.model_validate(diff.to_dict(STORED_DIFF_CHARS)),
                        deltas=Deltas(
                            input_tokens=_token_delta(answer.input_tokens, ref.input_tokens),
                            output_tokens=_token_delta(answer.output_tokens, ref.output_tokens),
                            total_tokens=_token_delta(answer.total_tokens, ref.total_tokens),
                            cost=_delta(answer.cost, ref.cost),
                            duration=_delta(answer.duration, ref.duration),
                        ),
                        trials=[
                            TrialResult(trace_id=r.trace_id, passed=p, cached=r.cached)
                            for r, p in zip(runs, passes, strict=True)
                        ]
                        if trials > 1
                        else None,
                    )
                )
        entries.sort(key=_badness)
        n = len(entries)
        passed_n = sum(e.status == "passed" for e in entries)
        mean_cost = sum(costs) / len(costs) if costs else None
        mean_ref_cost = sum(ref_costs) / len(ref_costs) if ref_costs else None
        p95, ref_p95 = _p95(durations), _p95(ref_durations)
        summary = ReplaySummary(
            cases=n,
            passed=passed_n,
            failed=n - passed_n,
            regressions=sum(e.regression for e in entries),
            improvements=sum(e.improvement for e in entries),
            flaky=sum(e.flaky for e in entries),
            required_failed=sum(e.required and e.status != "passed" for e in entries),
            pass_rate=round(passed_n / n, 6) if n else None,
            cached=caller.cached_calls,
            model_calls=caller.model_calls,
            cost=round(guard.spent_usd, 9),
            tokens=guard.spent_tokens,
            cost_delta=_fraction(mean_cost, mean_ref_cost),
            p95_duration=p95,
            p95_delta=_fraction(p95, ref_p95),
            baseline=Baseline(cost_per_call=mean_ref_cost, p95_duration=ref_p95),
            stopped="budget" if stop else None,
        )
        policy, gated = await self._policy(tenant, rec.prompt_name)
        failures = gate_failures(policy, summary)
        rec.summary = summary
        rec.cases = entries
        rec.gate = GateVerdict(policy=policy, gated=gated, passed=not failures, failures=failures)
        rec.budget = ReplayBudget.model_validate(guard.figures())
        if stop:
            rec.status = "error"
            rec.error = ReplayError(
                code="invalid_argument",
                message="the replay stopped before a call that would have crossed its budget: "
                + stop["budget"]["message"],
                details=stop["budget"],
            )
        else:
            rec.status = "passed" if not failures else "failed"

    # -- reading replays ----------------------------------------------------------------------------------

    async def _load(self, tenant: str, replay_id: str) -> ReplayRecord:
        rec = await self.store.get_replay(tenant, replay_id) if isinstance(replay_id, str) else None
        if rec is None:
            raise NotFound(
                f"replay {str(replay_id)[:64]!r} not found: run_replay starts one and returns its id",
                {"replayId": str(replay_id)[:64]},
            )
        return rec

    async def get(
        self, tenant: str, replay_id: str, wait_seconds: float = 0, max_cases: int = REPORT_CASES
    ) -> ReplayView:
        """A replay's state and report; with ``wait_seconds`` (0-50) wait until it finishes or that long."""
        if (
            isinstance(wait_seconds, bool)
            or not isinstance(wait_seconds, int | float)
            or not (0 <= wait_seconds <= MAX_WAIT)
        ):
            raise InvalidArgument(
                f"wait_seconds must be 0 to {MAX_WAIT}; got {wait_seconds!r}: poll again for longer replays",
                {"field": "wait_seconds"},
            )
        if isinstance(max_cases, bool) or not isinstance(max_cases, int) or not 0 <= max_cases <= 200:
            raise InvalidArgument("max_cases must be 0 to 200", {"field": "max_cases"})
        rec = await self._load(tenant, replay_id)
        deadline = time.monotonic() + float(wait_seconds)
        while rec.status == "running" and time.monotonic() < deadline:
            event = self._finished.get(rec.id)
            remaining = deadline - time.monotonic()
            if event is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=remaining)
            else:  # another process runs it: look again now and then
                await asyncio.sleep(min(0.5, max(0.0, remaining)))
            rec = await self._load(tenant, replay_id)
        if rec.status == "running" and rec.id not in self._tasks and self._is_dead(rec):
            await self.store.fail_running_replays(lambda r: r.id == rec.id, _INTERRUPTED)
            rec = await self._load(tenant, replay_id)
        return self.view(rec, max_cases)

    def view(self, rec: ReplayRecord, max_cases: int = REPORT_CASES, diff_chars: int = REPORT_DIFF_CHARS) -> ReplayView:
        """A replay's state and report, its first ``max_cases`` cases with their diffs cut to ``diff_chars``."""
        cases = rec.cases or []
        shown = [
            ReplayCaseView.model_construct(
                **{name: getattr(entry, name) for name in ReplayCaseResult.model_fields if name != "diff"},
                diff=DiffPreview(
                    changed=entry.diff.changed,
                    unified=entry.diff.unified[:diff_chars] + ("…" if len(entry.diff.unified) > diff_chars else ""),
                ),
            )
            for entry in cases[:max_cases]
        ]
        return ReplayView(
            id=rec.id,
            prompt=rec.prompt_name,
            status=rec.status,  # type: ignore[arg-type]
            against=rec.against,
            etag=rec.etag,
            version=rec.version,
            models=rec.models,
            trials=rec.trials,
            progress=rec.progress,
            summary=rec.summary,
            gate=rec.gate,
            budget=rec.budget,
            cases=shown,
            cases_omitted=max(0, len(cases) - len(shown)),
            created_at=ms_to_rfc3339(rec.created_at),
            finished_at=rec.finished_at,
            error=rec.error,
        )

    async def list_replays(self, tenant: str, name: str, limit: int = 20) -> ReplayListing:
        """A prompt's replays, newest first.

        Raises:
            NotFound: no such prompt.
            InvalidArgument: ``limit`` out of 1 to 100.
        """
        await self.prompts.record(tenant, name)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidArgument("limit must be 1 to 100", {"field": "limit"})
        rows = await self.store.list_replays(tenant, name, limit=limit)
        return ReplayListing(
            replays=[
                ReplayListItem(
                    id=r.id,
                    status=r.status,
                    against=r.against,
                    etag=r.etag,
                    summary=r.summary,
                    created_at=ms_to_rfc3339(r.created_at),
                )
                for r in rows
            ]
        )

    def render(self, rec: ReplayRecord, max_chars: int = 12_000) -> str:
        """A compact text report for an agent's context: the summary, the gate, then the worst cases."""
        view = self.view(rec, max_cases=10, diff_chars=800)
        s = view.summary
        lines = [
            f"replay {rec.id} of {rec.prompt_name} against {view.against} (etag {rec.etag[:12]}): {rec.status}",
        ]
        if s is not None:
            lines.append(
                f"cases {s.cases}: {s.passed} passed, {s.failed} failed, {s.regressions} regressions, "
                f"{s.improvements} improvements, {s.flaky} flaky; model calls {s.model_calls}, cached "
                f"{s.cached}; cost ${s.cost:.6f} (per call {_pct(s.cost_delta)} vs reference); p95 "
                f"{s.p95_duration} s ({_pct(s.p95_delta)})"
            )
        else:
            p = view.progress
            lines.append(f"progress: {p.done if p else 0} of {p.total if p else '?'} calls")
        gate = view.gate
        if gate is not None:
            verdict = "passes" if gate.passed else "fails: " + "; ".join(gate.failures)
            lines.append(f"gate{'' if gate.gated else ' (default policy, no gate set)'} {verdict}")
        if view.error is not None:
            lines.append(f"error: {view.error.message}")
        for entry in view.cases:
            if entry.status == "passed" and not entry.flaky:
                continue
            failed = [c for c in entry.checks if not c.passed]
            tag = " REGRESSION" if entry.regression else ""
            lines.append(f"\n## case {entry.case_id} on {entry.model}: {entry.status}{tag} (trace {entry.trace_id})")
            lines += [f"- {c.type}: {c.detail}" for c in failed]
            if entry.diff.unified:
                lines.append(entry.diff.unified)
        text = "\n".join(lines)
        return text if len(text) <= max_chars else text[:max_chars] + "\n…[report truncated]"

    async def report_text(self, tenant: str, replay_id: str) -> str:
        return self.render(await self._load(tenant, replay_id))

    async def wait(self, tenant: str, replay_id: str, progress: ProgressFn | None = None) -> ReplayView:
        """Wait for a replay of this process to finish, reporting its progress."""
        while True:
            view = await self.get(tenant, replay_id, wait_seconds=2)
            if view.status != "running":
                return view
            if progress is not None:
                p = view.progress
                await progress(p.done if p else 0, p.total if p else 0, "replaying golden cases")

    # -- restart and shutdown -------------------------------------------------------------------------------

    def _is_dead(self, rec: ReplayRecord) -> bool:
        """A running replay that no process will ever finish: its owner on this host is gone, or (any
        host) it has not been touched for a long time."""
        if rec.owner == self.owner:
            return rec.id not in self._tasks
        host, _, rest = rec.owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host == socket.gethostname() and pid_text.isdigit():
            pid = int(pid_text)
            if pid == os.getpid() or not _pid_alive(pid):
                return True
        return now_ms() - rec.updated_at > STALE_MS

    async def recover(self) -> int:
        """Mark replays a restart interrupted as ``error`` (at start)."""
        return await self.store.fail_running_replays(self._is_dead, _INTERRUPTED)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # -- publish through the gate -----------------------------------------------------------------------------

    async def _passing_replay(
        self, tenant: str, name: str, etag: str, policy: GatePolicy
    ) -> tuple[ReplayRecord | None, ReplayRecord | None]:
        """(the newest replay of ``etag`` that passes the policy now and covers every golden case, the newest
        finished replay of it)."""
        current = {c.id for c in await self.store.list_golden(tenant, name)}
        newest = None
        for rec in await self.store.list_replays(tenant, name, etag=etag, limit=20):
            if rec.status not in ("passed", "failed"):
                continue
            newest = newest or rec
            covered = set(rec.case_ids)
            if current <= covered and not gate_failures(policy, rec.summary):
                return rec, newest
        return None, newest

    def _refusal(self, name: str, etag: str, rec: ReplayRecord | None, policy: GatePolicy) -> Conflict:
        if rec is None:
            return Conflict(
                f"prompt {name!r} is gated and no passing replay of its draft (etag {etag[:12]}) exists; nothing was "
                "published. run_replay(name) and get_replay until it passes, or publish with run_gate=true",
                {"prompt": name, "draftEtag": etag, "field": "run_gate"},
            )
        view = self.view(rec, max_cases=10, diff_chars=800)
        failing = [
            e.model_dump(
                mode="json",
                include={"case_id", "model", "status", "regression", "required", "checks", "diff", "trace_id"},
            )
            for e in view.cases
            if e.status != "passed"
        ]
        failures = gate_failures(policy, rec.summary) or ["it does not cover every golden case"]
        return Conflict(
            f"prompt {name!r} is gated and its draft does not pass: {'; '.join(failures)} (replay {rec.id}); "
            "nothing was published. Fix the draft (details.cases show the failing cases and their diffs) and replay",
            {
                "prompt": name,
                "draftEtag": etag,
                "replayId": rec.id,
                "failures": failures,
                "summary": rec.summary.render() if rec.summary is not None else None,
                "cases": failing,
            },
        )

    async def publish(
        self,
        tenant: str,
        name: str,
        *,
        version: int | None = None,
        label: str = "production",
        note: str = "",
        expected_etag: str | None = None,
        run_gate: bool = False,
        override_reason: str | None = None,
        progress: ProgressFn | None = None,
    ) -> PublishResult:
        """``publish_prompt`` with the gate: a gated draft needs a passing replay of exactly its etag.

        Raises:
            Conflict: gated and no passing replay (details: the failing cases with their diffs).
            InvalidArgument: ``override_reason`` that is empty or too long, or on a prompt with no gate.
        """
        check_prompt_name(name)
        if override_reason is not None and (
            not isinstance(override_reason, str) or not 3 <= len(override_reason.strip()) <= 500
        ):
            raise InvalidArgument(
                "override_reason must say why, in 3 to 500 characters; it is recorded on the version",
                {"field": "override_reason"},
            )
        gated = await self.store.get_gate(tenant, name)
        if gated is None or version is not None:  # no gate, or a label move (rollback) to a published version
            if override_reason is not None and gated is None:
                raise InvalidArgument(
                    f"prompt {name!r} has no gate, so there is nothing to override: omit override_reason",
                    {"field": "override_reason"},
                )
            return await self.prompts.publish(
                tenant, name, version=version, label=label, note=note, expected_etag=expected_etag
            )
        policy = gated
        rec = await self.prompts.record(tenant, name)
        etag = rec.draft_etag
        if expected_etag not in (None, "*") and expected_etag != etag:
            # The draft moved since the caller read it: the store refuses it with the usual precondition error.
            return await self.prompts.publish(tenant, name, label=label, note=note, expected_etag=expected_etag)
        gate: GateRecord
        if override_reason is not None:
            reason = override_reason.strip()
            gate = GateRecord(override=reason, draft_etag=etag, at=ms_to_rfc3339(now_ms()))
            note = f"{note} [gate overridden: {reason}]".strip()
        else:
            passing, newest = await self._passing_replay(tenant, name, etag, policy)
            if passing is None and run_gate:
                started = await self.run(tenant, name, against="draft")
                await self.wait(tenant, started.id, progress)
                passing, newest = await self._passing_replay(tenant, name, etag, policy)
                if passing is None:
                    newest = await self._load(tenant, started.id)
            if passing is None:
                raise self._refusal(name, etag, newest, policy)
            gate = GateRecord(replay_id=passing.id, summary=passing.summary, draft_etag=etag)
        return await self.prompts.publish(tenant, name, label=label, note=note, expected_etag=etag, gate=gate)


_INTERRUPTED = ReplayError(
    code="internal",
    message="the server stopped before this replay finished (a restart interrupts replays): run it again",
)

_COMPILE_FAILED = Answer(
    output=None,
    status="error",
    error={"type": "compile_error"},
    input_tokens=None,
    output_tokens=None,
    total_tokens=None,
    cost=None,
    duration=None,
    spent=0.0,
)


@dataclass(slots=True)
class _UnitResult:
    """What one call of a replay found: its trace (None when the candidate did not compile), whether the
    answer was reused, the answer and every check's outcome."""

    trace_id: str | None
    cached: bool
    answer: Answer
    outcomes: list[Outcome]


def _badness(entry: ReplayCaseResult) -> tuple[int, int, int, int]:
    """Worst first: regressions, failed required cases, other failures, flaky; then the biggest diffs."""
    failed = entry.status != "passed"
    return (
        0 if entry.regression else 1,
        0 if failed and entry.required else 1,
        0 if failed else (1 if entry.flaky else 2),
        -len(entry.diff.unified),
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"
