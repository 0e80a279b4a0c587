"""Parsing block templates and conditions, cached by source.

A template or condition is parsed (in the sandbox's environment, see :mod:`.sandbox`) once, together
with the names it reads; a syntax error becomes a ``(line, message)`` pair instead of an exception, so a
prompt's analysis can report every broken block at once. Results are kept in one LRU cache bounded by
an estimate of their memory (``limits.TEMPLATE_CACHE_BYTES``), so compiling the same prompt again only
renders it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser

from . import limits
from .jinja_seams import names_read
from .problems import clean
from .sandbox import ENV

__all__ = ["PARSE_CACHE", "ByteBoundedCache", "ParsedCondition", "ParsedTemplate", "parse_condition", "parse_template"]

#: Template tags that load other templates: refused, a block stands alone.
_FORBIDDEN_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


@dataclass(frozen=True, slots=True)
class ParsedTemplate:
    template: Template | None
    names: frozenset[str]
    error: tuple[int | None, str] | None  # (line, message)


@dataclass(frozen=True, slots=True)
class ParsedCondition:
    expression: TemplateExpression | None
    names: frozenset[str]
    error: tuple[int | None, str] | None


def _syntax_message(exc: Exception) -> tuple[int | None, str]:
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno, clean(exc.message or "syntax error")
    if isinstance(exc, RecursionError):
        return None, "the template nests too deeply"
    if isinstance(exc, SyntaxError):  # Python's compiler refusing the generated code
        return None, clean(f"the template is too complex to compile ({exc.msg})")
    return None, clean(f"{type(exc).__name__}: {exc}")


def _build_template(source: str) -> ParsedTemplate:
    try:
        ast = ENV.parse(source)
        forbidden = next(iter(ast.find_all(_FORBIDDEN_NODES)), None)
        if forbidden is not None:
            return ParsedTemplate(
                None,
                frozenset(),
                (forbidden.lineno, "extends, include and import are not available: a block stands alone"),
            )
        names = names_read(ENV, ast)
        return ParsedTemplate(ENV.from_string(ast), names, None)
    except Exception as exc:  # syntax errors, and anything the compiler chokes on
        return ParsedTemplate(None, frozenset(), _syntax_message(exc))


def _build_condition(source: str) -> ParsedCondition:
    try:
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
        ast = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1)
        ast.set_environment(ENV)
        names = names_read(ENV, ast)
        return ParsedCondition(ENV.compile_expression(source, undefined_to_none=False), names, None)
    except Exception as exc:
        return ParsedCondition(None, frozenset(), _syntax_message(exc))


#: Estimated bytes a parsed template keeps per byte of source (measured with tracemalloc: ~23 for dense
#: ``{{ x }}`` syntax, ~5 for ``{% if %}`` blocks, ~1 for plain text), rounded up; plus a fixed overhead
#: for the Template object, its module and code objects.
_CACHE_BYTES_PER_SOURCE_BYTE = 32
_CACHE_BYTES_PER_ENTRY = 16_000


def cost_of(source: str) -> int:
    return _CACHE_BYTES_PER_ENTRY + _CACHE_BYTES_PER_SOURCE_BYTE * len(source)


class ByteBoundedCache:
    """An LRU cache of parse results whose estimated size (:func:`cost_of`) stays within ``limit()``
    bytes; an entry larger than the whole budget is not kept at all. Thread-safe."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_build(self, source: str, build: Callable[[str], Any]) -> Any:
        with self._lock:
            hit = self._entries.get(source)
            if hit is not None:
                self._entries.move_to_end(source)
                return hit[0]
        value = build(source)  # outside the lock: parsing is slow and must not serialise other threads
        cost, limit = cost_of(source), self._limit()
        if cost > limit:
            return value
        with self._lock:
            if source not in self._entries:
                self._entries[source] = (value, cost)
                self._bytes += cost
            while self._bytes > limit:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# Templates and conditions share one budget.
PARSE_CACHE = ByteBoundedCache(lambda: limits.TEMPLATE_CACHE_BYTES)


def parse_template(source: str) -> ParsedTemplate:
    return PARSE_CACHE.get_or_build("t" + source, lambda key: _build_template(key[1:]))


def parse_condition(source: str) -> ParsedCondition:
    return PARSE_CACHE.get_or_build("c" + source, lambda key: _build_condition(key[1:]))
