"""Recording and reading traces: the one place a trace is written."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from ..errors import AgntError, Conflict, InvalidArgument, NotFound, from_validation_error
from ..ids import ms_to_rfc3339, new_id, now_ms, parse_time
from ..ingest_records import IngestResult, TraceRecord, manifest_key_of
from ..jsonlimits import MAX_JSON_DEPTH, check_value, loads_checked, may_hold_non_finite, outside_limits
from ..llm.pricing import estimate_cost
from ..models import ErrorInfo, Manifest, ModelInfo, Trace, TraceIn, canonical_json
from ..store.base import Store
from .group_commit import GroupCommit
from .ingest_results import IngestedTrace
from .queries import StatsQuery, TraceQuery, validate_query
from .trace_results import StatsResult, TraceList

__all__ = ["COST_ESTIMATED", "TRACE_FIELDS", "TraceService", "validate_query"]

#: ``metadata`` key set on an ingested trace whose cost the server computed from the price map.
COST_ESTIMATED = "costEstimated"

TRACE_FIELDS = (*(f.alias or name for name, f in Trace.model_fields.items()), "replayable", "replayIssues")
MAX_BATCH = 1000
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time RFC 3339 can write


def _digest(data: dict[str, Any]) -> bytes:
    """What "the same content" means for a client id: the trace as posted (its dump, camelCase), before
    the server adds an estimated cost. An unreported duration digests as the 0.0 older versions stored for
    it, so that re-posting such a trace after an upgrade stays a no-op instead of a conflict.

    Raises:
        ValueError: a number in it is not finite.
    """
    if data.get("duration") is None:
        data["duration"] = 0.0
    return hashlib.sha256(canonical_json(data).encode()).digest()[:16]


def _content_digest(dump: dict[str, Any]) -> bytes:
    """The digest of a trace posted without an id: never compared (its server id is new), so it names the
    content as dumped rather than costing a canonical dump.

    Raises:
        ValueError: a number in it is not finite (as :func:`_digest`).
    """
    return _sized_content_digest(dump)[0]


def _sized_content_digest(dump: dict[str, Any]) -> tuple[bytes, int]:
    """:func:`_content_digest` and the length of the JSON it was taken of."""
    text = to_json(dump, inf_nan_mode="constants")
    if b"NaN" in text or b"Infinity" in text:  # maybe a non-finite number: canonical JSON refuses it
        return _digest(dump), len(text)
    return hashlib.sha256(text).digest()[:16], len(text)


def _stored_trace(
    trace_in: TraceIn, trace_id: str, created_ms: int, messages: list[dict[str, Any]] | None = None
) -> Trace:
    """The ``Trace`` of a validated client trace: its parts are already validated models and values, so it is
    assembled, not validated again. ``messages``: the messages as plain objects, when already dumped."""
    return Trace.assemble(
        id=trace_id,
        created_at=ms_to_rfc3339(created_ms),
        prompt_name=trace_in.prompt_name,
        prompt_version=trace_in.prompt_version,
        etag=trace_in.etag,
        manifest=trace_in.manifest,
        variables=trace_in.variables,
        messages=[m.model_dump() for m in trace_in.messages] if messages is None else messages,
        output=trace_in.output,
        tool_calls=trace_in.tool_calls,
        input_tokens=trace_in.input_tokens,
        output_tokens=trace_in.output_tokens,
        total_tokens=trace_in.total_tokens,
        cost=trace_in.cost,
        duration=trace_in.duration,
        model=trace_in.model,
        status=trace_in.status,
        error=trace_in.error,
        tags=trace_in.tags,
        metadata=trace_in.metadata,
        source=trace_in.source,
        session_id=trace_in.session_id,
        parent_trace_id=trace_in.parent_trace_id,
    )


def build_trace(fields: dict[str, Any]) -> Trace:
    """A ``Trace`` from keyword arguments that this server built itself from decoded data (JSON types
    only, finite numbers, bounded sizes: see ``otlp.mapping``). Built without a validation round trip —
    on the OTLP hot path it cost more than mapping the span — but with its nested models as models."""
    error = fields["error"]
    return Trace.model_construct(
        **{
            **fields,
            "manifest": Manifest.model_construct(**fields["manifest"]),
            "model": ModelInfo.model_construct(**fields["model"]),
            "error": ErrorInfo.model_construct(**error) if error is not None else None,
            "prompt_name": fields.get("prompt_name"),
            "prompt_version": fields.get("prompt_version"),
            "etag": None,
        }
    )


class _BatchIn(BaseModel):
    """A batch body validated straight from its JSON (``TraceService.prepare_batch_json``)."""

    model_config = ConfigDict(extra="forbid")
    traces: list[TraceIn] = Field(max_length=MAX_BATCH)


def _truncate(value: Any, max_chars: int) -> Any:
    if isinstance(value, str) and len(value) > max_chars:
        return value[:max_chars] + f"…[truncated {len(value) - max_chars} chars]"
    if isinstance(value, list):
        return [_truncate(v, max_chars) for v in value]
    if isinstance(value, dict):
        return {k: _truncate(v, max_chars) for k, v in value.items()}
    return value


class TraceService:
    """Recording and reading traces; every trace is written here (one place: ``store.insert_traces``)."""

    def __init__(self, store: Store, price_overrides: dict[str, dict[str, float]] | None = None) -> None:
        self.store = store
        self.price_overrides = price_overrides or {}
        self._group = GroupCommit(self.store_records)

    # -- writing --------------------------------------------------------------------------------------

    def prepare(self, payload: Any, tenant: str = "") -> TraceRecord:
        """Validate a client's trace (a parsed JSON object, camelCase) into a record ready to store.

        Raises:
            InvalidArgument: naming every bad or unknown field.
        """
        if not isinstance(payload, dict):
            raise InvalidArgument("trace must be a JSON object with the documented camelCase fields")
        try:
            trace_in = TraceIn.model_validate(payload)
        except ValidationError as exc:
            raise from_validation_error(exc, "trace") from None
        return self._record(trace_in, tenant)

    def prepare_json(self, raw: bytes, tenant: str = "") -> TraceRecord:
        """Validate a client's trace from its JSON text (a request body) into a record ready to store.

        The JSON is validated once, straight into the typed trace. Text that could break a limit of
        ``jsonlimits`` (deep nesting, non-finite numbers, lone surrogates), and any invalid trace, takes the
        checked path of ``loads_checked`` + :meth:`prepare`, so errors name the field exactly as there.

        Raises:
            InvalidArgument: not JSON, not an object, over a JSON limit, or naming every bad or unknown field
                (the messages of a request body's: "request body is not valid JSON …").
        """
        if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:  # so no deeper than the limit
            try:
                trace_in = TraceIn.model_validate_json(raw)  # refuses lone surrogates itself
                # From JSON, the Python dump is the JSON one, except that a non-finite number (NaN, 1e400)
                # stays one here, and canonical JSON refuses it.
                dump = trace_in.model_dump(by_alias=True)
                if trace_in.id is None and not may_hold_non_finite(raw):
                    # No client id: the digest is never compared (a server id is new), so it names the text
                    # as posted instead of costing a canonical dump; and no number in it can be non-finite.
                    digest = hashlib.sha256(raw).digest()[:16]
                else:
                    digest = _digest(dump)
                return self._record(trace_in, tenant, digest, dump)  # its manifest key refuses non-finite too
            except (ValidationError, ValueError):
                pass  # answered below, by the checked path, with its exact messages
        data = loads_checked(raw)
        if not isinstance(data, dict):
            raise InvalidArgument(f"request body must be a JSON object, not {type(data).__name__}")
        return self.prepare(data, tenant)

    def prepare_batch_json(self, raw: bytes, tenant: str = "") -> list[TraceRecord] | None:
        """The records of a batch body (``{"traces": [...]}``) validated straight from its JSON, when every
        trace in it is valid and plainly within the limits of ``jsonlimits``; None otherwise, and the caller
        takes the checked path (``json_object`` + :meth:`ingest_each`), which answers each trace on its own.
        The records are those the checked path makes (the same validation, ids and digests of client ids),
        except the digest of a trace without an id, never compared (its id is new): the batch's hash and the
        trace's place in it, instead of a hash of the trace's dump."""
        try:
            batch = _BatchIn.model_validate_json(raw)  # refuses lone surrogates and invalid UTF-8 itself
        except ValueError:  # ValidationError included
            return None
        records = []
        posted = hashlib.sha256(raw).digest()[:12]  # no id: the batch as posted and the trace's place in it
        for i, trace_in in enumerate(batch.traces):
            dump = trace_in.model_dump(by_alias=True)  # every value as parsed: checked, not the bytes
            if outside_limits(dump, MAX_JSON_DEPTH - 2):  # the body and its list are two levels
                return None
            try:
                digest = _digest(dump) if trace_in.id is not None else posted + i.to_bytes(4, "big")
                records.append(self._record(trace_in, tenant, digest, dump))
            except (ValueError, InvalidArgument):
                return None
        return records

    def _record(
        self, trace_in: TraceIn, tenant: str, digest: bytes | None = None, dump: dict[str, Any] | None = None
    ) -> TraceRecord:
        """The record of a validated client trace: its digest, time, id, cost and manifest key, once each,
        from one dump of the trace (camelCase; ``dump`` and its ``digest`` when the caller already has them).

        Raises:
            InvalidArgument: ``createdAt`` is not a time, or before 1970.
        """
        if digest is None or dump is None:
            dump = trace_in.model_dump(by_alias=True)  # a non-finite number stays one (JSON mode makes it null)
            try:
                digest = _digest(dump) if trace_in.id is not None else _content_digest(dump)
            except ValueError:
                check_value(dump)  # an InvalidArgument naming the number's field
                raise
        if trace_in.created_at is not None:
            try:
                created_ms = parse_time(trace_in.created_at, "createdAt")
                if created_ms < 0:
                    raise ValueError(
                        f"createdAt {trace_in.created_at!r} is before 1970: traces are timestamped in Unix time"
                    )
                if created_ms > _LAST_MS:
                    raise ValueError(
                        f"createdAt {trace_in.created_at!r} is after 9999-12-31T23:59:59.999Z in UTC: send a real time"
                    )
            except ValueError as exc:
                raise InvalidArgument(str(exc), {"field": "createdAt"}) from None
        else:
            created_ms = now_ms()
        trace_id = trace_in.id or new_id(created_ms, scope=tenant)  # the tenant's own id sequence
        self._estimate_cost(trace_in)
        manifest = manifest_key_of(dump["manifest"])
        trace = _stored_trace(trace_in, trace_id, created_ms, dump["messages"])
        return TraceRecord(
            trace=trace, digest=digest, client_id=trace_in.id is not None, created_ms=created_ms, manifest=manifest
        )

    def _estimate_cost(self, trace_in: TraceIn) -> None:
        """A trace with a model and tokens but no cost gets one from the prices, marked as estimated."""
        if trace_in.cost is not None or not (trace_in.input_tokens or trace_in.output_tokens):
            return
        cost = estimate_cost(
            trace_in.model.provider,
            trace_in.model.name,
            trace_in.input_tokens,
            trace_in.output_tokens,
            self.price_overrides,
        )
        if cost is not None:
            trace_in.cost = cost
            trace_in.metadata = {**trace_in.metadata, COST_ESTIMATED: True}

    async def ingest(self, tenant: str, payload: Any) -> IngestedTrace:
        """Store one client trace (a parsed JSON object); concurrent calls share a transaction.

        Raises:
            InvalidArgument: the trace is invalid (nothing stored).
            Conflict: its id is stored with other content.
        """
        result = await self._group.submit(tenant, self.prepare(payload, tenant))
        return IngestedTrace.of(result)

    async def ingest_json(self, tenant: str, raw: bytes) -> IngestedTrace:
        """:meth:`ingest` for a trace as JSON text (a request body): validated once, from the text."""
        result = await self._group.submit(tenant, self.prepare_json(raw, tenant))
        return IngestedTrace.of(result)

    async def store_records(self, tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        """Write prepared records in one transaction (all or nothing): the one call that stores traces."""
        return await self.store.insert_traces(tenant, records)

    async def aclose(self) -> None:
        """Wait for grouped writes still queued (at shutdown)."""
        await self._group.aclose()

    async def ingest_many(self, tenant: str, payloads: list[Any]) -> list[IngestResult]:
        """The batch path: every trace validated first, then all stored in one transaction."""
        if len(payloads) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} traces per batch; got {len(payloads)}: split the batch")
        records = []
        for i, payload in enumerate(payloads):
            try:
                records.append(self.prepare(payload, tenant))
            except InvalidArgument as exc:
                raise InvalidArgument(f"traces[{i}]: {exc.message}", {"index": i, **exc.details}) from None
        return await self.store_records(tenant, records)

    async def ingest_each(self, tenant: str, payloads: list[Any]) -> list[IngestResult | AgntError]:
        """The per-trace batch path: every valid trace is stored, each refused one answered with its error
        (in the order posted). The valid ones share one transaction unless one conflicts with a stored
        trace; then they are stored one by one so that each gets its own answer.

        Raises:
            InvalidArgument: more than MAX_BATCH traces (nothing is stored).
        """
        if len(payloads) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} traces per batch; got {len(payloads)}: split the batch")
        outcomes: list[IngestResult | AgntError | None] = [None] * len(payloads)
        valid: list[tuple[int, TraceRecord]] = []
        for i, payload in enumerate(payloads):
            try:
                valid.append((i, self.prepare(payload, tenant)))
            except InvalidArgument as exc:
                outcomes[i] = exc
        await self._store_each(tenant, valid, outcomes)
        return [o for o in outcomes if o is not None]

    async def ingest_each_json(self, tenant: str, raw: bytes) -> list[IngestResult | AgntError] | None:
        """:meth:`ingest_each` for a batch body's JSON whose traces are all valid (see
        :meth:`prepare_batch_json`); None, with nothing stored, when the checked path must answer it."""
        records = self.prepare_batch_json(raw, tenant)
        if records is None:
            return None
        outcomes: list[IngestResult | AgntError | None] = [None] * len(records)
        await self._store_each(tenant, list(enumerate(records)), outcomes)
        return [o for o in outcomes if o is not None]

    async def ingest_spans(
        self, tenant: str, spans: list[tuple[dict[str, Any], bytes]]
    ) -> list[IngestResult | AgntError]:
        """The OTLP path: traces mapped from LLM spans (``Trace`` keyword arguments and a digest of the
        span's content), stored in one transaction, answered per span in order. A missing cost comes from
        the price map (marked ``metadata.costEstimated``). Each trace id is derived from its span, so a
        re-sent span is a no-op; one whose content changed conflicts and is refused alone.
        """
        outcomes: list[IngestResult | AgntError | None] = [None] * len(spans)
        valid: list[tuple[int, TraceRecord]] = []
        for i, (fields, digest) in enumerate(spans):
            if fields["cost"] is None and (fields["input_tokens"] or fields["output_tokens"]):
                model = fields["model"]
                cost = estimate_cost(
                    model["provider"],
                    model["name"],
                    fields["input_tokens"],
                    fields["output_tokens"],
                    self.price_overrides,
                )
                if cost is not None:
                    fields = {**fields, "cost": cost, "metadata": {**fields["metadata"], COST_ESTIMATED: True}}
            try:
                valid.append((i, TraceRecord(trace=build_trace(fields), digest=digest, client_id=True)))
            except ValidationError as exc:
                outcomes[i] = from_validation_error(exc, f"span {fields.get('id')}")
        await self._store_each(tenant, valid, outcomes)
        return [o for o in outcomes if o is not None]

    async def _store_each(
        self,
        tenant: str,
        valid: list[tuple[int, TraceRecord]],
        outcomes: list[IngestResult | AgntError | None],
    ) -> None:
        """Store the valid records in one transaction and put each answer at its index in ``outcomes``; when
        one conflicts with a stored trace, store them one by one so that each gets its own answer."""
        if not valid:
            return
        try:
            results = await self.store_records(tenant, [rec for _, rec in valid])
        except Conflict:
            for i, rec in valid:
                try:
                    (outcomes[i],) = await self.store_records(tenant, [rec])
                except Conflict as exc:
                    outcomes[i] = exc
        else:
            for (i, _), result in zip(valid, results, strict=True):
                outcomes[i] = result

    async def record(self, tenant: str, trace: Trace) -> Trace:
        """Store a trace made by this server (prompt runs, playground runs)."""
        # Its id is new: the digest is never compared.
        digest, size = _sized_content_digest(trace.model_dump(mode="json", by_alias=True))
        await self.store_records(tenant, [TraceRecord(trace=trace, digest=digest, client_id=False, size=size)])
        return trace

    # -- reading --------------------------------------------------------------------------------------

    async def get(self, tenant: str, trace_id: str) -> Trace:
        trace = await self.store.get_trace(tenant, trace_id)
        if trace is None:
            raise NotFound(
                f"trace {trace_id!r} not found: list_traces shows the ids of recent traces",
                {"traceId": trace_id},
            )
        return trace

    async def get_json(
        self, tenant: str, trace_id: str, fields: list[str] | None = None, max_chars: int | None = None
    ) -> dict[str, Any]:
        if fields:
            unknown = [f for f in fields if f not in TRACE_FIELDS]
            if unknown:
                raise InvalidArgument(
                    f"unknown field(s) {', '.join(map(repr, unknown))}: choose from {', '.join(TRACE_FIELDS)}",
                    {"field": "fields", "unknown": unknown},
                )
        if max_chars is not None and max_chars < 1:
            raise InvalidArgument("max_chars must be at least 1; omit it for full strings", {"field": "max_chars"})
        data = (await self.get(tenant, trace_id)).to_json()
        if fields:
            data = {k: data[k] for k in TRACE_FIELDS if k in fields or k == "id"}
        if max_chars is not None:
            data = _truncate(data, max_chars)
        return data

    async def list(self, tenant: str, query: TraceQuery) -> TraceList:
        """One page of compact rows, newest first unless ``query`` sorts otherwise.

        Raises:
            InvalidArgument: a cursor not made for this list, or a malformed or too costly full-text query.
        """
        page = await self.store.list_traces(tenant, query.to_filter())
        return TraceList.model_construct(traces=page.rows, next_cursor=page.next_cursor)

    async def stats(self, tenant: str, query: StatsQuery) -> StatsResult:
        """Groups over the window, largest first; ``since``/``until`` echo the query as given."""
        groups = await self.store.trace_stats(tenant, query.to_filter())
        return StatsResult.model_construct(group_by=query.group_by, since=query.since, until=query.until, groups=groups)

    async def prompt_exists(self, tenant: str, name: str) -> bool:
        """The tenant hosts a prompt called ``name`` (an OTLP span's prompt claim names it)."""
        return await self.store.get_prompt(tenant, name) is not None
