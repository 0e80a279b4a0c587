"""AGNT Traces: every LLM call through a hosted prompt becomes a trace; agents fix bad calls in a loop.

The public API is imported on first use, so that ``agnt-traces serve`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "AgntError",
    "AgntTraces",
    "CompileError",
    "Conflict",
    "InvalidArgument",
    "ModelError",
    "NotFound",
    "RunResult",
    "__version__",
]

if TYPE_CHECKING:
    from .api import AgntTraces, RunResult
    from .errors import AgntError, CompileError, Conflict, InvalidArgument, ModelError, NotFound

_LAZY = {
    "AgntTraces": ".api",
    "RunResult": ".api",
    "AgntError": ".errors",
    "CompileError": ".errors",
    "Conflict": ".errors",
    "InvalidArgument": ".errors",
    "ModelError": ".errors",
    "NotFound": ".errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agnt_traces' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
