"""The prompts folder format: one YAML file per prompt, written and read back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from agnt_traces.config import Settings
from agnt_traces.errors import InvalidArgument
from agnt_traces.models import PromptContent
from agnt_traces.promptfiles import dump_prompt, load_prompt_dir, load_prompt_file

ROOT = Path(__file__).resolve().parents[1]

CONTENT = PromptContent.model_validate(
    {
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"temperature": 0.2}},
        "variables": [{"name": "who", "type": "string", "required": True}],
        "blocks": [
            {"id": "system", "role": "system", "content": "Line one.\nLine two: {{ who }}.\n"},
            {"id": "tricky", "role": "user", "content": "tab\there, CR\r\nand trailing space "},
            {"id": "unicode", "role": "user", "content": "naïve — 日本語 ✓", "condition": "who"},
        ],
    }
)


def test_dump_then_load_gives_back_the_same_prompt(tmp_path: Path) -> None:
    text = dump_prompt("greeter", "Says hello.", CONTENT)
    assert "Line two: {{ who }}." in text and "日本語" in text  # readable: literal blocks, unicode kept
    path = tmp_path / "greeter.yaml"
    path.write_text(text, encoding="utf-8")
    name, description, content = load_prompt_file(path)
    assert (name, description) == ("greeter", "Says hello.")
    assert content.canonical() == CONTENT.canonical()
    assert dump_prompt(name, description, content) == text  # and again: a fixed point


def test_the_shipped_prompts_round_trip_exactly() -> None:
    for path in (ROOT / "prompts").glob("*.yaml"):
        name, description, content = load_prompt_file(path)
        assert dump_prompt(name, description, content) == path.read_text(encoding="utf-8")


def test_the_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "from-stem.yaml"
    path.write_text("blocks:\n- id: a\n  content: hi\n")
    assert load_prompt_file(path)[0] == "from-stem"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("blocks: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: ok\nblockz: []\n", "unknown key(s) blockz"),
        ("name: Not Valid\nblocks: []\n", "name 'Not Valid' is invalid"),
        ("name: ok\nblocks:\n- id: a\n  role: robot\n", "blocks.0.role: Input should be 'system'"),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument) as caught:
        load_prompt_file(path)
    assert caught.value.message.startswith("bad.yaml: ")
    assert expected in caught.value.message


def test_a_folder_is_checked_whole_and_every_problem_named(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("blocks:\n- id: a\n  content: hi\n")
    (tmp_path / "bad-template.yaml").write_text("blocks:\n- id: a\n  content: '{{ unclosed'\n")
    (tmp_path / "twin-a.yaml").write_text("name: twin\nblocks: []\n")
    (tmp_path / "twin-b.yml").write_text("name: twin\nblocks: []\n")
    with pytest.raises(InvalidArgument) as caught:
        load_prompt_dir(tmp_path, Settings().policy())
    problems = caught.value.details["problems"]
    assert any(p.get("file") == "bad-template.yaml" for p in problems)
    assert any(p.get("name") == "twin" and "more than one file" in p["problem"] for p in problems)
    assert "nothing was imported" in caught.value.message


def test_a_folder_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is not a directory"):
        load_prompt_dir(tmp_path / "missing", Settings().policy())
