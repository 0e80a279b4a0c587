"""Garbage collection in a server process: the objects it keeps for life are not traversed again and again.

CPython frees most objects by reference counting; its cycle collector also runs, by default, a young
collection every 700 net allocations of container objects and, now and then, a full one over every object
the process holds. In a server that is about 110,000 objects from its imports alone (more once LiteLLM is
loaded), and the request objects that outlive two young collections (a request in flight for a few
milliseconds does) pile up in the old generation until a full collection: measured under MCP ingest over
HTTP, 18 full collections in ten seconds took 60 ms each (10 % of the CPU and the whole p99 latency), and
2,700 young ones another 3 %.

A server process (``serve``, ``serve --http``, ``ui``, ``collect``) therefore:

- freezes what is alive once it is ready, and again after LiteLLM's import (``gc.freeze``: those objects
  stay, as they would anyway, and collections no longer traverse them; the young garbage is collected just
  before, so a freeze in the middle of traffic keeps little of it for good);
- collects the young generation every 10,000 allocations instead of 700 (most request objects are freed
  by reference counting before a collection sees them; cyclic garbage waits a little longer).

Only server processes do this: a library user's process (``AgntTraces``, the LiteLLM callback) and the
tests keep the interpreter's defaults.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "serving", "settle"]

YOUNG_THRESHOLD = 10_000

_serving = False


def serving() -> None:
    """This process is a server from now on (called once by its entry point, before it serves)."""
    global _serving
    _serving = True
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def settle() -> None:
    """In a server process: what is alive now (start-up done, a big import finished) is not traversed by
    later collections; the young garbage is collected first, so little of it is kept for good (LiteLLM loads
    in the middle of traffic). Nothing anywhere else."""
    if _serving:
        gc.collect(1)  # the young generations only: milliseconds, where a full collection takes 60
        gc.freeze()
