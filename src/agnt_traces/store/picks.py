"""What a label, a version number or the draft selects of a prompt, in one query both stores run.

Running a prompt needs only the selected content's etag (the content itself is immutable and cached by etag);
loading the whole record (the draft's content, every version, every label) is for showing a prompt.
"""

from __future__ import annotations

from typing import Any

from ..models import MAX_INT
from ..prompt_records import PromptPick

__all__ = ["pick_query", "picked"]

_BY_LABEL = (
    "SELECT l.version AS version, v.etag AS etag, NULL AS published_as FROM prompts p "
    "JOIN prompt_labels l ON l.prompt_id = p.id JOIN prompt_versions v ON v.prompt_id = p.id AND v.version = l.version "
    "WHERE p.tenant_id = {m} AND p.name = {m} AND l.label = {m}"
)
_BY_VERSION = (
    "SELECT v.version AS version, v.etag AS etag, NULL AS published_as FROM prompts p "
    "JOIN prompt_versions v ON v.prompt_id = p.id WHERE p.tenant_id = {m} AND p.name = {m} AND v.version = {m}"
)
_DRAFT = (
    "SELECT NULL AS version, p.draft_etag AS etag, (SELECT v.version FROM prompt_versions v "
    "WHERE v.prompt_id = p.id AND v.etag = p.draft_etag) AS published_as "
    "FROM prompts p WHERE p.tenant_id = {m} AND p.name = {m}"
)


def pick_query(
    tid: int, name: str, label: str | None, version: int | None, mark: str = "?"
) -> tuple[str, tuple[Any, ...]] | None:
    """(SQL, parameters) selecting ``(version, etag, published_as)``; ``mark`` is the store's placeholder.
    None when nothing can match (a version number out of range)."""
    if version is not None:
        if not 1 <= version <= MAX_INT:
            return None
        return _BY_VERSION.format(m=mark), (tid, name, version)
    if label is not None and label != "draft":
        return _BY_LABEL.format(m=mark), (tid, name, label)
    return _DRAFT.format(m=mark), (tid, name)


def picked(name: str, row: Any) -> PromptPick | None:
    """The pick from the query's row (a tuple or a mapping); None for no row."""
    if row is None:
        return None
    if isinstance(row, dict):
        version, etag, published_as = row["version"], row["etag"], row["published_as"]
    else:
        version, etag, published_as = row[0], row[1], row[2]
    return PromptPick(
        name=name,
        version=None if version is None else int(version),
        etag=str(etag),
        published_as=None if published_as is None else int(published_as),
    )
