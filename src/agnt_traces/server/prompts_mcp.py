"""MCP prompt templates that walk an agent through the fix loop."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

__all__ = ["register"]

LOOP = """\
The loop, one tool call per step:
1. get_trace(trace_id, fields=[...], max_chars=2000) — read what was sent (manifest.system, messages),
   what came back (output, error) and the context (variables, model, promptVersion).
2. open_playground(trace_id) — a session with that exact prompt version, variables, model and input messages.
3. Change what caused the problem: edit_block (update / insert / delete / move), update_variables,
   update_models (add a second model to compare). compile_session shows what the model will receive.
4. run_session — real calls on every model of the session; each run is recorded as a trace.
5. diff_session — the prompt change, the compiled messages, and per model the output diff with token,
   cost and latency deltas. Iterate 3-5 until the output is right.
6. save_session — the session's content becomes the prompt's draft (a conflict means someone else changed
   the draft: read details.diff, then decide whether to force).
7. publish_prompt(name) — the draft becomes the new production version. diff_trace(trace_id) confirms
   what changed for the original call; run_prompt checks the new version end to end."""


def register(mcp: MCPServer[Any]) -> None:
    @mcp.prompt(name="debug-trace", description="Find out why one trace went wrong and fix its prompt")
    def debug_trace(trace_id: str) -> str:
        return (
            f"Debug trace {trace_id} with the AGNT Traces tools.\n\n"
            "First say in one or two sentences what went wrong (wrong answer, error, too slow, too costly), "
            "citing the part of the compiled prompt or the variable that caused it. Then fix it.\n\n"
            + LOOP
            + "\n\nFinish with: what you changed, the diff_session summary, and the version you published."
        )

    @mcp.prompt(name="fix-failing-traces", description="Find failing calls and fix the prompts behind them")
    def fix_failing_traces(prompt_name: str | None = None) -> str:
        scope = f"of prompt '{prompt_name}'" if prompt_name else "across all prompts"
        filters = f"status='error', prompt_name='{prompt_name}'" if prompt_name else "status='error'"
        return (
            f"Find and fix failing LLM calls {scope}.\n\n"
            f"Start with trace_stats(group_by='version'{', prompt_name=' + repr(prompt_name) if prompt_name else ''},"
            " since='7d') to see where the errors are, then list_traces("
            f"{filters}, since='7d') to get examples. Group them by cause (model errors such as rate limits "
            "or timeouts need no prompt change; wrong or malformed outputs do). For each prompt that needs a "
            "fix, take one representative trace through the loop:\n\n" + LOOP
        )

    @mcp.prompt(name="reduce-cost", description="Make a prompt cheaper without making its answers worse")
    def reduce_cost(prompt_name: str) -> str:
        return (
            f"Reduce the cost of prompt '{prompt_name}' without making its answers worse.\n\n"
            f"1. trace_stats(group_by='model', prompt_name='{prompt_name}', since='7d') and list_traces("
            f"prompt_name='{prompt_name}', sort='cost', limit=5) — where the money goes.\n"
            "2. Open the most expensive trace in a playground. Try a cheaper model next to the current one "
            "(update_models with both), and trim blocks that the answer does not need (edit_block).\n"
            "3. run_session and diff_session: compare outputs, and the cost and token deltas per model.\n"
            "4. Save and publish only if the cheaper variant's outputs are as good. Report the cost per call "
            "before and after.\n\n" + LOOP
        )

    @mcp.prompt(
        name="ship-a-fix",
        description="Fix a prompt and publish it through its golden cases and gate, without breaking calls that worked",
    )
    def ship_a_fix(prompt_name: str) -> str:
        return (
            f"Fix prompt '{prompt_name}' and publish the fix only when it breaks none of the calls that worked.\n\n"
            "1. Find what fails: list_traces(prompt_name=..., status='error', since='7d') and the wrong answers "
            "among the successful ones (query=..., sort='cost'); get_trace one or two of them.\n"
            f"2. Pin the safety net: pin_golden(name='{prompt_name}', filter={{status: 'success', since: '7d', "
            "limit: 50}, checks=[...]) — good calls with checks that say why they are good (contains, regex, json, "
            "json_schema, max_tokens, max_cost, max_duration), required=true for the ones that must never break. "
            "Pin the failing traces too, with the checks they should pass. list_golden shows the cases.\n"
            f"3. Gate it once: set_gate(name='{prompt_name}', policy={{required_pass: true, no_regressions: true}}).\n"
            "4. Fix in a playground: open_playground(trace_id of a failing trace), edit_block / update_variables, "
            "run_session and diff_session until that call is right.\n"
            "5. Replay before saving: run_replay(name, against='session:<session id>') then "
            "get_replay(replay_id, wait_seconds=30) until it is not running. Read replays://<id>: the regressions "
            "and failing required cases come first, each with its output diff. Iterate 4-5 until it passes.\n"
            "6. save_session, then run_replay(name) against the draft (identical calls are reused, free) and "
            "publish_prompt(name, expected_etag=<draftEtag>) — the gate lets exactly that draft through and the "
            "version carries the report. publish_prompt(name, run_gate=true) replays and publishes in one call.\n"
            "Never pass override_reason yourself: it publishes without a pass and is written into the version's "
            "history for people to see. Finish with the replay summary and the version you published."
        )
