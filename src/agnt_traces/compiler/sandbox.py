"""The sandbox prompt templates run in: the one unit to audit for what a template can do.

Templates come from people and agents editing prompts, so they are treated as untrusted code. This
module holds every defence; :mod:`.limits` holds every number; :mod:`.jinja_seams` holds the few places
that rely on jinja2 internals (the code generator and the string formatters). Nothing else in the
compiler decides what a template may do.

* Templates run in Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with ``StrictUndefined``
  (no private attributes, no mutation of lists and dicts, ``str.format`` sandboxed); ``dict``,
  ``cycler`` and ``joiner`` are factory functions, so ``dict.update(d, ...)`` cannot mutate either.
* The operators ``*``, ``**``, ``+`` and ``%``, the ``~`` concatenation, every string method and filter
  that can grow its input, and every buffer a template builds are bounded (``MAX_STRING_LENGTH``,
  ``MAX_LIST_ITEMS``, ``MAX_INT_BITS``, ``MAX_FORMAT_WIDTH``); ``range()`` gives at most ``MAX_RANGE``
  items; loop iterations and calls count against ``MAX_STEPS``; strings and lists created, and
  characters printed, count against ``MAX_ALLOCATED`` and ``MAX_PRINTED_CHARS``; ``TIME_LIMIT`` is the
  last resort (:class:`Budget`, checked by every filter, test, call and 256th loop step).
* Nothing is evaluated at parse time (constant folding is off, see
  :class:`~.jinja_seams.BoundingCodeGenerator`), so the bounds apply to everything.
* Printing anything that is not plain data (functions, classes, generators, loop objects) is refused,
  so no memory address or internal repr can reach a prompt or an error message; ``encode``,
  ``translate``, ``maketrans``, ``to_bytes`` and ``from_bytes`` are not reachable.
* ``lipsum`` and the ``random`` filter are gone, so the same input always compiles to the same output.

Every refusal is a :class:`Refused` (a :class:`~jinja2.exceptions.SecurityError`); a ``fatal`` one
stops the whole compile. Limits that count (steps, printed and allocated characters, the deadline) are
kept in the :class:`Budget` of the compile under way (:func:`budgeted`); outside one, only the per-value
bounds apply.

Use: ``ENV`` is the one environment; parse with ``ENV.parse`` / ``ENV.from_string`` and render inside
``with budgeted(deadline):``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from jinja2 import StrictUndefined, pass_environment
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace
from markupsafe import Markup

from . import limits
from .jinja_seams import BoundingCodeGenerator, attribute_getter, guarded_str_format, is_loop, is_macro

__all__ = [
    "ENV",
    "GLOBAL_NAMES",
    "Budget",
    "PromptEnvironment",
    "Refused",
    "as_text",
    "budgeted",
    "check_deadline",
    "raise_undefined",
    "tick",
]

# ---------------------------------------------------------------------------------------------------
# Per-compile budget


@dataclass(slots=True)
class Budget:
    """What one compile has spent so far: loop steps and calls, characters rendered (``output``, kept by
    the compile steps), printed and allocated, against its wall-clock ``deadline`` (``time.monotonic``)."""

    deadline: float
    steps: int = 0
    output: int = 0
    printed: int = 0
    allocated: int = 0


_BUDGET: ContextVar[Budget | None] = ContextVar("agnt_traces_compile_budget", default=None)


@contextmanager
def budgeted(deadline: float) -> Iterator[Budget]:
    """Counts everything rendered inside the ``with`` block against one fresh :class:`Budget` ending at
    ``deadline`` (a ``time.monotonic()`` value)."""
    budget = Budget(deadline=deadline)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


class Refused(SecurityError):
    """A limit of this module was hit. ``fatal`` ones stop the whole compile."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def _time_out() -> Refused:
    return Refused(f"compiling took longer than {limits.TIME_LIMIT:g} seconds", fatal=True)


def check_deadline() -> None:
    """Refuses to go on once the compile's wall-clock budget is spent (called by every filter and test)."""
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise _time_out()


def tick(cost: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.steps += cost
    if budget.steps > limits.MAX_STEPS:
        raise Refused(
            f"the prompt needs more than {limits.MAX_STEPS:,} loop iterations and calls; make loops smaller",
            fatal=True,
        )
    if (cost > 1 or not budget.steps & 255) and time.monotonic() > budget.deadline:
        raise _time_out()


# ---------------------------------------------------------------------------------------------------
# Plain data: what may be printed, turned into text or formatted


def raise_undefined(value: Undefined) -> NoReturn:
    """Raises the ``UndefinedError`` that ``value`` stands for ("'x' is undefined").

    Every undefined value here is a ``StrictUndefined`` (the environment's ``undefined``), which raises
    when turned into text; calling raises for any other kind of ``Undefined``.
    """
    str(value)
    value()
    raise AssertionError("an undefined value did not raise")  # pragma: no cover


def _plain_size(value: Any, limit: int = limits.MAX_STRING_LENGTH) -> int:
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
            raise_undefined(item)
        else:
            kind = type(item).__name__
            raise Refused(
                f"cannot turn a value of type '{kind}' into text; only strings, numbers, booleans, "
                "lists and objects can be printed (use |list or |join for sequences)"
            )
        if total > limit:
            raise Refused(f"value is too large to print (more than {limit:,} characters)")
    return total


def as_text(value: Any) -> str:
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
        if budget.printed > limits.MAX_PRINTED_CHARS:
            raise Refused(f"the template prints more than {limits.MAX_PRINTED_CHARS:,} characters in all", fatal=True)


def count_result(value: Any) -> Any:
    """Counts a freshly created string or container against ``limits.MAX_ALLOCATED``; returns it."""
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, (list, tuple, dict)):
        size = 8 * len(value)
    else:
        return value
    budget = _BUDGET.get()
    if budget is not None:
        budget.allocated += size
        if budget.allocated > limits.MAX_ALLOCATED:
            raise Refused(
                f"the template builds more than {limits.MAX_ALLOCATED:,} bytes of strings and lists", fatal=True
            )
    return value


def _counting_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a filter so the strings and lists it creates count against ``limits.MAX_ALLOCATED``; a filter that
    hands back one of its arguments (``|default``, ``|trim`` of a trimmed string) created nothing. The
    deadline is checked before and after every call: a filter called in a loop cannot outrun it."""

    @functools.wraps(func)
    def counted(*args: Any, **kwargs: Any) -> Any:
        check_deadline()
        result = func(*args, **kwargs)
        check_deadline()
        if any(result is a for a in args) or any(result is v for v in kwargs.values()):
            return result
        return count_result(result)

    return counted


def _deadline_checked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a filter or test that creates nothing so that it, too, checks the deadline."""

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_deadline()
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
    if length > limits.MAX_STRING_LENGTH:
        raise Refused(f"{what} would be longer than {limits.MAX_STRING_LENGTH:,} characters")


def _check_width(width: Any, what: str = "width") -> None:
    if isinstance(width, int) and width > limits.MAX_STRING_LENGTH:
        raise Refused(f"{what} {width} is larger than {limits.MAX_STRING_LENGTH:,}")


def _bounded_replace(s: str, old: str, new: str, count: int = -1) -> str:
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    _check_length(len(s) + hits * (len(new) - len(old)), "replace() result")
    return s.replace(old, new, count)


def bounded_join(sep: str, items: Iterable[Any]) -> str:
    parts: list[str] = []
    total = 0
    for item in items:
        text = as_text(item)
        total += len(text) + (len(sep) if parts else 0)
        _check_length(total, "joined text")
        parts.append(text)
    return sep.join(parts)


# ---------------------------------------------------------------------------------------------------
# Bounded operators


def _int_bits_check(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > limits.MAX_INT_BITS:
        raise Refused(f"number is too large (more than {limits.MAX_INT_BITS:,} bits)")
    return value


def _sequence_len_check(result_len: int, sample: Any) -> None:
    if isinstance(sample, str):
        _check_length(result_len)
    elif result_len > limits.MAX_LIST_ITEMS:
        raise Refused(f"result would have more than {limits.MAX_LIST_ITEMS:,} items")


def _bounded_mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            _sequence_len_check(len(seq) * max(times, 0), seq)
            return seq * times
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > limits.MAX_INT_BITS + 1:
            raise Refused(f"number is too large (more than {limits.MAX_INT_BITS:,} bits)")
        return _int_bits_check(left * right)
    return left * right


def _bounded_add(left: Any, right: Any) -> Any:
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _sequence_len_check(len(left) + len(right), left)
    return _int_bits_check(left + right)


def _bounded_pow(left: Any, right: Any) -> Any:
    big = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if big and (right > limits.MAX_INT_BITS or right * math.log2(abs(left)) > limits.MAX_INT_BITS):
        raise Refused(f"the power is too large (more than {limits.MAX_INT_BITS:,} bits)")
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
            raise Refused(f"unsupported %-format at position {pos}; use %s, %d, %f and the like")
        specs.append(match)
        pos = fmt.find("%", match.end())
    mapping = any(m.group("key") is not None for m in specs)
    if mapping and not isinstance(args, dict):
        raise Refused("%(name)s formatting needs an object of values")
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
            raise Refused("'*' widths are not allowed in %-formats")
        width = int(width_s) if width_s else 0
        precision = int(prec_s) if prec_s else 0
        if width > limits.MAX_FORMAT_WIDTH or precision > limits.MAX_FORMAT_WIDTH:
            raise Refused(f"format width or precision larger than {limits.MAX_FORMAT_WIDTH:,}")
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


class _FormatGuard:
    """What ``str.format`` / ``format_map`` called from a template may take and produce: plain values,
    bounded widths and output (applied by the formatters of :func:`~.jinja_seams.guarded_str_format`)."""

    def check_value(self, value: Any) -> None:
        if isinstance(value, Undefined):
            raise_undefined(value)
        elif not isinstance(value, (str, int, float)) and value is not None:
            _plain_size(value)

    def check_spec(self, format_spec: str) -> None:
        for number in _SPEC_NUMBER.findall(format_spec):
            if len(number) > 6 or int(number) > limits.MAX_FORMAT_WIDTH:
                raise Refused(f"format width or precision larger than {limits.MAX_FORMAT_WIDTH:,}")

    def check_length(self, produced: int) -> None:
        _check_length(produced, "formatted text")


_FORMAT_GUARD = _FormatGuard()


# ---------------------------------------------------------------------------------------------------
# Bounded filters and globals


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > limits.MAX_RANGE:
        raise Refused(f"range() is limited to {limits.MAX_RANGE:,} items")
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
    return as_text(value)


def _f_format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise Refused("|format takes positional or keyword arguments, not both")
    return _bounded_percent(as_text(value), kwargs or args)


@pass_environment
def _f_join(env: PromptEnvironment, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = map(attribute_getter(env, attribute), value)
    return bounded_join(as_text(d), value)


def _f_replace(s: Any, old: Any, new: Any, count: int | None = None) -> str:
    return _bounded_replace(as_text(s), as_text(old), as_text(new), -1 if count is None else count)


def _f_center(value: Any, width: int = 80) -> str:
    _check_width(width)
    return as_text(value).center(width)


def _f_indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = as_text(s)
    indention = width if isinstance(width, str) else " " * min(max(width, 0), limits.MAX_STRING_LENGTH + 1)
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
    env: PromptEnvironment,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    sep = env.newline_sequence if wrapstring is None else as_text(wrapstring)
    text = as_text(s)
    if isinstance(width, int) and len(text) // max(width, 1) > limits.MAX_WRAP_LINES:
        raise Refused(f"|wordwrap would produce more than {limits.MAX_WRAP_LINES:,} lines; use a larger width")
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
    if not isinstance(linecount, int) or not 0 < linecount <= limits.MAX_LIST_ITEMS:
        raise Refused(f"|batch size must be between 1 and {limits.MAX_LIST_ITEMS:,}")
    return _ORIGINAL_FILTERS["batch"](value, linecount, fill_with)


def _f_slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if not isinstance(slices, int) or not 0 < slices <= limits.MAX_LIST_ITEMS:
        raise Refused(f"|slice count must be between 1 and {limits.MAX_LIST_ITEMS:,}")
    return _ORIGINAL_FILTERS["slice"](value, slices, fill_with)


@pass_environment
def _f_sum(env: PromptEnvironment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise Refused("|sum adds numbers only; use |join for text")
    if attribute is not None:
        iterable = map(attribute_getter(env, attribute), iterable)
    total = start
    for item in iterable:
        if isinstance(item, Undefined):
            raise_undefined(item)
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise Refused("|sum adds numbers only; use |join for text")
        total = _int_bits_check(total + item)
    return total


def _f_tojson(value: Any, indent: int | None = None) -> str:
    _plain_size(value)
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= 16):
        raise Refused("|tojson indent must be between 0 and 16")
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Refused(f"cannot write this value as JSON: {exc}") from None


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


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        tick()
        yield item


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with every operator, call, format, loop, slice and ``~`` bounded.

    ``agnt_iter``, ``agnt_slice`` and ``agnt_concat`` are reached from the code
    :class:`~.jinja_seams.BoundingCodeGenerator` writes; ``call`` and ``wrap_str_format`` are the
    sandbox's own hooks (see :mod:`.jinja_seams` for why they are listed there).
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = BoundingCodeGenerator

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in _BLOCKED_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            return count_result(_bounded_mul(left, right))
        if operator == "+":
            return count_result(_bounded_add(left, right))
        if operator == "**":
            return _bounded_pow(left, right)
        if operator == "%" and isinstance(left, str):
            return count_result(_bounded_percent(left, right))
        return self.binop_table[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick(limits.MACRO_CALL_COST if is_macro(__obj) else 1)
        if is_loop(__obj) and args:
            args = (__self.agnt_iter(args[0]), *args[1:])
        owner = getattr(__obj, "__self__", None)
        if not isinstance(owner, str):
            # Macros build their output in buffers (counted by concat); dict.get & co. return references.
            return super().call(__context, __obj, *args, **kwargs)
        args = _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return result if result is owner else count_result(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return guarded_str_format(self, value, _FORMAT_GUARD)

    # Helpers reached from generated code (see BoundingCodeGenerator) and from every template buffer.

    def agnt_iter(self, iterable: Any) -> Iterator[Any]:
        if iterable is None:
            return iter(())
        return _counted(iterable)

    def agnt_slice(self, obj: Any, index: slice) -> Any:
        return count_result(obj[index])

    def agnt_concat(self, parts: tuple[Any, ...]) -> str:
        return count_result(bounded_join("", parts))


def _bounded_concat(parts: Iterable[str]) -> str:
    pieces: list[str] = []
    total = 0
    for piece in parts:
        total += len(piece)
        _check_length(total, "template output")
        pieces.append(piece)
    return count_result("".join(pieces))


def _make_environment() -> PromptEnvironment:
    env = PromptEnvironment(
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


#: The one environment every prompt template is parsed and rendered in.
ENV = _make_environment()
#: Names a template can read without a variable: ``range``, ``dict``, ``cycler``, ``joiner``, ``namespace``.
GLOBAL_NAMES = frozenset(ENV.globals)
