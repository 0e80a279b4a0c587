"""What ingesting traces answers, as clients see it (MCP ``ingest_trace``, ``POST /traces``, the Python API).

One class per answer: it gives the MCP tool its output schema and the REST operation its response schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..errors import AgntError
from ..ingest_records import IngestResult
from ..wire import WireModel

__all__ = [
    "BatchIngested",
    "BatchOutcomes",
    "ErrorBody",
    "IngestedTrace",
    "RefusedTrace",
    "StoredTrace",
    "batch_answer",
]


class IngestedTrace(WireModel):
    """One stored trace."""

    id: str = Field(description="the trace's id (the client's, or one the server made)")
    created: bool = Field(description="false: the same id and content were already stored (a no-op)")

    @classmethod
    def of(cls, result: IngestResult) -> IngestedTrace:
        return cls.model_construct(id=result.id, created=result.created)


class BatchIngested(WireModel):
    """A batch whose every trace was stored (HTTP 201, or 200 when none was new)."""

    traces: list[IngestedTrace] = Field(description="one per posted trace, in order")
    created: int = Field(description="how many were new")


class ErrorDetail(WireModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorBody(WireModel):
    error: ErrorDetail


class StoredTrace(WireModel):
    index: int = Field(description="the trace's position in the posted batch")
    id: str
    created: bool


class RefusedTrace(WireModel):
    index: int = Field(description="the trace's position in the posted batch")
    error: ErrorDetail


class BatchOutcomes(WireModel):
    """A batch with at least one refused trace (HTTP 207): every other trace was stored."""

    results: list[StoredTrace | RefusedTrace] = Field(description="one per posted trace, in order")
    created: int = Field(description="how many were stored as new")
    refused: int = Field(description="how many were refused (each with its error)")


def batch_answer(outcomes: list[IngestResult | AgntError]) -> BatchIngested | BatchOutcomes:
    """The answer to a batch: every trace stored (``BatchIngested``), else per trace (``BatchOutcomes``)."""
    stored = [o for o in outcomes if not isinstance(o, AgntError)]
    created = sum(r.created for r in stored)
    if len(stored) == len(outcomes):
        return BatchIngested.model_construct(traces=[IngestedTrace.of(r) for r in stored], created=created)
    results: list[StoredTrace | RefusedTrace] = []
    for i, o in enumerate(outcomes):
        if isinstance(o, AgntError):
            detail = ErrorDetail.model_construct(code=o.code, message=o.message, details=o.details)
            results.append(RefusedTrace.model_construct(index=i, error=detail))
        else:
            results.append(StoredTrace.model_construct(index=i, id=o.id, created=o.created))
    return BatchOutcomes.model_construct(results=results, created=created, refused=len(outcomes) - len(stored))
