"""Compile a prompt's content into what a model call sends.

``compile_prompt(content, variables, input_messages)`` evaluates each block's condition, renders the
surviving blocks and returns the manifest (system text, tools, model, etag), the messages and the
warnings. Templates are Jinja2 and come from people and agents editing prompts, so they are treated as
untrusted code:

* they run in Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with ``StrictUndefined``
  (no private attributes, no mutation of lists and dicts, ``str.format`` sandboxed); ``dict``,
  ``cycler`` and ``joiner`` are factory functions, so ``dict.update(d, ...)`` cannot mutate either;
* the operators ``*``, ``**``, ``+`` and ``%``, the ``~`` concatenation, every string method and filter
  that can grow its input, and every buffer a template builds are bounded (``MAX_STRING_LENGTH``,
  ``MAX_LIST_ITEMS``, ``MAX_INT_BITS``, ``MAX_FORMAT_WIDTH``); ``range()`` gives at most ``MAX_RANGE``
  items; loop iterations and calls count against ``MAX_STEPS``; strings and lists created, and
  characters printed, count against ``MAX_ALLOCATED`` and ``MAX_PRINTED_CHARS``; ``TIME_LIMIT`` is the
  last resort;
* nothing is evaluated at parse time (constant folding is off), so the bounds apply to everything;
* rendered output is capped per block (``MAX_BLOCK_CHARS``) and per prompt (``MAX_PROMPT_CHARS``);
* printing anything that is not plain data (functions, classes, generators, loop objects) is refused,
  so no memory address or internal repr can reach a prompt or an error message; ``encode``,
  ``translate``, ``maketrans``, ``to_bytes`` and ``from_bytes`` are not reachable;
* ``lipsum`` and the ``random`` filter are gone, so the same input always compiles to the same output;
  ``extends``, ``include`` and ``import`` are refused (a block stands alone).

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

import copy
import functools
import json
import math
import re
import textwrap
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.filters import make_attrgetter
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Cycler, Joiner, Namespace, pass_environment
from markupsafe import Markup

from .config import compile_limit
from .errors import CompileError, InvalidArgument
from .models import PromptContent, VariableDecl

__all__ = [
    "CompileResult",
    "check_content",
    "check_sizes",
    "check_values",
    "compile_prompt",
    "variables_read",
]

# ---------------------------------------------------------------------------------------------------
# Limits


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
_MACRO_CALL_COST = 10
#: |wordwrap refuses text that would wrap into more lines than this (textwrap is slow).
_MAX_WRAP_LINES = 50_000
#: Wall-clock budget of one compile (parsing included), in seconds: a last resort behind the
#: deterministic limits. Off the event loop (see ``compile_pool``) a worker that overruns it by
#: ``compile_pool.HARD_SLACK`` is killed.
TIME_LIMIT = compile_limit("AGNT_TRACES_COMPILE_SECONDS")
#: UTF-8 bytes one block's template (content plus condition) may have; parsing costs ~10 µs a byte of
#: dense template syntax and ~1.5 KB of transient memory a byte, so this also bounds parse time and memory.
MAX_TEMPLATE_BYTES = int(compile_limit("AGNT_TRACES_MAX_TEMPLATE_BYTES"))
#: UTF-8 bytes all the templates of one prompt may have together.
MAX_PROMPT_TEMPLATE_BYTES = int(compile_limit("AGNT_TRACES_MAX_PROMPT_TEMPLATE_BYTES"))
#: Estimated bytes the parsed-template cache may hold (per process; see ``_cost_of``).
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

_TEMPLATE_FILE = "<template>"
_FORBIDDEN_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
_SPECIAL_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs"})


# ---------------------------------------------------------------------------------------------------
# Per-compile budget


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int = 0
    output: int = 0
    printed: int = 0
    allocated: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("agnt_traces_compile_budget", default=None)


class _Refused(SecurityError):
    """A limit of this module was hit. ``fatal`` ones stop the whole compile."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def _time_out() -> _Refused:
    return _Refused(f"compiling took longer than {TIME_LIMIT:g} seconds", fatal=True)


def _check_deadline() -> None:
    """Refuses to go on once the compile's wall-clock budget is spent (called by every filter and test)."""
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise _time_out()


def _tick(cost: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.steps += cost
    if budget.steps > MAX_STEPS:
        raise _Refused(
            f"the prompt needs more than {MAX_STEPS:,} loop iterations and calls; make loops smaller",
            fatal=True,
        )
    if (cost > 1 or not budget.steps & 255) and time.monotonic() > budget.deadline:
        raise _time_out()


# ---------------------------------------------------------------------------------------------------
# Plain data: what may be printed, turned into text or formatted


def _fail_undefined(value: Undefined) -> None:
    value._fail_with_undefined_error()


def _plain_size(value: Any, limit: int = MAX_STRING_LENGTH) -> int:
    """Rough printed size of ``value``; refuses anything that is not plain data or too big to print."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif item is None or isinstance(item, (bool, float)):
            total += 24
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, (list, tuple)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Undefined):
            _fail_undefined(item)
        else:
            kind = type(item).__name__
            raise _Refused(
                f"cannot turn a value of type '{kind}' into text; only strings, numbers, booleans, "
                "lists and objects can be printed (use |list or |join for sequences)"
            )
        if total > limit:
            raise _Refused(f"value is too large to print (more than {limit:,} characters)")
    return total


def _text(value: Any) -> str:
    """``str(value)`` for plain data only, bounded."""
    if isinstance(value, str):
        return value
    if isinstance(value, Undefined):
        return str(value)  # StrictUndefined raises
    _plain_size(value)
    return str(value)


def _count_printed(size: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.printed += size
        if budget.printed > MAX_PRINTED_CHARS:
            raise _Refused(f"the template prints more than {MAX_PRINTED_CHARS:,} characters in all", fatal=True)


def _count_result(value: Any) -> Any:
    """Counts a freshly created string or container against ``MAX_ALLOCATED``; returns it."""
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, (list, tuple, dict)):
        size = 8 * len(value)
    else:
        return value
    budget = _BUDGET.get()
    if budget is not None:
        budget.allocated += size
        if budget.allocated > MAX_ALLOCATED:
            raise _Refused(f"the template builds more than {MAX_ALLOCATED:,} bytes of strings and lists", fatal=True)
    return value


def _counting_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a filter so the strings and lists it creates count against ``MAX_ALLOCATED``; a filter that
    hands back one of its arguments (``|default``, ``|trim`` of a trimmed string) created nothing. The
    deadline is checked before and after every call: a filter called in a loop cannot outrun it."""

    @functools.wraps(func)
    def counted(*args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        result = func(*args, **kwargs)
        _check_deadline()
        if any(result is a for a in args) or any(result is v for v in kwargs.values()):
            return result
        return _count_result(result)

    return counted


def _deadline_checked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a filter or test that creates nothing so that it, too, checks the deadline."""

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        return func(*args, **kwargs)

    return checked


def _finalize(value: Any) -> Any:
    """Applied to every ``{{ ... }}`` output: None prints as nothing, objects are refused, and the
    characters printed are counted."""
    if isinstance(value, str):
        _count_printed(len(value))
        return value
    if value is None:
        return ""
    if isinstance(value, Undefined):
        return value
    _count_printed(_plain_size(value))
    return value


def _check_length(length: int, what: str = "result") -> None:
    if length > MAX_STRING_LENGTH:
        raise _Refused(f"{what} would be longer than {MAX_STRING_LENGTH:,} characters")


def _check_width(width: Any, what: str = "width") -> None:
    if isinstance(width, int) and width > MAX_STRING_LENGTH:
        raise _Refused(f"{what} {width} is larger than {MAX_STRING_LENGTH:,}")


def _bounded_replace(s: str, old: str, new: str, count: int = -1) -> str:
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    _check_length(len(s) + hits * (len(new) - len(old)), "replace() result")
    return s.replace(old, new, count)


def _bounded_join(sep: str, items: Iterable[Any]) -> str:
    parts: list[str] = []
    total = 0
    for item in items:
        text = _text(item)
        total += len(text) + (len(sep) if parts else 0)
        _check_length(total, "joined text")
        parts.append(text)
    return sep.join(parts)


# ---------------------------------------------------------------------------------------------------
# Bounded operators


def _int_bits_check(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Refused(f"number is too large (more than {MAX_INT_BITS:,} bits)")
    return value


def _sequence_len_check(result_len: int, sample: Any) -> None:
    if isinstance(sample, str):
        _check_length(result_len)
    elif result_len > MAX_LIST_ITEMS:
        raise _Refused(f"result would have more than {MAX_LIST_ITEMS:,} items")


def _bounded_mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            _sequence_len_check(len(seq) * max(times, 0), seq)
            return seq * times
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise _Refused(f"number is too large (more than {MAX_INT_BITS:,} bits)")
        return _int_bits_check(left * right)
    return left * right


def _bounded_add(left: Any, right: Any) -> Any:
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _sequence_len_check(len(left) + len(right), left)
    return _int_bits_check(left + right)


def _bounded_pow(left: Any, right: Any) -> Any:
    big = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if big and (right > MAX_INT_BITS or right * math.log2(abs(left)) > MAX_INT_BITS):
        raise _Refused(f"the power is too large (more than {MAX_INT_BITS:,} bits)")
    return left**right


_PERCENT_SPEC = re.compile(
    r"%(?:\((?P<key>[^()]*)\))?(?P<flags>[-#0 +]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?"
    r"(?P<conv>[diouxXeEfFgGcrsa%])"
)


def _estimated_len(value: Any, conv: str, precision: int) -> int:
    if isinstance(value, str):
        return len(value) * (10 if conv in "ra" else 1) + 2
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2 + precision
    if isinstance(value, float):
        return 320 + precision
    return _plain_size(value) * (10 if conv in "ra" else 1)


def _bounded_percent(fmt: str, args: Any) -> str:
    """``fmt % args`` with plain arguments only and a bounded result."""
    specs = []
    pos = fmt.find("%")
    while pos != -1:
        match = _PERCENT_SPEC.match(fmt, pos)
        if match is None:
            raise _Refused(f"unsupported %-format at position {pos}; use %s, %d, %f and the like")
        specs.append(match)
        pos = fmt.find("%", match.end())
    mapping = any(m.group("key") is not None for m in specs)
    if mapping and not isinstance(args, dict):
        raise _Refused("%(name)s formatting needs an object of values")
    if isinstance(args, dict):
        _plain_size(args)
    positional: list[Any] = list(args) if isinstance(args, tuple) else [args]
    for arg in positional:
        _plain_size(arg)
    factor = 6 if isinstance(fmt, Markup) else 1
    estimate = len(fmt)
    index = 0
    for match in specs:
        width_s, prec_s, conv = match.group("width"), match.group("prec"), match.group("conv")
        if width_s == "*" or prec_s == "*":
            raise _Refused("'*' widths are not allowed in %-formats")
        width = int(width_s) if width_s else 0
        precision = int(prec_s) if prec_s else 0
        if width > MAX_FORMAT_WIDTH or precision > MAX_FORMAT_WIDTH:
            raise _Refused(f"format width or precision larger than {MAX_FORMAT_WIDTH:,}")
        if conv == "%":
            estimate += 1 + width
            continue
        key = match.group("key")
        if key is not None:
            value = args.get(key) if isinstance(args, dict) else None
        else:
            value = positional[index] if index < len(positional) else None
            index += 1
        estimate += max(width, _estimated_len(value, conv, precision) * factor)
        _check_length(estimate, "formatted text")
    result = fmt % args
    _check_length(len(result), "formatted text")
    return result


_SPEC_NUMBER = re.compile(r"\d+")


def _check_format_value(value: Any) -> None:
    if isinstance(value, Undefined):
        _fail_undefined(value)
    elif not isinstance(value, (str, int, float)) and value is not None:
        _plain_size(value)


class _FormatLimits:
    """Mixed into the sandbox's ``str.format`` formatters: plain values, bounded widths and output."""

    _produced = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        _check_format_value(value)
        return super().convert_field(value, conversion)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_format_value(value)
        for number in _SPEC_NUMBER.findall(format_spec):
            if len(number) > 6 or int(number) > MAX_FORMAT_WIDTH:
                raise _Refused(f"format width or precision larger than {MAX_FORMAT_WIDTH:,}")
        result = super().format_field(value, format_spec)  # type: ignore[misc]
        self._produced += len(result)
        _check_length(self._produced, "formatted text")
        return result


class _BoundedFormatter(_FormatLimits, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_FormatLimits, SandboxedEscapeFormatter):
    pass


# ---------------------------------------------------------------------------------------------------
# Bounded filters and globals


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise _Refused(f"range() is limited to {MAX_RANGE:,} items")
    return rng


def _make_dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    return dict(*args, **kwargs)


def _make_cycler(*items: Any) -> Cycler:
    return Cycler(*items)


def _make_joiner(sep: str = ", ") -> Joiner:
    return Joiner(sep)


def _f_default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    if isinstance(value, Undefined) or value is None or (boolean and not value):
        return default_value
    return value


def _f_string(value: Any) -> str:
    return _text(value)


def _f_format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise _Refused("|format takes positional or keyword arguments, not both")
    return _bounded_percent(_text(value), kwargs or args)


@pass_environment
def _f_join(env: _PromptEnvironment, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(env, attribute), value)
    return _bounded_join(_text(d), value)


def _f_replace(s: Any, old: Any, new: Any, count: int | None = None) -> str:
    return _bounded_replace(_text(s), _text(old), _text(new), -1 if count is None else count)


def _f_center(value: Any, width: int = 80) -> str:
    _check_width(width)
    return _text(value).center(width)


def _f_indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = _text(s)
    indention = width if isinstance(width, str) else " " * min(max(width, 0), MAX_STRING_LENGTH + 1)
    _check_length(len(text) + (text.count("\n") + 1) * len(indention), "indented text")
    text += "\n"
    if blank:
        rv = ("\n" + indention).join(text.splitlines())
    else:
        lines = text.splitlines()
        rv = lines.pop(0)
        if lines:
            rv += "\n" + "\n".join(indention + line if line else line for line in lines)
    return indention + rv if first else rv


@pass_environment
def _f_wordwrap(
    env: _PromptEnvironment,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    sep = env.newline_sequence if wrapstring is None else _text(wrapstring)
    text = _text(s)
    if isinstance(width, int) and len(text) // max(width, 1) > _MAX_WRAP_LINES:
        raise _Refused(f"|wordwrap would produce more than {_MAX_WRAP_LINES:,} lines; use a larger width")
    paragraphs = [
        textwrap.wrap(
            line,
            width=width,
            expand_tabs=False,
            replace_whitespace=False,
            break_long_words=break_long_words,
            break_on_hyphens=break_on_hyphens,
        )
        for line in text.splitlines()
    ]
    count = sum(len(p) for p in paragraphs) + len(paragraphs)
    _check_length(sum(len(line) for p in paragraphs for line in p) + count * len(sep), "wrapped text")
    return sep.join(sep.join(p) for p in paragraphs)


def _f_batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if not isinstance(linecount, int) or not 0 < linecount <= MAX_LIST_ITEMS:
        raise _Refused(f"|batch size must be between 1 and {MAX_LIST_ITEMS:,}")
    return _ORIGINAL_FILTERS["batch"](value, linecount, fill_with)


def _f_slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if not isinstance(slices, int) or not 0 < slices <= MAX_LIST_ITEMS:
        raise _Refused(f"|slice count must be between 1 and {MAX_LIST_ITEMS:,}")
    return _ORIGINAL_FILTERS["slice"](value, slices, fill_with)


@pass_environment
def _f_sum(env: _PromptEnvironment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise _Refused("|sum adds numbers only; use |join for text")
    if attribute is not None:
        iterable = map(make_attrgetter(env, attribute), iterable)
    total = start
    for item in iterable:
        if isinstance(item, Undefined):
            _fail_undefined(item)
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise _Refused("|sum adds numbers only; use |join for text")
        total = _int_bits_check(total + item)
    return total


def _f_tojson(value: Any, indent: int | None = None) -> str:
    _plain_size(value)
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= 16):
        raise _Refused("|tojson indent must be between 0 and 16")
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _Refused(f"cannot write this value as JSON: {exc}") from None


def _f_pprint(value: Any) -> str:
    _plain_size(value)
    return _ORIGINAL_FILTERS["pprint"](value)


_ORIGINAL_FILTERS: dict[str, Callable[..., Any]] = {}

_FILTER_OVERRIDES: dict[str, Callable[..., Any]] = {
    "batch": _f_batch,
    "center": _f_center,
    "d": _f_default,
    "default": _f_default,
    "format": _f_format,
    "indent": _f_indent,
    "join": _f_join,
    "pprint": _f_pprint,
    "replace": _f_replace,
    "slice": _f_slice,
    "string": _f_string,
    "sum": _f_sum,
    "tojson": _f_tojson,
    "wordwrap": _f_wordwrap,
}

# Filters that return an element of their input (or a number), never a new string or list.
_SELECTING_FILTERS = frozenset(
    {"attr", "first", "last", "min", "max", "length", "count", "wordcount", "int", "float", "abs", "round"}
)

# Attributes that amplify or leave the string world: bytes, translation tables, int.to_bytes.
_BLOCKED_ATTRIBUTES = frozenset({"encode", "translate", "maketrans", "to_bytes", "from_bytes"})


def _check_str_method(owner: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Pre-checks for the str methods that can grow their input; returns the (possibly materialised) args."""
    if name in ("center", "ljust", "rjust", "zfill"):
        if args:
            _check_width(args[0])
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int) and tabsize > 0:
            _check_length(len(owner) + owner.count("\t") * tabsize, "expandtabs() result")
    elif name == "replace":
        if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            hits = owner.count(args[0]) if args[0] else len(owner) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            _check_length(len(owner) + hits * (len(args[1]) - len(args[0])), "replace() result")
    elif name == "join" and args:
        items = list(args[0])
        if all(isinstance(i, str) for i in items):
            _check_length(sum(len(i) for i in items) + len(owner) * max(len(items) - 1, 0), "joined text")
        return (items, *args[1:])
    return args


# ---------------------------------------------------------------------------------------------------
# The environment


class _CodeGenerator(CodeGenerator):
    """Routes every ``{% for %}`` iterable, every ``~`` and every slice through the environment's bounded
    helpers, and evaluates nothing at compile time (the environment is also built with
    ``optimized=False``): stock constant folding would run ``~`` and filters on literals while parsing,
    outside every bound, so ``{{ ('x'|center(999999)) ~ ('x'|center(999999)) ~ ... }}`` could build
    gigabytes before rendering starts."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        wrapped = nodes.Call(
            nodes.EnvironmentAttribute("agnt_iter", lineno=node.lineno),
            [node.iter],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        bounded = nodes.For(node.target, wrapped, node.body, node.else_, node.test, node.recursive, lineno=node.lineno)
        super().visit_For(bounded, frame)

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        # Stock Jinja slices natively; route them through the environment so copies are counted.
        self.write("environment.agnt_slice(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for i, part in enumerate((node.arg.start, node.arg.stop, node.arg.step)):
            self.write(", " if i else "")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write("))")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.agnt_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _NameTracker(_CodeGenerator):
    """``jinja2.meta.find_undeclared_variables`` without its constant folding (see _CodeGenerator)."""

    def __init__(self, environment: _PromptEnvironment) -> None:
        super().__init__(environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared: set[str] = set()

    def write(self, x: str) -> None:
        pass

    def enter_frame(self, frame: Frame) -> None:
        super().enter_frame(frame)
        for _, (action, param) in frame.symbols.loads.items():
            if action == "resolve" and param not in self.environment.globals:
                self.undeclared.add(param)


def _names_read(ast: nodes.Template) -> frozenset[str]:
    tracker = _NameTracker(_ENV)
    tracker.visit(ast)
    return frozenset(tracker.undeclared)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in _BLOCKED_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            return _count_result(_bounded_mul(left, right))
        if operator == "+":
            return _count_result(_bounded_add(left, right))
        if operator == "**":
            return _bounded_pow(left, right)
        if operator == "%" and isinstance(left, str):
            return _count_result(_bounded_percent(left, right))
        return self.binop_table[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick(_MACRO_CALL_COST if isinstance(__obj, Macro) else 1)
        if isinstance(__obj, LoopContext) and args:
            args = (__self.agnt_iter(args[0]), *args[1:])
        owner = getattr(__obj, "__self__", None)
        if not isinstance(owner, str):
            # Macros build their output in buffers (counted by concat); dict.get & co. return references.
            return super().call(__context, __obj, *args, **kwargs)
        args = _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return result if result is owner else _count_result(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        env = self

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            formatter: SandboxedFormatter
            if isinstance(f_self, Markup):
                formatter = _BoundedEscapeFormatter(env, escape=f_self.escape)
            else:
                formatter = _BoundedFormatter(env)
            return str_type(formatter.vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    # Helpers reached from generated code (see _CodeGenerator) and from every template buffer.

    def agnt_iter(self, iterable: Any) -> Iterator[Any]:
        if iterable is None:
            return iter(())
        return _counted(iterable)

    def agnt_slice(self, obj: Any, index: slice) -> Any:
        return _count_result(obj[index])

    def agnt_concat(self, parts: tuple[Any, ...]) -> str:
        return _count_result(_bounded_join("", parts))


def _bounded_concat(parts: Iterable[str]) -> str:
    pieces: list[str] = []
    total = 0
    for piece in parts:
        total += len(piece)
        _check_length(total, "template output")
        pieces.append(piece)
    return _count_result("".join(pieces))


def _make_environment() -> _PromptEnvironment:
    env = _PromptEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        finalize=_finalize,
        auto_reload=False,
        optimized=False,
    )
    env.concat = _bounded_concat  # type: ignore[method-assign]
    env.globals.pop("lipsum", None)
    env.globals.update(
        range=_bounded_range, dict=_make_dict, cycler=_make_cycler, joiner=_make_joiner, namespace=Namespace
    )
    env.filters.pop("random", None)
    for name in _FILTER_OVERRIDES:
        if name in env.filters:
            _ORIGINAL_FILTERS[name] = env.filters[name]
    env.filters.update(_FILTER_OVERRIDES)
    for name, func in list(env.filters.items()):
        env.filters[name] = _deadline_checked(func) if name in _SELECTING_FILTERS else _counting_filter(func)
    for name, test in list(env.tests.items()):
        env.tests[name] = _deadline_checked(cast(Callable[..., Any], test))
    return env


_ENV = _make_environment()
_GLOBAL_NAMES = frozenset(_ENV.globals)

# ---------------------------------------------------------------------------------------------------
# Parsing, cached by source


@dataclass(frozen=True, slots=True)
class _Parsed:
    template: Template | None
    names: frozenset[str]
    error: tuple[int | None, str] | None  # (line, message)


@dataclass(frozen=True, slots=True)
class _ParsedCondition:
    expression: TemplateExpression | None
    names: frozenset[str]
    error: tuple[int | None, str] | None


def _syntax_message(exc: Exception) -> tuple[int | None, str]:
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno, _clean(exc.message or "syntax error")
    if isinstance(exc, RecursionError):
        return None, "the template nests too deeply"
    if isinstance(exc, SyntaxError):  # Python's compiler refusing the generated code
        return None, _clean(f"the template is too complex to compile ({exc.msg})")
    return None, _clean(f"{type(exc).__name__}: {exc}")


def _build_template(source: str) -> _Parsed:
    try:
        ast = _ENV.parse(source)
        forbidden = next(iter(ast.find_all(_FORBIDDEN_NODES)), None)
        if forbidden is not None:
            return _Parsed(
                None,
                frozenset(),
                (forbidden.lineno, "extends, include and import are not available: a block stands alone"),
            )
        names = _names_read(ast)
        return _Parsed(_ENV.from_string(ast), names, None)
    except Exception as exc:  # syntax errors, and anything the compiler chokes on
        return _Parsed(None, frozenset(), _syntax_message(exc))


def _build_condition(source: str) -> _ParsedCondition:
    try:
        parser = Parser(_ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
        ast = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1)
        ast.set_environment(_ENV)
        names = _names_read(ast)
        return _ParsedCondition(_ENV.compile_expression(source, undefined_to_none=False), names, None)
    except Exception as exc:
        return _ParsedCondition(None, frozenset(), _syntax_message(exc))


#: Estimated bytes a parsed template keeps per byte of source (measured with tracemalloc: ~23 for dense
#: ``{{ x }}`` syntax, ~5 for ``{% if %}`` blocks, ~1 for plain text), rounded up; plus a fixed overhead
#: for the Template object, its module and code objects.
_CACHE_BYTES_PER_SOURCE_BYTE = 32
_CACHE_BYTES_PER_ENTRY = 16_000


def _cost_of(source: str) -> int:
    return _CACHE_BYTES_PER_ENTRY + _CACHE_BYTES_PER_SOURCE_BYTE * len(source)


class _ByteBoundedCache:
    """An LRU cache of parse results whose estimated size (:func:`_cost_of`) stays within ``limit()``
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
        cost, limit = _cost_of(source), self._limit()
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
_PARSE_CACHE = _ByteBoundedCache(lambda: TEMPLATE_CACHE_BYTES)


def _parse_template(source: str) -> _Parsed:
    return _PARSE_CACHE.get_or_build("t" + source, lambda key: _build_template(key[1:]))


def _parse_condition(source: str) -> _ParsedCondition:
    return _PARSE_CACHE.get_or_build("c" + source, lambda key: _build_condition(key[1:]))


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_sizes(content: PromptContent) -> None:
    """Refuses templates too large to parse within bounds, before any parsing.

    Raises:
        CompileError: naming every block whose template (content plus condition) is over
            ``MAX_TEMPLATE_BYTES``, or the prompt when all templates together are over
            ``MAX_PROMPT_TEMPLATE_BYTES``.
    """
    problems: list[dict[str, Any]] = []
    total = 0
    for block in content.blocks:
        size = _utf8_size(block.content) + (_utf8_size(block.condition) if block.condition else 0)
        total += size
        if size > MAX_TEMPLATE_BYTES:
            text = (
                f"block '{block.id}': the template is {size:,} bytes, more than the {MAX_TEMPLATE_BYTES:,} "
                "allowed per block (AGNT_TRACES_MAX_TEMPLATE_BYTES); split it or shorten it"
            )
            problems.append(_problem(block.id, None, None, text))
    if total > MAX_PROMPT_TEMPLATE_BYTES:
        text = (
            f"the templates of the prompt are {total:,} bytes together, more than the "
            f"{MAX_PROMPT_TEMPLATE_BYTES:,} allowed (AGNT_TRACES_MAX_PROMPT_TEMPLATE_BYTES); shorten them"
        )
        problems.append(_problem(None, None, None, text))
    _raise_problems(problems)


# ---------------------------------------------------------------------------------------------------
# Problems and messages

_ADDRESS = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
_HEX = re.compile(r"0x[0-9a-fA-F]{6,}")
_INTERNAL_TYPE = re.compile(r"'(?:jinja2|markupsafe)\.[\w.]*?(\w+) object'")
_UNDEFINED_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


def _clean(message: str, limit: int = 300) -> str:
    message = _ADDRESS.sub("<object>", message)
    message = _HEX.sub("0x…", message)
    message = _INTERNAL_TYPE.sub(r"'\1 object'", message)
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _describe(exc: BaseException) -> tuple[str, str | None]:
    """Readable text for an exception raised while rendering, and the variable it names, if any."""
    if isinstance(exc, _Refused):
        return f"refused: {_clean(str(exc))}", None
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {_clean(str(exc))}", None
    if isinstance(exc, UndefinedError):
        text = exc.message or "undefined value"
        match = _UNDEFINED_NAME.fullmatch(text)
        if match:
            name = match.group(1)
            return f"variable '{name}' is not defined; declare it or pass a value for it", name
        return _clean(text), None
    if isinstance(exc, TemplateError):
        return _clean(exc.message or type(exc).__name__), None
    if isinstance(exc, RecursionError):
        return "refused: the template recurses too deeply", None
    if isinstance(exc, MemoryError):
        return "refused: the template ran out of memory", None
    if isinstance(exc, ZeroDivisionError):
        return "division by zero", None
    return _clean(f"{type(exc).__name__}: {exc}"), None


def _runtime_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _problem(block: str | None, variable: str | None, line: int | None, text: str) -> dict[str, Any]:
    return {"block": block, "variable": variable, "line": line, "problem": text}


def _where(block: str, line: int | None, condition: bool = False) -> str:
    if condition:
        return f"block '{block}' condition"
    return f"block '{block}' line {line}" if line else f"block '{block}'"


def _raise_problems(problems: list[dict[str, Any]]) -> None:
    if problems:
        raise CompileError("; ".join(p["problem"] for p in problems), {"problems": problems})


# ---------------------------------------------------------------------------------------------------
# Variable values

_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "list": "a list",
    "object": "an object",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _not_json(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not JSON data, or None when it is."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if depth >= MAX_VALUE_DEPTH:
        return f"values may nest at most {MAX_VALUE_DEPTH} levels deep"
    if isinstance(value, list):
        for item in value:
            reason = _not_json(item, depth + 1)
            if reason:
                return reason
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "object keys must be strings"
            reason = _not_json(item, depth + 1)
            if reason:
                return reason
        return None
    return f"got a value of type '{type(value).__name__}'"


def _value_problem(name: str, kind: str, value: Any) -> str | None:
    reason = _not_json(value)
    if reason:
        return f"variable '{name}' must be JSON data (string, number, boolean, null, list or object): {reason}"
    if not _type_ok(kind, value):
        return f"variable '{name}' must be {_TYPE_WORDS.get(kind, kind)}, got {_json_type(value)}"
    return None


def _default_problem(decl: VariableDecl) -> str | None:
    if decl.default is None:
        return None
    problem = _value_problem(decl.name, decl.type, decl.default)
    return f"the default of {problem}" if problem else None


def _readers_text(readers: list[str]) -> str:
    if not readers:
        return ""
    quoted = ", ".join(f"'{r}'" for r in readers)
    return f" by block {quoted}" if len(readers) == 1 else f" by blocks {quoted}"


def _check_variables_arg(variables: Any) -> dict[str, Any]:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise InvalidArgument(
            "variables must be an object of name → value",
            {"problems": [{"field": "variables", "problem": "must be an object"}]},
        )
    bad = [k for k in variables if not isinstance(k, str)]
    if bad:
        raise InvalidArgument(
            "variable names must be strings",
            {"problems": [{"field": "variables", "problem": "variable names must be strings"}]},
        )
    return variables


def check_values(decls: list[VariableDecl], values: dict[str, Any], *, partial: bool = False) -> None:
    """Check variable values against their declarations.

    Raises :class:`InvalidArgument` naming every value of the wrong type (or not JSON data) and, unless
    ``partial``, every required variable that has neither a value nor a default. Values for undeclared
    variables are allowed (compiling warns when nothing reads them). ``None`` means "no value".
    """
    values = _check_variables_arg(values)
    by_name = {d.name: d for d in decls}
    problems: list[dict[str, Any]] = []
    for name, value in values.items():
        decl = by_name.get(name)
        if decl is not None and value is None:
            continue
        text = _value_problem(name, decl.type if decl else "", value)
        if text:
            problems.append({"field": f"variables.{name}", "variable": name, "problem": text})
    if not partial:
        for decl in decls:
            if decl.required and values.get(decl.name) is None and decl.default is None:
                problems.append(
                    {
                        "field": f"variables.{decl.name}",
                        "variable": decl.name,
                        "problem": f"variable '{decl.name}' ({decl.type}) is required; pass it in variables",
                    }
                )
    if problems:
        raise InvalidArgument("invalid variables: " + "; ".join(p["problem"] for p in problems), {"problems": problems})


def _check_input_messages(input_messages: Any) -> list[dict[str, Any]]:
    if input_messages is None:
        return []
    if not isinstance(input_messages, list):
        raise InvalidArgument(
            "input messages must be a list of {role, content} objects",
            {"problems": [{"field": "messages", "problem": "must be a list"}]},
        )
    problems = []
    for i, message in enumerate(input_messages):
        if not isinstance(message, dict):
            problems.append({"field": f"messages[{i}]", "problem": "must be an object with a role"})
        elif not isinstance(message.get("role"), str) or not message["role"].strip():
            problems.append({"field": f"messages[{i}].role", "problem": "must be a non-empty string"})
    if problems:
        text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidArgument(f"invalid input messages: {text}", {"problems": problems})
    return [dict(m) for m in input_messages]


# ---------------------------------------------------------------------------------------------------
# Static analysis of a prompt


@dataclass(slots=True)
class _BlockInfo:
    id: str
    role: str
    template: _Parsed
    condition: _ParsedCondition | None
    names: frozenset[str]


@dataclass(slots=True)
class _Analysis:
    blocks: list[_BlockInfo]
    problems: list[dict[str, Any]]
    readers: dict[str, list[str]]  # variable → ids of the blocks that read it (content or condition)


def _analyse(content: PromptContent) -> _Analysis:
    check_sizes(content)
    blocks: list[_BlockInfo] = []
    problems: list[dict[str, Any]] = []
    readers: dict[str, list[str]] = {}
    for block in content.blocks:
        parsed = _parse_template(block.content)
        if parsed.error:
            line, message = parsed.error
            problems.append(_problem(block.id, None, line, f"{_where(block.id, line)}: {message}"))
        condition = None
        names = parsed.names
        if block.condition is not None:
            condition = _parse_condition(block.condition)
            if condition.error:
                line, message = condition.error
                problems.append(_problem(block.id, None, line, f"{_where(block.id, line, True)}: {message}"))
            names = names | condition.names
        for name in sorted(names):
            readers.setdefault(name, []).append(block.id)
        blocks.append(_BlockInfo(block.id, block.role, parsed, condition, names))
    for decl in content.variables:
        text = _default_problem(decl)
        if text:
            problems.append(_problem(None, decl.name, None, text))
    return _Analysis(blocks, problems, readers)


def _reported_names(names: Iterable[str], declared: set[str]) -> set[str]:
    return {n for n in names if n in declared or (n not in _GLOBAL_NAMES and n not in _SPECIAL_NAMES)}


def variables_read(content: PromptContent) -> set[str]:
    """Names every block template and condition reads (Jinja globals such as ``range`` left out unless
    declared). Blocks that do not parse contribute nothing."""
    declared = {d.name for d in content.variables}
    return _reported_names(_analyse(content).readers, declared)


def check_content(content: PromptContent) -> list[str]:
    """Static checks that need no values.

    Raises :class:`CompileError` naming every template or condition that does not parse (block id and
    line) and every default of the wrong type. Returns warnings: variables read but not declared,
    variables declared but never read.
    """
    analysis = _analyse(content)
    _raise_problems(analysis.problems)
    declared = {d.name for d in content.variables}
    warnings = []
    for name in sorted(_reported_names(analysis.readers, declared) - declared):
        warnings.append(
            f"variable '{name}' is read{_readers_text(analysis.readers[name])} but not declared; "
            "declare it so callers know to pass it"
        )
    for decl in content.variables:
        if decl.name not in analysis.readers:
            warnings.append(f"variable '{decl.name}' is declared but no block reads it")
    return warnings


# ---------------------------------------------------------------------------------------------------
# Compile


@dataclass(frozen=True, slots=True)
class CompileResult:
    manifest: dict[str, Any]  # {"system": str, "tools": list, "model": {"provider","name","params"}, "etag": str}
    messages: list[dict[str, Any]]  # [{"role","content"}...] from surviving non-system blocks, then input_messages
    warnings: list[str]
    variables: dict[str, Any]  # the resolved values actually used (defaults applied), JSON-able
    block_messages: int  # how many leading entries of `messages` came from blocks (the rest are input messages)


def _render(template: Template, context: dict[str, Any], budget: _Budget) -> str:
    parts: list[str] = []
    size = 0
    stream = template.generate(context)
    try:
        for chunk in stream:
            size += len(chunk)
            if size > MAX_BLOCK_CHARS:
                raise _Refused(f"the block renders more than {MAX_BLOCK_CHARS:,} characters")
            if budget.output + size > MAX_PROMPT_CHARS:
                raise _Refused(f"the prompt renders more than {MAX_PROMPT_CHARS:,} characters", fatal=True)
            parts.append(chunk)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    budget.output += size
    return "".join(parts)


def compile_prompt(
    content: PromptContent,
    variables: dict[str, Any] | None = None,
    input_messages: list[dict[str, Any]] | None = None,
) -> CompileResult:
    """Render ``content`` with ``variables``; see the module docstring for the rules.

    Raises :class:`InvalidArgument` when ``variables`` is not an object or an input message has no role,
    and :class:`CompileError` naming every problem of the prompt and its values.
    """
    started = time.monotonic()  # parsing counts against the time limit too
    values = _check_variables_arg(variables)
    extra_messages = _check_input_messages(input_messages)
    analysis = _analyse(content)
    problems = list(analysis.problems)
    warnings: list[str] = []
    decls = {d.name: d for d in content.variables}

    # Values: declared variables get their value, else their default, else None.
    context: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    bad: set[str] = set()
    for name, value in values.items():
        decl = decls.get(name)
        if decl is not None and value is None:
            continue
        text = _value_problem(name, decl.type if decl else "", value)
        if text:
            readers = analysis.readers.get(name, [])
            problems.append(_problem(readers[0] if readers else None, name, None, text))
            bad.add(name)
            continue
        context[name] = value
        resolved[name] = value
        if decl is None and name not in analysis.readers:
            warnings.append(f"variable '{name}' was passed but no block reads it")
    for decl in content.variables:
        if decl.name in context or decl.name in bad:
            continue
        if decl.default is not None:
            if _default_problem(decl):
                bad.add(decl.name)  # already reported by _analyse
                continue
            context[decl.name] = resolved[decl.name] = copy.deepcopy(decl.default)
        elif decl.required:
            readers = analysis.readers.get(decl.name, [])
            problems.append(
                _problem(
                    readers[0] if readers else None,
                    decl.name,
                    None,
                    f"variable '{decl.name}' ({decl.type}) is required{_readers_text(readers)}; pass it in variables",
                )
            )
            bad.add(decl.name)
        else:
            context[decl.name] = None

    system_parts: list[str] = []
    messages: list[dict[str, Any]] = []
    budget = _Budget(deadline=started + TIME_LIMIT)
    token = _BUDGET.set(budget)
    try:
        for info in analysis.blocks:
            if info.template.error or (info.condition is not None and info.condition.error):
                continue  # already reported
            if info.names & bad:
                continue  # its variables are already reported
            if info.condition is not None and info.condition.expression is not None:
                try:
                    keep = bool(info.condition.expression(context))
                except Exception as exc:
                    text, variable = _describe(exc)
                    problems.append(_problem(info.id, variable, None, f"{_where(info.id, None, True)}: {text}"))
                    if isinstance(exc, _Refused) and exc.fatal:
                        break
                    continue
                if not keep:
                    continue
            template = info.template.template
            if template is None:
                continue
            try:
                text = _render(template, context, budget)
            except Exception as exc:
                message, variable = _describe(exc)
                line = _runtime_line(exc)
                problems.append(_problem(info.id, variable, line, f"{_where(info.id, line)}: {message}"))
                if isinstance(exc, _Refused) and exc.fatal:
                    break
                continue
            if not text.strip():
                warnings.append(f"block '{info.id}' rendered empty and was left out")
                continue
            if info.role == "system":
                system_parts.append(text)
            else:
                messages.append({"role": info.role, "content": text})
    finally:
        _BUDGET.reset(token)

    _raise_problems(problems)
    block_messages = len(messages)
    messages.extend(extra_messages)
    manifest = {
        "system": "\n\n".join(system_parts),
        "tools": copy.deepcopy(content.tools),
        "model": content.model.model_dump(mode="json"),
        "etag": content.etag,
    }
    return CompileResult(
        manifest=manifest,
        messages=messages,
        warnings=warnings,
        variables=resolved,
        block_messages=block_messages,
    )
