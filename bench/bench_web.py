"""The web page's speed on a big store: how long the pages a person opens first take to render.

    python3 run.py bench bench_web.py --db traces.db [--requests 40]

Starts ``agnt-traces ui --db DB`` (the same pages as ``serve --http``, loopback, no token) on a database
already filled — e.g. by ``python3 run.py bench bench_store.py --n 1000000 --db traces.db``, whose traces
belong to tenant ``default`` — then times whole page loads over HTTP (request sent → last byte read):
the trace list newest first, filtered and sorted, a full-text search, its next page, one trace's page
(with its diff against the prompt now) and the stats page. Prints p50 / p95 / max per page.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

AGNT = str(Path(sys.executable).parent / "agnt-traces")


def start_ui(db: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [AGNT, "ui", "--db", db, "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the ui server did not start")


def timed_get(conn: http.client.HTTPConnection, path: str) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    return time.perf_counter() - t0, response.status, body


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a filled database (tenant 'default')")
    parser.add_argument("--requests", type=int, default=40, help="loads per page")
    args = parser.parse_args()
    proc, port = start_ui(args.db)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        _, status, body = timed_get(conn, "/")
        assert status == 200, status
        trace_id = re.search(r'href="/traces/([A-Za-z0-9_-]+)"', body)
        cursor = re.search(r'name="cursor" value="([^"]+)"|[?&]cursor=([^"&]+)', body)
        pages = {
            "traces, newest first": "/",
            "traces, errors of one prompt, by cost": "/?status=error&prompt_name=prompt-03&sort=cost",
            "traces, full-text search": "/?query=refund",
            "traces, sorted by duration": "/?sort=duration",
            "stats (24 h)": "/stats",
        }
        if cursor:
            pages["traces, next page"] = "/?cursor=" + (cursor.group(1) or cursor.group(2))
        if trace_id:
            pages["one trace (with its diff)"] = f"/traces/{trace_id.group(1)}"
        print(f"agnt-traces ui on {args.db}; {args.requests} loads per page (first load of each not counted)")
        for name, path in pages.items():
            timed_get(conn, path)  # warm
            samples = []
            for _ in range(args.requests):
                seconds, status, _ = timed_get(conn, path)
                assert status == 200, (path, status)
                samples.append(seconds)
            print(f"{name:40s} {summary(samples)}")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
