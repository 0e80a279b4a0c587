"""Compile a prompt's content into what a model call sends.

``compile_prompt(content, variables, input_messages)`` evaluates each block's condition, renders the
surviving blocks and returns the manifest (system text, tools, model, etag), the messages and the
warnings. Templates are Jinja2 and come from people and agents editing prompts, so they are treated as
untrusted code. The package, one module per concern:

* :mod:`.sandbox` — the unit to audit alone: the sandboxed environment, the bounded operators, filters,
  calls and buffers, the per-compile budget and deadline; with :mod:`.limits` (every bound, read at use
  time) and :mod:`.jinja_seams` (the only code that relies on jinja2 internals: the code generator, the
  string formatters);
* :mod:`.parsing` — templates and conditions parsed once, cached by source;
* :mod:`.analysis` — what is known before values: sizes, syntax, who reads which variable
  (:func:`check_content`, :func:`variables_read`, :func:`check_sizes`);
* :mod:`.values` — values against their declarations (:func:`check_values`);
* :mod:`.problems` — problems and their cleaned messages;
* :mod:`.pipeline` — :func:`compile_prompt`, in named steps.

In short: templates run in Jinja2's immutable sandbox with ``StrictUndefined``; every operator, filter,
method, loop, slice and buffer is bounded; nothing is evaluated at parse time; rendered output is capped
per block (``MAX_BLOCK_CHARS``) and per prompt (``MAX_PROMPT_CHARS``); printing anything that is not
plain data is refused; ``lipsum`` and ``|random`` are gone, so the same input always compiles to the same
output; ``extends``, ``include`` and ``import`` are refused (a block stands alone).

Compiled templates and conditions are cached by source (LRU, bounded by an estimate of their memory:
``TEMPLATE_CACHE_BYTES``), so compiling the same prompt again only renders it. Templates larger than
``MAX_TEMPLATE_BYTES`` per block or ``MAX_PROMPT_TEMPLATE_BYTES`` per prompt are refused before parsing.
Code on the event loop compiles through :mod:`agnt_traces.compile_pool` (worker processes with a hard
deadline), never by calling this module directly.

Every problem (missing or wrongly typed variables, template syntax errors with their line, runtime and
sandbox errors) is collected and raised together as one :class:`~agnt_traces.errors.CompileError` whose
``details["problems"]`` lists ``{"block", "variable", "line", "problem"}``.

Prompt-friendly deviations from stock Jinja2, all deliberate:

* a declared optional variable with neither a value nor a default is ``None``; ``None`` prints as an
  empty string, ``|default(...)`` replaces it, and ``{% for %}`` over it runs zero times;
* ``|tojson`` writes plain JSON (sorted keys, non-ASCII kept, no HTML escaping): prompts are not HTML;
* a block that renders to nothing but white space is left out (with a warning): model APIs reject empty
  messages.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from . import limits as limits
from .analysis import check_content, check_sizes, variables_read
from .parsing import PARSE_CACHE as _PARSE_CACHE  # noqa: F401  (its former name; tests inspect the cache)
from .parsing import parse_template as _parse_template  # noqa: F401
from .pipeline import CompileResult, compile_prompt
from .values import check_values

if TYPE_CHECKING:  # the bounds of .limits; at run time properties of the package (_Package below)
    TIME_LIMIT: float
    MACRO_CALL_COST: int
    MAX_ALLOCATED: int
    MAX_BLOCK_CHARS: int
    MAX_FORMAT_WIDTH: int
    MAX_INT_BITS: int
    MAX_LIST_ITEMS: int
    MAX_PRINTED_CHARS: int
    MAX_PROMPT_CHARS: int
    MAX_PROMPT_TEMPLATE_BYTES: int
    MAX_RANGE: int
    MAX_STEPS: int
    MAX_STRING_LENGTH: int
    MAX_TEMPLATE_BYTES: int
    MAX_VALUE_DEPTH: int
    MAX_WRAP_LINES: int
    TEMPLATE_CACHE_BYTES: int

__all__ = [
    "CompileResult",
    "check_content",
    "check_sizes",
    "check_values",
    "compile_prompt",
    "variables_read",
]


class _Package(types.ModuleType):
    """The package's module type: each bound in :mod:`.limits` is a property of the package that reads
    and writes :mod:`.limits`, where every module of the compiler reads it at use time. So
    ``compiler.TIME_LIMIT`` is always current, and setting it (as tests do with ``monkeypatch``) changes
    the bound everywhere; ``monkeypatch`` restores it by setting the old value back."""


def _bound(name: str) -> property:
    def read(_: types.ModuleType) -> Any:
        return getattr(limits, name)

    def write(_: types.ModuleType, value: Any) -> None:
        setattr(limits, name, value)

    return property(read, write, doc=f"``limits.{name}``")


for _name in limits.__all__:
    setattr(_Package, _name, _bound(_name))
del _name

sys.modules[__name__].__class__ = _Package
