"""Overhead of ``run_prompt`` (compile + call + record the trace) over a bare ``litellm.acompletion`` to
the same local OpenAI-format server: medians of warm calls, alternating.

    .venv/bin/python bench/bench_run_prompt.py [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.llm import load_litellm
from agnt_traces.llm.policy import ModelPolicy
from modelserver import ModelServer


async def main(calls: int) -> None:
    litellm = load_litellm()
    with ModelServer() as server, tempfile.TemporaryDirectory() as tmp:
        # The local model server is an endpoint the operator allows (AGNT_TRACES_MODEL_ENDPOINTS).
        policy = ModelPolicy.build([server.base_url])
        settings = Settings(db_path=str(Path(tmp) / "bench.db"), model_policy=policy)
        async with open_app(settings) as app:
            content = {
                "blocks": [
                    {"id": "persona", "role": "system", "content": "You support {{ company }} customers."},
                    {"id": "tier", "role": "system", "content": "Premium.", "condition": "tier == 'premium'"},
                ],
                "variables": [
                    {"name": "company", "type": "string", "required": True},
                    {"name": "tier", "type": "string", "default": "standard"},
                ],
                "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base}},
            }
            await app.prompts.upsert("default", "bench", content)
            await app.prompts.publish("default", "bench")
            messages = [{"role": "user", "content": "Where is my parcel?"}]
            bare_messages = [{"role": "system", "content": "You support Acme customers.\n\nPremium."}, *messages]

            async def bare() -> None:
                await litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    api_base=server.openai_base,
                    api_key="sk-local",
                    messages=bare_messages,
                    num_retries=0,
                    max_retries=0,
                )

            async def run() -> None:
                await app.prompts.run(
                    "default", "bench", variables={"company": "Acme", "tier": "premium"}, messages=messages
                )

            for _ in range(20):  # warm both paths
                await bare()
                await run()
            b, r = [], []
            for _ in range(calls):
                t = time.perf_counter()
                await bare()
                b.append(time.perf_counter() - t)
                t = time.perf_counter()
                await run()
                r.append(time.perf_counter() - t)
    mb, mr = statistics.median(b) * 1000, statistics.median(r) * 1000
    print(f"bare litellm.acompletion      median {mb:6.2f} ms")
    print(f"run_prompt (compile+call+record) median {mr:6.2f} ms")
    print(f"overhead                       {mr - mb:+6.2f} ms  (target ≤ 5 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    asyncio.run(main(parser.parse_args().calls))
