"""Results of successful compiles are kept by (content etag, variables, limits): the same call again skips
the worker round trip, answers exactly what a compile would, and nothing else is ever answered from it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from agnt_traces import compile_pool, compiler
from agnt_traces.compiler import compile_prompt
from agnt_traces.errors import CompileError, InvalidArgument
from agnt_traces.models import PromptContent

pytestmark = pytest.mark.anyio


def content_of(*blocks: str, variables: list[dict[str, Any]] | None = None) -> PromptContent:
    return PromptContent.model_validate(
        {
            "blocks": [
                {"id": f"b{i}", "role": "system" if i == 0 else "user", "content": b} for i, b in enumerate(blocks)
            ],
            "variables": variables or [],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        }
    )


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    compile_pool._RESULTS.clear()


@pytest.fixture
def worker_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations that reached a worker (or the thread), in order."""
    calls: list[str] = []
    real = compile_pool._off_loop

    async def counted(op: str, args: tuple[Any, ...]) -> Any:
        calls.append(op)
        return await real(op, args)

    monkeypatch.setattr(compile_pool, "_off_loop", counted)
    return calls


async def test_the_same_compile_again_skips_the_worker_and_equals_a_fresh_compile(worker_calls: list[str]) -> None:
    content = content_of("You help {{ company }}.", "{{ question }}", variables=[{"name": "company", "default": "A"}])
    values = {"question": "why?", "unread": 1}
    with anyio.fail_after(60):
        first = await compile_pool.compile_prompt_async(content, values, [{"role": "user", "content": "one"}])
        second = await compile_pool.compile_prompt_async(content, values, [{"role": "user", "content": "two"}])
        third = await compile_pool.compile_prompt_async(content, values)
    assert worker_calls == ["compile"]
    assert first == compile_prompt(content, values, [{"role": "user", "content": "one"}])
    assert second == compile_prompt(content, values, [{"role": "user", "content": "two"}])
    assert third == compile_prompt(content, values)
    assert second.block_messages == 1 and second.messages[-1]["content"] == "two"
    assert second.warnings == ["variable 'unread' was passed but no block reads it"]


async def test_a_kept_result_cannot_be_changed_by_a_caller(worker_calls: list[str]) -> None:
    content = content_of("sys {{ x }}", "user", variables=[{"name": "x", "type": "list", "default": [1, 2]}])
    with anyio.fail_after(60):
        first = await compile_pool.compile_prompt_async(content, {})
        first.manifest["system"] = "changed"
        first.manifest["tools"].append({"evil": True})
        first.manifest["model"]["params"]["api_base"] = "http://evil.example"
        first.messages[0]["content"] = "changed"
        first.messages.append({"role": "user", "content": "added"})
        first.variables["x"].append(3)
        first.warnings.append("added")
        again = await compile_pool.compile_prompt_async(content, {})
    assert worker_calls == ["compile"]
    assert again == compile_prompt(content, {})


async def test_bad_input_messages_are_refused_as_a_compile_refuses_them(worker_calls: list[str]) -> None:
    content = content_of("hello")
    bad: Any = [{"content": "no role"}, "not an object"]
    with pytest.raises(InvalidArgument) as direct:
        compile_prompt(content, {}, bad)
    with anyio.fail_after(60):
        await compile_pool.compile_prompt_async(content, {})
        with pytest.raises(InvalidArgument) as kept:
            await compile_pool.compile_prompt_async(content, {}, bad)
        with pytest.raises(InvalidArgument) as not_a_list:
            await compile_pool.compile_prompt_async(content, {}, "nope")  # type: ignore[arg-type]
    assert worker_calls == ["compile"]
    assert (kept.value.message, kept.value.details) == (direct.value.message, direct.value.details)
    assert not_a_list.value.details["problems"][0]["field"] == "messages"


async def test_values_that_differ_only_in_type_are_different_compiles(worker_calls: list[str]) -> None:
    content = content_of("n={{ n }} m={{ m }}")
    rendered = []
    with anyio.fail_after(60):
        for values in ({"n": 1, "m": {}}, {"n": True, "m": {}}, {"n": 1.0, "m": {}}, {"n": "1", "m": {}}):
            rendered.append((await compile_pool.compile_prompt_async(content, values)).manifest["system"])
        # A key that is not a string is a problem of the value, never the kept result of {"1": …}.
        await compile_pool.compile_prompt_async(content, {"n": 1, "m": {"1": "a"}})
        with pytest.raises(CompileError):
            compile_prompt(content, {"n": 1, "m": {1: "a"}})
        with pytest.raises(CompileError):
            await compile_pool.compile_prompt_async(content, {"n": 1, "m": {1: "a"}})
    assert rendered == ["n=1 m={}", "n=True m={}", "n=1.0 m={}", "n=1 m={}"]
    assert len(worker_calls) == 6


async def test_failed_compiles_are_never_kept(worker_calls: list[str]) -> None:
    content = content_of("{{ question }}", variables=[{"name": "question", "required": True}])
    with anyio.fail_after(60):
        for _ in range(2):
            with pytest.raises(CompileError):
                await compile_pool.compile_prompt_async(content, {})
    assert worker_calls == ["compile", "compile"]
    assert len(compile_pool._RESULTS) == 0


async def test_a_hostile_template_goes_to_the_worker_and_its_deadline_every_time(
    monkeypatch: pytest.MonkeyPatch, worker_calls: list[str]
) -> None:
    monkeypatch.setattr(compiler, "TIME_LIMIT", 0.5)
    content = content_of("{{ ('ab' * 400000)|list|groupby('real')|list|length }}")
    with anyio.fail_after(60):
        await compile_pool.compile_prompt_async(content_of("warm"), {})
        pool = compile_pool._pool()
        kills = pool.kills if pool is not None else 0
        for _ in range(2):
            with pytest.raises(CompileError):
                await compile_pool.compile_prompt_async(content, {})
    assert worker_calls.count("compile") == 3
    if pool is not None:
        assert pool.kills == kills + 2


async def test_lower_limits_apply_to_a_kept_result(monkeypatch: pytest.MonkeyPatch) -> None:
    content = content_of("x" * 2000)
    with anyio.fail_after(60):
        await compile_pool.compile_prompt_async(content, {})
        monkeypatch.setattr(compiler, "MAX_TEMPLATE_BYTES", 1000)
        with pytest.raises(CompileError):
            await compile_pool.compile_prompt_async(content, {})


async def test_a_changed_time_limit_is_another_key(monkeypatch: pytest.MonkeyPatch, worker_calls: list[str]) -> None:
    content = content_of("hi")
    with anyio.fail_after(60):
        await compile_pool.compile_prompt_async(content, {})
        monkeypatch.setattr(compiler, "TIME_LIMIT", compiler.TIME_LIMIT + 1)
        await compile_pool.compile_prompt_async(content, {})
    assert worker_calls == ["compile", "compile"]


def test_the_cache_is_bounded_in_bytes_and_drops_the_least_recently_used() -> None:
    cache = compile_pool._ResultCache(max_bytes=20_000)
    results = {}
    for i in range(30):
        content = content_of(f"{i} " + "x" * 2000)
        key = cache.key(content, {})
        assert key is not None
        results[i] = key
        cache.put(key, compile_prompt(content, {}))
        if i >= 1:
            assert cache.get(results[0]) is not None  # kept: used after every put
    assert cache._bytes <= 20_000
    assert cache.get(results[0]) is not None
    assert cache.get(results[1]) is None
    assert cache.get(results[29]) is not None
    too_big = content_of(*["y" * 95_000] * 3)  # renders to ~285 KB
    key = cache.key(too_big, {})
    assert key is not None
    cache.put(key, compile_prompt(too_big, {}))
    assert cache.get(key) is None


def test_values_that_cannot_be_keyed_are_not_kept() -> None:
    content = content_of("hi")
    deep: Any = []
    for _ in range(10_000):
        deep = [deep]
    assert compile_pool._ResultCache.key(content, {"deep": deep}) is None
    assert compile_pool._ResultCache.key(content, {"f": lambda: 1}) is None
    assert compile_pool._ResultCache.key(content, {"big": "x" * 300_000}) is None
