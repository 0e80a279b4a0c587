"""The one error shape of AGNT Traces.

    AgntError                      {"error": {"code", "message", "details"}}
     ├── NotFound                  not_found          404
     ├── InvalidArgument           invalid_argument   400
     ├── Conflict                  conflict           409
     │    └── PreconditionFailed   conflict           412  (REST If-Match / expected_etag)
     ├── Unauthorized              unauthorized       401
     ├── PayloadTooLarge           payload_too_large  413
     ├── CompileError              compile_error      422
     ├── TooManySessions           too_many_sessions  429  (MCP over HTTP: a tenant's or token's session cap)
     ├── ModelError                model_error        502
     └── InternalError             internal           500
          ├── StoreUnavailable     internal           503  (database file deleted or replaced)
          └── StorageFull          internal           507  (disk full)

Every front end (MCP, HTTP, CLI) turns these into the same JSON. Messages say what was wrong and
what to do; they never carry stack traces, secrets or another tenant's data.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AgntError",
    "CompileError",
    "Conflict",
    "InternalError",
    "InvalidArgument",
    "ModelError",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "StorageFull",
    "StoreUnavailable",
    "TooManySessions",
    "Unauthorized",
    "from_validation_error",
]


class AgntError(Exception):
    """Base class: a failure the caller can read and act on."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class NotFound(AgntError):
    code = "not_found"
    http_status = 404


class InvalidArgument(AgntError):
    code = "invalid_argument"
    http_status = 400


class Conflict(AgntError):
    code = "conflict"
    http_status = 409


class PreconditionFailed(Conflict):
    """An ``expected_etag`` / ``If-Match`` that does not match: the code stays ``conflict``; HTTP says 412."""

    http_status = 412


class Unauthorized(AgntError):
    code = "unauthorized"
    http_status = 401


class PayloadTooLarge(AgntError):
    code = "payload_too_large"
    http_status = 413


class TooManySessions(AgntError):
    code = "too_many_sessions"
    http_status = 429


class CompileError(AgntError):
    code = "compile_error"
    http_status = 422


class ModelError(AgntError):
    code = "model_error"
    http_status = 502


class InternalError(AgntError):
    code = "internal"
    http_status = 500


class StoreUnavailable(InternalError):
    """The database cannot take writes safely (its file was deleted or replaced, or it stopped answering)."""

    http_status = 503


class StorageFull(InternalError):
    """The disk under the database is full: nothing of the call was stored."""

    http_status = 507


def from_validation_error(exc: Any, what: str) -> InvalidArgument:
    """Turn a pydantic ``ValidationError`` into one ``InvalidArgument`` naming every bad field.

    Input values are left out of the message: they are the caller's data and may hold secrets.
    """
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or what
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check its spelling against the documented fields"
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append({"field": loc, "problem": msg})
    text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return InvalidArgument(f"invalid {what}: {text}", {"problems": problems})
