"""One OTLP export request → traces, stored before the answer (acknowledged means committed).

Spans that are not LLM calls are counted as ``skipped`` and not stored; a span whose trace cannot be
stored (its id was stored before with other content) is ``rejected`` with the reason, and the others are
stored all the same (OTLP's partial success).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgntError
from ..services.traces import TraceService
from .decode import Span
from .dialects import is_llm_span
from .mapping import MappedSpan, map_span, parent_llm_ids

__all__ = ["IngestSummary", "ingest_spans"]

logger = logging.getLogger("agnt_traces.otlp")


@dataclass(slots=True)
class IngestSummary:
    stored: int = 0  # new traces
    duplicates: int = 0  # spans stored before (an exporter's retry)
    skipped: int = 0  # not LLM calls
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.errors[:3])
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        return f"{self.rejected} span(s) refused: {shown}{more}"


async def _resolve_prompts(traces: TraceService, tenant: str, mapped: list[MappedSpan]) -> None:
    """A span whose prompt template names a hosted prompt gets its name, version and variables, so the
    trace diffs against that prompt. A name this tenant does not host stays in ``metadata.promptTemplate``."""
    claims = {m.prompt_claim[0] for m in mapped if m.prompt_claim is not None}
    if not claims:
        return
    hosted = {name for name in list(claims)[:32] if await traces.prompt_exists(tenant, name)}
    for m in mapped:
        if m.prompt_claim is None or m.prompt_claim[0] not in hosted:
            continue
        name, version = m.prompt_claim
        m.fields["prompt_name"] = name
        m.fields["prompt_version"] = version if version else None  # a version is 1 or more
        variables = m.fields["metadata"].get("promptTemplate", {}).get("variables")
        if isinstance(variables, dict):
            m.fields["variables"] = variables


async def ingest_spans(traces: TraceService, tenant: str, spans: list[Span]) -> IngestSummary:
    summary = IngestSummary()
    llm_spans = [s for s in spans if is_llm_span(s)]
    summary.skipped = len(spans) - len(llm_spans)
    parents = parent_llm_ids(spans, {s.span_id for s in llm_spans if s.span_id})
    mapped: list[MappedSpan] = []
    for span in llm_spans:
        try:
            mapped.append(map_span(span, parents.get(span.span_id)))
        except Exception as exc:  # one odd span never fails the request
            logger.warning("an LLM span could not be mapped (%s); it is refused", type(exc).__name__)
            summary.rejected += 1
            summary.errors.append(f"span {span.span_id or '?'} could not be read ({type(exc).__name__})")
    await _resolve_prompts(traces, tenant, mapped)
    outcomes = await traces.ingest_spans(tenant, [(m.fields, m.digest) for m in mapped])
    for outcome in outcomes:
        if isinstance(outcome, AgntError):
            summary.rejected += 1
            summary.errors.append(outcome.message)
        elif outcome.created:
            summary.stored += 1
        else:
            summary.duplicates += 1
    return summary


def summary_headers(summary: IngestSummary) -> dict[str, Any]:
    return {
        "x-agnt-spans-stored": str(summary.stored),
        "x-agnt-spans-duplicate": str(summary.duplicates),
        "x-agnt-spans-skipped": str(summary.skipped),
        "x-agnt-spans-rejected": str(summary.rejected),
    }
