"""Time a playground mutation (edit_block) on a session with many runs.

    PYTHONPATH=src python bench/bench_session.py [--runs 22] [--edits 200]

Opens a session from a trace of the offline model (agnt-local/echo), runs it ``--runs`` times (each run
is a playground trace), then times ``--edits`` edit_block calls and prints the median and p95 in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from agnt_traces.app import open_app
from agnt_traces.config import Settings

ECHO = {"provider": "agnt-local", "name": "echo", "params": {}}
CONTENT = {
    "blocks": [
        {"id": "system", "role": "system", "content": "You are the support assistant of {{ company }}. " * 12},
        {"id": "q", "role": "user", "content": "Order {{ order }}"},
    ],
    "variables": [
        {"name": "company", "type": "string", "required": True},
        {"name": "order", "type": "integer", "required": True},
    ],
    "model": ECHO,
}


def _id(view: Any) -> str:
    return str(view["id"] if isinstance(view, dict) else view.id)


async def main(runs: int, edits: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=str(Path(tmp) / "bench.db"), tenant="default")
        async with open_app(settings) as app:
            await app.prompts.upsert("default", "support", CONTENT)
            await app.prompts.publish("default", "support")
            question = [{"role": "user", "content": "Where is my parcel? " * 5}]
            trace = (
                await app.prompts.run(
                    "default", "support", variables={"company": "Acme", "order": 1}, messages=question
                )
            )["trace"]
            sid = _id(await app.playground.open("default", trace["id"]))
            for _ in range(runs):
                await app.playground.run("default", sid, fresh=True)
            timings = []
            for i in range(edits):
                started = time.perf_counter()
                await app.playground.edit_block("default", sid, "q", content=f"Order {{{{ order }}}} #{i}")
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            p95 = timings[int(len(timings) * 0.95) - 1]
            median = statistics.median(timings)
            print(f"edit_block, session with {runs} runs: median {median:.2f} ms, p95 {p95:.2f} ms ({edits} edits)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=22)
    parser.add_argument("--edits", type=int, default=200)
    args = parser.parse_args()
    anyio.run(main, args.runs, args.edits)
