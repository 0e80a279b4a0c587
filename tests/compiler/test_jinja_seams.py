"""The jinja2 internals the sandbox relies on (compiler/jinja_seams.py) still behave as pinned.

When jinja2 is upgraded these fail loudly, naming what to re-read, before an upgrade can quietly turn a
bound off (a renamed code-generator method would simply stop being called).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeGuard

import jinja2
import pytest
from jinja2 import Environment, Undefined, meta
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment
from markupsafe import Markup

from agnt_traces.compiler import jinja_seams, sandbox
from agnt_traces.compiler.jinja_seams import (
    OVERRIDDEN_HOOKS,
    PINNED_JINJA2_VERSION,
    attribute_getter,
    guarded_str_format,
    is_loop,
    is_macro,
    names_read,
)
from agnt_traces.compiler.sandbox import ENV, PromptEnvironment

PACKAGE = Path(jinja_seams.__file__).parent


def test_the_pinned_jinja2_is_installed() -> None:
    assert version("jinja2") == PINNED_JINJA2_VERSION == jinja2.__version__, (
        "jinja2 was upgraded: re-read src/agnt_traces/compiler/jinja_seams.py and the sandbox's hooks"
    )


def test_the_overridden_code_generator_methods_still_exist() -> None:
    for name in ("_output_child_to_const", "visit_For", "visit_Getitem", "visit_Concat", "enter_frame"):
        assert callable(getattr(CodeGenerator, name, None)), f"jinja2.compiler.CodeGenerator.{name} is gone"
    assert ENV.code_generator_class is jinja_seams.BoundingCodeGenerator


def test_generated_code_routes_loops_slices_and_concatenation_through_the_sandbox() -> None:
    code = ENV.compile("{% for i in items %}{{ i[1:] ~ 'x' }}{% endfor %}", raw=True)
    assert "environment.agnt_iter" in code
    assert "environment.agnt_slice(" in code
    assert "environment.agnt_concat((" in code


def _recorder(calls: list[str]) -> Callable[[str], str]:
    """A filter that records each value it is applied to."""

    def spy(value: str) -> str:
        calls.append(value)
        return value

    return spy


def test_nothing_is_constant_folded() -> None:
    """Stock jinja2 folds ``'a'|upper`` into ``'A'`` while compiling: outside every bound."""
    calls: list[str] = []

    class Probe(Environment):
        code_generator_class = jinja_seams.BoundingCodeGenerator

    probe = Probe(optimized=False)
    probe.filters["spy"] = _recorder(calls)
    probe.compile("{{ 'a'|spy }}{{ 'b'|spy ~ 'c' }}")
    assert calls == []
    stock = Environment()  # the control: the probe above would catch folding coming back
    stock.filters["spy"] = _recorder(calls)
    stock.compile("{{ 'a'|spy }}")
    assert calls == ["a"]


def test_names_read_lists_free_names_without_running_anything() -> None:
    calls: list[str] = []
    probe = Environment()
    probe.filters["spy"] = _recorder(calls)
    source = "{% for i in items %}{{ i ~ x|spy }}{% endfor %}{% set y = 1 %}{{ y }}{{ range(3)|list }}{{ 'k'|spy }}"
    assert names_read(probe, probe.parse(source)) == {"items", "x"}
    assert calls == []
    assert meta.find_undeclared_variables(probe.parse(source)) == {"items", "x"}
    assert calls == ["k"]  # the public helper folds constants: why names_read exists


def test_attribute_getter_follows_dotted_paths_through_the_sandbox() -> None:
    assert attribute_getter(ENV, "a.b")({"a": {"b": 1}}) == 1
    assert attribute_getter(ENV, "1")(["x", "y"]) == "y"
    assert attribute_getter(ENV, "name")({"name": "n"}) == "n"
    assert isinstance(attribute_getter(ENV, "__class__")("s"), Undefined)  # sandboxed: no dunder walk


def test_macros_and_loop_objects_are_recognised() -> None:
    seen: dict[str, Any] = {}

    def probe(kind: str, obj: Any) -> str:
        seen[kind] = (is_macro(obj), is_loop(obj))
        return ""

    ENV.from_string(
        "{% macro m() %}{% endmacro %}{{ probe('macro', m) }}"
        "{% for i in [1] recursive %}{{ probe('loop', loop) }}{% endfor %}{{ probe('text', 'x') }}"
    ).render(probe=probe)
    assert seen == {"macro": (True, False), "loop": (False, True), "text": (False, False)}


class _Guard:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def check_value(self, value: Any) -> None:
        self.seen.append(("value", value))

    def check_spec(self, format_spec: str) -> None:
        self.seen.append(("spec", format_spec))

    def check_length(self, produced: int) -> None:
        self.seen.append(("length", produced))


def test_guarded_str_format_checks_every_field_and_keeps_sandboxing() -> None:
    guard = _Guard()
    wrapper = guarded_str_format(ENV, "{0:>4}{name}".format, guard)
    assert wrapper is not None and wrapper("a", name="b") == "   ab"
    a, b = [("value", "a"), ("value", "a"), ("spec", ">4")], [("value", "b"), ("value", "b"), ("spec", "")]
    assert guard.seen == [*a, ("length", 4), *b, ("length", 5)]  # convert_field, format_field, then output
    escaped = guarded_str_format(ENV, Markup("<{0}>").format, _Guard())
    assert escaped is not None and escaped("&") == Markup("<&amp;>")
    mapping = guarded_str_format(ENV, "{a}".format_map, _Guard())
    assert mapping is not None and mapping({"a": 1}) == "1"
    assert guarded_str_format(ENV, "x".upper, guard) is None
    walking = guarded_str_format(ENV, "{0.__class__}".format, _Guard())
    assert walking is not None
    with pytest.raises(jinja2.exceptions.SecurityError):
        walking("")


@pytest.mark.parametrize("hook", OVERRIDDEN_HOOKS)
def test_the_undocumented_hooks_still_exist(hook: str) -> None:
    assert hasattr(SandboxedEnvironment, hook), f"jinja2 no longer has SandboxedEnvironment.{hook}"
    assert hook in vars(PromptEnvironment) or hook in vars(ENV), f"the sandbox no longer overrides {hook}"


def test_jinja2_routes_template_calls_through_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    original = PromptEnvironment.call

    def spy(self: PromptEnvironment, context: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(obj)
        return original(self, context, obj, *args, **kwargs)

    monkeypatch.setattr(PromptEnvironment, "call", spy)
    assert ENV.from_string("{{ f(1) }}{{ 'ab'.upper() }}").render(f=lambda n: n + 1) == "2AB"
    assert len(calls) == 2


def test_jinja2_wraps_str_format_through_wrap_str_format() -> None:
    """Reached by attribute access, not by call (the method is taken first, called later): the refusal
    below proves jinja2 still hands ``str.format`` to the override."""
    with pytest.raises(sandbox.Refused, match="format width or precision larger than 10,000"):
        ENV.from_string("{% set f = '{:>20000}'.format %}{{ f('x') }}").render()


def test_jinja2_joins_macro_buffers_with_environment_concat(monkeypatch: pytest.MonkeyPatch) -> None:
    joined: list[list[str]] = []
    original = ENV.concat

    def spy(parts: Any) -> str:
        parts = list(parts)
        joined.append(parts)
        return original(parts)

    monkeypatch.setattr(ENV, "concat", spy)
    template = ENV.from_string("{% macro m() %}a{{ 'b' }}{% endmacro %}{{ m() }}")
    assert "".join(template.generate({})) == "ab"  # generate(): only the macro's buffer goes through concat
    assert ["a", "b"] in joined


def test_strict_undefined_raises_through_public_behaviour() -> None:
    """``_fail_with_undefined_error`` is no longer called: printing a StrictUndefined raises the same error,
    and calling any Undefined does."""
    with pytest.raises(UndefinedError, match="'zz' is undefined"):
        sandbox.raise_undefined(ENV.undefined(name="zz"))
    with pytest.raises(UndefinedError, match="'zz' is undefined"):
        sandbox.raise_undefined(Undefined(name="zz"))
    assert ENV.undefined is jinja2.StrictUndefined


def test_the_budget_sees_calls_made_by_the_hooks() -> None:
    with sandbox.budgeted(time.monotonic() + 10) as budget:
        ENV.from_string("{% for i in range(3) %}{{ 'a'.upper() }}{% endfor %}").render()
    assert budget.steps >= 4  # three loop steps and the calls


# Public jinja2 names the rest of the compiler may import; anything else belongs in jinja_seams.
_PUBLIC = {
    "jinja2": {"StrictUndefined", "Template", "nodes", "pass_environment", "Environment"},
    "jinja2.environment": {"TemplateExpression"},
    "jinja2.exceptions": {"SecurityError", "TemplateError", "TemplateSyntaxError", "UndefinedError"},
    "jinja2.parser": {"Parser"},
    "jinja2.runtime": {"Context", "Undefined"},
    "jinja2.sandbox": {"ImmutableSandboxedEnvironment"},
    "jinja2.utils": {"Cycler", "Joiner", "Namespace"},  # the documented template globals cycler, joiner, namespace
}


def _private_attribute(node: ast.AST) -> TypeGuard[ast.Attribute]:
    """``jinja2._x`` / ``nodes._x`` / ``Undefined._x``: a private name of jinja2 spelled out."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name)
        and node.value.id in {"jinja2", "nodes", "Undefined"}
    )


def test_only_jinja_seams_reaches_into_jinja2_internals() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "jinja_seams.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jinja2"):
                for alias in node.names:
                    if alias.name not in _PUBLIC.get(node.module or "", set()):
                        offenders.append(f"{path.name}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("jinja2")]
            elif _private_attribute(node):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        assert "_fail_with_undefined_error" not in path.read_text(), path.name
    assert offenders == []


def test_the_immutable_sandbox_is_the_base() -> None:
    assert isinstance(ENV, ImmutableSandboxedEnvironment)
    assert ENV.intercepted_binops >= {"*", "**", "+", "%"}
