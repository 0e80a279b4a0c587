"""Roll-ups of traces at four grains (day, hour, ten minutes, minute) and six projections, kept as traces
are written, so that ``trace_stats`` over any window reads a few thousand small rows.

A window is covered coarsest grain first: whole days, then whole hours at its two edges, then whole ten
minutes, then whole minutes; only the sub-minute edges are read from the traces themselves. So a window
reads at most 2 × (23 + 5 + 9) periods besides its days, and at most two minutes of raw traces.

A projection keeps only the key columns one kind of question needs (by prompt; by prompt and version; by
model; by prompt and model; by status; by prompt and status), so a period has as many rows as the
answer has groups, not as many as the product of every prompt, version, model and status. Columns a
projection drops hold '' or 0.

Each row holds counts, token and cost sums and a duration histogram with logarithmic buckets 4 % apart
(store.rollups: percentiles within ±2 %), packed as: one byte for the width of a count (1, 2, 4 or 8
bytes), four bytes for the first bucket (little-endian), then one count per bucket up to the last
non-empty one; or, where few buckets are used (a minute's traces), a zero byte, the first bucket, then
(gap from the previous bucket, count) byte pairs. Read back as one Python integer with a 64-bit lane per
bucket, the histograms of many rows add up with one integer addition each.

Roll-ups are keyed by the millisecond of a trace's row id (``seq >> SLOT_BITS``), as the raw edges are read:
the time the trace says it was created, except that a millisecond holding more than 4,096 traces spills
into the next.

On SQLite, roll-ups lag small writes (as a continuous aggregate with real-time reads does): a write of
fewer than ``SqliteStore.rollup_inline_from`` new traces only notes them in ``trace_stats_pending``, in the
same transaction; the store adds the noted traces to the roll-ups once a thousand or so have gathered,
when it opens and when it closes (``roll_up_pending``: transactions of their own, a few hundred traces
each). Larger writes add their traces to the roll-ups themselves. ``read_sqlite`` reads the roll-ups, the
sub-minute edges and the noted traces inside one read transaction, so every answer counts every committed
trace exactly once. A single trace touches 24 roll-up rows (six projections at four grains); a thousand
traces of a few prompts and models touch not many more, so small writes (one trace per request) no longer
pay for 24 row updates each.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .rollups import Agg, bucket

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "GRAINS",
    "MINUTE_MS",
    "PG_UPSERT",
    "RAW_COLUMNS",
    "GroupTotals",
    "RollupBatch",
    "batch_of",
    "dims_for",
    "hist_int",
    "int_hist",
    "pack_hist",
    "plan_window",
    "postgres_rows",
    "read_sqlite",
    "roll_up_pending",
    "unpack_hist",
    "write_sqlite",
]

MINUTE_MS = 60_000
#: Minutes per period, coarsest first: day, hour, ten minutes, minute. Each divides the one before.
GRAINS = (1440, 60, 10, 1)

# Projections: which key columns a row keeps.
BY_PROMPT, BY_VERSION, BY_MODEL, BY_PROMPT_MODEL, BY_STATUS, BY_PROMPT_STATUS = 1, 2, 3, 4, 5, 6
PROJECTIONS = (BY_PROMPT, BY_VERSION, BY_MODEL, BY_PROMPT_MODEL, BY_STATUS, BY_PROMPT_STATUS)

_LANE_BITS = 64
_WIDTH_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}
_BIG_ENDIAN = sys.byteorder == "big"
assert array("I").itemsize == 4 and array("Q").itemsize == 8

#: (dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status)
StatKey = tuple[int, int, int, str, int, str, str, int]


def dims_for(group_by: str, prompt_filter: bool) -> int:
    """The projection that answers ``group_by`` (with or without a prompt filter) with the fewest rows."""
    if group_by == "prompt":
        return BY_PROMPT
    if group_by == "version":
        return BY_VERSION
    if group_by == "model":
        return BY_PROMPT_MODEL if prompt_filter else BY_MODEL
    return BY_PROMPT_STATUS if prompt_filter else BY_STATUS


def _without_prompt(dims: int, prompt: str, version: int, provider: str, model: str, status: int) -> tuple[Any, ...]:
    """The key of the projection without the prompt that a key of a projection with it rolls up into."""
    if dims == BY_VERSION:
        return (BY_PROMPT, prompt, 0, "", "", 0)  # by prompt: the versions summed
    if dims == BY_PROMPT_MODEL:
        return (BY_MODEL, "", 0, provider, model, 0)
    return (BY_STATUS, "", 0, "", "", status)


# -- histograms -------------------------------------------------------------------------------------------


def pack_hist(hist: dict[int, int]) -> bytes:
    """``{bucket: count}`` as stored (b"" when empty)."""
    if not hist:
        return b""
    order = sorted(hist)
    lo, hi = order[0], order[-1]
    top = max(hist.values())
    head = lo.to_bytes(4, "little")
    if top < 1 << 8 and 2 * len(order) < hi - lo + 1:
        # Sparse (a minute's few traces over a wide range): (gap from the previous bucket, count) byte pairs.
        pairs, prev = bytearray(), lo
        for b in order:
            if b - prev > 255:
                break
            pairs += bytes((b - prev, hist[b]))
            prev = b
        else:
            return b"\x00" + head + bytes(pairs)
    counts = [0] * (hi - lo + 1)
    for b, n in hist.items():
        counts[b - lo] = n
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    packed = array(_WIDTH_CODE[width], counts)
    if _BIG_ENDIAN:
        packed.byteswap()
    return bytes((width,)) + head + packed.tobytes()


def hist_int(blob: bytes) -> int:
    """A stored histogram as one integer with a 64-bit lane per bucket (lane ``b`` holds bucket ``b``)."""
    if not blob:
        return 0
    width = blob[0]
    lo = int.from_bytes(blob[1:5], "little")
    if width == 0:  # sparse: each count (< 256) into the low byte of its lane
        sparse = bytearray(8 * (sum(blob[5::2]) + 1))
        at = 0
        for gap, count in zip(blob[5::2], blob[6::2], strict=True):
            at += 8 * gap
            sparse[at] = count
        return int.from_bytes(sparse, "little") << (_LANE_BITS * lo)
    if width == 8:
        lanes = bytes(blob[5:])
    else:
        narrow = array(_WIDTH_CODE[width], bytes(blob[5:]))
        if _BIG_ENDIAN:
            narrow.byteswap()
        wide = array("Q", narrow)
        if _BIG_ENDIAN:
            wide.byteswap()
        lanes = wide.tobytes()
    return int.from_bytes(lanes, "little") << (_LANE_BITS * lo)


def lanes_int(lo: int, counts: list[int]) -> int:
    """PostgreSQL's (first bucket, counts) as one integer with a 64-bit lane per bucket."""
    if not counts:
        return 0
    wide = array("Q", counts)
    if _BIG_ENDIAN:
        wide.byteswap()
    return int.from_bytes(wide.tobytes(), "little") << (_LANE_BITS * lo)


def int_hist(value: int) -> dict[int, int]:
    """``{bucket: count}`` from the 64-bit-lane integer."""
    if not value:
        return {}
    lo = ((value & -value).bit_length() - 1) // _LANE_BITS  # the first non-empty lane
    value >>= _LANE_BITS * lo
    lanes = array("Q")
    lanes.frombytes(value.to_bytes(-(-value.bit_length() // _LANE_BITS) * 8, "little"))
    if _BIG_ENDIAN:
        lanes.byteswap()
    return {lo + i: n for i, n in enumerate(lanes) if n}


def unpack_hist(blob: bytes) -> dict[int, int]:
    """``{bucket: count}`` from a stored histogram."""
    if not blob:
        return {}
    width = blob[0]
    lo = int.from_bytes(blob[1:5], "little")
    if width == 0:
        hist, b = {}, lo
        for i in range(5, len(blob), 2):
            b += blob[i]
            hist[b] = blob[i + 1]
        return hist
    counts = array(_WIDTH_CODE[width], bytes(blob[5:]))
    if _BIG_ENDIAN:
        counts.byteswap()
    return {lo + i: n for i, n in enumerate(counts) if n}


# -- writing ----------------------------------------------------------------------------------------------


class RollupBatch:
    """The roll-up rows a batch of traces adds, at every grain and projection."""

    __slots__ = ("_minutes",)

    def __init__(self) -> None:
        # (dims, minute, prompt, version, provider, model, status) -> [count, errors, in, out, total, cost,
        # priced, {bucket: count}]
        self._minutes: dict[tuple[Any, ...], list[Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._minutes)

    def add(self, created_ms: int, row: dict[str, Any]) -> None:
        """Count one trace; ``row`` has the columns of ``rollups.rollup_fields`` (or the stored ones)."""
        minute = created_ms // MINUTE_MS
        status = row["status"]
        cost = row["cost"]
        duration = row["duration"]
        b = bucket(duration) if duration is not None and duration >= 0 else None
        inp, out, total = row["input_tokens"], row["output_tokens"], row["total_tokens"]
        prompt = row["prompt_name"] or ""
        acc = self._minutes
        # The projections with the prompt only: the three without it are summed from them per batch (rows()).
        for key in (
            (BY_VERSION, minute, prompt, row["prompt_version"] or 0, "", "", 0),
            (BY_PROMPT_MODEL, minute, prompt, 0, row["model_provider"], row["model_name"], 0),
            (BY_PROMPT_STATUS, minute, prompt, 0, "", "", status),
        ):
            agg = acc.get(key)
            if agg is None:
                agg = acc[key] = [0, 0, 0, 0, 0, 0.0, 0, {}]
            _count(agg, status, inp, out, total, cost, b)

    def rows(self) -> dict[StatKey, list[Any]]:
        """Every (dims, grain, period, …key) this batch adds to, with its sums: minutes, then coarser."""
        out: dict[StatKey, list[Any]] = {}
        for (dims, minute, *rest), agg in self._minutes.items():
            other = _without_prompt(dims, *rest)
            keys: list[tuple[Any, ...]] = [(dims, grain, minute // grain, *rest) for grain in GRAINS]
            keys += [(other[0], grain, minute // grain, *other[1:]) for grain in GRAINS]
            for key in keys:
                have = out.get(key)
                if have is None:
                    out[key] = [*agg[:7], dict(agg[7])]
                else:
                    _add_into(have, agg)
        return out


def _count(
    agg: list[Any], status: int, inp: int, out: int, total: int, cost: float | None, bucket_no: int | None
) -> None:
    """Add one trace to ``agg`` ([count, errors, in, out, total, cost, priced, {bucket: count}])."""
    agg[0] += 1
    agg[1] += status
    agg[2] += inp
    agg[3] += out
    agg[4] += total
    if cost is not None:
        agg[5] += cost
        agg[6] += 1
    if bucket_no is not None:
        hist = agg[7]
        hist[bucket_no] = hist.get(bucket_no, 0) + 1


def batch_of(traces: Iterable[tuple[int, dict[str, Any]]]) -> RollupBatch:
    """A RollupBatch of (created_ms, fields) pairs."""
    batch = RollupBatch()
    for created_ms, fields in traces:
        batch.add(created_ms, fields)
    return batch


def _add_into(have: list[Any], agg: list[Any]) -> None:
    for i in range(7):
        have[i] += agg[i]
    hist = have[7]
    for b, n in agg[7].items():
        hist[b] = hist.get(b, 0) + n


_PERIODS_PER_READ = 400
_SQLITE_KEY = "dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status"
_SUMS = "count, errors, input_tokens, output_tokens, total_tokens, cost, priced"


def write_sqlite(db: sqlite3.Connection, tenant_id: int, batch: RollupBatch) -> None:
    """Add ``batch`` to the stored roll-ups (inside the caller's write transaction: one writer)."""
    rows = batch.rows()
    if not rows:
        return
    # The stored rows of exactly the periods this batch touches (never the periods between them: one late
    # trace among today's would otherwise read a month of rows), a few hundred periods per read.
    periods: dict[tuple[int, int], set[int]] = {}
    for dims, grain, period, *_ in rows:
        periods.setdefault((dims, grain), set()).add(period)
    stored: dict[StatKey, tuple[Any, ...]] = {}
    for (dims, grain), touched in periods.items():
        ordered = sorted(touched)
        for i in range(0, len(ordered), _PERIODS_PER_READ):
            chunk = ordered[i : i + _PERIODS_PER_READ]
            for r in db.execute(
                f"SELECT {_SQLITE_KEY}, {_SUMS}, hist FROM trace_stats_rollups "
                f"WHERE tenant_id = ? AND dims = ? AND grain = ? AND period IN ({','.join('?' * len(chunk))})",
                (tenant_id, dims, grain, *chunk),
            ):
                stored[r[:8]] = r[8:]
    params = []
    for key, agg in rows.items():
        old = stored.get(key)
        if old is None:
            hist = pack_hist(agg[7])
            sums = agg[:7]
        else:
            sums = [a + b for a, b in zip(agg[:7], old[:7], strict=True)]
            merged = unpack_hist(old[7])
            for b, n in agg[7].items():
                merged[b] = merged.get(b, 0) + n
            hist = pack_hist(merged)
        params.append((tenant_id, *key, *sums, hist))
    db.executemany(
        f"INSERT OR REPLACE INTO trace_stats_rollups(tenant_id, {_SQLITE_KEY}, {_SUMS}, hist) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        params,
    )


_RAW_NAMES = (
    "prompt_name",
    "prompt_version",
    "model_provider",
    "model_name",
    "status",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "duration",
)


def roll_up_pending(db: sqlite3.Connection, limit: int, slot_bits: int) -> int:
    """Add up to ``limit`` noted traces (``trace_stats_pending``) to the roll-ups and forget them, inside the
    caller's write transaction. Returns how many were rolled up (fewer than ``limit``: none is left)."""
    rows = db.execute(
        f"SELECT p.tenant_id, p.seq, {RAW_COLUMNS} FROM trace_stats_pending p JOIN traces t ON t.seq = p.seq "
        "ORDER BY p.tenant_id, p.seq LIMIT ?",
        (limit,),
    ).fetchall()
    spans: dict[int, tuple[int, int]] = {}
    batches: dict[int, RollupBatch] = {}
    for tenant_id, seq, *cols in rows:
        batch = batches.get(tenant_id)
        if batch is None:
            batch = batches[tenant_id] = RollupBatch()
            spans[tenant_id] = (seq, seq)
        else:
            spans[tenant_id] = (spans[tenant_id][0], seq)
        batch.add(seq >> slot_bits, dict(zip(_RAW_NAMES, cols, strict=True)))
    for tenant_id, batch in batches.items():
        write_sqlite(db, tenant_id, batch)
    if len(rows) < limit:
        db.execute("DELETE FROM trace_stats_pending")  # all of it was read (and no writer runs meanwhile)
    else:
        db.executemany(
            "DELETE FROM trace_stats_pending WHERE tenant_id = ? AND seq BETWEEN ? AND ?",
            [(tenant_id, lo, hi) for tenant_id, (lo, hi) in spans.items()],
        )
    return len(rows)


#: PostgreSQL: add one row to the stored roll-ups; concurrent writers add up (histograms by agnt_hist_add).
PG_UPSERT = (
    f"INSERT INTO trace_stats_rollups(tenant_id, {_SQLITE_KEY}, {_SUMS}, hist_lo, hist) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    f"ON CONFLICT (tenant_id, {_SQLITE_KEY}) DO UPDATE SET "
    "count = r.count + excluded.count, errors = r.errors + excluded.errors, "
    "input_tokens = r.input_tokens + excluded.input_tokens, output_tokens = r.output_tokens + excluded.output_tokens, "
    "total_tokens = r.total_tokens + excluded.total_tokens, cost = r.cost + excluded.cost, "
    "priced = r.priced + excluded.priced, "
    "hist_lo = agnt_hist_lo(r.hist_lo, r.hist, excluded.hist_lo, excluded.hist), "
    "hist = agnt_hist_add(r.hist_lo, r.hist, excluded.hist_lo, excluded.hist)"
).replace("INTO trace_stats_rollups(", "INTO trace_stats_rollups AS r(", 1)


def postgres_rows(tenant_id: int, batch: RollupBatch) -> list[tuple[Any, ...]]:
    """PG_UPSERT's parameters for ``batch``, in key order (concurrent writers never wait in a cycle)."""
    out = []
    for key, agg in sorted(batch.rows().items()):
        hist: dict[int, int] = agg[7]
        lo = min(hist) if hist else 0
        counts = [hist.get(b, 0) for b in range(lo, max(hist) + 1)] if hist else []
        out.append((tenant_id, *key, *agg[:7], lo, counts))
    return out


# -- reading ----------------------------------------------------------------------------------------------

#: (grain, first period or None, end period (exclusive) or None)
Segment = tuple[int, int | None, int | None]


def plan_window(since: int | None, until: int | None) -> tuple[list[Segment], list[tuple[int, int]]]:
    """The roll-up periods and the raw [start, end) millisecond ranges that exactly cover [since, until)."""
    segments: list[Segment] = []
    raw: list[tuple[int, int]] = []

    def cover(lo: int | None, hi: int | None, level: int) -> None:
        if lo is not None and hi is not None and lo >= hi:
            return
        if level == len(GRAINS):
            assert lo is not None and hi is not None
            raw.append((lo, hi))
            return
        size = GRAINS[level] * MINUTE_MS
        first = None if lo is None else -(-lo // size)  # the first whole period
        end = None if hi is None else hi // size  # after the last whole period
        if first is not None and end is not None and first >= end:
            cover(lo, hi, level + 1)
            return
        segments.append((GRAINS[level], first, end))
        if lo is not None and first is not None:
            cover(lo, first * size, level + 1)
        if hi is not None and end is not None:
            cover(end * size, hi, level + 1)

    cover(since, until, 0)
    return segments, raw


def segment_sql(segment: Segment, placeholder: str = "?") -> tuple[str, list[int]]:
    """The WHERE terms (after tenant, dims) of one segment, and their parameters."""
    grain, first, end = segment
    where, params = [f"grain = {placeholder}"], [grain]
    if first is not None:
        where.append(f"period >= {placeholder}")
        params.append(first)
    if end is not None:
        where.append(f"period < {placeholder}")
        params.append(end)
    return " AND ".join(where), params


#: The columns of a trace that GroupTotals.add_raw reads, in its order.
RAW_COLUMNS = (
    "prompt_name, prompt_version, model_provider, model_name, status, input_tokens, output_tokens, total_tokens, "
    "cost, duration"
)


class GroupTotals:
    """Sums per stats group from roll-up rows and raw traces; histograms added as 64-bit-lane integers."""

    __slots__ = ("_group_of", "_groups")

    def __init__(self, group_of: Any) -> None:
        self._group_of = group_of
        self._groups: dict[tuple[Any, ...], list[Any]] = {}

    def add_rows(self, rows: Iterable[tuple[Any, ...]], lanes: Any = hist_int) -> None:
        """Rows of (prompt, version, provider, model, status, count, errors, in, out, total, cost, priced,
        hist...) where ``lanes(*hist...)`` is the histogram as an integer."""
        groups, group_of = self._groups, self._group_of
        for r in rows:
            g = group_of((0, r[0], r[1], r[2], r[3], r[4]))
            have = groups.get(g)
            h = lanes(*r[12:])
            if have is None:
                groups[g] = [r[5], r[6], r[7], r[8], r[9], r[10], r[11], h]
            else:
                have[0] += r[5]
                have[1] += r[6]
                have[2] += r[7]
                have[3] += r[8]
                have[4] += r[9]
                have[5] += r[10]
                have[6] += r[11]
                have[7] += h

    def add_raw(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Traces as (prompt, version, provider, model, status, in, out, total, cost, duration) rows."""
        group_of = self._group_of
        acc: dict[tuple[Any, ...], list[Any]] = {}
        for prompt, version, provider, model, status, inp, out, total, cost, duration in rows:
            g = group_of((0, prompt or "", version or 0, provider, model, status))
            agg = acc.get(g)
            if agg is None:
                agg = acc[g] = [0, 0, 0, 0, 0, 0.0, 0, {}]
            # An unknown duration (the store's negative sentinel) has no bucket.
            b = bucket(duration) if duration is not None and duration >= 0 else None
            _count(agg, status, inp, out, total, cost, b)
        groups = self._groups
        for g, agg in acc.items():
            have = groups.get(g)
            lanes = _dict_lanes(agg[7])
            if have is None:
                groups[g] = [*agg[:7], lanes]
            else:
                for i in range(7):
                    have[i] += agg[i]
                have[7] += lanes

    def result(self) -> dict[tuple[Any, ...], Agg]:
        """The groups' Aggs, in the order of their keys (groups of equal size then list in that order)."""
        return {
            g: Agg(
                count=a[0],
                errors=a[1],
                input_tokens=a[2],
                output_tokens=a[3],
                total_tokens=a[4],
                cost=a[5],
                priced=a[6],
                hist=int_hist(a[7]),
            )
            for g, a in sorted(self._groups.items())
        }


def _dict_lanes(hist: dict[int, int]) -> int:
    value = 0
    for b, n in hist.items():
        value += n << (_LANE_BITS * b)
    return value


@contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement inside sees the same committed state."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


def _tuples(db: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor that returns plain tuples, whatever the connection's row factory (``sqlite3.Row`` costs
    3-4 times as much per row here)."""
    cur = db.cursor()
    cur.row_factory = None
    return cur


def read_sqlite(
    db: sqlite3.Connection,
    tenant_id: int,
    group_of: Any,
    dims: int,
    since: int | None,
    until: int | None,
    prompt: str | None,
    slot_bits: int,
) -> dict[tuple[Any, ...], Agg]:
    """trace_stats' groups from the roll-ups, the raw traces of the sub-minute edges and the traces not yet
    rolled up, read in one transaction (a roll-up committing meanwhile is seen whole or not at all)."""
    with _snapshot(db):
        segments, raw = plan_window(since, until)
        totals = GroupTotals(group_of)
        for segment in segments:
            where, params = segment_sql(segment)
            sql = (
                "SELECT prompt_name, prompt_version, model_provider, model_name, status, count, errors, input_tokens, "
                f"output_tokens, total_tokens, cost, priced, hist FROM trace_stats_rollups "
                f"WHERE tenant_id = ? AND dims = ? AND {where}"
            )
            args: list[Any] = [tenant_id, dims, *params]
            if prompt:
                sql += " AND prompt_name = ?"
                args.append(prompt)
            totals.add_rows(_tuples(db).execute(sql, args))
        for start, end in raw:
            sql = f"SELECT {RAW_COLUMNS} FROM traces WHERE tenant_id = ? AND seq >= ? AND seq < ?"
            rargs: list[Any] = [tenant_id, start << slot_bits, end << slot_bits]
            if prompt:
                sql += " AND prompt_name = ?"
                rargs.append(prompt)
            totals.add_raw(_tuples(db).execute(sql, rargs))
        if segments:
            # Traces in the roll-ups' periods that are not in the roll-ups yet (the raw edges counted them already).
            sql = (
                f"SELECT p.seq, {RAW_COLUMNS} FROM trace_stats_pending p JOIN traces t ON t.seq = p.seq "
                "WHERE p.tenant_id = ?"
            )
            pargs: list[Any] = [tenant_id]
            if since is not None:
                sql += " AND p.seq >= ?"
                pargs.append(since << slot_bits)
            if until is not None:
                sql += " AND p.seq < ?"
                pargs.append(until << slot_bits)
            if prompt:
                sql += " AND t.prompt_name = ?"
                pargs.append(prompt)
            edges = [(start << slot_bits, end << slot_bits) for start, end in raw]
            totals.add_raw(
                cols
                for seq, *cols in _tuples(db).execute(sql, pargs)
                if not any(start <= seq < end for start, end in edges)
            )
        return totals.result()
