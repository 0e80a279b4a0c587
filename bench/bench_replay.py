"""A replay of 200 golden cases x 2 models on the local model server: wall time, and what the replay adds
per case over the bare model calls.

    .venv/bin/python bench/bench_replay.py [--cases 200] [--repeat 3]

Starts the test model server (tests/modelserver.py: OpenAI and Anthropic wire formats on 127.0.0.1), makes a
prompt on a fresh SQLite file, runs it ``--cases`` times with different variables and pins every trace as a
golden case with two checks (contains, max_tokens). Then, ``--repeat`` times each, interleaved:

* bare:    the same 2 x cases requests (each case's compiled prompt on both models) through
           ``agnt_traces.llm.call_model``, 4 at a time — the floor: model calls and nothing else;
* replay:  ``run_replay(fresh=true, models=[openai, anthropic])`` until ``get_replay`` says it is done —
           compile, call, record a trace, check, diff and report, 4 calls at a time;
* cached:  the same replay again without ``fresh``: every answer comes from the call cache (no model call).

Prints the median wall time of each, and (replay - bare) / cases as the overhead per case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agnt_traces import llm  # noqa: E402
from agnt_traces.app import open_app  # noqa: E402
from agnt_traces.compiler import compile_prompt  # noqa: E402
from agnt_traces.config import Settings  # noqa: E402
from agnt_traces.models import ModelConfig, PromptContent  # noqa: E402
from modelserver import ModelServer  # noqa: E402

CONCURRENCY = 4


async def main(cases: int, repeat: int) -> None:
    server = ModelServer().start()
    os.environ["AGNT_TRACES_MODEL_ENDPOINTS"] = server.base_url
    openai = {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base}}
    claude = {
        "provider": "anthropic",
        "name": "claude-sonnet-4-5",
        "params": {"api_base": server.anthropic_base, "max_tokens": 200},
    }
    content = {
        "blocks": [
            {"id": "persona", "role": "system", "content": "You answer for {{ company }}."},
            {"id": "ask", "role": "user", "content": "Question {{ n }}: {{ question }} Sign off: Kind regards."},
        ],
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
            {"name": "n", "type": "integer", "required": True},
        ],
        "model": openai,
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=str(Path(tmp) / "bench.db"), model_timeout=10)
        async with open_app(settings) as app:
            await llm.preload()
            await app.prompts.upsert("default", "bench", content)
            await app.prompts.publish("default", "bench")
            ids = []
            for i in range(cases):
                values = {"company": "Acme", "question": f"where is parcel {i}?", "n": i}
                ids.append((await app.prompts.run("default", "bench", variables=values))["trace"]["id"])
            await app.golden.pin(
                "default",
                "bench",
                trace_ids=ids,
                required=True,
                checks=[{"type": "contains", "value": "Kind regards"}, {"type": "max_tokens", "value": 100}],
            )
            parsed = PromptContent.model_validate(content)
            compiled = [
                compile_prompt(parsed, {"company": "Acme", "question": f"where is parcel {i}?", "n": i})
                for i in range(cases)
            ]
            models = [ModelConfig.model_validate(openai), ModelConfig.model_validate(claude)]
            call_settings = app.prompts.runner.call_settings()

            async def bare() -> float:
                limit = asyncio.Semaphore(CONCURRENCY)

                async def one(c: object, m: ModelConfig) -> None:
                    async with limit:
                        r = await llm.call_model(m, c.manifest["system"], c.messages, None, call_settings)  # type: ignore[attr-defined]
                        assert r.ok, r.error

                start = time.perf_counter()
                await asyncio.gather(*(one(c, m) for c in compiled for m in models))
                return time.perf_counter() - start

            async def replay(fresh: bool) -> tuple[float, dict[str, object]]:
                start = time.perf_counter()
                started = await app.golden.run("default", "bench", models=[openai, claude], fresh=fresh)
                while True:
                    view = await app.golden.get("default", started["id"], wait_seconds=30, max_cases=0)
                    if view["status"] != "running":
                        break
                return time.perf_counter() - start, view

            await bare()  # warm both providers' clients
            times: dict[str, list[float]] = {"bare": [], "replay": [], "cached": []}
            last: dict[str, object] = {}
            for _ in range(repeat):
                times["bare"].append(await bare())
                t, view = await replay(fresh=True)
                assert view["status"] == "passed", view
                times["replay"].append(t)
                t, view = await replay(fresh=False)
                assert view["summary"]["modelCalls"] == 0, view["summary"]  # type: ignore[index]
                times["cached"].append(t)
                last = view
    server.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    calls = cases * len(models)
    print(f"{cases} cases x 2 models = {calls} calls, {CONCURRENCY} at a time, median of {repeat}")
    for k in ("bare", "replay", "cached"):
        print(f"  {k:7s} {med[k]:7.2f} s   ({med[k] / calls * 1000:6.2f} ms per call)")
    print(f"  replay overhead over bare calls: {(med['replay'] - med['bare']) / cases * 1000:.2f} ms per case")
    print(f"  cached replay summary: {last.get('summary')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    a = parser.parse_args()
    asyncio.run(main(a.cases, a.repeat))
