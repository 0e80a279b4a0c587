"""The base of every typed result: Python attributes in snake_case, JSON names in camelCase.

Stores and services build these; MCP, REST, the CLI and the Python API render them. The same class gives
an MCP tool its output schema and an OpenAPI operation its response schema, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["WireModel"]


class WireModel(BaseModel):
    """A result as clients see it once rendered: ``render()`` is its JSON object."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        defer_build=True,
    )

    def render(self) -> dict[str, Any]:
        """The JSON object clients get (camelCase names; ``None`` fields kept as null)."""
        return self.model_dump(mode="json", by_alias=True)
