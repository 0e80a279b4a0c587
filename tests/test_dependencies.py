"""Every package the code imports is declared in pyproject.toml, pinned as in requirements/runtime.in."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src" / "agnt_traces").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"agnt_traces", "__future__"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        requirement = line.split(";")[0].strip()
        if requirement and not requirement.startswith("#"):
            name, _, version = requirement.partition("==")
            pins[_normalized(name)] = version.strip()
    return pins


def test_every_imported_package_is_declared_and_pinned_alike() -> None:
    declared = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    runtime_in = _pins((ROOT / "requirements" / "runtime.in").read_text().splitlines())
    assert declared == runtime_in, "pyproject.toml and requirements/runtime.in must pin the same packages"
    providers = packages_distributions()
    missing = {}
    for module in sorted(_imported_top_level_modules()):
        distributions = {_normalized(d) for d in providers.get(module, [])}
        assert distributions, f"{module} is imported but no installed distribution provides it"
        if not distributions & declared.keys():
            missing[module] = sorted(distributions)
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
