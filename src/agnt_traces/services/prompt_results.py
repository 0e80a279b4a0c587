"""What the prompt registry answers: typed results that MCP, REST, the CLI and the Python API render.

Each class is the output schema of its MCP tool and the response schema of its REST operation. Results
are built from trusted store records with ``model_construct`` (nothing to validate); ``render()`` gives
the JSON clients get. A ``gate`` that a version or label move does not have is left out, not null.

For code written when these were dicts, ``result["draftEtag"]`` still reads a result's JSON by its
camelCase name (``LegacyItems``); new code reads attributes (``result.draft_etag``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..golden_models import GateRecord
from ..ids import ms_to_rfc3339
from ..models import PromptContent, Trace
from ..prompt_records import LabelMove, PromptRecord, PromptVersion
from ..replayability import replay_issues
from ..wire import WireModel

__all__ = [
    "ImportState",
    "ImportedDraft",
    "LabelMoveEntry",
    "LegacyItems",
    "PromptDetail",
    "PromptList",
    "PromptSummary",
    "PromptVersions",
    "PublishResult",
    "RunPromptResult",
    "RunTrace",
    "UpsertResult",
    "VersionEntry",
]

_GATE_HELP = (
    "what let this version through its gate: {replayId, summary, draftEtag} for a passing replay, "
    "{override, draftEtag, at} for an override; absent when the prompt had no gate"
)


def _is_none(value: object) -> bool:
    return value is None


class LegacyItems(WireModel):
    """A result whose JSON also reads by its camelCase names, as when results were dicts:
    ``result["draftEtag"]``, ``result.get(...)``, ``"gate" in result``, ``{**result}``."""

    def __getitem__(self, key: str) -> Any:
        return self.render()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.render().get(key, default)

    def keys(self) -> Any:
        return self.render().keys()

    def __contains__(self, key: object) -> bool:
        return key in self.render()


_Result = LegacyItems


class VersionEntry(_Result):
    """A published version of a prompt."""

    version: int
    etag: str = Field(description="the version's content etag (sha256 of its canonical JSON)")
    note: str
    created_at: str = Field(description="RFC 3339, UTC")
    gate: GateRecord | None = Field(default=None, exclude_if=_is_none, description=_GATE_HELP)

    @classmethod
    def of(cls, v: PromptVersion, gate: GateRecord | None = None) -> VersionEntry:
        return cls.model_construct(
            version=v.version, etag=v.etag, note=v.note, created_at=ms_to_rfc3339(v.created_at), gate=gate
        )


class LabelMoveEntry(_Result):
    """One move of a label (a publish or a rollback), oldest first."""

    label: str
    version: int
    previous_version: int | None = Field(description="where the label pointed before; null for its first move")
    note: str
    created_at: str = Field(description="RFC 3339, UTC")
    gate: GateRecord | None = Field(default=None, exclude_if=_is_none, description=_GATE_HELP)

    @classmethod
    def of(cls, m: LabelMove, gate: GateRecord | None = None) -> LabelMoveEntry:
        return cls.model_construct(
            label=m.label,
            version=m.version,
            previous_version=m.previous_version,
            note=m.note,
            created_at=ms_to_rfc3339(m.created_at),
            gate=gate,
        )


class PromptSummary(_Result):
    """A prompt in one line: its draft, latest version, labels and model."""

    name: str
    description: str
    draft_revision: int = Field(description="counts saves of a changed draft")
    draft_etag: str = Field(description="the draft's content etag: publish_prompt's expected_etag")
    latest_version: int | None = Field(description="null until the first publish")
    labels: dict[str, int] = Field(description="label → version")
    model: str = Field(description="provider/name of the draft's model")
    updated_at: str = Field(description="RFC 3339, UTC")

    @staticmethod
    def fields_of(rec: PromptRecord) -> dict[str, Any]:
        """The summary's fields, for building it or any result that extends it."""
        return {
            "name": rec.name,
            "description": rec.description,
            "draft_revision": rec.draft_revision,
            "draft_etag": rec.draft_etag,
            "latest_version": rec.latest_version,
            "labels": rec.labels,
            "model": f"{rec.draft.model.provider}/{rec.draft.model.name}",
            "updated_at": ms_to_rfc3339(rec.updated_at),
        }

    @classmethod
    def of(cls, rec: PromptRecord) -> PromptSummary:
        return cls.model_construct(**cls.fields_of(rec))


class PromptList(_Result):
    """The prompts of a tenant, by name."""

    prompts: list[PromptSummary]


class PromptDetail(PromptSummary):
    """A prompt's content (the draft, a version or a label's version) with its versions and label history."""

    selected: str = Field(description="what was read: 'draft', a label, or 'version N'")
    version: int | None = Field(description="the version read; null for the draft")
    etag: str = Field(description="the etag of the content read")
    content: PromptContent
    versions: list[VersionEntry]
    history: list[LabelMoveEntry]


class UpsertResult(PromptSummary):
    """The prompt after its draft was saved, with the template warnings."""

    etag: str = Field(description="the saved draft's etag")
    warnings: list[str]


ImportState = Literal["created", "updated", "unchanged"]


class ImportedDraft(PromptSummary):
    """A draft written by ``prompts import``: the prompt after it, and what the import did to it."""

    state: ImportState


class PublishResult(PromptSummary):
    """The prompt after a publish (or a label move), with the label and the version it now points at."""

    label: str
    version: int
    etag: str = Field(description="the etag of the version the label points at")
    gate: GateRecord | None = Field(default=None, exclude_if=_is_none, description=_GATE_HELP)


class PromptVersions(_Result):
    """A prompt's versions, labels and label history (without content)."""

    name: str
    draft_revision: int
    draft_etag: str
    versions: list[VersionEntry]
    labels: dict[str, int] = Field(description="label → version")
    history: list[LabelMoveEntry]


class RunTrace(Trace):
    """A recorded trace as clients get it: the trace, and whether the playground can replay it."""

    model_config = ConfigDict(serialize_by_alias=True)

    replayable: bool
    replay_issues: list[str] | None = Field(
        default=None, exclude_if=_is_none, description="why it is not replayable; absent when it is"
    )

    @classmethod
    def of(cls, trace: Trace) -> RunTrace:
        issues = replay_issues(trace)
        return cls.model_construct(**dict(trace), replayable=not issues, replay_issues=issues or None)


class RunPromptResult(_Result):
    """A prompt run: the recorded trace (output, tool calls, usage, cost) and the compiler's warnings."""

    trace: RunTrace
    warnings: list[str]
