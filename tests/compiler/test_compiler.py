"""Compiling prompt content: conditions, variables, errors, bounds and the injection corpus."""

from __future__ import annotations

import copy
import time
import tracemalloc
from typing import Any

import pytest

from agnt_traces import compiler
from agnt_traces.compiler import (
    CompileResult,
    check_content,
    check_values,
    compile_prompt,
    variables_read,
)
from agnt_traces.errors import CompileError, InvalidArgument
from agnt_traces.models import PromptContent, VariableDecl
from injection_corpus import CONDITION_PAYLOADS, FORBIDDEN_IN_MESSAGES, PAYLOADS


def make(blocks: list[dict[str, Any]], variables: list[dict[str, Any]] | None = None, **extra: Any) -> PromptContent:
    return PromptContent.model_validate({"blocks": blocks, "variables": variables or [], **extra})


def one(content: str, condition: str | None = None, role: str = "user") -> PromptContent:
    return make([{"id": "b", "role": role, "content": content, "condition": condition}])


def render(content: str, variables: dict[str, Any] | None = None, decls: list[dict[str, Any]] | None = None) -> str:
    result = compile_prompt(make([{"id": "b", "content": content}], decls), variables)
    assert result.block_messages == 1
    return str(result.messages[0]["content"])


def refusal(content: PromptContent, variables: dict[str, Any] | None = None) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_prompt(content, variables)
    return info.value


def assert_clean(message: str) -> None:
    for bad in FORBIDDEN_IN_MESSAGES:
        assert bad not in message, f"{bad!r} leaked into: {message}"


SUPPORT = make(
    [
        {"id": "persona", "role": "system", "content": "You are the support agent of {{ company }}."},
        {"id": "tone", "role": "system", "content": "Be brief.", "condition": "tier != 'premium'"},
        {"id": "vip", "role": "system", "content": "This customer is premium.", "condition": "tier == 'premium'"},
        {"id": "history", "role": "user", "content": "Earlier: {{ history|join(' / ') }}", "condition": "history"},
        {"id": "ack", "role": "assistant", "content": "Noted, {{ name }}."},
    ],
    [
        {"name": "company", "type": "string", "required": True},
        {"name": "tier", "type": "string", "default": "free"},
        {"name": "history", "type": "list"},
        {"name": "name", "type": "string", "default": "there"},
    ],
    model={"provider": "anthropic", "name": "claude-sonnet-4-5", "params": {"temperature": 0.2}},
    tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
)


# ---------------------------------------------------------------------------------------------------
# Shape of the result


def test_manifest_and_messages() -> None:
    result = compile_prompt(SUPPORT, {"company": "Acme", "history": ["hi", "refund?"]})
    assert isinstance(result, CompileResult)
    assert result.manifest == {
        "system": "You are the support agent of Acme.\n\nBe brief.",
        "tools": SUPPORT.tools,
        "model": {"provider": "anthropic", "name": "claude-sonnet-4-5", "params": {"temperature": 0.2}},
        "etag": SUPPORT.etag,
    }
    assert result.messages == [
        {"role": "user", "content": "Earlier: hi / refund?"},
        {"role": "assistant", "content": "Noted, there."},
    ]
    assert result.block_messages == 2
    assert result.warnings == []
    assert result.variables == {"company": "Acme", "history": ["hi", "refund?"], "tier": "free", "name": "there"}


def test_etag_equals_content_etag() -> None:
    result = compile_prompt(SUPPORT, {"company": "Acme"})
    assert result.manifest["etag"] == SUPPORT.etag == SUPPORT.model_copy(deep=True).etag


def test_result_does_not_alias_content() -> None:
    content = SUPPORT.model_copy(deep=True)
    before = content.canonical()
    result = compile_prompt(content, {"company": "Acme"})
    result.manifest["tools"][0]["function"]["name"] = "changed"
    result.manifest["model"]["params"]["temperature"] = 1
    result.variables["tier"] = "changed"
    assert content.canonical() == before


def test_input_messages_are_appended_unchanged() -> None:
    extra = [
        {"role": "user", "content": "Where is my order?"},
        {"role": "tool", "content": "{}", "tool_call_id": "t1"},
    ]
    result = compile_prompt(SUPPORT, {"company": "Acme"}, copy.deepcopy(extra))
    assert result.block_messages == 1
    assert result.messages[1:] == extra
    assert result.messages[0]["role"] == "assistant"


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([{"role": "user", "content": "a"}, {"content": "no role"}], "messages[1].role"),
        ([{"role": "", "content": "a"}], "messages[0].role"),
        ([{"role": 3, "content": "a"}], "messages[0].role"),
        (["just text"], "messages[0]"),
    ],
)
def test_bad_input_messages_are_invalid_argument(messages: list[Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_prompt(SUPPORT, {"company": "Acme"}, messages)
    assert field in info.value.message
    assert info.value.details["problems"][0]["field"] == field


def test_variables_must_be_an_object() -> None:
    with pytest.raises(InvalidArgument):
        compile_prompt(SUPPORT, ["company"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        compile_prompt(SUPPORT, {1: "x"})  # type: ignore[dict-item]


def test_no_blocks_compiles_to_nothing() -> None:
    result = compile_prompt(PromptContent(), None, [{"role": "user", "content": "hi"}])
    assert result.manifest["system"] == ""
    assert result.messages == [{"role": "user", "content": "hi"}]
    assert result.block_messages == 0


def test_block_rendering_empty_is_left_out_with_a_warning() -> None:
    content = make([{"id": "a", "content": "{% if false %}x{% endif %}  "}, {"id": "b", "content": "kept"}])
    result = compile_prompt(content)
    assert result.messages == [{"role": "user", "content": "kept"}]
    assert result.warnings == ["block 'a' rendered empty and was left out"]


# ---------------------------------------------------------------------------------------------------
# Conditions


def test_conditions_keep_and_drop_blocks() -> None:
    premium = compile_prompt(SUPPORT, {"company": "Acme", "tier": "premium"})
    assert premium.manifest["system"] == "You are the support agent of Acme.\n\nThis customer is premium."
    assert [m["content"] for m in premium.messages] == ["Noted, there."]


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        ("true", True),
        ("false", False),
        ("n > 2", True),
        ("n > 5", False),
        ("'a' in tags", True),
        ("tags|length == 0", False),
        ("user.plan == 'pro' and not trial", True),
        ("none", False),
        ("''", False),
        ("[]", False),
    ],
)
def test_condition_values(condition: str, kept: bool) -> None:
    content = make(
        [{"id": "b", "content": "yes", "condition": condition}],
        [{"name": "trial", "type": "boolean", "default": False}],
    )
    result = compile_prompt(content, {"n": 3, "tags": ["a"], "user": {"plan": "pro"}})
    assert (result.messages == [{"role": "user", "content": "yes"}]) is kept


def test_condition_on_declared_unset_optional_variable_is_false() -> None:
    content = make(
        [{"id": "b", "content": "premium!", "condition": "premium"}, {"id": "c", "content": "always"}],
        [{"name": "premium", "type": "boolean"}],
    )
    assert [m["content"] for m in compile_prompt(content).messages] == ["always"]
    assert [m["content"] for m in compile_prompt(content, {"premium": True}).messages] == ["premium!", "always"]


def test_condition_on_undeclared_missing_variable_names_the_block() -> None:
    error = refusal(one("x", condition="premium"))
    assert error.message == (
        "block 'b' condition: variable 'premium' is not defined; declare it or pass a value for it"
    )
    assert error.details["problems"] == [{"block": "b", "variable": "premium", "line": None, "problem": error.message}]


def test_condition_may_test_definedness() -> None:
    assert compile_prompt(one("x", condition="premium is defined")).messages == []
    assert compile_prompt(one("x", condition="premium is defined"), {"premium": 1}).messages != []


# ---------------------------------------------------------------------------------------------------
# Variables: defaults, types, required


def test_defaults_apply_and_values_override() -> None:
    decls = [{"name": "n", "type": "integer", "default": 3}, {"name": "who", "type": "string", "default": "you"}]
    assert render("{{ n }} {{ who }}", {}, decls) == "3 you"
    assert render("{{ n }} {{ who }}", {"n": 5}, decls) == "5 you"
    assert render("{{ n }} {{ who }}", {"n": None}, decls) == "3 you"  # null means "no value"


def test_defaults_are_copied_into_resolved_variables() -> None:
    content = make([{"id": "b", "content": "{{ opts|length }}"}], [{"name": "opts", "type": "list", "default": [1]}])
    result = compile_prompt(content)
    assert result.variables == {"opts": [1]}
    result.variables["opts"].append(2)
    assert content.variables[0].default == [1]


def test_declared_optional_without_value_is_none() -> None:
    decls = [{"name": "nick", "type": "string"}, {"name": "tags", "type": "list"}]
    assert render("[{{ nick }}]", {}, decls) == "[]"
    assert render("Hi {{ nick|default('there') }}", {}, decls) == "Hi there"
    assert render("{{ nick is none }}", {}, decls) == "True"
    assert render("{% for t in tags %}{{ t }}{% else %}no tags{% endfor %}", {}, decls) == "no tags"
    assert compile_prompt(make([{"id": "b", "content": "{{ nick }}x"}], decls)).variables == {}


TYPE_CASES = [
    ("string", ["", "x"], [(1, "integer"), (True, "boolean"), (None, "null"), (["x"], "list")]),
    ("number", [1, 1.5, -2, 0.0], [("1", "string"), (True, "boolean"), ({}, "object")]),
    ("integer", [0, 7, -3], [(1.5, "number"), (1.0, "number"), (False, "boolean"), ("7", "string")]),
    ("boolean", [True, False], [(0, "integer"), ("true", "string"), (1.0, "number")]),
    ("list", [[], [1, "a", {"b": None}]], [("abc", "string"), ({"a": 1}, "object")]),
    ("object", [{}, {"a": [1]}], [([], "list"), ("{}", "string"), (3, "integer")]),
]
ARTICLE = {"string": "a", "number": "a", "integer": "an", "boolean": "a", "list": "a", "object": "an"}


@pytest.mark.parametrize(("kind", "good", "bad"), TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_type_checks(kind: str, good: list[Any], bad: list[tuple[Any, str]]) -> None:
    content = make([{"id": "b", "content": "{{ v is defined }}"}], [{"name": "v", "type": kind}])
    decls = content.variables
    for value in good:
        assert compile_prompt(content, {"v": value}).variables == {"v": value}
        check_values(decls, {"v": value})
    for value, got in bad:
        if value is None:
            continue  # null means "no value", not a wrong type
        expected = f"variable 'v' must be {ARTICLE[kind]} {kind if kind != 'object' else 'object'}, got {got}"
        error = refusal(content, {"v": value})
        assert error.message == expected
        assert error.details["problems"] == [{"block": "b", "variable": "v", "line": None, "problem": expected}]
        with pytest.raises(InvalidArgument) as info:
            check_values(decls, {"v": value})
        assert expected in info.value.message


def test_values_must_be_json_data() -> None:
    content = make([{"id": "b", "content": "{{ v }}"}])
    for value in (object(), float("nan"), float("inf"), (1, 2), {1: "a"}, {"a": {"b": set()}}):
        error = refusal(content, {"v": value})
        assert "variable 'v' must be JSON data" in error.message
        assert_clean(error.message)


def test_deeply_nested_values_are_refused() -> None:
    value: Any = []
    for _ in range(200):
        value = [value]
    assert "nest at most" in refusal(one("{{ v|length }}"), {"v": value}).message


def test_missing_required_variables_are_all_reported_with_their_blocks() -> None:
    content = make(
        [
            {"id": "intro", "role": "system", "content": "You work for {{ company_name }}."},
            {"id": "ask", "content": "{{ question }} ({{ company_name }})"},
            {"id": "age", "content": "{{ age + 1 }}"},
            {"id": "broken", "content": "line one\n{{ oops("},
            {"id": "fine", "content": "fine"},
        ],
        [
            {"name": "company_name", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
            {"name": "age", "type": "integer"},
            {"name": "region", "type": "string", "required": True},
        ],
    )
    error = refusal(content, {"age": "forty"})
    problems = error.details["problems"]
    by_variable = {p["variable"]: p for p in problems if p["variable"]}
    assert by_variable["company_name"]["problem"] == (
        "variable 'company_name' (string) is required by blocks 'intro', 'ask'; pass it in variables"
    )
    assert by_variable["company_name"]["block"] == "intro"
    assert by_variable["question"]["problem"] == (
        "variable 'question' (string) is required by block 'ask'; pass it in variables"
    )
    assert by_variable["region"] == {
        "block": None,
        "variable": "region",
        "line": None,
        "problem": "variable 'region' (string) is required; pass it in variables",
    }
    assert by_variable["age"]["problem"] == "variable 'age' must be an integer, got string"
    syntax = [p for p in problems if p["block"] == "broken"]
    assert len(syntax) == 1 and syntax[0]["line"] == 2
    assert syntax[0]["problem"].startswith("block 'broken' line 2: ")
    assert len(problems) == 5  # blocks reading a bad variable add nothing more
    assert error.message == "; ".join(p["problem"] for p in problems)
    assert error.code == "compile_error"


def test_required_with_default_uses_the_default() -> None:
    decls = [{"name": "lang", "type": "string", "required": True, "default": "en"}]
    assert render("{{ lang }}", {}, decls) == "en"


def test_wrongly_typed_default_is_a_problem() -> None:
    content = make([{"id": "b", "content": "{{ n }}"}], [{"name": "n", "type": "integer", "default": "three"}])
    error = refusal(content)
    assert error.message == "the default of variable 'n' must be an integer, got string"
    with pytest.raises(CompileError):
        check_content(content)


def test_undeclared_values_that_are_read_are_fine() -> None:
    result = compile_prompt(one("Hi {{ name }}"), {"name": "Ada"})
    assert result.messages[0]["content"] == "Hi Ada"
    assert result.warnings == []


def test_unused_values_warn() -> None:
    content = make([{"id": "b", "content": "{{ a }}"}], [{"name": "d", "type": "string"}])
    result = compile_prompt(content, {"a": 1, "x": 2, "d": "declared"})
    assert result.warnings == ["variable 'x' was passed but no block reads it"]
    assert result.variables == {"a": 1, "x": 2, "d": "declared"}


def test_value_read_only_by_a_dropped_block_does_not_warn() -> None:
    result = compile_prompt(one("{{ a }}", condition="false"), {"a": 1})
    assert result.messages == [] and result.warnings == []


def test_check_values() -> None:
    decls = [
        VariableDecl(name="a", type="integer", required=True),
        VariableDecl(name="b", type="string", required=True),
        VariableDecl(name="c", type="boolean", required=True, default=False),
    ]
    with pytest.raises(InvalidArgument) as info:
        check_values(decls, {"a": "1", "zz": object()})
    problems = info.value.details["problems"]
    assert [p["variable"] for p in problems] == ["a", "zz", "b"]
    assert "variable 'a' must be an integer, got string" in info.value.message
    assert "variable 'b' (string) is required; pass it in variables" in info.value.message
    check_values(decls, {"a": 1}, partial=True)
    check_values(decls, {"a": 1, "b": "x", "undeclared": [1]})
    with pytest.raises(InvalidArgument):
        check_values(decls, {"a": 1}, partial=False)


# ---------------------------------------------------------------------------------------------------
# Errors: syntax, runtime, line numbers, hygiene


def test_syntax_errors_name_block_and_line() -> None:
    content = make(
        [
            {"id": "a", "content": "ok\nstill ok\n{% if x %}never closed"},
            {"id": "b", "content": "{{ 1 + }}"},
            {"id": "c", "content": "fine", "condition": "x ==="},
            {"id": "d", "content": "fine"},
        ]
    )
    error = refusal(content)
    problems = error.details["problems"]
    assert [(p["block"], p["line"]) for p in problems] == [("a", 3), ("b", 1), ("c", 1)]
    assert problems[0]["problem"].startswith("block 'a' line 3: ")
    assert problems[2]["problem"].startswith("block 'c' condition: ")
    with pytest.raises(CompileError) as static:
        check_content(content)
    assert static.value.details["problems"] == problems


def test_runtime_errors_name_block_and_line() -> None:
    content = make(
        [
            {"id": "a", "content": "one\ntwo {{ user.nmae }}"},
            {"id": "b", "content": "{% macro m() %}\n\n{{ 1 / 0 }}\n{% endmacro %}{{ m() }}"},
            {"id": "c", "content": "x\n\n\n{{ missing }}"},
        ]
    )
    error = refusal(content, {"user": {"name": "Ada"}})
    problems = error.details["problems"]
    assert [(p["block"], p["line"], p["variable"]) for p in problems] == [
        ("a", 2, None),
        ("b", 3, None),
        ("c", 4, "missing"),
    ]
    assert problems[0]["problem"] == "block 'a' line 2: 'dict object' has no attribute 'nmae'"
    assert problems[1]["problem"] == "block 'b' line 3: division by zero"
    assert problems[2]["problem"] == (
        "block 'c' line 4: variable 'missing' is not defined; declare it or pass a value for it"
    )


def test_loading_other_templates_is_refused() -> None:
    error = refusal(one("a\n{% include 'other' %}"))
    assert error.details["problems"][0]["line"] == 2
    assert "a block stands alone" in error.message


def test_error_messages_are_clean() -> None:
    for source in ("{{ range }}", "{{ cycler('a') }}", "{{ [1]|map('string') }}", "{{ 'a' ~ self }}", "{{ 1 + 'a' }}"):
        error = refusal(one(source))
        assert_clean(error.message)
        assert "0x" not in error.message


# ---------------------------------------------------------------------------------------------------
# Features that must keep working inside the sandbox


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ items|join(', ') }}", "a, b, c"),
        ("{{ items|map('upper')|join }}", "ABC"),
        ("{% for i in items %}{{ loop.index }}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}", "1a,2b,3c"),
        ("{% for i in items %}{{ loop.length }}{% endfor %}", "333"),
        ("{{ items[1:] }} {{ 'abc'[::-1] }} {{ items[-1] }}", "['b', 'c'] cba c"),
        ("{{ '%s has %d items' % (name, items|length) }}", "Ada has 3 items"),
        ("{{ '{} scored {:.2f}'.format(name, 3.14159) }}", "Ada scored 3.14"),
        ("{{ '%(n)s!'|format(n=name) }}", "Ada!"),
        ("{{ name ~ '-' ~ 3 }}", "Ada-3"),
        ("{{ name|center(7) }}|", "  Ada  |"),
        ("{{ 'a\nb'|indent(2, true) }}", "  a\n  b"),
        ("{{ 'x y z'|replace(' ', '_') }}", "x_y_z"),
        ("{{ [1, 2.5]|sum }}", "3.5"),
        ("{{ user|tojson }}", '{"name": "Ada", "é": "<b>"}'),
        ("{{ items|batch(2)|list }}", "[['a', 'b'], ['c']]"),
        ("{{ range(3)|list }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ 'ab' * 2 }}", "[0, 1, 2] 1024 1 abab"),
        ("{% set ns = namespace(n=0) %}{% for i in items %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", "3"),
        ("{% macro greet(who) %}Hi {{ who }}{% endmacro %}{{ greet(name) }}", "Hi Ada"),
        ("{{ dict(a=1) }} {{ user.name }} {{ user['name'] }}", "{'a': 1} Ada Ada"),
        ("{% set c = cycler('x', 'y') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}", "xyx"),
        (
            "{% for n in tree recursive %}{{ n.name }}{% if n.kids %}({{ loop(n.kids) }}){% endif %}{% endfor %}",
            "r(ab)",
        ),
    ],
)
def test_ordinary_templates(source: str, expected: str) -> None:
    variables = {
        "items": ["a", "b", "c"],
        "name": "Ada",
        "user": {"name": "Ada", "é": "<b>"},
        "tree": [{"name": "r", "kids": [{"name": "a", "kids": []}, {"name": "b", "kids": []}]}],
    }
    assert render(source, variables) == expected


def test_trailing_newline_is_dropped() -> None:
    assert render("line\n") == "line"


def test_templates_cannot_mutate_values() -> None:
    user = {"name": "Ada"}
    for source in ("{{ user.update(name='x') }}", "{{ dict.update(user, name='x') }}", "{{ user.pop('name') }}"):
        refusal(one(source), {"user": user})
    assert user == {"name": "Ada"}


# ---------------------------------------------------------------------------------------------------
# Determinism and caching


def test_compiling_is_deterministic() -> None:
    variables = {"company": "Acme", "history": ["a", "b"], "tier": "premium"}
    first = compile_prompt(SUPPORT, copy.deepcopy(variables))
    compiler._PARSE_CACHE.clear()
    again = [compile_prompt(SUPPORT.model_copy(deep=True), copy.deepcopy(variables)) for _ in range(3)]
    assert all(r == first for r in again)


def test_templates_are_cached_by_source() -> None:
    source = "{{ cached_by_source }} unique text 8c1f"
    assert compiler._parse_template(source) is compiler._parse_template(source)


def test_repeated_compiles_are_fast() -> None:
    compile_prompt(SUPPORT, {"company": "Acme"})
    start = time.perf_counter()
    for _ in range(200):
        compile_prompt(SUPPORT, {"company": "Acme", "history": ["x"]})
    assert time.perf_counter() - start < 2.0  # ~1 ms each when cached; a safety bound, not a benchmark


# ---------------------------------------------------------------------------------------------------
# Static analysis


def test_variables_read() -> None:
    content = make(
        [
            {"id": "a", "content": "{% for i in range(n) %}{{ loop.index }}{{ items[i] }}{% endfor %}"},
            {"id": "b", "content": "{% set local = 1 %}{{ local }}{{ user.name }}", "condition": "flag and not off"},
            {"id": "c", "content": "{{ broken"},
        ],
    )
    assert variables_read(content) == {"n", "items", "user", "flag", "off"}


def test_check_content_warnings() -> None:
    content = make(
        [{"id": "a", "content": "{{ who }} {{ x }}"}, {"id": "b", "content": "{{ x }}", "condition": "y"}],
        [{"name": "who", "type": "string"}, {"name": "unused", "type": "integer"}],
    )
    assert check_content(content) == [
        "variable 'x' is read by blocks 'a', 'b' but not declared; declare it so callers know to pass it",
        "variable 'y' is read by block 'b' but not declared; declare it so callers know to pass it",
        "variable 'unused' is declared but no block reads it",
    ]
    assert check_content(SUPPORT) == []


# ---------------------------------------------------------------------------------------------------
# Bounds


def test_block_output_is_capped() -> None:
    error = refusal(one("{{ doc }}{{ doc }}"), {"doc": "x" * (compiler.MAX_BLOCK_CHARS // 2 + 1)})
    assert "renders more than" in error.message


def test_prompt_output_is_capped() -> None:
    blocks = [{"id": f"b{i}", "content": "{{ doc }}"} for i in range(3)]
    error = refusal(make(blocks), {"doc": "x" * 400_000})
    assert error.details["problems"] == [
        {
            "block": "b2",
            "variable": None,
            "line": None,
            "problem": f"block 'b2': refused: the prompt renders more than {compiler.MAX_PROMPT_CHARS:,} characters",
        }
    ]


def test_large_values_within_the_caps_compile() -> None:
    doc = "word " * 80_000  # 400k characters
    assert len(render("{{ doc ~ '\n' }}{{ (doc + '!')|length }}", {"doc": doc})) == len(doc) + 7


def test_budgets_count_created_data_not_references() -> None:
    doc = "x" * 400_000
    source = (
        "{% for i in range(300) %}{% set d = docs.get('a') %}{% set e = docs.a|default('') %}"
        "{% set f = docs.a|trim %}{% endfor %}{{ docs.a|length }}"
    )
    assert render(source, {"docs": {"a": doc}}) == "400000"
    error = refusal(one("{% for i in range(300) %}{% set u = docs.a|upper %}{% endfor %}"), {"docs": {"a": doc}})
    assert "builds more than" in error.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**7 }}",
        "{{ 'a' * 600000 + 'b' * 600000 }}",
        "{{ [0] * 200000 }}",
        "{{ 2 ** 100000 }}",
        "{{ (2 ** 6000) * (2 ** 6000) }}",
        "{{ 10 ** (10 ** 5) }}",
        "{{ range(10001)|list }}",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    ],
)
def test_arithmetic_and_loops_are_bounded(source: str) -> None:
    start = time.perf_counter()
    error = refusal(one(source))
    assert time.perf_counter() - start < 1.0
    assert "refused" in error.message


def test_bounds_allow_ordinary_arithmetic() -> None:
    assert render("{{ 2 ** 64 }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ 10 ** 100 > 0 }}") == (
        "18446744073709551616 ababab [1, 1, 1] True"
    )


def test_nothing_is_evaluated_while_parsing() -> None:
    bomb = one("{{ " + " ~ ".join(["('x'|center(999999))"] * 200) + " }}")
    tracemalloc.start()
    try:
        check_content(bomb)  # parses and compiles the template: must not fold the constants
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    assert "refused" in refusal(bomb).message


def test_templates_too_complex_for_python_are_refused() -> None:
    error = refusal(one("{% for i in [1] %}" * 30 + "x" + "{% endfor %}" * 30))
    assert error.message == "block 'b': the template is too complex to compile (too many statically nested blocks)"
    assert refusal(one("{{ " + "[" * 3000 + "]" * 3000 + " }}")).message == "block 'b': the template nests too deeply"


# ---------------------------------------------------------------------------------------------------
# Injection corpus


def test_corpus_is_big_enough() -> None:
    assert len(PAYLOADS) >= 25
    assert len(CONDITION_PAYLOADS) >= 10
    assert len(set(PAYLOADS)) == len(PAYLOADS)


@pytest.mark.parametrize("variables", [{}, {"x": 1, "name": "Ada", "items": [1, 2]}], ids=["bare", "with-values"])
def test_injection_corpus_is_refused(variables: dict[str, Any]) -> None:
    start = time.perf_counter()
    compiled = []
    for payload in PAYLOADS:
        try:
            compile_prompt(one(payload), dict(variables))
        except CompileError as error:
            assert error.details["problems"], payload
            assert all(p["block"] == "b" for p in error.details["problems"]), payload
            assert_clean(error.message)
        else:
            compiled.append(payload)
    for payload in CONDITION_PAYLOADS:
        try:
            compile_prompt(one("harmless", condition=payload), dict(variables))
        except CompileError as error:
            assert_clean(error.message)
        else:
            compiled.append(payload)
    assert compiled == []
    assert time.perf_counter() - start < 5.0


def test_injection_payloads_fail_static_checks_or_compile() -> None:
    """check_content only parses: a payload may pass it (it is then refused when compiled), but it never
    crashes it, and the ones that load other templates are refused before any rendering."""
    refused_statically = []
    for payload in PAYLOADS:
        try:
            check_content(one(payload))
        except CompileError as error:
            assert_clean(error.message)
            refused_statically.append(payload)
        else:
            with pytest.raises(CompileError):
                compile_prompt(one(payload), {})
    loaders = [p for p in PAYLOADS if any(tag in p for tag in ("{% include", "{% import", "{% extends", "{% from"))]
    assert loaders, "the corpus should hold payloads that load other templates"
    assert set(loaders) <= set(refused_statically)
