"""Logging a failure without leaking it: a log line at the default levels never carries a traceback, a
server file path or what a provider sent; the full traceback is there at DEBUG for whoever debugs."""

from __future__ import annotations

import logging
import sys

__all__ = ["log_failure"]


def log_failure(logger: logging.Logger, message: str, *args: object, level: int = logging.ERROR) -> None:
    """Log ``message % args`` with the current exception's type (not its text, which may hold a path or a
    provider's answer) at ``level``; the traceback goes to DEBUG only."""
    exc = sys.exc_info()[1]
    kind = type(exc).__name__ if exc is not None else "no exception"
    logger.log(level, message + " (%s)", *args, kind)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(message + ": traceback", *args, exc_info=True)
