"""Diffs (SPEC §3): unified text that unidiff parses, with per-file counts equal to the summary."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unidiff import PatchedFile, PatchSet

from agnt_traces.diff import (
    ORDER_FILE,
    DiffResult,
    diff_content,
    diff_messages,
    diff_text,
    merge,
    render_block,
    render_messages,
    summary_path,
)
from agnt_traces.models import Block, ModelConfig, PromptContent, VariableDecl

# ---------------------------------------------------------------------------------------------------
# Helpers


def split_lines(text: str) -> list[str]:
    if not text:
        return []
    pieces = text.split("\n")
    return [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def apply_patch(old: str, patched: PatchedFile) -> str:
    """Apply one parsed file's hunks to ``old`` and return the new text (checks context lines)."""
    a = split_lines(old)
    out: list[str] = []
    pos = 0
    for hunk in patched:
        start = hunk.source_start - 1 if hunk.source_length else hunk.source_start
        assert start >= pos
        out += a[pos:start]
        pos = start
        lines = list(hunk)
        for k, line in enumerate(lines):
            if line.line_type == "\\":
                continue
            no_newline = k + 1 < len(lines) and lines[k + 1].line_type == "\\"
            value = line.value[:-1] if no_newline else line.value
            if line.line_type in (" ", "-"):
                assert a[pos] == value, (a[pos], value)
                pos += 1
            if line.line_type in (" ", "+"):
                out.append(value)
    out += a[pos:]
    return "".join(out)


def check(result: DiffResult) -> PatchSet:
    """unidiff parses the result, and per file its +/- counts equal the summary rows of that file."""
    patch = PatchSet(result.unified)
    assert result.changed == bool(result.summary)
    assert (result.unified == "") == (not result.summary)
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in result.summary:
        assert set(row) == {"part", "id", "change", "added_lines", "removed_lines"}
        assert row["change"] in ("added", "removed", "modified", "moved")
        counts = expected[summary_path(row)]
        counts[0] += row["added_lines"]
        counts[1] += row["removed_lines"]
    paths = [f.path for f in patch]
    assert len(paths) == len(set(paths)) == len(expected)
    for f in patch:
        assert [f.added, f.removed] == expected[f.path], f.path
    for row in result.summary:
        f = next(f for f in patch if f.path == summary_path(row))
        if row["change"] == "added":
            assert f.source_file == "/dev/null" and f.is_added_file
        elif row["change"] == "removed":
            assert f.target_file == "/dev/null" and f.is_removed_file
        else:
            assert f.source_file == "a/" + f.path and f.target_file == "b/" + f.path
    if all(len(f) for f in patch):  # unidiff writes it back in a form it reads again
        reparsed = PatchSet(str(patch))
        assert [(f.path, f.added, f.removed) for f in reparsed] == [(f.path, f.added, f.removed) for f in patch]
    return patch


def files(result: DiffResult) -> dict[str, PatchedFile]:
    return {f.path: f for f in check(result)}


def B(id: str, content: str = "", role: str = "user", condition: str | None = None) -> Block:
    return Block(id=id, content=content, role=role, condition=condition)  # type: ignore[arg-type]


def content(*blocks: Block, **kw: Any) -> PromptContent:
    return PromptContent(blocks=list(blocks), **kw)


BASE = content(
    B("sys", "You are a helpful assistant for {{ company }}.", role="system"),
    B("intro", "Hello {{ name }}!\nHow can I help?"),
    B("pro", "You are on the pro plan.", condition="plan == 'pro'"),
    B("outro", "Bye."),
    variables=[VariableDecl(name="company", required=True), VariableDecl(name="name")],
    model=ModelConfig(provider="anthropic", name="claude-sonnet-4-5", params={"temperature": 0.2}),
)


def rows(result: DiffResult) -> list[tuple[str, str | None, str]]:
    return [(r["part"], r["id"], r["change"]) for r in result.summary]


# ---------------------------------------------------------------------------------------------------
# Content diffs


def test_identical_content_is_no_change() -> None:
    copy = PromptContent.model_validate(BASE.canonical())
    result = diff_content(BASE, copy)
    assert result == DiffResult(unified="", summary=[], changed=False)
    assert result.to_dict() == {"unified": "", "summary": [], "changed": False}
    assert diff_content(PromptContent(), PromptContent()).changed is False


def test_modified_block_content() -> None:
    new = BASE.model_copy(deep=True)
    new.blocks[1].content = "Hi {{ name }}!\nHow can I help?"
    result = diff_content(BASE, new)
    assert result.summary == [
        {"part": "block", "id": "intro", "change": "modified", "added_lines": 1, "removed_lines": 1}
    ]
    assert result.changed is True
    f = files(result)["blocks/intro"]
    assert f.source_file == "a/blocks/intro" and f.target_file == "b/blocks/intro"
    assert "-Hello {{ name }}!\n+Hi {{ name }}!\n" in result.unified
    assert apply_patch(render_block(BASE.blocks[1]), f) == render_block(new.blocks[1])


def test_added_and_removed_blocks_use_dev_null() -> None:
    new = content(*BASE.blocks[:2], B("extra", "More."), BASE.blocks[3], variables=BASE.variables, model=BASE.model)
    result = diff_content(BASE, new)
    assert rows(result) == [("block", "extra", "added"), ("block", "pro", "removed")]
    f = files(result)
    assert f["blocks/extra"].source_file == "/dev/null"
    assert f["blocks/extra"].target_file == "b/blocks/extra"
    assert f["blocks/pro"].target_file == "/dev/null"
    assert f["blocks/pro"].source_file == "a/blocks/pro"
    assert apply_patch("", f["blocks/extra"]) == render_block(B("extra", "More."))
    assert apply_patch(render_block(BASE.blocks[2]), f["blocks/pro"]) == ""
    assert "+++ b/blocks/extra\n@@ -0,0 +1,3 @@\n+role: user\n+\n+More.\n\\ No newline at end of file\n" in (
        result.unified
    )
    # adding and removing blocks moves nothing
    assert ORDER_FILE not in result.unified


def test_role_and_condition_changes() -> None:
    new = BASE.model_copy(deep=True)
    new.blocks[1].role = "assistant"
    new.blocks[2].condition = "plan in ['pro', 'team']"
    new.blocks[3].condition = "show_outro"
    new.blocks[0].condition = None
    result = diff_content(BASE, new)
    assert rows(result) == [
        ("block", "intro", "modified"),
        ("block", "pro", "modified"),
        ("block", "outro", "modified"),
    ]
    assert "-role: user\n+role: assistant\n" in result.unified
    assert "-condition: plan == 'pro'\n+condition: plan in ['pro', 'team']\n" in result.unified
    assert "+condition: show_outro\n" in result.unified
    by_id = {r["id"]: r for r in result.summary}
    assert (by_id["outro"]["added_lines"], by_id["outro"]["removed_lines"]) == (1, 0)
    check(result)
    # dropping a condition
    back = diff_content(new, BASE)
    assert "-condition: show_outro\n" in back.unified
    check(back)


def test_block_rendering_is_unambiguous() -> None:
    assert render_block(B("a", "x", condition="c")) == "role: user\ncondition: c\n\nx"
    assert render_block(B("a", "", role="system")) == "role: system\n\n"
    # a condition ending in a newline is not the same as a content starting with one
    one = B("a", "x", condition="c\n")
    two = B("a", "\nx", condition="c")
    assert render_block(one) != render_block(two)
    result = diff_content(content(one), content(two))
    assert result.changed
    check(result)


def test_pure_move_reports_moved_and_order_file() -> None:
    old = content(B("a", "A"), B("b", "B"), B("c", "C"), B("d", "D"))
    new = content(B("b", "B"), B("c", "C"), B("a", "A"), B("d", "D"))
    result = diff_content(old, new)
    assert result.summary == [{"part": "block", "id": "a", "change": "moved", "added_lines": 1, "removed_lines": 1}]
    f = files(result)
    assert list(f) == [ORDER_FILE]
    assert f[ORDER_FILE].source_file == "a/blocks/_order"
    assert f[ORDER_FILE].target_file == "b/blocks/_order"
    assert apply_patch("a\nb\nc\nd\n", f[ORDER_FILE]) == "b\nc\na\nd\n"
    assert result.changed


def test_move_picks_the_fewest_moved_blocks() -> None:
    ids = [f"b{i}" for i in range(10)]
    old = content(*(B(i, i) for i in ids))
    moved_last = ids[1:] + ids[:1]
    result = diff_content(old, content(*(B(i, i) for i in moved_last)))
    assert rows(result) == [("block", "b0", "moved")]
    swapped = [ids[0], ids[7], *ids[2:7], ids[1], *ids[8:]]
    result = diff_content(old, content(*(B(i, i) for i in swapped)))
    assert len(result.summary) == 2
    assert {r["id"] for r in result.summary} <= {"b1", "b7"} | set(ids[2:7])
    check(result)
    reversed_ = diff_content(old, content(*(B(i, i) for i in reversed(ids))))
    assert len(reversed_.summary) == 9
    check(reversed_)


def test_moved_and_modified_gives_two_rows() -> None:
    old = content(B("a", "A"), B("b", "B"), B("c", "C"))
    new = content(B("c", "C changed"), B("a", "A"), B("b", "B"), B("n", "new"))
    result = diff_content(old, new)
    assert rows(result) == [
        ("block", "c", "modified"),
        ("block", "n", "added"),
        ("block", "c", "moved"),
    ]
    f = files(result)
    assert list(f) == ["blocks/c", "blocks/n", ORDER_FILE]
    assert apply_patch("a\nb\nc\n", f[ORDER_FILE]) == "c\na\nb\n"


def test_block_order_in_output_is_new_order_then_removed() -> None:
    old = content(B("x", "1"), B("y", "2"), B("z", "3"))
    new = content(B("z", "3!"), B("w", "0"), B("y", "2!"))
    result = diff_content(old, new)
    assert [r["id"] for r in result.summary] == ["z", "w", "y", "x", "z"]
    assert [r["change"] for r in result.summary] == ["modified", "added", "modified", "removed", "moved"]
    check(result)


def test_variable_changes() -> None:
    new = BASE.model_copy(deep=True)
    new.variables[1] = VariableDecl(name="name", type="string", required=True, default="friend")
    result = diff_content(BASE, new)
    assert rows(result) == [("variables", None, "modified")]
    assert '-    "required": false,\n-    "default": null,\n' in result.unified
    assert '+    "required": true,\n+    "default": "friend",\n' in result.unified
    patch = files(result)["variables"]
    assert patch.source_file == "a/variables"
    assert (patch.added, patch.removed) == (2, 2)
    new.variables.append(VariableDecl(name="plan", description="pricing plan"))
    result = diff_content(BASE, new)
    assert '+    "name": "plan",\n' in result.unified or '+    "description": "pricing plan"\n' in result.unified
    check(result)
    # no variables at all is an absent file
    result = diff_content(content(), content(variables=[VariableDecl(name="x")]))
    assert rows(result) == [("variables", None, "added")]
    assert result.unified.startswith("--- /dev/null\n+++ b/variables\n@@ -0,0 +1,9 @@\n+[\n+  {\n")
    check(result)


def test_variable_default_key_order_is_not_a_change() -> None:
    one = content(variables=[VariableDecl(name="cfg", type="object", default={"a": 1, "b": 2})])
    two = content(variables=[VariableDecl(name="cfg", type="object", default={"b": 2, "a": 1})])
    assert one.etag == two.etag
    assert diff_content(one, two).changed is False


def test_model_changes() -> None:
    new = BASE.model_copy(deep=True)
    new.model = ModelConfig(provider="openai", name="gpt-4o", params={"temperature": 0.2, "max_tokens": 500})
    result = diff_content(BASE, new)
    assert rows(result) == [("model", None, "modified")]
    assert '-  "provider": "anthropic",\n-  "name": "claude-sonnet-4-5",\n' in result.unified
    assert '+    "max_tokens": 500,\n' in result.unified
    f = files(result)["model"]
    assert (f.added, f.removed) == (3, 2)
    # params key order is not a change
    same = BASE.model_copy(deep=True)
    same.model = ModelConfig(provider="anthropic", name="claude-sonnet-4-5", params={"temperature": 0.2})
    assert diff_content(BASE, same).changed is False


def test_tools_changes() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with_tool = content(tools=[tool])
    result = diff_content(content(), with_tool)
    assert rows(result) == [("tools", None, "added")]
    changed = content(tools=[{**tool, "function": {**tool["function"], "description": "Find an order"}}])
    result = diff_content(with_tool, changed)
    assert rows(result) == [("tools", None, "modified")]
    assert '+      "description": "Find an order",\n' in result.unified
    check(result)
    assert rows(diff_content(changed, content())) == [("tools", None, "removed")]


def test_part_order_blocks_variables_model_tools() -> None:
    new = content(
        B("zz", "new"),
        variables=[VariableDecl(name="v")],
        model=ModelConfig(provider="openai", name="gpt-4o"),
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    result = merge(diff_content(BASE, new), diff_messages([], [{"role": "user", "content": "q"}]), diff_text("a", "b"))
    parts = [r["part"] for r in result.summary]
    assert parts == ["block"] * 5 + ["variables", "model", "tools", "messages", "output"]
    assert [f.path for f in check(result)] == [
        "blocks/zz",
        "blocks/sys",
        "blocks/intro",
        "blocks/pro",
        "blocks/outro",
        "variables",
        "model",
        "tools",
        "messages",
        "output",
    ]


# ---------------------------------------------------------------------------------------------------
# Text, messages, merge


def test_output_diff_with_none() -> None:
    assert diff_text(None, None) == DiffResult()
    added = diff_text(None, "Hello\nworld\n")
    assert added.summary == [{"part": "output", "id": None, "change": "added", "added_lines": 2, "removed_lines": 0}]
    assert added.unified == "--- /dev/null\n+++ b/output\n@@ -0,0 +1,2 @@\n+Hello\n+world\n"
    check(added)
    removed = diff_text("Hello", None, id="m1")
    assert removed.summary == [
        {"part": "output", "id": "m1", "change": "removed", "added_lines": 0, "removed_lines": 1}
    ]
    assert removed.unified == "--- a/output/m1\n+++ /dev/null\n@@ -1 +0,0 @@\n-Hello\n\\ No newline at end of file\n"
    check(removed)


def test_output_modified() -> None:
    old = "".join(f"line {i}\n" for i in range(20))
    new = old.replace("line 10\n", "LINE TEN\n")
    result = diff_text(old, new)
    assert result.summary[0]["change"] == "modified"
    assert result.unified.count("@@ ") == 1
    assert "@@ -8,7 +8,7 @@\n line 7\n line 8\n line 9\n-line 10\n+LINE TEN\n line 11\n" in result.unified
    assert apply_patch(old, files(result)["output"]) == new
    assert diff_text(old, old) == DiffResult()


def test_empty_files() -> None:
    assert diff_text("", "") == DiffResult()
    # "" is an empty file, None is no file
    empty_added = diff_text(None, "")
    assert empty_added.summary == [
        {"part": "output", "id": None, "change": "added", "added_lines": 0, "removed_lines": 0}
    ]
    assert empty_added.changed
    assert empty_added.unified == "--- /dev/null\n+++ b/output\n"
    (f,) = check(empty_added)
    assert f.is_added_file and len(f) == 0
    (f,) = check(diff_text("", None))
    assert f.is_removed_file
    grown = diff_text("", "text\n")
    assert grown.unified == "--- a/output\n+++ b/output\n@@ -0,0 +1 @@\n+text\n"
    assert rows(grown) == [("output", None, "modified")]
    check(grown)
    emptied = diff_text("text", "")
    assert emptied.unified == "--- a/output\n+++ b/output\n@@ -1 +0,0 @@\n-text\n\\ No newline at end of file\n"
    check(emptied)
    # an empty file in the middle of a merged diff does not confuse the parser
    check(merge(diff_text("a", "b", id="1"), diff_text(None, "", id="2"), diff_text("c", "d", id="3")))


def test_no_trailing_newline() -> None:
    only_newline = diff_text("same", "same\n")
    assert only_newline.unified == (
        "--- a/output\n+++ b/output\n@@ -1 +1 @@\n-same\n\\ No newline at end of file\n+same\n"
    )
    assert apply_patch("same", files(only_newline)["output"]) == "same\n"
    both = diff_text("a\nb\nc", "a\nB\nc")
    assert both.unified.endswith(" c\n\\ No newline at end of file\n")
    assert apply_patch("a\nb\nc", files(both)["output"]) == "a\nB\nc"
    middle = diff_text("x\ny", "x\ny\nz\n")
    assert "-y\n\\ No newline at end of file\n+y\n+z\n" in middle.unified
    assert apply_patch("x\ny", files(middle)["output"]) == "x\ny\nz\n"


def test_crlf() -> None:
    old = "one\r\ntwo\r\nthree\r\n"
    new = "one\r\nTWO\r\nthree\r\n"
    result = diff_text(old, new)
    assert "-two\r\n+TWO\r\n" in result.unified
    assert apply_patch(old, files(result)["output"]) == new
    # line ending change only: visible as a -/+ pair
    result = diff_text("a\r\nb\r\n", "a\nb\n")
    assert result.summary[0]["added_lines"] == 2
    assert apply_patch("a\r\nb\r\n", files(result)["output"]) == "a\nb\n"
    # a lone carriage return stays inside its line
    result = diff_text("a\rb\n", "a\rc\n")
    assert result.summary[0]["added_lines"] == 1
    assert apply_patch("a\rb\n", files(result)["output"]) == "a\rc\n"


def test_unicode() -> None:
    old = "Grüße 🌍\nline\u2028separator\nzwölf\x85x\x0bx\x0cx\x1cx\u2029end\n"
    new = "Grüße 🌎\nline\u2028separator\nzwölf\x85x\x0bx\x0cx\x1cx\u2029END\n"
    result = diff_text(old, new, id="模型")
    assert rows(result) == [("output", "模型", "modified")]
    f = files(result)["output/__"]
    assert (f.added, f.removed) == (2, 2)
    assert apply_patch(old, f) == new
    # bytes in UTF-8 parse the same
    assert PatchSet(result.unified.encode("utf-8"), encoding="utf-8")[0].added == 2
    blocks = diff_content(content(B("a", "Привет {{ имя }}")), content(B("a", "Здравствуйте {{ имя }}")))
    assert "+Здравствуйте {{ имя }}\n" in blocks.unified
    check(blocks)
    json_part = diff_content(content(), content(variables=[VariableDecl(name="v", default="ünï")]))
    assert '"default": "ünï"' in json_part.unified
    check(json_part)


def test_messages_diff() -> None:
    old = [
        {"role": "user", "content": "What is the refund policy?"},
        {"role": "assistant", "content": "30 days."},
    ]
    new = [
        {"role": "user", "content": [{"type": "text", "text": "What is the refund policy?"}]},
        {"role": "assistant", "content": "60 days."},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    assert render_messages(old) == "### user\nWhat is the refund policy?\n\n### assistant\n30 days.\n"
    result = diff_messages(old, new)
    assert rows(result) == [("messages", None, "modified")]
    f = files(result)["messages"]
    assert f.source_file == "a/messages" and f.target_file == "b/messages"
    assert "-30 days.\n+60 days.\n" in result.unified
    assert '+### tool\n+tool_call_id: "call_1"\n+ok\n' in result.unified
    assert apply_patch(render_messages(old), f) == render_messages(new)
    assert diff_messages(old, [dict(m) for m in old]) == DiffResult()


def test_message_content_parts_and_extras() -> None:
    msg = {
        "role": "user",
        "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "u"}}],
        "name": None,
    }
    assert render_messages([msg]) == '### user\nlook\n{"image_url":{"url":"u"},"type":"image_url"}\n'
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}
    assert render_messages([call]) == '### assistant\ntool_calls: [{"function":{"name":"f"},"id":"c1"}]\n\n'
    # trailing newline in content is a change
    result = diff_messages([{"role": "user", "content": "hi"}], [{"role": "user", "content": "hi\n"}])
    assert result.changed
    check(result)


def test_messages_empty_and_custom_part() -> None:
    assert diff_messages([], None) == DiffResult()
    result = diff_messages([], [{"role": "user", "content": "q"}], part="rendered", id="claude")
    assert rows(result) == [("rendered", "claude", "added")]
    assert result.unified.startswith("--- /dev/null\n+++ b/rendered/claude\n")
    check(result)
    with pytest.raises(ValueError):
        diff_text("a", "b", part="bad part")
    with pytest.raises(ValueError):
        diff_messages([], [], part="../x")


def test_merge() -> None:
    a = diff_text("a", "b", id="m1")
    b = diff_text("same", "same", id="m2")
    c = diff_messages([{"role": "user", "content": "x"}], [{"role": "user", "content": "y"}])
    merged = merge(a, b, c)
    assert merged.unified == a.unified + c.unified
    assert merged.summary == a.summary + c.summary
    assert merged.changed is True
    assert merge() == DiffResult()
    assert merge(b, b).changed is False
    check(merged)
    # the merged summary is a copy
    merged.summary[0]["added_lines"] = 99
    assert a.summary[0]["added_lines"] == 1


def test_ids_with_odd_characters_make_safe_paths() -> None:
    result = diff_text("a", "b", id='openai/gpt 4o\t"x"')
    assert result.summary[0]["id"] == 'openai/gpt 4o\t"x"'
    (f,) = check(result)
    assert f.path == "output/openai/gpt_4o__x_"


def test_to_dict() -> None:
    result = diff_text("a\n", "b\n")
    assert result.to_dict() == {
        "unified": "--- a/output\n+++ b/output\n@@ -1 +1 @@\n-a\n+b\n",
        "summary": [{"part": "output", "id": None, "change": "modified", "added_lines": 1, "removed_lines": 1}],
        "changed": True,
    }


# ---------------------------------------------------------------------------------------------------
# Property-ish: random edits


ALPHABET = ["a", "b", "x", " ", "\n", "\n", "\r\n", "\r", "ü", "🌍", "\u2028", "-", "+", "@", "\\", "---"]


def random_text(rng: random.Random, max_len: int = 30) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len)))


def random_lines(rng: random.Random) -> str:
    pool = ["alpha", "beta", "", "--- a/x", "+++ b/x", "@@ -1 +1 @@", "\\ No newline at end of file", "gamma ü"]
    text = "\n".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
    return text + rng.choice(["", "\n", "\r\n"])


def mutate_text(rng: random.Random, text: str) -> str:
    lines = split_lines(text)
    for _ in range(rng.randint(0, 3)):
        op = rng.randrange(4)
        k = rng.randint(0, len(lines))
        if op == 0:
            lines.insert(k, random_text(rng, 8) + "\n")
        elif op == 1 and lines:
            del lines[min(k, len(lines) - 1)]
        elif op == 2 and lines:
            lines[min(k, len(lines) - 1)] = random_text(rng, 8) + rng.choice(["\n", ""])
        else:
            lines.append(random_text(rng, 5))
    return "".join(lines)


def random_content(rng: random.Random) -> PromptContent:
    ids = rng.sample([f"b{i}" for i in range(12)], rng.randint(0, 7))
    return PromptContent(
        blocks=[
            Block(
                id=i,
                role=rng.choice(["system", "user", "assistant"]),
                content=random_lines(rng),
                condition=rng.choice([None, None, "x", "plan == 'pro'", "a\nb"]),
            )
            for i in ids
        ],
        variables=[
            VariableDecl(name=n, default=rng.choice([None, 1, "d", {"k": [1, 2]}]))
            for n in ("v1", "v2")[: rng.randint(0, 2)]
        ],
        model=ModelConfig(provider="p", name=rng.choice(["m1", "m2"]), params=rng.choice([{}, {"t": 1}])),
        tools=rng.choice([[], [{"type": "function", "function": {"name": "f"}}]]),
    )


def mutate_content(rng: random.Random, old: PromptContent) -> PromptContent:
    new = old.model_copy(deep=True)
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(8)
        if op == 0 and new.blocks:  # edit content
            b = rng.choice(new.blocks)
            b.content = mutate_text(rng, b.content)
        elif op == 1 and new.blocks:  # role / condition
            b = rng.choice(new.blocks)
            b.role = rng.choice(["system", "user", "assistant"])
            b.condition = rng.choice([None, "y", "a\nb\n"])
        elif op == 2 and new.blocks:  # move
            b = new.blocks.pop(rng.randrange(len(new.blocks)))
            new.blocks.insert(rng.randint(0, len(new.blocks)), b)
        elif op == 3 and new.blocks:  # delete
            new.blocks.pop(rng.randrange(len(new.blocks)))
        elif op == 4:  # insert
            used = {b.id for b in new.blocks}
            free = [f"n{i}" for i in range(20) if f"n{i}" not in used]
            new.blocks.insert(rng.randint(0, len(new.blocks)), Block(id=free[0], content=random_lines(rng)))
        elif op == 5:
            new.variables = [VariableDecl(name="v1", required=rng.random() < 0.5)][: rng.randint(0, 1)]
        elif op == 6:
            new.model = ModelConfig(provider="p", name=rng.choice(["m1", "m2"]), params=rng.choice([{}, {"t": 2}]))
        elif op == 7:
            rng.shuffle(new.blocks)
    return PromptContent.model_validate(new.canonical())


def lcs_length(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_random_content_edits() -> None:
    seen_moves = 0
    rng = random.Random(20240611)
    for _ in range(400):
        old = random_content(rng)
        new = mutate_content(rng, old)
        result = diff_content(old, new)
        check(result)
        assert result.changed == (old.etag != new.etag)
        patch = {f.path: f for f in PatchSet(result.unified)}
        old_blocks = {b.id: b for b in old.blocks}
        new_blocks = {b.id: b for b in new.blocks}
        for bid in old_blocks.keys() | new_blocks.keys():
            f = patch.get(f"blocks/{bid}")
            before = render_block(old_blocks[bid]) if bid in old_blocks else ""
            after = render_block(new_blocks[bid]) if bid in new_blocks else ""
            if f is None:
                assert before == after
            else:
                assert apply_patch(before, f) == after
        common_old = "".join(f"{b.id}\n" for b in old.blocks if b.id in new_blocks)
        common_new = "".join(f"{b.id}\n" for b in new.blocks if b.id in old_blocks)
        moved = [r["id"] for r in result.summary if r["change"] == "moved"]
        a, b = common_old.split(), common_new.split()
        assert len(moved) == len(a) - lcs_length(a, b)  # as few moves as possible
        assert moved == [i for i in b if i in moved]  # in new order
        if ORDER_FILE in patch:
            seen_moves += 1
            assert apply_patch(common_old, patch[ORDER_FILE]) == common_new
        else:
            assert common_old == common_new
        assert diff_content(new, new) == DiffResult()
    assert seen_moves > 50


def test_random_text_edits() -> None:
    rng = random.Random(7)
    for _ in range(400):
        old: str | None = rng.choice([None, "", random_text(rng, 60), random_lines(rng)])
        new: str | None = rng.choice([None, "", mutate_text(rng, old or ""), random_text(rng, 60)])
        result = diff_text(old, new, id=rng.choice([None, "m"]))
        check(result)
        assert result.changed == (old != new)
        if result.changed:
            (f,) = PatchSet(result.unified)
            assert apply_patch(old or "", f) == (new or "")


def test_random_message_edits() -> None:
    rng = random.Random(99)
    for _ in range(200):
        old = [
            {"role": rng.choice(["user", "assistant"]), "content": random_lines(rng)} for _ in range(rng.randint(0, 4))
        ]
        new = [dict(m, content=mutate_text(rng, m["content"])) for m in old if rng.random() < 0.8]
        result = diff_messages(old, new)
        check(result)
        if result.changed:
            (f,) = PatchSet(result.unified)
            assert apply_patch(render_messages(old), f) == render_messages(new)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.none(), st.text(max_size=80) | st.none())
def test_hypothesis_any_text(old: str | None, new: str | None) -> None:
    result = diff_text(old, new)
    check(result)
    assert result.changed == (old != new)
    if result.changed:
        (f,) = PatchSet(result.unified)
        assert apply_patch(old or "", f) == (new or "")
