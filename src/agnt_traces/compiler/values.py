"""Checking variable values against their declarations, and the arguments of a compile.

A value must be JSON data (strings, finite numbers, booleans, null, lists, objects with string keys,
nested at most ``limits.MAX_VALUE_DEPTH`` deep) of its declared type. ``None`` means "no value": a
declared optional variable without one is ``None`` in templates.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidArgument
from ..models import VariableDecl
from . import limits

__all__ = ["check_input_messages", "check_values", "check_variables_arg", "default_problem", "value_problem"]


_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "list": "a list",
    "object": "an object",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _not_json(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not JSON data, or None when it is."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if depth >= limits.MAX_VALUE_DEPTH:
        return f"values may nest at most {limits.MAX_VALUE_DEPTH} levels deep"
    if isinstance(value, list):
        for item in value:
            reason = _not_json(item, depth + 1)
            if reason:
                return reason
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "object keys must be strings"
            reason = _not_json(item, depth + 1)
            if reason:
                return reason
        return None
    return f"got a value of type '{type(value).__name__}'"


def value_problem(name: str, kind: str, value: Any) -> str | None:
    reason = _not_json(value)
    if reason:
        return f"variable '{name}' must be JSON data (string, number, boolean, null, list or object): {reason}"
    if not _type_ok(kind, value):
        return f"variable '{name}' must be {_TYPE_WORDS.get(kind, kind)}, got {_json_type(value)}"
    return None


def default_problem(decl: VariableDecl) -> str | None:
    if decl.default is None:
        return None
    problem = value_problem(decl.name, decl.type, decl.default)
    return f"the default of {problem}" if problem else None


def check_variables_arg(variables: Any) -> dict[str, Any]:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise InvalidArgument(
            "variables must be an object of name → value",
            {"problems": [{"field": "variables", "problem": "must be an object"}]},
        )
    bad = [k for k in variables if not isinstance(k, str)]
    if bad:
        raise InvalidArgument(
            "variable names must be strings",
            {"problems": [{"field": "variables", "problem": "variable names must be strings"}]},
        )
    return variables


def check_values(decls: list[VariableDecl], values: dict[str, Any], *, partial: bool = False) -> None:
    """Check variable values against their declarations.

    Raises :class:`InvalidArgument` naming every value of the wrong type (or not JSON data) and, unless
    ``partial``, every required variable that has neither a value nor a default. Values for undeclared
    variables are allowed (compiling warns when nothing reads them). ``None`` means "no value".
    """
    values = check_variables_arg(values)
    by_name = {d.name: d for d in decls}
    problems: list[dict[str, Any]] = []
    for name, value in values.items():
        decl = by_name.get(name)
        if decl is not None and value is None:
            continue
        text = value_problem(name, decl.type if decl else "", value)
        if text:
            problems.append({"field": f"variables.{name}", "variable": name, "problem": text})
    if not partial:
        for decl in decls:
            if decl.required and values.get(decl.name) is None and decl.default is None:
                problems.append(
                    {
                        "field": f"variables.{decl.name}",
                        "variable": decl.name,
                        "problem": f"variable '{decl.name}' ({decl.type}) is required; pass it in variables",
                    }
                )
    if problems:
        raise InvalidArgument("invalid variables: " + "; ".join(p["problem"] for p in problems), {"problems": problems})


def check_input_messages(input_messages: Any) -> list[dict[str, Any]]:
    if input_messages is None:
        return []
    if not isinstance(input_messages, list):
        raise InvalidArgument(
            "input messages must be a list of {role, content} objects",
            {"problems": [{"field": "messages", "problem": "must be a list"}]},
        )
    problems = []
    for i, message in enumerate(input_messages):
        if not isinstance(message, dict):
            problems.append({"field": f"messages[{i}]", "problem": "must be an object with a role"})
        elif not isinstance(message.get("role"), str) or not message["role"].strip():
            problems.append({"field": f"messages[{i}].role", "problem": "must be a non-empty string"})
    if problems:
        text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidArgument(f"invalid input messages: {text}", {"problems": problems})
    return [dict(m) for m in input_messages]
