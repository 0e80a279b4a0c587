"""The prompt registry's domain records: what a store keeps of a prompt, its versions and its label moves.

Stores build these from their rows and services read them; neither renders API JSON from them (times are
milliseconds since the epoch here, RFC 3339 only in the results clients get: ``services.prompt_results``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import PromptContent

__all__ = ["LabelMove", "PromptPick", "PromptRecord", "PromptVersion"]


@dataclass(frozen=True, slots=True)
class PromptPick:
    """What a label, a version number or the draft selects of a prompt: the content's etag, without the rest
    of the record (what running a prompt needs)."""

    name: str
    version: int | None  # None: the draft
    etag: str
    published_as: int | None = None  # the draft only: the version with the same content, if one was published


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """A published version: immutable content (by etag) with the note it was published with."""

    version: int
    etag: str
    note: str
    created_at: int  # ms since the epoch


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One move of a label: a publish, or a move back to an earlier version (a rollback)."""

    label: str
    version: int
    previous_version: int | None  # None: the label's first move
    note: str
    created_at: int  # ms since the epoch


@dataclass(slots=True)
class PromptRecord:
    """A prompt as stored: its draft, its versions (oldest first) and where its labels point."""

    name: str
    description: str
    draft: PromptContent
    draft_etag: str
    draft_revision: int
    versions: list[PromptVersion] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0

    def find_version(self, version: int) -> PromptVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    @property
    def latest_version(self) -> int | None:
        return self.versions[-1].version if self.versions else None
