"""``agnt-traces ui``: the web page for one person on this machine (127.0.0.1, no token)."""

from __future__ import annotations

import argparse

from .common import settings_of
from .serve import _exit_now

__all__ = ["DEFAULT_UI_PORT", "cmd_ui"]

DEFAULT_UI_PORT = 8788


def cmd_ui(args: argparse.Namespace) -> int:
    from ..web.local import serve_ui

    settings = settings_of(args)
    try:
        serve_ui(settings, DEFAULT_UI_PORT if args.port is None else args.port)
    except KeyboardInterrupt:
        return _exit_now(130)
    return _exit_now(0)
