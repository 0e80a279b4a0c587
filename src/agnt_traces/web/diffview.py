"""A diff result's ``unified`` text, parsed with unidiff into rows a page shows side by side.

Each file (``blocks/intro``, ``messages``, ``output/openai/gpt-4o``…) becomes a list of hunks; each hunk a
list of rows ``(kind, old_no, old_text, new_no, new_text)`` where ``kind`` is ``same``, ``changed``,
``removed`` or ``added``. Consecutive removed and added lines are paired up as ``changed`` rows, so a
reworded line sits next to its old self.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

__all__ = ["DiffFile", "DiffRow", "diff_files"]


@dataclass(slots=True)
class DiffRow:
    kind: str
    old_no: int | None
    old: str | None
    new_no: int | None
    new: str | None


@dataclass(slots=True)
class DiffFile:
    path: str
    change: str  # added, removed, modified
    hunks: list[list[DiffRow]] = field(default_factory=list)
    added: int = 0
    removed: int = 0

    @property
    def part(self) -> str:
        return self.path.split("/", 1)[0]


def _name(patched: Any) -> str:
    for raw in (patched.target_file, patched.source_file):
        if raw and raw != "/dev/null":
            return str(raw).split("/", 1)[1] if str(raw)[:2] in ("a/", "b/") else str(raw)
    return str(patched.path)


def _pair(removed: list[Any], added: list[Any]) -> list[DiffRow]:
    rows = []
    for i in range(max(len(removed), len(added))):
        old = removed[i] if i < len(removed) else None
        new = added[i] if i < len(added) else None
        kind = "changed" if old is not None and new is not None else ("removed" if old is not None else "added")
        rows.append(
            DiffRow(
                kind,
                old.source_line_no if old is not None else None,
                _text(old) if old is not None else None,
                new.target_line_no if new is not None else None,
                _text(new) if new is not None else None,
            )
        )
    return rows


def _text(line: Any) -> str:
    return str(line.value).rstrip("\n")


def diff_files(unified: str | None) -> list[DiffFile]:
    """The files of a unified diff, as rows. A text unidiff cannot parse gives no files (never raw text)."""
    if not unified:
        return []
    try:
        patch = PatchSet(unified)
    except UnidiffParseError:
        return []
    files = []
    for patched in patch:
        change = "added" if patched.is_added_file else "removed" if patched.is_removed_file else "modified"
        out = DiffFile(_name(patched), change, added=patched.added, removed=patched.removed)
        for hunk in patched:
            rows: list[DiffRow] = []
            removed: list[Any] = []
            added: list[Any] = []
            for line in hunk:
                if line.is_removed:
                    removed.append(line)
                elif line.is_added:
                    added.append(line)
                elif line.is_context:
                    rows.extend(_pair(removed, added))
                    removed, added = [], []
                    rows.append(DiffRow("same", line.source_line_no, _text(line), line.target_line_no, _text(line)))
            rows.extend(_pair(removed, added))
            out.hunks.append(rows)
        files.append(out)
    return files
