"""Every bound of the prompt compiler, in one place.

The sandbox (:mod:`.sandbox`), parsing (:mod:`.parsing`), analysis, value checking and the compile
steps read these as ``limits.NAME`` at the moment they apply, never as copies taken at import: one
assignment (``agnt_traces.compiler.TIME_LIMIT = 0.5`` in a test, which the package forwards here)
changes the bound everywhere. Four of them come from the environment at start-up (see
:func:`agnt_traces.config.compile_limit`); the others are fixed.
"""

from __future__ import annotations

from ..config import compile_limit

__all__ = [
    "MACRO_CALL_COST",
    "MAX_ALLOCATED",
    "MAX_BLOCK_CHARS",
    "MAX_FORMAT_WIDTH",
    "MAX_INT_BITS",
    "MAX_LIST_ITEMS",
    "MAX_PRINTED_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_PROMPT_TEMPLATE_BYTES",
    "MAX_RANGE",
    "MAX_STEPS",
    "MAX_STRING_LENGTH",
    "MAX_TEMPLATE_BYTES",
    "MAX_VALUE_DEPTH",
    "MAX_WRAP_LINES",
    "TEMPLATE_CACHE_BYTES",
    "TIME_LIMIT",
]

#: Longest string any operator, filter, method or template buffer may produce.
MAX_STRING_LENGTH = 1_000_000
#: Most items a list or tuple built by ``*`` or ``+`` may hold.
MAX_LIST_ITEMS = 100_000
#: Largest integer (in bits) arithmetic may produce: ~3000 decimal digits.
MAX_INT_BITS = 10_000
#: Most items ``range()`` may produce.
MAX_RANGE = 10_000
#: Widest field or precision in ``%`` / ``str.format`` specifications.
MAX_FORMAT_WIDTH = 10_000
#: Loop iterations plus calls (macros, methods, globals) allowed in one compile.
MAX_STEPS = 100_000
#: A macro call costs this many steps (it is ~10x the work of a loop iteration).
MACRO_CALL_COST = 10
#: |wordwrap refuses text that would wrap into more lines than this (textwrap is slow).
MAX_WRAP_LINES = 50_000
#: Wall-clock budget of one compile (parsing included), in seconds: a last resort behind the
#: deterministic limits. Off the event loop (see ``compile_pool``) a worker that overruns it by
#: ``compile_pool.HARD_SLACK`` is killed.
TIME_LIMIT = compile_limit("AGNT_TRACES_COMPILE_SECONDS")
#: UTF-8 bytes one block's template (content plus condition) may have; parsing costs ~10 µs a byte of
#: dense template syntax and ~1.5 KB of transient memory a byte, so this also bounds parse time and memory.
MAX_TEMPLATE_BYTES = int(compile_limit("AGNT_TRACES_MAX_TEMPLATE_BYTES"))
#: UTF-8 bytes all the templates of one prompt may have together.
MAX_PROMPT_TEMPLATE_BYTES = int(compile_limit("AGNT_TRACES_MAX_PROMPT_TEMPLATE_BYTES"))
#: Estimated bytes the parsed-template cache may hold (per process; see ``parsing.cost_of``).
TEMPLATE_CACHE_BYTES = int(compile_limit("AGNT_TRACES_TEMPLATE_CACHE_BYTES"))
#: Rendered characters allowed per block and per prompt.
MAX_BLOCK_CHARS = 500_000
MAX_PROMPT_CHARS = 1_000_000
#: Characters all ``{{ ... }}`` outputs may produce in one compile, including those captured by macros,
#: ``{% set %}`` blocks and filter blocks (which are buffered before the output caps see them).
MAX_PRINTED_CHARS = 4 * MAX_PROMPT_CHARS
#: Bytes (roughly: characters, or 8 per list item) that operators, filters, method calls, slices and
#: concatenations may create in one compile: bounds memory even when results are kept, not printed.
MAX_ALLOCATED = 64_000_000
#: How deeply variable values may nest.
MAX_VALUE_DEPTH = 64
