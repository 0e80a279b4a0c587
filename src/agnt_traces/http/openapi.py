"""The OpenAPI 3.1 document of the REST API, built from the same operation table as the routes."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from ..models import Trace
from .routes import OPERATIONS, Operation

__all__ = ["API_PREFIX", "PUBLIC_PATHS", "openapi_document"]

API_PREFIX = "/api/v1"
PUBLIC_PATHS = {"/healthz": "healthz", API_PREFIX + "/openapi.json": "openapi"}

_CODES = {
    400: ("invalid_argument", "Invalid argument: the message names every problem"),
    401: ("unauthorized", "Missing, malformed, unknown or revoked bearer token"),
    404: ("not_found", "No such resource (also: another tenant's path)"),
    409: ("conflict", "Conflict: e.g. the same trace id with other content, or a draft that moved"),
    412: ("precondition_failed", "If-Match / expectedEtag names another draft than the current one (code: conflict)"),
    413: ("payload_too_large", "Request body over the server's limit"),
    422: ("compile_error", "The prompt does not compile: the message names every problem"),
    500: ("internal", "Internal error (no details are given out)"),
    502: ("model_error", "The model call failed; it is recorded as a trace"),
    503: ("unavailable", "The database cannot take writes (e.g. its file was deleted); code: internal"),
    507: ("storage_full", "The disk under the database is full; nothing was stored; code: internal"),
}

HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "version"],
    "properties": {
        "status": {"enum": ["ok", "error"]},
        "reason": {"type": "string", "description": "why the server is unhealthy and what to do"},
        "version": {"type": "string"},
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "enum": sorted(c for c, _ in _CODES.values())},
                "message": {"type": "string", "description": "what was wrong and what to do"},
                "details": {"type": "object"},
            },
        }
    },
}


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Request bodies and responses, each schema the one its MCP tool publishes too."""
    seen: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {"Trace": (Trace, "validation")}
    for op in OPERATIONS:
        responses = op.response if isinstance(op.response, list) else [op.response]
        for item in [*(op.body if isinstance(op.body, list) else [op.body]), *responses]:
            if isinstance(item, type) and issubclass(item, BaseModel):
                seen[item.__name__] = (item, "validation")
        if isinstance(op.response, type) and issubclass(op.response, BaseModel):
            # Validation mode as MCP's output schemas: a model that leaves out empty keys (a wrap serializer)
            # would otherwise publish no properties. Times publish as strings in both modes (UtcMillis).
            seen[op.response.__name__] = (op.response, "validation")
    return list(seen.values())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_STATUS_TEXT = {201: "created", 207: "Multi-Status: some items were refused; each has its own result"}


def _operation(op: Operation) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    for q in op.query:
        schema = {"type": "array", "items": q.schema} if q.repeatable else q.schema
        param: dict[str, Any] = {"name": q.name, "in": "query", "required": False, "schema": schema}
        if q.repeatable:
            param.update(style="form", explode=True)
        if q.description:
            param["description"] = q.description
        params.append(param)
    if isinstance(op.response, list):  # one of several shapes (e.g. one trace, a batch, a 207 batch)
        success_schema: dict[str, Any] = {"oneOf": [_ref(m) for m in op.response]}
    else:
        success_schema = _ref(op.response) if op.response is not None else {"type": "object"}
    responses: dict[str, Any] = {
        str(status): {"description": _STATUS_TEXT.get(status, "OK"), "content": _json(success_schema)}
        for status in op.status
    }
    errors = set(op.errors) | {401, 500, 503, 507}
    if op.body is not None:
        errors |= {400, 413}
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/{_CODES[status][0]}"}
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        bodies = op.body if isinstance(op.body, list) else [op.body]
        schema = _ref(bodies[0]) if len(bodies) == 1 else {"oneOf": [_ref(b) for b in bodies]}
        doc["requestBody"] = {"required": op.body_required, "content": _json(schema)}
    return doc


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    _, defs = models_json_schema(_models(), by_alias=True, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = _operation(op)
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness and database check (no auth): 503 with a reason when the database cannot "
            "take writes (file deleted or replaced, disk full, not answering)",
            "security": [],
            "responses": {
                "200": {"description": "OK", "content": _json({"type": "object"})},
                "503": {"$ref": "#/components/responses/unhealthy"},
            },
        }
    }
    paths[API_PREFIX + "/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document (no auth)",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
        }
    }
    paths["/v1/traces"] = {
        "post": {
            "operationId": "otlpExportTraces",
            "summary": "OpenTelemetry OTLP/HTTP trace export: each LLM span becomes a trace (source otlp), committed "
            "before the answer. Body: ExportTraceServiceRequest as application/x-protobuf or application/json "
            "(ids as hex), optionally Content-Encoding: gzip. Answer: ExportTraceServiceResponse in the same "
            "encoding (partialSuccess counts refused spans); errors as google.rpc.Status (protobuf) or the "
            "one error shape (JSON). Headers x-agnt-spans-stored|duplicate|skipped|rejected give the counts.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-protobuf": {"schema": {}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            "responses": {
                "200": {"description": "ExportTraceServiceResponse", "content": _json({"type": "object"})},
                **{
                    str(status): {"$ref": f"#/components/responses/{_CODES[status][0]}"}
                    for status in (400, 401, 413, 503)
                },
                "415": {"$ref": "#/components/responses/invalid_argument"},  # another content type or encoding
            },
        }
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "AGNT Traces",
            "version": __version__,
            "description": (
                "Traces of every LLM call made through hosted prompts, and the playground loop to fix a bad one. "
                "Every route is scoped to a tenant; a bearer token (agnt-traces token create --tenant T) is bound "
                "to one tenant, and another tenant's path answers 404. MCP (streamable HTTP) is served at /mcp "
                'with the same tokens. Errors have one shape: {"error": {"code", "message", "details"}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                **{
                    code: {"description": desc, "content": _json({"$ref": "#/components/schemas/Error"})}
                    for code, desc in _CODES.values()
                },
                "unhealthy": {"description": "The server cannot serve safely", "content": _json(HEALTH_SCHEMA)},
            },
        },
        "security": [{"bearer": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
