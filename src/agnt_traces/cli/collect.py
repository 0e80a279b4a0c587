"""``agnt-traces collect``: a local OTLP/HTTP endpoint (loopback, no token) writing to the stdio server's database."""

from __future__ import annotations

import argparse

from .common import settings_of
from .serve import _exit_now

__all__ = ["cmd_collect"]


def cmd_collect(args: argparse.Namespace) -> int:
    from ..http.collect import DEFAULT_COLLECT_PORT, serve_collect

    settings = settings_of(args)
    try:
        serve_collect(settings, port=DEFAULT_COLLECT_PORT if args.port is None else args.port)
    except KeyboardInterrupt:
        return _exit_now(130)
    return _exit_now(0)
