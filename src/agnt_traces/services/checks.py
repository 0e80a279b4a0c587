"""Golden-case expectations: checks ``{type, value}`` and the optional judge, validated and evaluated.

Patterns and schemas are the caller's data and may be hostile: a regex runs in the ``regex`` package with
a time limit (a catastrophic pattern fails its check instead of stalling the server), a JSON Schema may not
use ``pattern``/``patternProperties`` (Python ``re`` without a time limit) nor references outside itself,
and every value is bounded in size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import InvalidArgument, from_validation_error
from ..golden_models import CHECK_TYPES, Check, Judge, Outcome, Reference
from ..llm.policy import ModelPolicy
from ..llm.providers import check_provider
from ..models import ModelConfig, canonical_json

__all__ = [
    "CHECK_TYPES",
    "MAX_CHECKS",
    "Answer",
    "Outcome",
    "evaluate_checks",
    "evaluate_checks_async",
    "parse_checks",
    "parse_judge",
]

MAX_CHECKS = 20
MAX_TEXT = 2_000  # contains / not_contains / equals values
MAX_PATTERN = 500
MAX_SCHEMA_CHARS = 20_000
MAX_RUBRIC = 4_000
REGEX_TIMEOUT = 0.25  # seconds per regex check
_FORBIDDEN_SCHEMA_KEYS = ("pattern", "patternProperties")


@dataclass(slots=True)
class Answer:
    """A replayed call's answer and figures, as the checks see it (a cached answer carries what the call it
    reuses cost and took; ``spent`` is what this call cost)."""

    output: str | None
    status: str
    error: dict[str, Any] | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost: float | None
    duration: float | None
    spent: float


def _bad(i: int, message: str) -> InvalidArgument:
    return InvalidArgument(f"checks[{i}]: {message}", {"field": f"checks[{i}]"})


def _number(i: int, value: Any, integer: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0
    if not ok or (integer and not float(value).is_integer()):
        kind = "a whole number" if integer else "a number"
        raise _bad(i, f"value must be {kind} of at least 0, got {value!r}")
    return value


def _check_schema_keys(node: Any, i: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _FORBIDDEN_SCHEMA_KEYS:
                raise _bad(i, f"json_schema may not use {key!r} (unbounded regular expressions): use a regex check")
            if key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
                raise _bad(i, "json_schema may only use references inside itself ($ref: '#/...')")
            _check_schema_keys(value, i)
    elif isinstance(node, list):
        for item in node:
            _check_schema_keys(item, i)


def _parse_one(i: int, raw: Any) -> Check:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise _bad(i, "a check is an object {type, value}")
    extra = set(raw) - {"type", "value"}
    if extra:
        raise _bad(i, f"unknown field(s) {', '.join(sorted(extra))}: a check is {{type, value}}")
    kind, value = raw["type"], raw.get("value")
    if kind not in CHECK_TYPES:
        raise _bad(i, f"type {kind!r} is not a check type: use one of {', '.join(CHECK_TYPES)}")
    if kind in ("contains", "not_contains", "equals"):
        if not isinstance(value, str) or (kind != "equals" and not value) or len(value) > MAX_TEXT:
            raise _bad(i, f"{kind} needs value: a string of 1 to {MAX_TEXT} characters")
    elif kind == "regex":
        if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
            raise _bad(i, f"regex needs value: a pattern of 1 to {MAX_PATTERN} characters")
        import regex

        try:
            regex.compile(value)
        except (regex.error, RecursionError, OverflowError) as exc:
            raise _bad(i, f"regex value is not a valid pattern ({str(exc)[:120]})") from None
    elif kind == "json":
        if value not in (None, True):
            raise _bad(i, "json takes no value (or true): it checks that the output is valid JSON")
        value = True
    elif kind == "json_schema":
        if not isinstance(value, dict) or len(canonical_json(value)) > MAX_SCHEMA_CHARS:
            raise _bad(i, f"json_schema needs value: a JSON Schema object of at most {MAX_SCHEMA_CHARS} characters")
        _check_schema_keys(value, i)
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise _bad(i, f"json_schema value is not a valid JSON Schema ({exc.message[:160]})") from None
    elif kind == "max_tokens":
        value = int(_number(i, value, integer=True))
    else:  # max_cost, max_duration
        value = float(_number(i, value))
    return Check(type=kind, value=value)


def parse_checks(raw: Any) -> list[Check]:
    """Validate a list of checks; returns them normalised.

    Raises:
        InvalidArgument: naming the first bad check and what to do.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidArgument("checks must be a list of {type, value}", {"field": "checks"})
    if len(raw) > MAX_CHECKS:
        raise InvalidArgument(f"at most {MAX_CHECKS} checks per case; got {len(raw)}", {"field": "checks"})
    return [_parse_one(i, c) for i, c in enumerate(raw)]


def parse_judge(raw: Any, policy: ModelPolicy) -> Judge | None:
    """``{rubric, model}`` with model ``{provider, name, params}`` or ``"provider/name"``; None for no judge.

    Raises:
        InvalidArgument: a bad rubric or model (the model policy applies as for any model).
    """
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"rubric", "model"}:
        raise InvalidArgument("judge must be an object {rubric, model}", {"field": "judge"})
    rubric = raw.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip() or len(rubric) > MAX_RUBRIC:
        raise InvalidArgument(f"judge.rubric must be a text of 1 to {MAX_RUBRIC} characters", {"field": "judge.rubric"})
    model_raw = raw.get("model")
    if isinstance(model_raw, str):
        provider, _, name = model_raw.partition("/")
        model_raw = {"provider": provider, "name": name}
    try:
        model = ModelConfig.model_validate(model_raw)
    except ValidationError as exc:
        raise from_validation_error(exc, "judge.model") from None
    check_provider(model.provider, "judge.model.provider")
    policy.check_params(model.params, "judge.model.params")
    return Judge(rubric=rubric, model=model)


# -- evaluation ------------------------------------------------------------------------------------------


def _regex(pattern: str, text: str) -> Outcome:
    import regex

    try:
        found = regex.search(pattern, text, timeout=REGEX_TIMEOUT, concurrent=True) is not None
    except TimeoutError:
        return Outcome("regex", False, f"the pattern took longer than {REGEX_TIMEOUT} s on this output: simplify it")
    return Outcome("regex", found, "matches" if found else f"no match for /{pattern[:80]}/")


def _json_schema(schema: dict[str, Any], text: str) -> Outcome:
    from jsonschema import Draft202012Validator

    try:
        doc = json.loads(text)
    except ValueError:
        return Outcome("json_schema", False, "the output is not valid JSON")
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if not errors:
        return Outcome("json_schema", True, "valid")
    first = errors[0]
    where = "/".join(str(p) for p in first.path) or "(root)"
    return Outcome("json_schema", False, f"{len(errors)} error(s); at {where}: {first.message[:160]}")


def _evaluate(check: Check, answer: Answer | Reference) -> Outcome:
    kind, value = check.type, check.value
    text = answer.output or ""
    if kind == "contains":
        assert isinstance(value, str)
        ok = value in text
        return Outcome(kind, ok, f"contains {value[:60]!r}" if ok else f"{value[:60]!r} not in the output")
    if kind == "not_contains":
        assert isinstance(value, str)
        ok = value not in text
        return Outcome(kind, ok, f"{value[:60]!r} absent" if ok else f"the output contains {value[:60]!r}")
    if kind == "equals":
        assert isinstance(value, str)
        ok = text.strip() == value.strip()
        return Outcome(kind, ok, "equal" if ok else "the output differs from the expected text")
    if kind == "regex":
        assert isinstance(value, str)
        return _regex(value, text)
    if kind == "json":
        try:
            json.loads(text)
        except ValueError:
            return Outcome(kind, False, "the output is not valid JSON")
        return Outcome(kind, True, "valid JSON")
    if kind == "json_schema":
        assert isinstance(value, dict)
        return _json_schema(value, text)
    assert isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "max_tokens":
        got = int(answer.output_tokens or 0)
        return Outcome(kind, got <= value, f"{got} output tokens (max {value})")
    if kind == "max_cost":
        cost = answer.cost
        if cost is None:
            return Outcome(kind, False, "the cost is unknown (no price for this model)")
        return Outcome(kind, cost <= value, f"${cost:.6f} (max ${value:.6f})")
    duration = answer.duration
    if duration is None:
        return Outcome(kind, False, "the duration is unknown")
    return Outcome(kind, duration <= value, f"{duration:.3f} s (max {value:g} s)")


def evaluate_checks(checks: list[Check], answer: Answer | Reference) -> list[Outcome]:
    """Every check on one answer (a replayed call's, or a golden case's reference). A failed call fails as
    the check ``call``, and its other checks are not run."""
    if answer.status == "error":
        err = (answer.error if isinstance(answer, Answer) else None) or {}
        return [Outcome("call", False, f"the model call failed ({err.get('type', 'error')})")]
    return [_evaluate(c, answer) for c in checks]


async def evaluate_checks_async(checks: list[Check], answer: Answer | Reference) -> list[Outcome]:
    """``evaluate_checks`` off the event loop when a check may take long (regex, JSON Schema)."""
    if not any(c.type in ("regex", "json_schema") for c in checks):
        return evaluate_checks(checks, answer)
    import anyio

    return await anyio.to_thread.run_sync(evaluate_checks, checks, answer)
