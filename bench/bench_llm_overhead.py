"""What ``call_model`` adds over a bare ``litellm.acompletion``, on warm calls to a local model server.

    .venv/bin/python bench/bench_llm_overhead.py [--n 200] [--stream]

Starts the test model server (tests/modelserver.py: OpenAI wire format on 127.0.0.1, Nagle off),
warms both paths up, then times ``--n`` calls of each, interleaved (so drift hits both alike):

* bare:       ``litellm.acompletion(model="openai/gpt-4o-mini", api_base=..., num_retries=0, max_retries=0)``
* call_model: ``agnt_traces.llm.call_model`` (params scrubbing, retry loop, timeout scope, result
              building, cost), same model and server.
* raw HTTP:   one httpx POST of the same body, for scale (what LiteLLM itself adds).

Prints the median of each and the differences in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from agnt_traces import llm  # noqa: E402
from agnt_traces.llm import CallSettings, call_model  # noqa: E402
from agnt_traces.llm.policy import ModelPolicy  # noqa: E402
from agnt_traces.models import ModelConfig  # noqa: E402
from modelserver import ModelServer  # noqa: E402

SYSTEM = "You are terse."
MESSAGES = [{"role": "user", "content": "hello there world"}]


async def main(n: int, stream: bool) -> None:
    import httpx

    server = ModelServer().start()
    try:
        litellm = await llm.preload()
        model = ModelConfig(provider="openai", name="gpt-4o-mini", params={"api_base": server.openai_base})
        # The local model server is an endpoint the operator allows (AGNT_TRACES_MODEL_ENDPOINTS).
        settings = CallSettings(timeout=10, stream=stream, policy=ModelPolicy.build([server.base_url], max_timeout=10))
        full = [{"role": "system", "content": SYSTEM}, *MESSAGES]
        extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}

        async def bare() -> None:
            resp = await litellm.acompletion(
                model="openai/gpt-4o-mini",
                api_base=server.openai_base,
                api_key=llm.LOCAL_API_KEY,
                messages=full,
                num_retries=0,
                max_retries=0,
                timeout=10,
                **extra,
            )
            if stream:
                chunks = [c async for c in resp]
                litellm.stream_chunk_builder(chunks, messages=full)

        async def ours() -> None:
            result = await call_model(model, SYSTEM, MESSAGES, settings=settings)
            assert result.status == "success", result.error

        async with httpx.AsyncClient() as client:

            async def raw() -> None:
                r = await client.post(
                    f"{server.openai_base}/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": full, **extra},
                    headers={"Authorization": f"Bearer {llm.LOCAL_API_KEY}"},
                )
                r.read()

            timings: dict[str, list[float]] = {"raw HTTP": [], "bare acompletion": [], "call_model": []}
            fns = {"raw HTTP": raw, "bare acompletion": bare, "call_model": ours}
            for fn in fns.values():  # warm-up: clients, pools, lazy imports
                for _ in range(10):
                    await fn()
            for _ in range(n):
                for name, fn in fns.items():
                    t0 = time.perf_counter()
                    await fn()
                    timings[name].append((time.perf_counter() - t0) * 1000)
        await llm.aclose()
    finally:
        server.stop()

    med = {k: statistics.median(v) for k, v in timings.items()}
    print(f"warm calls to a local OpenAI-format server, median of {n} each ({'streaming' if stream else 'plain'}):")
    for name, value in med.items():
        print(f"  {name:<17} {value:7.3f} ms")
    print(f"  call_model - bare acompletion = {med['call_model'] - med['bare acompletion']:+.3f} ms")
    print(f"  bare acompletion - raw HTTP   = {med['bare acompletion'] - med['raw HTTP']:+.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.stream))
