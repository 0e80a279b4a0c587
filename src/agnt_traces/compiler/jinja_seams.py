"""The one place that relies on jinja2 internals (pinned: jinja2==3.1.6).

The sandbox (:mod:`.sandbox`) is built on jinja2's public API — ``ImmutableSandboxedEnvironment`` and its
documented hooks (``is_safe_attribute``, ``intercepted_binops``, ``call_binop``, ``code_generator_class``,
``finalize``, ``filters``, ``tests``, ``globals``) — except where jinja2 offers no public way:

* **Code generation.** ``code_generator_class`` is documented, but the methods a subclass overrides
  are not: :class:`BoundingCodeGenerator` turns off constant folding (``_output_child_to_const``) and
  routes ``{% for %}`` iterables, slices and ``~`` through the environment's bounded helpers
  (``visit_For``, ``visit_Getitem``, ``visit_Concat``, writing Python source); :func:`names_read` walks
  the symbol tables (``enter_frame``, ``Frame.symbols.loads``) as ``jinja2.meta.find_undeclared_variables``
  does, but without constant folding.
* **The sandbox's string formatters.** ``SandboxedFormatter`` and ``SandboxedEscapeFormatter`` are not
  exported; :func:`guarded_str_format` rebuilds ``SandboxedEnvironment.wrap_str_format`` (3.1.3+) with
  formatters that check every value and width.
* **Helpers without a public home:** ``jinja2.filters.make_attrgetter`` (the dotted ``attribute=`` of
  ``|join`` and ``|sum``), ``jinja2.runtime.Macro`` and ``LoopContext`` (to tell a macro call and a
  ``loop(...)`` recursion from other calls).

The sandbox also overrides three hooks that have public names but are not in jinja2's documentation:
``SandboxedEnvironment.call`` (every call a template makes), ``SandboxedEnvironment.wrap_str_format``
(``str.format`` reached from a template) and ``Environment.concat`` (joins macro, ``{% set %}`` and
filter-block buffers). ``_fail_with_undefined_error`` is no longer used: printing a ``StrictUndefined``
raises the same ``UndefinedError`` through public behaviour (:func:`~.sandbox.raise_undefined`).

tests/compiler/test_jinja_seams.py pins the version and probes each of these behaviours, so an upgrade
of jinja2 fails loudly there before it can weaken the sandbox; re-read this module when it does.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, Protocol

from jinja2 import Environment, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

__all__ = [
    "OVERRIDDEN_HOOKS",
    "PINNED_JINJA2_VERSION",
    "BoundingCodeGenerator",
    "FormatGuard",
    "attribute_getter",
    "guarded_str_format",
    "is_loop",
    "is_macro",
    "names_read",
]

PINNED_JINJA2_VERSION = "3.1.6"

#: Undocumented methods and attributes of jinja2's environments that the sandbox overrides.
OVERRIDDEN_HOOKS = ("call", "wrap_str_format", "concat")


# ---------------------------------------------------------------------------------------------------
# Code generation


class BoundingCodeGenerator(CodeGenerator):
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


class _NameTracker(BoundingCodeGenerator):
    """``jinja2.meta.find_undeclared_variables`` without its constant folding (see BoundingCodeGenerator)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared: set[str] = set()

    def write(self, x: str) -> None:
        pass

    def enter_frame(self, frame: Frame) -> None:
        super().enter_frame(frame)
        for _, (action, param) in frame.symbols.loads.items():
            if action == "resolve" and param not in self.environment.globals:
                self.undeclared.add(param)


def names_read(environment: Environment, ast: nodes.Template) -> frozenset[str]:
    """Names ``ast`` reads from its context (variables and globals not assigned in the template)."""
    tracker = _NameTracker(environment)
    tracker.visit(ast)
    return frozenset(tracker.undeclared)


# ---------------------------------------------------------------------------------------------------
# str.format from a template


class FormatGuard(Protocol):
    """The checks :func:`guarded_str_format` applies (implemented by the sandbox)."""

    def check_value(self, value: Any) -> None:
        """Raises when ``value`` may not be formatted."""

    def check_spec(self, format_spec: str) -> None:
        """Raises when a field's format specification is too wide."""

    def check_length(self, produced: int) -> None:
        """Raises when one format call has produced too many characters."""


class _Guarded:
    """Mixed into jinja2's sandboxed formatters: every field's value and width checked, output counted."""

    _guard: FormatGuard
    _produced = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        self._guard.check_value(value)
        return super().convert_field(value, conversion)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._guard.check_value(value)
        self._guard.check_spec(format_spec)
        result = super().format_field(value, format_spec)  # type: ignore[misc]
        self._produced += len(result)
        self._guard.check_length(self._produced)
        return result


class _GuardedFormatter(_Guarded, SandboxedFormatter):
    def __init__(self, env: Environment, guard: FormatGuard) -> None:
        super().__init__(env)
        self._guard = guard


class _GuardedEscapeFormatter(_Guarded, SandboxedEscapeFormatter):
    def __init__(self, env: Environment, guard: FormatGuard, escape: Callable[[Any], Markup]) -> None:
        super().__init__(env, escape=escape)
        self._guard = guard


def guarded_str_format(env: Environment, value: Any, guard: FormatGuard) -> Callable[..., str] | None:
    """``SandboxedEnvironment.wrap_str_format`` with ``guard`` applied to every field: when ``value`` is
    a string's ``format`` or ``format_map`` method, a function that formats through a sandboxed,
    guarded formatter (a fresh one per call); None for any other value."""
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
            formatter = _GuardedEscapeFormatter(env, guard, f_self.escape)
        else:
            formatter = _GuardedFormatter(env, guard)
        return str_type(formatter.vformat(f_self, args, kwargs))

    return functools.update_wrapper(wrapper, value)


# ---------------------------------------------------------------------------------------------------
# Helpers without a public home


def attribute_getter(env: Environment, attribute: str | int) -> Callable[[Any], Any]:
    """What ``|map(attribute=...)`` uses: a getter for a dotted attribute or item path, through ``env``'s
    (sandboxed) ``getitem``."""
    return make_attrgetter(env, attribute)


def is_macro(obj: Any) -> bool:
    """Whether ``obj`` is a macro defined by a template (``{% macro %}``)."""
    return isinstance(obj, Macro)


def is_loop(obj: Any) -> bool:
    """Whether ``obj`` is a ``{% for %}`` loop's ``loop`` object (callable in a recursive loop)."""
    return isinstance(obj, LoopContext)
