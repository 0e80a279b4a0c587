"""What every MCP tool shares: the app from the lifespan, the caller's tenant, and the error shape."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from ..app import App
from ..errors import AgntError, InternalError, InvalidArgument, NotFound

__all__ = [
    "DESTRUCTIVE",
    "IDEMPOTENT_WRITE",
    "MODEL_CALL",
    "READ",
    "WRITE",
    "app_of",
    "error_result",
    "error_shape_middleware",
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


def app_of(ctx: Context[Any, Any]) -> App:
    app: App = ctx.request_context.lifespan_context
    return app


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
            logger.exception("tool %s failed", fn.__name__)
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
