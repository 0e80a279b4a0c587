"""The ``prompts/`` folder: one YAML file per prompt, read and written so that they round-trip exactly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import InvalidArgument
from .models import PROMPT_NAME_RE, PromptContent

__all__ = ["dump_prompt", "load_prompt_dir", "load_prompt_file"]

if TYPE_CHECKING:
    from .llm.policy import ModelPolicy

KEY_ORDER = ("name", "description", "model", "variables", "tools", "blocks")


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(c in value for c in "\r\t") and value == value.rstrip(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_prompt(name: str, description: str, content: PromptContent) -> str:
    data = content.canonical()
    doc: dict[str, Any] = {"name": name, "description": description}
    for key in KEY_ORDER[2:]:
        doc[key] = data[key]
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000)
    return text


def load_prompt_file(path: Path) -> tuple[str, str, PromptContent]:
    """Raises InvalidArgument naming the file and the problem."""
    from pydantic import ValidationError

    from .errors import from_validation_error

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path.name}: not valid YAML ({exc})", {"file": str(path)}) from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path.name}: expected a mapping with {', '.join(KEY_ORDER)}", {"file": str(path)})
    unknown = sorted(set(doc) - set(KEY_ORDER))
    if unknown:
        raise InvalidArgument(
            f"{path.name}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(KEY_ORDER)}", {"file": str(path)}
        )
    name = doc.get("name") or path.stem
    if not isinstance(name, str) or not PROMPT_NAME_RE.match(name):
        raise InvalidArgument(f"{path.name}: name {name!r} is invalid", {"file": str(path)})
    try:
        content = PromptContent.model_validate({k: v for k, v in doc.items() if k in KEY_ORDER[2:]})
    except ValidationError as exc:
        err = from_validation_error(exc, "prompt")
        raise InvalidArgument(f"{path.name}: {err.message}", {"file": str(path)}) from None
    return name, str(doc.get("description") or ""), content


def load_prompt_dir(directory: Path, policy: ModelPolicy) -> list[tuple[str, str, PromptContent]]:
    """Every prompt file of ``directory``, each fully checked (schema, templates, provider, model params
    under the operator's ``policy``) before the caller writes any of them.

    Raises:
        InvalidArgument: naming every bad file and what is wrong in it (``details.problems``).
    """
    from .compiler.analysis import check_content
    from .errors import AgntError
    from .services.prompts import parse_content

    if not directory.is_dir():
        raise InvalidArgument(f"{directory} is not a directory")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    loaded: list[tuple[str, str, PromptContent]] = []
    problems: list[dict[str, Any]] = []
    for path in files:
        try:
            name, description, content = load_prompt_file(path)
            parse_content(content, policy)  # what upsert_prompt refuses is refused here too
            check_content(content)  # templates and conditions compile
        except AgntError as err:
            message = err.message if err.message.startswith(path.name) else f"{path.name}: {err.message}"
            problems.append({"file": path.name, "problem": message, **err.details})
            continue
        loaded.append((name, description, content))
    names = [n for n, _, _ in loaded]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        problems.append({"name": dupe, "problem": f"prompt name {dupe!r} appears in more than one file of {directory}"})
    if problems:
        raise InvalidArgument(
            f"{len(problems)} problem(s) in {directory}; nothing was imported: "
            + "; ".join(p["problem"] for p in problems),
            {"problems": problems},
        )
    return loaded
