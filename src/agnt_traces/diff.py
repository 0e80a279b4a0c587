"""Unified diffs of prompt content, compiled messages and model outputs (SPEC §3).

Every function here is pure (no I/O) and returns a :class:`DiffResult`:

* ``unified`` — a standard unified diff (3 lines of context) with one "file" per part. Paths:

  ================================  ===========================================================
  ``a/blocks/<id>``                 one block, rendered as a small text file (see below)
  ``a/blocks/_order``               the order of the blocks present on both sides (see "Moves")
  ``a/variables``                   the variable declarations, pretty JSON
  ``a/model``                       ``{provider, name, params}``, pretty JSON
  ``a/tools``                       the tool definitions, pretty JSON
  ``a/messages``                    a message transcript (:func:`diff_messages`)
  ``a/output``                      a text such as a model output (:func:`diff_text`)
  ================================  ===========================================================

  :func:`diff_messages` and :func:`diff_text` take another ``part`` name and an optional ``id``; the
  path is then ``<part>`` or ``<part>/<id>`` (characters of ``id`` outside ``A-Za-z0-9._@+=:/-``
  become ``_`` in the path; the summary keeps the real id). A part that exists on one side only is
  diffed against ``/dev/null`` as git does (``--- /dev/null`` / ``+++ b/<path>``). Lines are split
  on ``\\n`` only, so ``\\r\\n`` endings, a lone ``\\r``, ``\\u2028`` and the like stay inside a line
  (read the diff with ``unidiff.PatchSet(text)`` or any ``\\n``-splitting reader, not with
  ``str.splitlines``). A last line without a newline is followed by ``\\ No newline at end of file``.

* ``summary`` — one row per file, in the order of the files in ``unified``, except that
  ``blocks/_order`` has one ``"moved"`` row per moved block::

      {"part": "block"|"variables"|"model"|"tools"|"messages"|"output"|<part>,
       "id": <block id, the id given to diff_text/diff_messages, or None>,
       "change": "added"|"removed"|"modified"|"moved",
       "added_lines": int, "removed_lines": int}

  ``added_lines`` / ``removed_lines`` are exactly the ``+`` / ``-`` lines of that row's file, so
  ``unidiff`` counts per file equal the summary (:func:`summary_path` maps a row to its file path).

* ``changed`` — whether anything differs. Identical inputs give ``unified == ""``, ``summary == []``
  and ``changed is False``.

Order of the parts: blocks that exist in the new content (in the new order), then removed blocks (in
the old order), then ``blocks/_order``, ``variables``, ``model``, ``tools``; :func:`merge` appends
message and output diffs after that.

**Block files.** A block renders as::

    role: user
    condition: plan == "pro"
    <blank line>
    <content, verbatim>

The ``condition:`` line is left out when there is none; a condition spanning several lines gives one
``condition:`` line per line, so the rendering is unambiguous and a change to the role, the
condition or the content shows up as a line change in that block's file.

**Moves.** Blocks are matched by id. Among the blocks present on both sides the largest set that
kept its relative order stays put (a longest increasing subsequence); every other common block is
*moved*. Moves are shown in a synthetic file ``a/blocks/_order`` / ``b/blocks/_order`` listing the
ids of the common blocks one per line, old order against new order: each moved block is exactly one
``-`` line and one ``+`` line there. Each moved block gets its own summary row with
``change: "moved"``, ``added_lines: 1``, ``removed_lines: 1`` (those rows together account for the
``blocks/_order`` file). A block that was both moved and modified gets two rows: ``"modified"``
(counting the lines of ``blocks/<id>``) and ``"moved"``. Adding or removing blocks alone moves
nothing. The name ``_order`` cannot clash with a block id (ids start with a letter or digit).

**Empty parts.** ``variables`` and ``tools`` with no entries and an empty message list are *absent*
(so going from none to some is ``"added"``). :func:`diff_text` distinguishes ``None`` (absent) from
``""`` (an empty file): ``diff_text(None, "")`` is an ``"added"`` row with 0 lines whose file in
``unified`` has headers and no hunk (``unidiff`` parses it as an added file with no lines).

JSON parts are canonical (keys sorted inside values, variables keep the field order
``name, type, required, default, description``), so key order alone is never a change — the same
rule as the content etag.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from agnt_traces.models import Block, ModelConfig, PromptContent, VariableDecl

__all__ = [
    "CONTEXT_LINES",
    "ORDER_FILE",
    "DiffResult",
    "diff_content",
    "diff_messages",
    "diff_text",
    "merge",
    "render_block",
    "render_messages",
    "summary_path",
]

CONTEXT_LINES = 3
ORDER_FILE = "blocks/_order"
DEV_NULL = "/dev/null"
NO_NEWLINE = "\\ No newline at end of file\n"

_PART_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._@+=:/-]")
# Above this many lines in total, let difflib treat very frequent lines as junk (faster, less tidy).
_AUTOJUNK_ABOVE = 4000

Opcode = tuple[str, int, int, int, int]


@dataclass(slots=True)
class DiffResult:
    """A unified diff with one file per part, its per-file summary, and whether anything changed."""

    unified: str = ""
    summary: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False
    #: ``(path, text)`` of each file of ``unified``, in order: ``unified`` is their concatenation.
    files: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self, max_chars: int | None = None) -> dict[str, Any]:
        """The diff as JSON. With ``max_chars``, ``unified`` keeps whole files while they fit (so that it
        still parses) and ``truncated`` names the files left out; the summary always counts every file."""
        out: dict[str, Any] = {
            "unified": self.unified,
            "summary": [dict(row) for row in self.summary],
            "changed": self.changed,
        }
        if max_chars is not None and len(self.unified) > max_chars:
            kept: list[str] = []
            omitted: list[str] = []
            used = 0
            for path, text in self.files:
                if not omitted and used + len(text) <= max_chars:
                    kept.append(text)
                    used += len(text)
                else:
                    omitted.append(path)
            out["unified"] = "".join(kept)
            out["truncated"] = {
                "omittedFiles": omitted,
                "omittedChars": len(self.unified) - used,
                "hint": "the summary counts every file; raise max_chars to see the whole diff",
            }
        return out


# ---------------------------------------------------------------------------------------------------
# Public API


def diff_content(old: PromptContent, new: PromptContent) -> DiffResult:
    """Diff two prompt contents: blocks (matched by id), block order, variables, model and tools."""
    builder = _Builder()
    old_blocks = {b.id: b for b in old.blocks}
    new_blocks = {b.id: b for b in new.blocks}

    for block in new.blocks:
        before = old_blocks.get(block.id)
        builder.file(
            "block",
            block.id,
            f"blocks/{block.id}",
            None if before is None else render_block(before),
            render_block(block),
        )
    for block in old.blocks:
        if block.id not in new_blocks:
            builder.file("block", block.id, f"blocks/{block.id}", render_block(block), None)

    old_common = [b.id for b in old.blocks if b.id in new_blocks]
    new_common = [b.id for b in new.blocks if b.id in old_blocks]
    builder.order(old_common, new_common)

    builder.file("variables", None, "variables", _render_variables(old.variables), _render_variables(new.variables))
    builder.file("model", None, "model", _render_model(old.model), _render_model(new.model))
    builder.file("tools", None, "tools", _render_tools(old.tools), _render_tools(new.tools))
    return builder.result()


def diff_messages(
    old: Sequence[Mapping[str, Any]] | None,
    new: Sequence[Mapping[str, Any]] | None,
    *,
    part: str = "messages",
    id: str | None = None,
) -> DiffResult:
    """Diff two message lists as one transcript file (see :func:`render_messages`).

    An empty list or ``None`` is an absent transcript.
    """
    _check_part(part)
    builder = _Builder()
    builder.file(part, id, _path(part, id), render_messages(old) or None, render_messages(new) or None)
    return builder.result()


def diff_text(
    old: str | None,
    new: str | None,
    *,
    part: str = "output",
    id: str | None = None,
) -> DiffResult:
    """Diff two texts as one file ``<part>`` (or ``<part>/<id>``); ``None`` means absent."""
    _check_part(part)
    builder = _Builder()
    builder.file(part, id, _path(part, id), old, new)
    return builder.result()


def merge(*results: DiffResult) -> DiffResult:
    """Concatenate diffs: unified texts and summaries in the order given.

    Give each part a distinct ``part``/``id`` (e.g. one ``diff_text(..., id=model)`` per model) so
    that every file path in the merged diff is unique.
    """
    return DiffResult(
        unified="".join(r.unified for r in results),
        summary=[dict(row) for r in results for row in r.summary],
        changed=any(r.changed for r in results),
        files=[f for r in results for f in r.files],
    )


def summary_path(row: Mapping[str, Any]) -> str:
    """The path (without ``a/`` / ``b/``) of the file in ``unified`` that a summary row counts."""
    part = str(row["part"])
    if part == "block":
        return ORDER_FILE if row["change"] == "moved" else f"blocks/{row['id']}"
    return _path(part, row.get("id"))


def render_block(block: Block) -> str:
    """A block as a small text file: ``role:`` line, ``condition:`` line(s), a blank line, content."""
    lines = [f"role: {block.role}\n"]
    if block.condition is not None:
        lines.extend(f"condition: {line}\n" for line in block.condition.split("\n"))
    lines.append("\n")
    return "".join(lines) + block.content


def render_messages(messages: Sequence[Mapping[str, Any]] | None) -> str:
    """A transcript: per message ``### <role>``, then ``<key>: <json>`` for any extra keys
    (``name``, ``tool_call_id``, ``tool_calls``, …; sorted, ``None`` values left out), then the
    content, then a newline; messages are separated by a blank line. Text parts of a list content are
    rendered as text, other parts as compact JSON, one per line."""
    chunks: list[str] = []
    for message in messages or ():
        data = _as_mapping(message)
        out = [f"### {data.get('role', '')}\n"]
        for key in sorted(k for k in data if k not in ("role", "content")):
            if data[key] is not None:
                out.append(f"{key}: {_compact_json(data[key])}\n")
        out.append(_render_message_content(data.get("content")))
        out.append("\n")
        chunks.append("".join(out))
    return "\n".join(chunks)


# ---------------------------------------------------------------------------------------------------
# Rendering


def _render_variables(variables: Sequence[VariableDecl]) -> str | None:
    if not variables:
        return None
    decls = [
        {
            "name": v.name,
            "type": v.type,
            "required": v.required,
            "default": _sorted_value(v.default),
            "description": v.description,
        }
        for v in variables
    ]
    return _pretty_json(decls)


def _render_model(model: ModelConfig) -> str:
    data = {"provider": model.provider, "name": model.name, "params": _sorted_value(model.params)}
    return _pretty_json(data)


def _render_tools(tools: Sequence[Mapping[str, Any]]) -> str | None:
    if not tools:
        return None
    return _pretty_json(_sorted_value(list(tools)))


def _render_message_content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for item in content:
            if isinstance(item, Mapping) and item.get("type") == "text" and isinstance(item.get("text"), str):
                parts.append(item["text"])
            elif isinstance(item, str):
                parts.append(item)
            else:
                parts.append(_compact_json(item))
        return "\n".join(parts)
    return _compact_json(content)


def _as_mapping(message: Any) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        data = dump(mode="json")
        if isinstance(data, Mapping):
            return data
    return {"role": "", "content": message}


def _sorted_value(value: Any) -> Any:
    """The same JSON value with the keys of every object sorted (so key order is never a change)."""
    if isinstance(value, Mapping):
        return {str(k): _sorted_value(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_sorted_value(v) for v in value]
    return value


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _check_part(part: str) -> None:
    if not _PART_RE.match(part):
        raise ValueError(f"part {part!r} is invalid: use 1-64 characters of a-z, 0-9, '_' or '-'")


def _path(part: str, id: Any) -> str:
    if id is None:
        return part
    safe = _UNSAFE_PATH_CHARS.sub("_", str(id)) or "_"
    return f"{part}/{safe}"


# ---------------------------------------------------------------------------------------------------
# Unified diff machinery


class _Builder:
    """Accumulates files of a unified diff and their summary rows."""

    __slots__ = ("_rows", "_text")

    def __init__(self) -> None:
        self._text: list[tuple[str, str]] = []
        self._rows: list[dict[str, Any]] = []

    def file(self, part: str, id: str | None, path: str, old: str | None, new: str | None) -> None:
        if old is None and new is None:
            return
        if old is not None and new is not None and old == new:
            return
        a = _split_lines(old or "")
        b = _split_lines(new or "")
        if old is None:
            change, header = "added", f"--- {DEV_NULL}\n+++ b/{path}\n"
        elif new is None:
            change, header = "removed", f"--- a/{path}\n+++ {DEV_NULL}\n"
        else:
            change, header = "modified", f"--- a/{path}\n+++ b/{path}\n"
        autojunk = len(a) + len(b) > _AUTOJUNK_ABOVE
        opcodes = SequenceMatcher(None, a, b, autojunk=autojunk).get_opcodes()
        hunks, added, removed = _format_hunks(a, b, opcodes)
        self._text.append((path, header + hunks))
        self._rows.append(_row(part, id, change, added, removed))

    def order(self, old_ids: list[str], new_ids: list[str]) -> None:
        """Emit ``blocks/_order`` and one "moved" row per moved block (ids common to both sides)."""
        if old_ids == new_ids:
            return
        opcodes = _order_opcodes(old_ids, new_ids)
        hunks, added, removed = _format_hunks([f"{i}\n" for i in old_ids], [f"{i}\n" for i in new_ids], opcodes)
        moved = {i for tag, _, _, j1, j2 in opcodes if tag != "equal" for i in new_ids[j1:j2]}
        rows = [_row("block", i, "moved", 1, 1) for i in new_ids if i in moved]
        assert added == removed == len(rows)
        self._text.append((ORDER_FILE, f"--- a/{ORDER_FILE}\n+++ b/{ORDER_FILE}\n" + hunks))
        self._rows.extend(rows)

    def result(self) -> DiffResult:
        return DiffResult(
            unified="".join(text for _, text in self._text),
            summary=self._rows,
            changed=bool(self._rows),
            files=list(self._text),
        )


def _row(part: str, id: str | None, change: str, added: int, removed: int) -> dict[str, Any]:
    return {"part": part, "id": id, "change": change, "added_lines": added, "removed_lines": removed}


def _split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping the ends; the last line may lack one."""
    if not text:
        return []
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _order_opcodes(old_ids: list[str], new_ids: list[str]) -> list[Opcode]:
    """Opcodes that keep a longest run of ids in the same relative order and move all others.

    ``old_ids`` and ``new_ids`` are permutations of the same unique ids.
    """
    old_index = {bid: i for i, bid in enumerate(old_ids)}
    seq = [old_index[bid] for bid in new_ids]  # old positions, in new order
    kept = set(_longest_increasing(seq))  # positions in new_ids that stay
    matches = [(seq[j], j) for j in range(len(seq)) if j in kept]
    # Merge consecutive matches into blocks, then fill the gaps as replace/delete/insert.
    opcodes: list[Opcode] = []
    i = j = 0
    for mi, mj in [*matches, (len(old_ids), len(new_ids))]:
        if i < mi and j < mj:
            opcodes.append(("replace", i, mi, j, mj))
        elif i < mi:
            opcodes.append(("delete", i, mi, j, j))
        elif j < mj:
            opcodes.append(("insert", i, i, j, mj))
        if mi < len(old_ids):
            if opcodes and opcodes[-1][0] == "equal" and opcodes[-1][2] == mi and opcodes[-1][4] == mj:
                tag, i1, _, j1, _ = opcodes[-1]
                opcodes[-1] = (tag, i1, mi + 1, j1, mj + 1)
            else:
                opcodes.append(("equal", mi, mi + 1, mj, mj + 1))
        i, j = mi + 1, mj + 1
    return opcodes


def _longest_increasing(seq: list[int]) -> list[int]:
    """Indices into ``seq`` of one longest strictly increasing subsequence (O(n log n))."""
    tails: list[int] = []  # tails[k] = seq value ending the best run of length k+1
    tail_at: list[int] = []  # index in seq of that value
    prev: list[int] = [-1] * len(seq)
    for idx, value in enumerate(seq):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_at.append(idx)
        else:
            tails[k] = value
            tail_at[k] = idx
        prev[idx] = tail_at[k - 1] if k > 0 else -1
    out: list[int] = []
    idx = tail_at[-1] if tail_at else -1
    while idx != -1:
        out.append(idx)
        idx = prev[idx]
    out.reverse()
    return out


def _group_opcodes(codes: Sequence[Opcode], n: int) -> Iterator[list[Opcode]]:
    """Hunks of opcodes with up to ``n`` lines of context (as ``SequenceMatcher.get_grouped_opcodes``)."""
    codes = list(codes) or [("equal", 0, 1, 0, 1)]
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = (tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2)
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = (tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n))
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _format_range(start: int, stop: int) -> str:
    """``start,length`` of a hunk side, as GNU diff and git write it."""
    beginning = start + 1
    length = stop - start
    if length == 1:
        return str(beginning)
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def _format_hunks(a: list[str], b: list[str], opcodes: Sequence[Opcode]) -> tuple[str, int, int]:
    """The hunks of a unified diff of ``a`` → ``b``, with the number of added and removed lines."""
    out: list[str] = []
    added = removed = 0

    def emit(prefix: str, line: str) -> None:
        out.append(prefix + line)
        if not line.endswith("\n"):
            out.append("\n" + NO_NEWLINE)

    for group in _group_opcodes(opcodes, CONTEXT_LINES):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_format_range(first[1], last[2])} +{_format_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for line in a[i1:i2]:
                    emit(" ", line)
                continue
            if tag in ("replace", "delete"):
                for line in a[i1:i2]:
                    emit("-", line)
                removed += i2 - i1
            if tag in ("replace", "insert"):
                for line in b[j1:j2]:
                    emit("+", line)
                added += j2 - j1
    return "".join(out), added, removed
