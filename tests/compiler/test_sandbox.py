"""The sandbox audited alone: ``agnt_traces.compiler.sandbox`` refuses the known escapes by itself.

Nothing here goes through ``compile_prompt``: templates are parsed and rendered straight in
``sandbox.ENV`` (inside ``sandbox.budgeted`` where a compile's budget matters), so the parse-time checks,
the per-block output caps and the error messages of the compile steps cannot be what stops them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from agnt_traces.compiler import limits, sandbox
from injection_corpus import CONDITION_PAYLOADS, FORBIDDEN_IN_MESSAGES, PAYLOADS

#: What the sandbox may raise for a payload. TypeError only for "no loader" (extends, include, import);
#: RecursionError and SyntaxError when Python refuses to go deeper or to compile the generated code.
REFUSALS = (SecurityError, UndefinedError, RecursionError, SyntaxError)


def run(source: str, context: dict[str, Any] | None = None, *, seconds: float = 10.0) -> str:
    """Parses and renders ``source`` in the sandbox alone, with one budget, without any output cap."""
    with sandbox.budgeted(time.monotonic() + seconds):
        template = sandbox.ENV.from_string(source)
        return "".join(template.generate(context or {}))


def refused(source: str, context: dict[str, Any] | None = None, *, seconds: float = 10.0) -> BaseException:
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        run(source, context, seconds=seconds)
    assert time.monotonic() - started < seconds + 5
    return info.value


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_corpus_payload_is_refused_by_the_sandbox_alone(payload: str) -> None:
    error = refused(payload)
    if isinstance(error, TypeError):  # loading another template: the environment has no loader at all
        assert "no loader" in str(error) and sandbox.ENV.loader is None
    else:
        assert isinstance(error, REFUSALS), f"{type(error).__name__}: {error}"
    for forbidden in FORBIDDEN_IN_MESSAGES:
        if not isinstance(error, (RecursionError, SyntaxError)):  # Python's own text, cleaned by the compiler
            assert forbidden not in str(error)


@pytest.mark.parametrize("payload", CONDITION_PAYLOADS)
def test_every_condition_payload_is_refused_by_the_sandbox_alone(payload: str) -> None:
    """A condition is kept when its value is true: testing that value is where a refusal may surface."""
    with pytest.raises((*REFUSALS, TemplateSyntaxError)), sandbox.budgeted(time.monotonic() + 10):
        bool(sandbox.ENV.compile_expression(payload, undefined_to_none=False)({}))


@pytest.mark.parametrize(
    ("source", "kind", "text"),
    [
        ("{{ ''.__class__ }}", SecurityError, "unsafe"),
        ("{{ cycler.__init__.__globals__ }}", SecurityError, "unsafe"),
        ("{{ range.__self__ }}", UndefinedError, ""),
        ("{% set l = [1] %}{{ l.append(2) }}", SecurityError, "unsafe"),
        ("{% set d = {} %}{{ d.update(a=1) }}", SecurityError, "unsafe"),
        ("{{ dict.update({}, a=1) }}", UndefinedError, ""),
        ("{{ 'x'.encode('utf-8') }}", SecurityError, "unsafe"),
        ("{{ 'ab'.maketrans('a', 'b') }}", SecurityError, "unsafe"),
        ("{{ range }}", sandbox.Refused, "cannot turn a value of type"),
        ("{{ lipsum() }}", UndefinedError, "'lipsum' is undefined"),
        ("{{ [1, 2]|random }}", Exception, "random"),
        ("{{ '{0.__class__}'.format('') }}", SecurityError, "unsafe"),
    ],
)
def test_escapes_are_refused(source: str, kind: type[BaseException], text: str) -> None:
    error = refused(source)
    assert isinstance(error, kind), f"{type(error).__name__}: {error}"
    assert text in str(error)


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("{{ 'x' * 2000000 }}", "longer than 1,000,000 characters"),
        ("{{ [0] * 200000 }}", "more than 100,000 items"),
        ("{{ 2 ** 100000 }}", "the power is too large"),
        ("{{ range(20000)|list|length }}", "range() is limited to 10,000 items"),
        ("{{ 'x'|center(2000000) }}", "larger than 1,000,000"),
        ("{{ '%20000s' % 'x' }}", "format width or precision larger than 10,000"),
        ("{{ '{:>20000}'.format('x') }}", "format width or precision larger than 10,000"),
        ("{{ 'ab'.replace('', 'x' * 900000) }}", "replace() result would be longer"),
    ],
)
def test_value_bounds_hold_without_a_budget(source: str, text: str) -> None:
    """The per-value bounds need no compile under way: they hold for any render in ``ENV``."""
    template = sandbox.ENV.from_string(source)
    with pytest.raises(sandbox.Refused, match=text.replace("(", r"\(").replace(")", r"\)")):
        "".join(template.generate({}))


def test_loops_and_calls_count_against_the_step_budget() -> None:
    error = refused("{% for i in range(10000) %}{% for j in range(100) %}{% endfor %}{% endfor %}")
    assert isinstance(error, sandbox.Refused) and error.fatal
    assert f"more than {limits.MAX_STEPS:,} loop iterations and calls" in str(error)


def test_a_spent_deadline_stops_the_next_filter() -> None:
    error = refused("{{ 'a'|upper }}", seconds=-1.0)
    assert isinstance(error, sandbox.Refused) and error.fatal
    assert "compiling took longer than" in str(error)


def test_allocation_is_counted_even_when_nothing_is_printed() -> None:
    source = "{% set ns = namespace(s='') %}{% for i in range(100) %}{% set ns.s = 'x' * 999999 %}{% endfor %}"
    error = refused(source)
    assert isinstance(error, sandbox.Refused) and "bytes of strings and lists" in str(error)


def test_each_budget_is_fresh_and_ends_with_its_block() -> None:
    with sandbox.budgeted(time.monotonic() + 10) as budget:
        assert run("{% for i in range(50) %}{{ i }}{% endfor %}") == "".join(str(i) for i in range(50))
        assert budget.steps == 0  # run() opened its own budget
        sandbox.tick(5)
        assert budget.steps == 5
    sandbox.tick(10**9)  # no compile under way: nothing to count against


def test_nothing_is_evaluated_while_parsing() -> None:
    """Constant folding would run this 1 GB concatenation at parse time, outside every bound."""
    started = time.monotonic()
    template = sandbox.ENV.from_string("{{ ('x'|center(999999)) ~ ('x'|center(999999)) }}" * 200)
    assert time.monotonic() - started < 5
    with pytest.raises(sandbox.Refused):
        "".join(template.generate({}))


def test_same_input_same_output() -> None:
    assert "lipsum" not in sandbox.ENV.globals and "random" not in sandbox.ENV.filters
    assert {"range", "dict", "cycler", "joiner", "namespace"} == sandbox.GLOBAL_NAMES
    source = "{{ {'b': 1, 'a': [1, 'é']}|tojson }} {{ dict(z=1, y=2)|dictsort }} {{ none }}"
    assert run(source) == run(source) == '{"a": [1, "é"], "b": 1} [(\'y\', 2), (\'z\', 1)] '
