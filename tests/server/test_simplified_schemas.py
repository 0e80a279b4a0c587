"""server/output_schemas.simplified: the published result schemas mean exactly what pydantic's do.

Each tool's schema as the SDK derives it from the result type is compared with the one published: thousands
of instances (built from the schema, then broken in every way: a value nulled, retyped, dropped, an unknown
key added) get the same verdict from a JSON Schema 2020-12 validator under both. The rewrite rules are also
checked one by one, including where they must not apply.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from agnt_traces.server.output_schemas import simplified
from agnt_traces.server.sdk_seams import registered_tools

_SCALARS: list[Any] = [None, True, 0, -3, 2.5, "", "x", [], {}, [1], {"k": "v"}]


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**root["$defs"][ref.split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _instance(node: Any, root: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value the schema accepts (mostly: free-form parts get arbitrary values)."""
    if not isinstance(node, dict) or depth > 8:
        return rng.choice(_SCALARS)
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rng.choice(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return _instance(rng.choice(node[key]), root, rng, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        out = {}
        for name, sub in props.items():
            if name in node.get("required", []) or rng.random() < 0.6:
                out[name] = _instance(sub, root, rng, depth + 1)
        extra = node.get("additionalProperties", True)
        if extra is not False and rng.random() < 0.5:
            out[f"free{rng.randint(0, 9)}"] = _instance(extra if isinstance(extra, dict) else {}, root, rng, depth + 1)
        return out
    if kind == "array":
        return [_instance(node.get("items", {}), root, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        "string": lambda: rng.choice(["", "text", "2026-01-01T00:00:00Z"]),
        "integer": lambda: rng.randint(-2, 5),
        "number": lambda: rng.choice([0, 1.5, -2]),
        "boolean": lambda: rng.random() < 0.5,
        "null": lambda: None,
    }.get(str(kind), lambda: rng.choice(_SCALARS))()


def _broken(value: Any, rng: random.Random) -> Any:
    """``value`` with one part changed: nulled, retyped, removed, or given an unknown key."""
    value = copy.deepcopy(value)
    containers = []

    def collect(v: Any) -> None:
        if isinstance(v, dict):
            containers.append(v)
            for x in v.values():
                collect(x)
        elif isinstance(v, list):
            containers.append(v)
            for x in v:
                collect(x)

    collect(value)
    if not containers:
        return rng.choice(_SCALARS)
    target = rng.choice(containers)
    if isinstance(target, dict):
        if target and rng.random() < 0.7:
            key = rng.choice(list(target))
            if rng.random() < 0.25:
                del target[key]
            else:
                target[key] = rng.choice(_SCALARS)
        else:
            target["unknownKey"] = rng.choice(_SCALARS)
    elif target:
        target[rng.randrange(len(target))] = rng.choice(_SCALARS)
    else:
        target.append(rng.choice(_SCALARS))
    return value


def _pairs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    mcp = build_server(Settings(db_path=":memory:"))
    pairs = []
    for tool in registered_tools(mcp):
        meta = tool.fn_metadata
        assert meta.output_model is not None, tool.name
        generated = FuncMetadata(arg_model=meta.arg_model, output_model=meta.output_model).output_schema
        assert generated is not None
        pairs.append((tool.name, generated, meta.output_schema))
    return pairs


PAIRS = _pairs()


@pytest.mark.parametrize(("name", "generated", "published"), PAIRS, ids=[p[0] for p in PAIRS])
def test_the_published_schema_accepts_exactly_what_the_generated_one_does(
    name: str, generated: dict[str, Any], published: dict[str, Any]
) -> None:
    Draft202012Validator.check_schema(published)
    assert published != generated or "$ref" not in str(generated)  # something was simplified
    before, after = Draft202012Validator(generated), Draft202012Validator(published)
    rng = random.Random(name)
    verdicts = {True: 0, False: 0}
    for _ in range(300):
        good = _instance(generated, generated, rng)
        for candidate in (good, _broken(good, rng), _broken(_broken(good, rng), rng)):
            expected = before.is_valid(candidate)
            assert after.is_valid(candidate) == expected, (name, candidate)
            verdicts[expected] += 1
    assert verdicts[True] > 50 and verdicts[False] > 50, verdicts  # both verdicts were exercised


def test_the_published_schemas_use_no_needless_construct() -> None:
    for name, _, published in PAIRS:
        text = str(published)
        assert "$ref" not in text and "$defs" not in text, name  # no result type is recursive
        assert "'additionalProperties': True" not in text, name


def _same_verdicts(schema: dict[str, Any], instances: list[Any]) -> dict[str, Any]:
    out = simplified(schema)
    Draft202012Validator.check_schema(out)
    for instance in instances:
        assert Draft202012Validator(out).is_valid(instance) == Draft202012Validator(schema).is_valid(instance), instance
    return out


def test_nullable_scalar_object_and_array_become_a_type_list_with_their_annotations() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "default": None, "title": "A"},
            "b": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer"}}]},
            "c": {"anyOf": [{"$ref": "#/$defs/Err"}, {"type": "null"}], "description": "outer wins"},
        },
        "$defs": {
            "Err": {
                "type": "object",
                "properties": {"m": {"type": "string"}},
                "required": ["m"],
                "additionalProperties": False,
                "description": "inner",
            }
        },
    }
    out = _same_verdicts(
        schema,
        [
            {"a": None},
            {"a": "abc"},
            {"a": "abcd"},
            {"a": 1},
            {"b": None},
            {"b": [1]},
            {"b": ["x"]},
            {"c": None},
            {"c": {"m": "x"}},
            {"c": {"m": "x", "n": 1}},
            {"c": {}},
            {"c": "x"},
        ],
    )
    props = out["properties"]
    assert props["a"] == {"type": ["string", "null"], "maxLength": 3, "default": None, "title": "A"}
    assert props["b"] == {"type": ["array", "null"], "items": {"type": "integer"}}
    assert props["c"]["type"] == ["object", "null"] and props["c"]["description"] == "outer wins"
    assert "$defs" not in out


def test_what_would_refuse_null_stays_an_anyof() -> None:
    for branch in (
        {"enum": ["x", "y"], "type": "string"},
        {"const": 1, "type": "integer"},
        {"type": "string", "not": {"const": ""}},
        {"type": ["string", "integer"]},
    ):
        schema = {"anyOf": [branch, {"type": "null"}]}
        out = _same_verdicts(schema, [None, "x", "z", 1, 2, "", 0.5])
        assert "anyOf" in out, branch
    # a validation keyword beside the anyOf: kept as it is
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "minLength": 2}
    assert "anyOf" in _same_verdicts(schema, [None, "x", "xy"])


def test_a_recursive_definition_keeps_its_ref_and_the_others_are_inlined() -> None:
    schema = {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/Node"}, "leaf": {"$ref": "#/$defs/Leaf"}},
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "leaf": {"$ref": "#/$defs/Leaf"},
                },
                "additionalProperties": False,
            },
            "Leaf": {"type": "integer", "minimum": 0},
            "Unused": {"type": "string"},
        },
    }
    out = _same_verdicts(
        schema,
        [
            {"tree": {"kids": [{"kids": []}]}},
            {"tree": {"kids": [{"x": 1}]}},
            {"leaf": -1},
            {"leaf": 2},
            {"tree": {"leaf": -1}},
            {"tree": {"kids": [{"leaf": 3}]}},
        ],
    )
    assert out["properties"]["leaf"] == {"type": "integer", "minimum": 0}
    assert out["properties"]["tree"] == {"$ref": "#/$defs/Node"}
    assert set(out["$defs"]) == {"Node"}  # Leaf is inlined inside it too; Unused is gone
    assert out["$defs"]["Node"]["properties"]["leaf"] == {"type": "integer", "minimum": 0}


def test_a_ref_with_a_validation_keyword_beside_it_is_kept() -> None:
    schema = {"properties": {"a": {"$ref": "#/$defs/S", "maxLength": 2}}, "$defs": {"S": {"type": "string"}}}
    out = _same_verdicts(schema, [{"a": "x"}, {"a": "xyz"}, {"a": 1}])
    assert out["properties"]["a"] == {"$ref": "#/$defs/S", "maxLength": 2} and "S" in out["$defs"]


def test_additional_properties_true_goes_and_false_or_a_schema_stays() -> None:
    schema = {
        "type": "object",
        "properties": {
            "free": {"type": "object", "additionalProperties": True},
            "closed": {"type": "object", "additionalProperties": False},
            "typed": {"type": "object", "additionalProperties": {"type": "string"}},
            "additionalProperties": True,  # a property of that name: a schema, not the keyword
        },
        "additionalProperties": False,
    }
    out = _same_verdicts(
        schema,
        [
            {"free": {"a": 1}},
            {"closed": {}},
            {"closed": {"a": 1}},
            {"typed": {"a": "x"}},
            {"typed": {"a": 1}},
            {"additionalProperties": 1},
            {"other": 1},
        ],
    )
    props = out["properties"]
    assert props["free"] == {"type": "object"}
    assert props["closed"]["additionalProperties"] is False
    assert props["typed"]["additionalProperties"] == {"type": "string"}
    assert props["additionalProperties"] is True and out["additionalProperties"] is False


@pytest.mark.parametrize(
    ("schema", "instances"),
    [
        # unevaluatedProperties sees what additionalProperties: true evaluated, through $ref and allOf alike
        (
            {
                "$ref": "#/$defs/Free",
                "unevaluatedProperties": False,
                "$defs": {"Free": {"type": "object", "additionalProperties": True}},
            },
            [{"a": 1}, {}],
        ),
        ({"allOf": [{"additionalProperties": True}], "unevaluatedProperties": False}, [{"a": 1}]),
        ({"properties": {"a": {"type": "array", "items": True, "unevaluatedItems": False}}}, [{"a": [1]}]),
        # a pointer into a definition, or outside $defs: the layout is part of the meaning
        (
            {
                "properties": {"x": {"$ref": "#/$defs/A/properties/y"}},
                "$defs": {"A": {"properties": {"y": {"type": "string"}}}},
            },
            [{"x": 1}, {"x": "s"}],
        ),
        (
            {"properties": {"x": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "y": {"$ref": "#/properties/x"}}},
            [{"y": None}, {"y": 1}],
        ),
        ({"$id": "https://example.com/s", "anyOf": [{"type": "string"}, {"type": "null"}]}, [None, 1]),
    ],
)
def test_a_schema_whose_layout_matters_is_left_as_it_is(schema: dict[str, Any], instances: list[Any]) -> None:
    assert _same_verdicts(schema, instances) == schema


def test_data_in_a_schema_is_never_rewritten() -> None:
    schema = {
        "type": "object",
        "properties": {
            "c": {"const": {"additionalProperties": True, "anyOf": [{"type": "string"}, {"type": "null"}]}},
            "e": {"enum": [{"$ref": "#/$defs/A"}, "x"]},
            "d": {"type": "object", "default": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "a": {"$ref": "#/$defs/A"},
        },
        "$defs": {"A": {"type": "string"}},
    }
    out = _same_verdicts(
        schema,
        [
            {"c": {"additionalProperties": True, "anyOf": [{"type": "string"}, {"type": "null"}]}},
            {"c": {}},
            {"e": {"$ref": "#/$defs/A"}},
            {"e": {"type": "string"}},
            {"e": "x"},
            {"a": "s"},
            {"a": 1},
        ],
    )
    assert out["properties"]["c"] == schema["properties"]["c"]  # type: ignore[index]
    assert out["properties"]["e"] == schema["properties"]["e"]  # type: ignore[index]
    assert out["properties"]["d"] == schema["properties"]["d"]  # type: ignore[index]
    assert out["properties"]["a"] == {"type": "string"} and "$defs" not in out
