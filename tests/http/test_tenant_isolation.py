"""A hostile tenant, with an ordinary token of its own, against a real ``agnt-traces serve --http`` process.

The attacker cannot read the victim's data (other suites check that); here it tries to hurt the victim
another way: make the server send the operator's model key to an endpoint of its choosing, starve the one
event loop or the one database reader, exhaust sessions, or crash a request. Meanwhile the victim's own
process (``tests/victim_probe.py``) keeps timing its list, get and ingest calls. Each attack must end in a
clear refusal (a SPEC §4 status and code) or a bounded time, never a 500, and the victim's p99 must stay low.
``tests/isolation.py`` is the harness; ``bench/bench_isolation.py`` prints the same scenario as a table.

Corpus per tenant: ``AGNT_ISOLATION_CORPUS`` (default 20,000). ``-m slow`` adds the 50,000 corpus and a
flood to the SDK's global session limit.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Awaitable, Callable, Iterator

import pytest

import isolation as iso
from http_helpers import STATUS_OF

pytestmark = pytest.mark.anyio

CORPUS = int(os.environ.get("AGNT_ISOLATION_CORPUS", "20000"))
#: The victim's p99 over an attack window: 100 ms is the aim; 150 ms leaves room for a noisy 2-core machine.
P99_LIMIT = 0.150
#: An attacker's request that the server works on for longer than this is not "bounded".
REQUEST_LIMIT = 5.0
#: Server memory may grow by this much over all the attacks (LiteLLM, caches, sessions).
RSS_GROWTH_LIMIT_MB = 400
FLOOD_SESSIONS = 500


@pytest.fixture(scope="module")
def scn() -> Iterator[iso.Scenario]:
    with iso.Scenario(corpus=CORPUS) as scenario:
        scenario.outcomes = {}  # type: ignore[attr-defined]
        yield scenario
        print("\n\n".join(o.report() for o in scenario.outcomes.values()))  # type: ignore[attr-defined]


async def outcome(
    scn: iso.Scenario, name: str, attack: Callable[[iso.Scenario], Awaitable[list[iso.Step]]]
) -> iso.Outcome:
    """Each attack runs once per module; several tests assert on its outcome."""
    cache: dict[str, iso.Outcome] = scn.outcomes  # type: ignore[attr-defined]
    if name not in cache:
        cache[name] = await scn.measure(name, attack)
        print(cache[name].report())
    return cache[name]


def assert_victim_unhurt(o: iso.Outcome) -> None:
    slow = {op: str(st) for op, st in o.victim.items() if not st.p99 <= P99_LIMIT or st.errors}
    assert not slow, f"{o.name}: the victim's p99 went over {P99_LIMIT * 1000:.0f} ms (or it got errors): {slow}"
    assert all(st.count >= 10 for st in o.victim.values()), f"{o.name}: too few victim samples: {o.victim}"


def assert_never_500(o: iso.Outcome, steps: list[iso.Step] | None = None) -> None:
    bad = [s.brief() for s in (steps if steps is not None else o.steps) if s.status >= 500 and s.code != "model_error"]
    assert not bad, f"{o.name}: server errors: {bad}"


def assert_refused_or_bounded(o: iso.Outcome, refusal_codes: tuple[str, ...]) -> None:
    """Every request got a clear refusal (a SPEC §4 code with its status), or succeeded, within REQUEST_LIMIT."""
    problems = []
    for s in o.steps:
        if s.status == 0:
            problems.append(f"{s.brief()} (no answer: {s.text[:120]})")
        elif s.seconds > REQUEST_LIMIT:
            problems.append(f"{s.brief()} (over {REQUEST_LIMIT:.0f} s)")
        elif s.status >= 400 and (s.code not in refusal_codes or STATUS_OF.get(s.code or "") != s.status):
            problems.append(f"{s.brief()} (not a refusal with one of {refusal_codes})")
    assert not problems, f"{o.name}: {len(problems)} of {len(o.steps)} requests: " + "; ".join(problems[:12])


# -- (a) the operator's key never goes to an endpoint the operator did not list -------------------------------


async def test_a_the_listed_endpoint_gets_calls_and_the_key(scn: iso.Scenario) -> None:
    """The positive control: the fix must refuse the unlisted endpoint, not every endpoint."""
    scn.honest.reset()
    steps = await iso.honest_endpoint_still_works(scn)
    assert [s.status for s in steps] == [200, 200], [s.brief() + " " + s.text[:200] for s in steps]
    assert scn.honest.requests and scn.honest.requests[-1].api_key == iso.SECRET
    assert iso.SECRET not in "".join(s.text for s in steps)


async def test_a_no_request_reaches_an_unlisted_endpoint(scn: iso.Scenario) -> None:
    scn.evil.reset()
    await outcome(scn, "a: unlisted api_base", iso.attack_evil_endpoint)
    reached = scn.evil.requests
    with_key = [r for r in reached if r.api_key == iso.SECRET]
    assert not reached, (
        f"the unlisted endpoint got {len(reached)} model requests, {len(with_key)} of them with the operator's "
        f"OPENAI_API_KEY; paths: {sorted({r.path for r in reached})}"
    )


async def test_a_the_key_appears_in_no_answer(scn: iso.Scenario) -> None:
    o = await outcome(scn, "a: unlisted api_base", iso.attack_evil_endpoint)
    leaking = [s.brief() for s in o.steps if iso.SECRET in s.text or iso.SECRET[3:] in s.text]
    assert not leaking, leaking


async def test_a_writes_naming_an_unlisted_endpoint_are_refused(scn: iso.Scenario) -> None:
    """SPEC §1: ``api_base`` only names an endpoint the operator allowed; refused where it is written."""
    o = await outcome(scn, "a: unlisted api_base", iso.attack_evil_endpoint)
    writes = [
        s
        for s in o.steps
        if s.what.split(": ")[-1] in ("PUT prompt", "PATCH models", "MCP upsert_prompt", "MCP update_models")
    ]
    assert writes
    accepted = [s.brief() for s in writes if (s.status, s.code) != (400, "invalid_argument")]
    assert not accepted, (
        f"{len(accepted)} of {len(writes)} writes were not refused with 400 invalid_argument: {accepted}"
    )


async def test_a_an_ingested_manifest_does_not_smuggle_the_endpoint_into_a_playground(scn: iso.Scenario) -> None:
    o = await outcome(scn, "a: unlisted api_base", iso.attack_evil_endpoint)
    sessions = [s for s in o.steps if s.what.endswith("ingested manifest: session") and s.status == 200]
    smuggled = [s.what for s in sessions if f"127.0.0.1:{scn.evil.port}" in s.text]
    assert not smuggled, f"sessions opened from an ingested trace carry the unlisted endpoint: {smuggled}"
    runs = [s for s in o.steps if s.what.endswith("ingested manifest: run")]
    assert_never_500(o, runs)


async def test_a_victim_unhurt(scn: iso.Scenario) -> None:
    o = await outcome(scn, "a: unlisted api_base", iso.attack_evil_endpoint)
    assert_never_500(o)
    assert_victim_unhurt(o)


# -- (b) templates that burn CPU: refused or bounded, and never on the victim's time ----------------------------


async def test_b_heavy_templates_are_refused_or_bounded(scn: iso.Scenario) -> None:
    o = await outcome(scn, "b: heavy templates", iso.attack_heavy_templates)
    assert_never_500(o)
    # not_found: running a draft whose PUT was refused (the prompt was never stored).
    assert_refused_or_bounded(o, ("compile_error", "invalid_argument", "payload_too_large", "not_found"))


async def test_b_victim_unhurt(scn: iso.Scenario) -> None:
    o = await outcome(scn, "b: heavy templates", iso.attack_heavy_templates)
    assert_victim_unhurt(o)


# -- (c) a full-text query of 100 one-letter prefixes over both tenants' corpora ------------------------------


async def test_c_prefix_query_is_refused_or_bounded(scn: iso.Scenario) -> None:
    o = await outcome(scn, "c: 100 one-letter prefixes", iso.attack_fts_prefix_flood)
    assert_never_500(o)
    assert_refused_or_bounded(o, ("invalid_argument",))


async def test_c_victim_unhurt(scn: iso.Scenario) -> None:
    o = await outcome(scn, "c: 100 one-letter prefixes", iso.attack_fts_prefix_flood)
    assert_victim_unhurt(o)


# -- (d) playground runs on 8 slow models -------------------------------------------------------------------------


async def test_d_slow_runs_finish_or_are_refused(scn: iso.Scenario) -> None:
    o = await outcome(scn, "d: 3 runs x 8 slow models", iso.attack_slow_playground)
    assert_never_500(o)
    runs = [s for s in o.steps if s.what.endswith(": run")]
    assert len(runs) == 3
    # 8 models of SLOW_SECONDS each; at most a few at a time; one run may wait for the others.
    bound = 8 * iso.SLOW_SECONDS * 3 + 10
    bad = [s.brief() for s in runs if s.status == 0 or s.seconds > bound or (s.status >= 400 and s.code is None)]
    assert not bad, bad


async def test_d_victim_unhurt(scn: iso.Scenario) -> None:
    o = await outcome(scn, "d: 3 runs x 8 slow models", iso.attack_slow_playground)
    assert_victim_unhurt(o)


# -- (f) forged cursors ---------------------------------------------------------------------------------------------


async def test_f_forged_cursors_are_400_or_the_attackers_own_rows(scn: iso.Scenario) -> None:
    o = await outcome(scn, "f: forged cursors", iso.attack_forged_cursors)
    problems = []
    for s in o.steps:
        if s.status == 400 and s.code == "invalid_argument":
            continue
        if s.status == 200:
            if foreign := iso.foreign_rows(s):
                problems.append(f"{s.what}: returned the victim's rows {foreign[:3]}")
            continue
        problems.append(f"{s.brief()} {s.text[:120]}")
    assert not problems, problems


async def test_f_victim_unhurt(scn: iso.Scenario) -> None:
    o = await outcome(scn, "f: forged cursors", iso.attack_forged_cursors)
    assert_victim_unhurt(o)


# -- (g) bodies that break JSON parsers and stores ---------------------------------------------------------------


def refused_alone(text: str) -> bool:
    """A 207 batch answer in which exactly the one bad trace was refused."""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    errors = [r for r in body.get("results", []) if "error" in r]
    return body.get("refused") == 1 and len(errors) == 1 and errors[0]["error"]["code"] == "invalid_argument"


async def test_g_bad_bodies_are_400_never_500(scn: iso.Scenario) -> None:
    o = await outcome(scn, "g: bad bodies", iso.attack_bad_bodies)
    rest = [s for s in o.steps if "MCP" not in s.what and not s.what.endswith(" after")]
    # Trace and prompt bodies: the value is the body's own field, so the body is malformed.
    strict = [s for s in rest if not s.what.endswith("/run")]
    # A batch answers per trace (207): the bad trace is refused on its own, the others are stored.
    problems = [
        s.brief()
        for s in strict
        if (s.status, s.code) != (400, "invalid_argument") and not (s.status == 207 and refused_alone(s.text))
    ]
    # Run: the value sits in the caller's variables; a refusal may also be a compile_error (a type problem).
    loose = [s for s in rest if s.what.endswith("/run")]
    problems += [
        s.brief() for s in loose if s.status >= 500 or (s.status >= 400 and STATUS_OF.get(s.code or "") != s.status)
    ]
    assert not problems, f"{len(problems)} of {len(rest)} bad bodies were not refused with 400: {problems}"


async def test_g_accepted_values_do_not_break_later_reads(scn: iso.Scenario) -> None:
    o = await outcome(scn, "g: bad bodies", iso.attack_bad_bodies)
    after = [s.brief() for s in o.steps if s.what.endswith(" after") and s.status != 200]
    assert not after, f"reading back what the bad bodies stored failed: {after}"


async def test_g_mcp_bad_values_never_500(scn: iso.Scenario) -> None:
    o = await outcome(scn, "g: bad bodies", iso.attack_bad_bodies)
    mcp = [s for s in o.steps if "MCP" in s.what]
    assert mcp
    assert_never_500(o, mcp)


# -- (e) MCP session flood (last: it leaves the most behind) -----------------------------------------------------


async def test_e_session_flood_leaves_the_victim_an_mcp_session(scn: iso.Scenario) -> None:
    o = await outcome(scn, "e: MCP session flood", iso.session_flood(FLOOD_SESSIONS))
    victim = o.steps[-1]
    assert victim.what.startswith("victim") and victim.status == 200, f"{victim.brief()} {victim.text[:300]}"
    refusals = o.steps[:-1]
    assert all(s.status in (400, 403, 429, 503) for s in refusals), [s.brief() for s in refusals]


async def test_e_victim_unhurt(scn: iso.Scenario) -> None:
    o = await outcome(scn, "e: MCP session flood", iso.session_flood(FLOOD_SESSIONS))
    assert_victim_unhurt(o)


# -- the server survived ----------------------------------------------------------------------------------------------


def test_z_server_alive_and_memory_bounded(scn: iso.Scenario) -> None:
    assert scn.alive(), "the server process died or stopped answering /healthz"
    grown = scn.rss_mb() - scn.rss_start_mb
    peak = max((o.rss_mb for o in scn.outcomes.values()), default=0.0)  # type: ignore[attr-defined]
    print(f"server RSS: {scn.rss_start_mb:.0f} MB after set-up, {scn.rss_mb():.0f} MB now, peak seen {peak:.0f} MB")
    assert grown < RSS_GROWTH_LIMIT_MB, f"server RSS grew by {grown:.0f} MB over the attacks"


@pytest.mark.slow
def test_slow_big_corpus_and_global_session_limit() -> None:
    """50,000 traces per tenant; the flood goes to the SDK's global limit (10,000) and past it."""
    import anyio

    async def run() -> list[iso.Outcome]:
        with iso.Scenario(corpus=50_000, budget=600) as big:
            out = [await big.measure("c: prefixes at 50k", iso.fts_prefix_flood(or_terms=60))]
            out.append(await big.measure("e: flood to 10,001", iso.session_flood(10_001, workers=16)))
            return out

    fts, flood = anyio.run(run)
    print(fts.report() + "\n" + flood.report())
    assert_refused_or_bounded(fts, ("invalid_argument",))
    assert_victim_unhurt(fts)
    assert flood.steps[-1].status == 200, flood.steps[-1].text[:300]
    assert_victim_unhurt(flood)


# -- what cursors and ids tell about other tenants ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Iterator[iso.Scenario]:
    """A quiet server (no probe, no corpus, no model call): nothing else writes between the calls below."""
    with iso.Scenario(corpus=0, probe=False, warm=False) as scenario:
        yield scenario


def cursor_seq(cursor: str | None) -> int | None:
    """The global sequence number a cursor carries, if it can be read (today: base64 JSON, last item)."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        seq = value[-1]
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_parts(trace_id: str) -> tuple[int, int] | None:
    """(milliseconds, the 80-bit random part) of a ULID, or None when the id is not one."""
    if len(trace_id) != 26 or any(c not in _CROCKFORD for c in trace_id.upper()):
        return None
    value = 0
    for c in trace_id.upper():
        value = value * 32 + _CROCKFORD.index(c)
    return value >> 80, value & ((1 << 80) - 1)


async def test_cursors_and_ids_do_not_count_another_tenants_writes(small: iso.Scenario) -> None:
    """Between two of the attacker's writes the victim writes N traces; from its own cursors and trace ids
    the attacker must not be able to compute N. (Today a cursor carries the global ``created_ms << 12 | slot``
    and a trace id the process-wide ULID counter: both advance by N + 1.)

    The victim's traces carry a client ``createdAt`` in the same millisecond as the attacker's (say, an app that
    stamps traces itself, or a backfill of old traces); that makes the probe deterministic."""
    n_victim = 37
    moment, before = "2021-03-04T05:06:07.089Z", "2021-03-04T05:06:06.000Z"
    page: dict[str, str | int] = {"limit": 1, "until": "2021-03-04T05:06:07.090Z"}
    async with small.client() as attacker, small.client(iso.VICTIM) as victim:

        async def attacker_writes() -> tuple[str, str | None]:
            r = await attacker.post("/traces", json=iso.plain_trace(createdAt=moment))
            assert r.status_code == 201, r.text
            listed = (await attacker.get("/traces", params=page)).json()
            assert listed["traces"][0]["id"] == r.json()["id"]
            return r.json()["id"], listed["nextCursor"]

        r = await attacker.post("/traces", json=iso.plain_trace(createdAt=before))  # so that a page has a next one
        assert r.status_code == 201, r.text
        id_a, cursor_a = await attacker_writes()
        batch = [iso.plain_trace(createdAt=moment, output=f"victim {k}") for k in range(n_victim)]
        r = await victim.post("/traces", json={"traces": batch})
        assert r.status_code == 201, r.text
        id_b, cursor_b = await attacker_writes()

    inferred: dict[str, int] = {}
    seq_a, seq_b = cursor_seq(cursor_a), cursor_seq(cursor_b)
    if seq_a is not None and seq_b is not None:
        inferred["cursor"] = seq_b - seq_a - 1
    ulid_a, ulid_b = ulid_parts(id_a), ulid_parts(id_b)
    if ulid_a is not None and ulid_b is not None and ulid_a[0] == ulid_b[0]:
        inferred["trace id"] = ulid_b[1] - ulid_a[1] - 1
    print(f"victim wrote {n_victim}; the attacker infers {inferred}")
    leaks = {how: n for how, n in inferred.items() if n == n_victim}
    assert not leaks, f"the attacker counted the victim's writes exactly from its own {sorted(leaks)}"


async def test_another_tenant_cannot_move_my_traces_timestamp(small: iso.Scenario) -> None:
    """The 4096 sequence slots of a millisecond are shared by every tenant: an attacker that fills one
    millisecond pushes the victim's trace stamped with it into the next millisecond."""
    moment = "2022-01-02T03:04:05.678Z"
    async with small.client(timeout=120) as attacker, small.client(iso.VICTIM) as victim:
        for start in range(0, 4096, 1000):
            batch = [
                iso.plain_trace(createdAt=moment, output=f"fill {k}") for k in range(start, min(start + 1000, 4096))
            ]
            r = await attacker.post("/traces", json={"traces": batch})
            assert r.status_code == 201, r.text
        r = await victim.post("/traces", json=iso.plain_trace(createdAt=moment))
        assert r.status_code == 201, r.text
        got = (await victim.get(f"/traces/{r.json()['id']}", params={"fields": "createdAt"})).json()
    assert got["createdAt"] == moment, f"the victim's trace says {got['createdAt']}, it was stamped {moment}"


def test_probe_helpers_read_todays_formats() -> None:
    """The leak probe's decoders work on today's formats (else the leak test would pass vacuously)."""
    from agnt_traces.ids import new_id

    # The cursor format before sealed cursors: base64 of a JSON list ending in the global seq.
    old = base64.urlsafe_b64encode(json.dumps(["created_at", "desc", 123 << 12 | 7, 123 << 12 | 7]).encode())
    assert cursor_seq(old.decode().rstrip("=")) == 123 << 12 | 7
    ms, _ = ulid_parts(new_id(1_600_000_000_000)) or (0, 0)
    assert ms > 0
    assert cursor_seq("!!") is None and ulid_parts("vic-0000001") is None
