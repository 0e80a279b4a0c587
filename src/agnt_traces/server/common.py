"""What every MCP tool shares: the app from the lifespan, the caller's tenant, and the error shape."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from mcp.server.mcpserver import Context
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations

from ..errors import AgntError, InternalError, InvalidArgument, NotFound
from ..logs import log_failure

if TYPE_CHECKING:
    from ..app import App

__all__ = [
    "DESTRUCTIVE",
    "IDEMPOTENT_WRITE",
    "MODEL_CALL",
    "READ",
    "WRITE",
    "LateApp",
    "app_in",
    "app_of",
    "error_result",
    "error_shape_middleware",
    "prompt_arguments_middleware",
    "tenant_of",
    "tool_errors",
]

logger = logging.getLogger("agnt_traces.mcp")
P = ParamSpec("P")

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=False, open_world_hint=False)
IDEMPOTENT_WRITE = ToolAnnotations(
    read_only_hint=False, idempotent_hint=True, destructive_hint=False, open_world_hint=False
)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, idempotent_hint=True, destructive_hint=True, open_world_hint=False)
MODEL_CALL = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=False, open_world_hint=True)


class LateApp:
    """The lifespan value of a server that answers the MCP handshake before its App is open (the stdio server):
    ``app`` is set before any other request reaches the SDK."""

    __slots__ = ("app",)

    def __init__(self) -> None:
        self.app: App | None = None


def app_in(lifespan_value: Any) -> App:
    """The App behind a server's lifespan value: the App itself, or a :class:`LateApp`'s."""
    if isinstance(lifespan_value, LateApp):
        if lifespan_value.app is None:
            raise InternalError("the server's store is not open yet")
        return lifespan_value.app
    app: App = lifespan_value
    return app


def app_of(ctx: Context[Any, Any]) -> App:
    return app_in(ctx.request_context.lifespan_context)


def tenant_of(ctx: Context[Any, Any]) -> str:
    """Over HTTP the bearer token's tenant; over stdio the server's ``--tenant``."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    token = get_access_token()
    if token is not None and token.client_id:
        return token.client_id
    return app_of(ctx).settings.tenant


def error_result(err: AgntError) -> CallToolResult:
    payload = err.to_dict()
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(payload, ensure_ascii=False))],
        structured_content=payload,
        is_error=True,
    )


def tool_errors(fn: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
    """Return our errors as MCP error results in the one shape; hide anything unexpected."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return await fn(*args, **kwargs)
        except AgntError as err:
            return error_result(err)
        except Exception:
            log_failure(logger, "tool %s failed", fn.__name__)
            return error_result(InternalError("internal error; the server log has the details"))

    # The docstring is the tool's description: without the source's indentation.
    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    return wrapper


# Pydantic ends each problem line with "[type=…, input_value=…, input_type=…]": drop all of it (the value
# may itself hold brackets, and it is the caller's data: it may be a secret).
_NOISE = re.compile(r"[ \t]*\[type=[^\n]*|\n\s*For further information visit \S+")


async def error_shape_middleware(ctx: Any, call_next: Any) -> Any:
    """Give the SDK's own tool errors (bad arguments, unknown tool) the one error shape too."""
    result = await call_next(ctx)
    if (
        getattr(ctx, "method", None) == "tools/call"
        and isinstance(result, dict)
        and result.get("isError")
        and "structuredContent" not in result
    ):
        content = result.get("content") or []
        text = content[0].get("text", "") if content and isinstance(content[0], dict) else ""
        text = _NOISE.sub("", text)
        if text.startswith("Unknown tool"):
            err: AgntError = NotFound(f"{text}: tools/list shows the available tools")
        elif "validation error" in text:
            tool = (ctx.params or {}).get("name", "?")
            lines = [ln.strip() for ln in text.splitlines()[1:] if ln.strip()]
            problems = [
                f"{lines[i]}: {lines[i + 1]}".replace(
                    "Extra inputs are not permitted", "unknown argument; check its spelling against the tool's schema"
                )
                for i in range(0, len(lines) - 1, 2)
            ]
            err = InvalidArgument(
                f"invalid arguments for {tool}: {'; '.join(problems)}; fix them and call again",
                {"problems": problems},
            )
        else:
            err = InternalError(text or "internal error")
        payload = err.to_dict()
        result = {
            **result,
            "content": [{"type": "text", "text": json.dumps(payload, ensure_ascii=False)}],
            "structuredContent": payload,
        }
    return result


def prompt_arguments_middleware(server: Callable[[], Any]) -> Any:
    """``prompts/get`` with an unknown prompt or a missing required argument is JSON-RPC -32602 with a
    message that names it (the SDK answers code 0 with a Python set in the text, and logs a traceback)."""
    from mcp.shared.exceptions import MCPError

    async def middleware(ctx: Any, call_next: Any) -> Any:
        if getattr(ctx, "method", None) != "prompts/get" or not isinstance(ctx.params, dict):
            return await call_next(ctx)
        name = ctx.params.get("name")
        arguments = ctx.params.get("arguments") or {}
        prompts = {p.name: p for p in await server().list_prompts()}
        prompt = prompts.get(name) if isinstance(name, str) else None
        if prompt is None:
            raise MCPError(
                INVALID_PARAMS,
                f"unknown prompt {name!r}: prompts/list shows the available prompts ({', '.join(sorted(prompts))})",
                {"field": "name"},
            )
        if not isinstance(arguments, dict):
            raise MCPError(INVALID_PARAMS, "arguments must be an object of strings", {"field": "arguments"})
        declared = {a.name: a for a in prompt.arguments or []}
        missing = sorted(a for a, spec in declared.items() if spec.required and a not in arguments)
        if missing:
            raise MCPError(
                INVALID_PARAMS,
                f"prompt {name!r} needs the argument(s) {', '.join(missing)}: pass them in 'arguments'",
                {"field": "arguments", "missing": missing},
            )
        unknown = sorted(a for a in arguments if a not in declared)
        if unknown:
            raise MCPError(
                INVALID_PARAMS,
                f"prompt {name!r} has no argument(s) {', '.join(unknown)}: it takes {', '.join(declared) or 'none'}",
                {"field": "arguments", "unknown": unknown},
            )
        return await call_next(ctx)

    return middleware
