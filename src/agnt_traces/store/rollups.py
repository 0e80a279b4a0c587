"""Hourly roll-ups of traces, kept as traces are written, so that ``trace_stats`` reads a few thousand
rows instead of every trace.

One row per (tenant, hour, prompt, version, provider, model, status) holds counts, token and cost
sums and a duration histogram with logarithmic buckets 4 % apart (percentiles within ±2 %). Traces
whose duration is unknown are counted but not bucketed: percentiles are over known durations only. A stats
window reads whole hours from here and the partial hour at its start from the traces themselves.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..records import StatsRow, stats_group

if TYPE_CHECKING:
    from ..models import Trace

__all__ = [
    "HOUR_MS",
    "STATS_GROUPS",
    "Agg",
    "RollupKey",
    "add_trace",
    "bucket",
    "bucket_value",
    "merge_into",
    "percentile",
    "rollup_fields",
    "stats_rows",
]

HOUR_MS = 3_600_000
_BASE = math.log(1.04)
_UNIT = 1e-4  # durations are bucketed in units of 0.1 ms

RollupKey = tuple[int, str, int, str, str, int]  # hour, prompt ('' none), version (0 none), provider, model, status


def bucket(duration: float) -> int:
    return 0 if duration < _UNIT else 1 + round(math.log(duration / _UNIT) / _BASE)


def bucket_value(b: int) -> float:
    return 0.0 if b <= 0 else round(_UNIT * math.exp((b - 1) * _BASE), 6)


@dataclass(slots=True)
class Agg:
    count: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    priced: int = 0
    hist: dict[int, int] = field(default_factory=dict)

    def add(self, other: Agg) -> None:
        self.count += other.count
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cost += other.cost
        self.priced += other.priced
        for b, n in other.hist.items():
            self.hist[b] = self.hist.get(b, 0) + n


def add_trace(acc: dict[RollupKey, Agg], created_ms: int, row: dict[str, Any]) -> None:
    key: RollupKey = (
        created_ms // HOUR_MS,
        row["prompt_name"] or "",
        row["prompt_version"] or 0,
        row["model_provider"],
        row["model_name"],
        row["status"],
    )
    agg = acc.get(key)
    if agg is None:
        agg = acc[key] = Agg()
    agg.count += 1
    agg.errors += row["status"]
    agg.input_tokens += row["input_tokens"]
    agg.output_tokens += row["output_tokens"]
    agg.total_tokens += row["total_tokens"]
    if row["cost"] is not None:
        agg.cost += row["cost"]
        agg.priced += 1
    duration = row["duration"]
    if duration is not None and duration >= 0:  # unknown (None, or the store's negative sentinel): no bucket
        b = bucket(duration)
        agg.hist[b] = agg.hist.get(b, 0) + 1


def merge_into(db: sqlite3.Connection, tenant_id: int, acc: dict[RollupKey, Agg]) -> None:
    """Add ``acc`` to the stored roll-ups (inside the caller's transaction)."""
    for key, agg in acc.items():
        row = db.execute(
            "SELECT count, errors, input_tokens, output_tokens, total_tokens, cost, priced, hist FROM trace_rollups "
            "WHERE tenant_id = ? AND hour = ? AND prompt_name = ? AND prompt_version = ? AND model_provider = ? "
            "AND model_name = ? AND status = ?",
            (tenant_id, *key),
        ).fetchone()
        if row is not None:
            stored = _agg(row)
            stored.add(agg)
            agg = stored
        db.execute(
            "INSERT OR REPLACE INTO trace_rollups(tenant_id, hour, prompt_name, prompt_version, model_provider, "
            "model_name, status, count, errors, input_tokens, output_tokens, total_tokens, cost, priced, hist) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                tenant_id,
                *key,
                agg.count,
                agg.errors,
                agg.input_tokens,
                agg.output_tokens,
                agg.total_tokens,
                agg.cost,
                agg.priced,
                json.dumps(agg.hist, separators=(",", ":")),
            ),
        )


def percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return bucket_value(b)
    return None  # pragma: no cover - unreachable


def _agg(r: tuple[Any, ...]) -> Agg:
    """An Agg from (count, errors, input_tokens, output_tokens, total_tokens, cost, priced, hist JSON)."""
    return Agg(
        count=r[0],
        errors=r[1],
        input_tokens=r[2],
        output_tokens=r[3],
        total_tokens=r[4],
        cost=r[5],
        priced=r[6],
        hist={int(b): n for b, n in json.loads(r[7]).items()},
    )


def rows_to_aggs(rows: Iterable[tuple[Any, ...]]) -> Iterable[tuple[RollupKey, Agg]]:
    """(key, Agg) from rows of (hour, prompt, version, provider, model, status, <the Agg columns>)."""
    for r in rows:
        yield (r[0], r[1], r[2], r[3], r[4], r[5]), _agg(r[6:])


#: How a stats group is formed from a roll-up key.
STATS_GROUPS: dict[str, Callable[[RollupKey], tuple[Any, ...]]] = {
    "prompt": lambda k: (k[1],),
    "version": lambda k: (k[1], k[2]),
    "model": lambda k: (k[3], k[4]),
    "status": lambda k: (k[5],),
}


def rollup_fields(t: Trace) -> dict[str, Any]:
    return {
        "prompt_name": t.prompt_name,
        "prompt_version": t.prompt_version,
        "model_provider": t.model.provider,
        "model_name": t.model.name,
        "status": 1 if t.status == "error" else 0,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "total_tokens": t.total_tokens,
        "cost": t.cost,
        "duration": t.duration,
    }


def stats_rows(group_by: str, groups: dict[tuple[Any, ...], Agg]) -> list[StatsRow]:
    """``trace_stats`` rows from aggregates per group, largest group first: one builder for every store."""
    return [
        StatsRow.model_construct(
            group=stats_group(group_by, key),
            count=g.count,
            errors=g.errors,
            error_rate=round(g.errors / g.count, 4) if g.count else 0.0,
            input_tokens=g.input_tokens,
            output_tokens=g.output_tokens,
            total_tokens=g.total_tokens,
            cost=round(g.cost, 8) if g.priced else None,
            p50_duration=percentile(g.hist, 0.50),
            p95_duration=percentile(g.hist, 0.95),
        )
        for key, g in sorted(groups.items(), key=lambda kv: -kv[1].count)
    ]
