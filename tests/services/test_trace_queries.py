"""Client arguments become the store's resolved filters in one place; a cursor stays bound to the window
as the client wrote it, so a relative window pages on while the clock moves."""

from __future__ import annotations

import pytest

from agnt_traces.app import App
from agnt_traces.errors import InvalidArgument
from agnt_traces.ids import ms_to_rfc3339, now_ms
from agnt_traces.records import StatsFilter, TraceFilter
from agnt_traces.services.queries import StatsQuery, TraceQuery, validate_query
from factories import trace_payload

pytestmark = pytest.mark.anyio


def test_a_query_resolves_into_a_filter_with_times_in_ms() -> None:
    before = now_ms()
    q = validate_query(TraceQuery, {"since": "2h", "until": "2026-03-01T00:00:00Z", "tags": ["a"], "query": "  "})
    f = q.to_filter()
    assert isinstance(f, TraceFilter)
    assert before - 2 * 3_600_000 <= f.since_ms <= now_ms() - 2 * 3_600_000  # type: ignore[operator]
    assert f.until_ms == 1772323200000 and f.tags == ("a",) and f.query is None
    assert (f.since_text, f.until_text) == ("2h", "2026-03-01T00:00:00Z")
    s = validate_query(StatsQuery, {"group_by": "model", "since": "2026-03-01T00:00:00Z"}).to_filter()
    assert s == StatsFilter(group_by="model", since_ms=1772323200000, until_ms=None, prompt_name=None)


@pytest.mark.parametrize(
    ("model", "args", "field"),
    [
        (TraceQuery, {"since": "last tuesday"}, "since"),
        (TraceQuery, {"until": "soon"}, "until"),
        (TraceQuery, {"limit": 0}, "limit"),
        (TraceQuery, {"colour": "red"}, "colour"),
        (StatsQuery, {"until": "later"}, "until"),
        (StatsQuery, {"group_by": "tenant"}, "group_by"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(model: type, args: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        validate_query(model, args)


@pytest.mark.both_stores
async def test_a_cursor_follows_a_relative_window_and_refuses_another_one(app: App) -> None:
    now = now_ms()
    for i in range(3):
        await app.traces.ingest("default", trace_payload(createdAt=ms_to_rfc3339(now - (i + 1) * 60_000)))
    first = await app.traces.list("default", TraceQuery(since="1h", limit=2))
    assert len(first.traces) == 2 and first.next_cursor
    rest = await app.traces.list("default", TraceQuery(since="1h", limit=2, cursor=first.next_cursor))
    assert len(rest.traces) == 1 and rest.next_cursor is None
    with pytest.raises(InvalidArgument, match="cursor"):
        await app.traces.list("default", TraceQuery(since="2h", limit=2, cursor=first.next_cursor))
