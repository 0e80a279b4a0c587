"""Static analysis of a prompt: what can be known before any value is given.

:func:`check_sizes` refuses templates too large to parse within bounds; :func:`analyse` parses every
block's template and condition (through the cache of :mod:`.parsing`), collects syntax errors and wrongly
typed defaults as problems, and records which blocks read which variable. :func:`check_content` and
:func:`variables_read` are the public questions asked of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..models import PromptContent
from . import limits
from .parsing import ParsedCondition, ParsedTemplate, parse_condition, parse_template
from .problems import problem, raise_problems, readers_text, where
from .sandbox import GLOBAL_NAMES
from .values import default_problem

__all__ = ["Analysis", "BlockInfo", "analyse", "check_content", "check_sizes", "variables_read"]

#: Names Jinja2 gives templates itself (never reported as undeclared variables).
_SPECIAL_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs"})


# ---------------------------------------------------------------------------------------------------
# Sizes


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_sizes(content: PromptContent) -> None:
    """Refuses templates too large to parse within bounds, before any parsing.

    Raises:
        CompileError: naming every block whose template (content plus condition) is over
            ``limits.MAX_TEMPLATE_BYTES``, or the prompt when all templates together are over
            ``limits.MAX_PROMPT_TEMPLATE_BYTES``.
    """
    problems: list[dict[str, Any]] = []
    total = 0
    for block in content.blocks:
        size = _utf8_size(block.content) + (_utf8_size(block.condition) if block.condition else 0)
        total += size
        if size > limits.MAX_TEMPLATE_BYTES:
            text = (
                f"block '{block.id}': the template is {size:,} bytes, more than the {limits.MAX_TEMPLATE_BYTES:,} "
                "allowed per block (AGNT_TRACES_MAX_TEMPLATE_BYTES); split it or shorten it"
            )
            problems.append(problem(block.id, None, None, text))
    if total > limits.MAX_PROMPT_TEMPLATE_BYTES:
        text = (
            f"the templates of the prompt are {total:,} bytes together, more than the "
            f"{limits.MAX_PROMPT_TEMPLATE_BYTES:,} allowed (AGNT_TRACES_MAX_PROMPT_TEMPLATE_BYTES); shorten them"
        )
        problems.append(problem(None, None, None, text))
    raise_problems(problems)


# ---------------------------------------------------------------------------------------------------
# Static analysis of a prompt


@dataclass(slots=True)
class BlockInfo:
    id: str
    role: str
    template: ParsedTemplate
    condition: ParsedCondition | None
    names: frozenset[str]


@dataclass(slots=True)
class Analysis:
    blocks: list[BlockInfo]
    problems: list[dict[str, Any]]
    readers: dict[str, list[str]]  # variable → ids of the blocks that read it (content or condition)


def analyse(content: PromptContent) -> Analysis:
    check_sizes(content)
    blocks: list[BlockInfo] = []
    problems: list[dict[str, Any]] = []
    readers: dict[str, list[str]] = {}
    for block in content.blocks:
        parsed = parse_template(block.content)
        if parsed.error:
            line, message = parsed.error
            problems.append(problem(block.id, None, line, f"{where(block.id, line)}: {message}"))
        condition = None
        names = parsed.names
        if block.condition is not None:
            condition = parse_condition(block.condition)
            if condition.error:
                line, message = condition.error
                problems.append(problem(block.id, None, line, f"{where(block.id, line, True)}: {message}"))
            names = names | condition.names
        for name in sorted(names):
            readers.setdefault(name, []).append(block.id)
        blocks.append(BlockInfo(block.id, block.role, parsed, condition, names))
    for decl in content.variables:
        text = default_problem(decl)
        if text:
            problems.append(problem(None, decl.name, None, text))
    return Analysis(blocks, problems, readers)


def reported_names(names: Iterable[str], declared: set[str]) -> set[str]:
    return {n for n in names if n in declared or (n not in GLOBAL_NAMES and n not in _SPECIAL_NAMES)}


def variables_read(content: PromptContent) -> set[str]:
    """Names every block template and condition reads (Jinja globals such as ``range`` left out unless
    declared). Blocks that do not parse contribute nothing."""
    declared = {d.name for d in content.variables}
    return reported_names(analyse(content).readers, declared)


def check_content(content: PromptContent) -> list[str]:
    """Static checks that need no values.

    Raises :class:`CompileError` naming every template or condition that does not parse (block id and
    line) and every default of the wrong type. Returns warnings: variables read but not declared,
    variables declared but never read.
    """
    analysis = analyse(content)
    raise_problems(analysis.problems)
    declared = {d.name for d in content.variables}
    warnings = []
    for name in sorted(reported_names(analysis.readers, declared) - declared):
        warnings.append(
            f"variable '{name}' is read{readers_text(analysis.readers[name])} but not declared; "
            "declare it so callers know to pass it"
        )
    for decl in content.variables:
        if decl.name not in analysis.readers:
            warnings.append(f"variable '{decl.name}' is declared but no block reads it")
    return warnings
