"""``compile_prompt``: a prompt's content and values in, what a model call sends out.

The steps, each a function below:

1. check the arguments (``variables`` an object, every input message with a role) —
   :func:`~.values.check_variables_arg`, :func:`~.values.check_input_messages`;
2. analyse the content: sizes, every template and condition parsed, who reads what —
   :func:`~.analysis.analyse`;
3. check the values passed against their declarations — :func:`check_passed_values`;
4. resolve the declared variables nobody passed: their default, else ``None``, else a "required"
   problem — :func:`resolve_declared`;
5. select and render the blocks inside one sandbox budget: a block whose condition holds is rendered,
   a block that renders to white space only is left out — :func:`render_blocks`;
6. raise every problem found so far together, or build the manifest and messages — :func:`build_result`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template

from ..models import PromptContent, VariableDecl
from . import limits
from .analysis import Analysis, BlockInfo, analyse
from .problems import describe, problem, raise_problems, readers_text, runtime_line, where
from .sandbox import Budget, Refused, budgeted
from .values import check_input_messages, check_variables_arg, default_problem, value_problem

__all__ = ["CompileResult", "compile_prompt"]


@dataclass(frozen=True, slots=True)
class CompileResult:
    manifest: dict[str, Any]  # {"system": str, "tools": list, "model": {"provider","name","params"}, "etag": str}
    messages: list[dict[str, Any]]  # [{"role","content"}...] from surviving non-system blocks, then input_messages
    warnings: list[str]
    variables: dict[str, Any]  # the resolved values actually used (defaults applied), JSON-able
    block_messages: int  # how many leading entries of `messages` came from blocks (the rest are input messages)


@dataclass(slots=True)
class _Findings:
    """What the steps report, in the order they find it."""

    problems: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Variables:
    """The values templates see (``context``: declared optional variables without a value are None), the
    values actually used (``resolved``: JSON-able, reported back), and the variables already reported as
    wrong or missing (``bad``: blocks reading them are not rendered)."""

    context: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Rendered:
    system_parts: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def compile_prompt(
    content: PromptContent,
    variables: dict[str, Any] | None = None,
    input_messages: list[dict[str, Any]] | None = None,
) -> CompileResult:
    """Render ``content`` with ``variables``; see the package docstring for the rules.

    Raises :class:`InvalidArgument` when ``variables`` is not an object or an input message has no role,
    and :class:`CompileError` naming every problem of the prompt and its values.
    """
    started = time.monotonic()  # parsing counts against the time limit too
    values = check_variables_arg(variables)
    extra_messages = check_input_messages(input_messages)
    analysis = analyse(content)
    findings = _Findings(problems=list(analysis.problems))
    resolved = check_passed_values(values, content.variables, analysis, findings)
    resolve_declared(content.variables, analysis, resolved, findings)
    rendered = render_blocks(analysis.blocks, resolved, started + limits.TIME_LIMIT, findings)
    raise_problems(findings.problems)
    return build_result(content, rendered, extra_messages, resolved, findings.warnings)


def check_passed_values(
    values: dict[str, Any], decls: list[VariableDecl], analysis: Analysis, findings: _Findings
) -> _Variables:
    """Takes every passed value that is JSON data of its declared type (``None`` for a declared variable
    means "no value" and is skipped); reports the others as problems of the first block reading them,
    and warns about undeclared values no block reads."""
    by_name = {d.name: d for d in decls}
    resolved = _Variables()
    for name, value in values.items():
        decl = by_name.get(name)
        if decl is not None and value is None:
            continue
        text = value_problem(name, decl.type if decl else "", value)
        if text:
            readers = analysis.readers.get(name, [])
            findings.problems.append(problem(readers[0] if readers else None, name, None, text))
            resolved.bad.add(name)
            continue
        resolved.context[name] = value
        resolved.resolved[name] = value
        if decl is None and name not in analysis.readers:
            findings.warnings.append(f"variable '{name}' was passed but no block reads it")
    return resolved


def resolve_declared(decls: list[VariableDecl], analysis: Analysis, resolved: _Variables, findings: _Findings) -> None:
    """Gives each declared variable without a passed value its default (a copy), else reports it when
    required, else makes it ``None`` in templates. A default of the wrong type was reported by the
    analysis; its variable is only marked bad here."""
    for decl in decls:
        if decl.name in resolved.context or decl.name in resolved.bad:
            continue
        if decl.default is not None:
            if default_problem(decl):
                resolved.bad.add(decl.name)  # already reported by analyse()
                continue
            resolved.context[decl.name] = resolved.resolved[decl.name] = copy.deepcopy(decl.default)
        elif decl.required:
            readers = analysis.readers.get(decl.name, [])
            findings.problems.append(
                problem(
                    readers[0] if readers else None,
                    decl.name,
                    None,
                    f"variable '{decl.name}' ({decl.type}) is required{readers_text(readers)}; pass it in variables",
                )
            )
            resolved.bad.add(decl.name)
        else:
            resolved.context[decl.name] = None


def render_blocks(blocks: list[BlockInfo], resolved: _Variables, deadline: float, findings: _Findings) -> _Rendered:
    """Selects and renders the blocks in order, all against one sandbox budget ending at ``deadline``.

    A block already reported (syntax error, or reading a bad variable) is skipped; a block whose condition
    is false is left out; a block rendering to white space only is left out with a warning. A condition or
    template that fails is reported and the next block is tried, unless the failure is fatal (a limit of
    the whole compile), which ends rendering.
    """
    rendered = _Rendered()
    with budgeted(deadline) as budget:
        for info in blocks:
            if not _renderable(info, resolved.bad):
                continue
            try:
                keep = _condition_holds(info, resolved.context)
            except Exception as exc:
                text, variable = describe(exc)
                findings.problems.append(problem(info.id, variable, None, f"{where(info.id, None, True)}: {text}"))
                if _is_fatal(exc):
                    break
                continue
            template = info.template.template
            if not keep or template is None:
                continue
            try:
                text = render_block(template, resolved.context, budget)
            except Exception as exc:
                message, variable = describe(exc)
                line = runtime_line(exc)
                findings.problems.append(problem(info.id, variable, line, f"{where(info.id, line)}: {message}"))
                if _is_fatal(exc):
                    break
                continue
            if not text.strip():
                findings.warnings.append(f"block '{info.id}' rendered empty and was left out")
            elif info.role == "system":
                rendered.system_parts.append(text)
            else:
                rendered.messages.append({"role": info.role, "content": text})
    return rendered


def _renderable(info: BlockInfo, bad: set[str]) -> bool:
    """False for a block whose template or condition did not parse, or that reads a variable already
    reported: its problems are known, rendering it would only add noise."""
    if info.template.error or (info.condition is not None and info.condition.error):
        return False
    return not info.names & bad


def _condition_holds(info: BlockInfo, context: dict[str, Any]) -> bool:
    """Evaluates the block's condition (true when it has none). Raises what the expression raises."""
    if info.condition is None or info.condition.expression is None:
        return True
    return bool(info.condition.expression(context))


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, Refused) and exc.fatal


def render_block(template: Template, context: dict[str, Any], budget: Budget) -> str:
    """Renders one block, refusing more than ``limits.MAX_BLOCK_CHARS`` characters for it and more than
    ``limits.MAX_PROMPT_CHARS`` for the prompt so far (``budget.output``, which it adds to).

    Raises:
        Refused: over either cap (fatal for the prompt's cap); anything the template raises.
    """
    parts: list[str] = []
    size = 0
    stream = template.generate(context)
    try:
        for chunk in stream:
            size += len(chunk)
            if size > limits.MAX_BLOCK_CHARS:
                raise Refused(f"the block renders more than {limits.MAX_BLOCK_CHARS:,} characters")
            if budget.output + size > limits.MAX_PROMPT_CHARS:
                raise Refused(f"the prompt renders more than {limits.MAX_PROMPT_CHARS:,} characters", fatal=True)
            parts.append(chunk)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    budget.output += size
    return "".join(parts)


def build_result(
    content: PromptContent,
    rendered: _Rendered,
    extra_messages: list[dict[str, Any]],
    resolved: _Variables,
    warnings: list[str],
) -> CompileResult:
    """The manifest (system blocks joined by a blank line, a copy of the tools, the model, the etag) and the
    messages: the rendered non-system blocks, then the caller's input messages."""
    messages = rendered.messages
    block_messages = len(messages)
    messages.extend(extra_messages)
    manifest = {
        "system": "\n\n".join(rendered.system_parts),
        "tools": copy.deepcopy(content.tools),
        "model": content.model.model_dump(mode="json"),
        "etag": content.etag,
    }
    return CompileResult(
        manifest=manifest,
        messages=messages,
        warnings=warnings,
        variables=resolved.resolved,
        block_messages=block_messages,
    )
