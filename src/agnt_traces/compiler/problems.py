"""Problems and the messages that name them.

Every problem a compile finds is a ``{"block", "variable", "line", "problem"}`` dict; they are collected
and raised together as one :class:`~agnt_traces.errors.CompileError` (``details["problems"]``). Messages
are cleaned so no memory address, internal type name or traceback reaches a client.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from ..errors import CompileError
from .sandbox import Refused

__all__ = ["TEMPLATE_FILE", "clean", "describe", "problem", "raise_problems", "readers_text", "runtime_line", "where"]

#: The file name jinja2 gives code compiled from a string: frames of a template's code carry it.
TEMPLATE_FILE = "<template>"

_ADDRESS = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
_HEX = re.compile(r"0x[0-9a-fA-F]{6,}")
_INTERNAL_TYPE = re.compile(r"'(?:jinja2|markupsafe)\.[\w.]*?(\w+) object'")
_UNDEFINED_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


def clean(message: str, limit: int = 300) -> str:
    message = _ADDRESS.sub("<object>", message)
    message = _HEX.sub("0x…", message)
    message = _INTERNAL_TYPE.sub(r"'\1 object'", message)
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def describe(exc: BaseException) -> tuple[str, str | None]:
    """Readable text for an exception raised while rendering, and the variable it names, if any."""
    if isinstance(exc, Refused):
        return f"refused: {clean(str(exc))}", None
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {clean(str(exc))}", None
    if isinstance(exc, UndefinedError):
        text = exc.message or "undefined value"
        match = _UNDEFINED_NAME.fullmatch(text)
        if match:
            name = match.group(1)
            return f"variable '{name}' is not defined; declare it or pass a value for it", name
        return clean(text), None
    if isinstance(exc, TemplateError):
        return clean(exc.message or type(exc).__name__), None
    if isinstance(exc, RecursionError):
        return "refused: the template recurses too deeply", None
    if isinstance(exc, MemoryError):
        return "refused: the template ran out of memory", None
    if isinstance(exc, ZeroDivisionError):
        return "division by zero", None
    return clean(f"{type(exc).__name__}: {exc}"), None


def runtime_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TEMPLATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def problem(block: str | None, variable: str | None, line: int | None, text: str) -> dict[str, Any]:
    return {"block": block, "variable": variable, "line": line, "problem": text}


def where(block: str, line: int | None, condition: bool = False) -> str:
    if condition:
        return f"block '{block}' condition"
    return f"block '{block}' line {line}" if line else f"block '{block}'"


def raise_problems(problems: list[dict[str, Any]]) -> None:
    if problems:
        raise CompileError("; ".join(p["problem"] for p in problems), {"problems": problems})


def readers_text(readers: list[str]) -> str:
    if not readers:
        return ""
    quoted = ", ".join(f"'{r}'" for r in readers)
    return f" by block {quoted}" if len(readers) == 1 else f" by blocks {quoted}"
