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

from . import limits
from .analysis import check_content, check_sizes, variables_read
from .parsing import PARSE_CACHE as _PARSE_CACHE  # noqa: F401  (its former name; tests inspect the cache)
from .parsing import parse_template as _parse_template  # noqa: F401
from .pipeline import CompileResult, compile_prompt
from .values import check_values

if TYPE_CHECKING:  # at run time the bounds are read through __getattr__ below, so they are never stale
    from .limits import (
        MAX_ALLOCATED as MAX_ALLOCATED,
    )
    from .limits import (
        MAX_BLOCK_CHARS as MAX_BLOCK_CHARS,
    )
    from .limits import (
        MAX_PROMPT_CHARS as MAX_PROMPT_CHARS,
    )
    from .limits import (
        MAX_PROMPT_TEMPLATE_BYTES as MAX_PROMPT_TEMPLATE_BYTES,
    )
    from .limits import (
        MAX_TEMPLATE_BYTES as MAX_TEMPLATE_BYTES,
    )
    from .limits import (
        TEMPLATE_CACHE_BYTES as TEMPLATE_CACHE_BYTES,
    )
    from .limits import (
        TIME_LIMIT as TIME_LIMIT,
    )

__all__ = [
    "CompileResult",
    "check_content",
    "check_sizes",
    "check_values",
    "compile_prompt",
    "variables_read",
]


def __getattr__(name: str) -> Any:
    """``compiler.TIME_LIMIT`` and every other bound: the current value in :mod:`.limits`."""
    if name in limits.__all__:
        return getattr(limits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Setting a bound on the package (``compiler.TIME_LIMIT = 0.5``, as tests do) sets it in
    :mod:`.limits`, where every module of the compiler reads it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in limits.__all__:
            setattr(limits, name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in limits.__all__:
            raise AttributeError(f"the compiler's bound {name} cannot be deleted")
        super().__delattr__(name)


sys.modules[__name__].__class__ = _Package
