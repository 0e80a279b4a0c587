"""jsonlimits' quick looks at raw bytes: ``may_hold_non_finite`` and ``plainly_within_limits`` may say "check
it" for harmless text, but must never pass text whose numbers parse as non-finite, or that holds a lone
surrogate escape."""

from __future__ import annotations

import json
import math
import random

import pydantic_core
import pytest

from agnt_traces.jsonlimits import may_hold_non_finite, plainly_within_limits, screen_rpc, screen_rpc_line

OVERFLOWING = [
    b"1e400",
    b"1E400",
    b"1e+400",
    b"-2.5E+0400",
    b"1" + b"0" * 298 + b"e11",  # 1e309: neither a three-digit exponent nor 300 digits
    b"12345678901234567890.5e290",
    b"1" + b"0" * 310,
    b"0." + b"0" * 5 + b"1" + b"0" * 320 + b"e-5",  # 300+ digits: flagged (a check, not a refusal)
]
FINITE = [b"1e99", b"1e-400", b"123.456", b"-0.5e-12", b"1234567890123456789e99", b'"e400 in a string"']


def _parses_non_finite(number: bytes) -> bool:
    try:
        value = json.loads(number)
    except ValueError:
        return False
    return isinstance(value, float) and not math.isfinite(value)


@pytest.mark.parametrize("number", OVERFLOWING)
def test_an_overflowing_number_is_flagged_wherever_it_sits(number: bytes) -> None:
    for text in (number, b'{"cost": ' + number + b"}", b'{"a": [1, "x", ' + number + b"]}"):
        assert may_hold_non_finite(text), text[:60]
        assert not plainly_within_limits(text)


@pytest.mark.parametrize("word", [b"NaN", b"Infinity", b"-Infinity", b'"says NaN"'])
def test_nan_and_infinity_are_flagged(word: bytes) -> None:
    assert may_hold_non_finite(b'{"x": ' + word + b"}")


@pytest.mark.parametrize("number", FINITE)
def test_finite_numbers_pass(number: bytes) -> None:
    text = b'{"x": ' + number + b', "text": "an ordinary answer, 42 words, version 3.1.4"}'
    assert not may_hold_non_finite(text)
    assert plainly_within_limits(text)


def test_a_random_number_that_parses_non_finite_is_never_passed() -> None:
    rng = random.Random(11)
    seen = 0
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 5, 19, 20, 21, 150, 299, 300, 320])))
        digits = digits.lstrip("0") or "1"
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30)))
        fraction = "." + fraction if rng.random() < 0.5 else ""
        exponent = f"{rng.choice('eE')}{rng.choice(['', '+', '-'])}{rng.randint(0, 400):0{rng.randint(1, 4)}d}"
        number = f"{rng.choice(['', '-'])}{digits}{fraction}{exponent if rng.random() < 0.8 else ''}".encode()
        if _parses_non_finite(number):
            seen += 1
            assert may_hold_non_finite(b'{"n": ' + number + b"}"), number
        if not may_hold_non_finite(number):
            assert math.isfinite(float(pydantic_core.from_json(number))), number
    assert seen > 1000, "the generator made too few overflowing numbers to prove anything"


def test_a_lone_surrogate_escape_is_not_plainly_within_limits() -> None:
    assert not plainly_within_limits(b'{"x": "\\ud800"}')
    assert not plainly_within_limits(b'{"x": "\\uDBFF\\u0041"}')
    assert plainly_within_limits(b'{"x": "caf\\u00e9 \\u20ac"}')  # escapes, but no surrogate


def test_nesting_past_the_limit_is_not_plainly_within_limits() -> None:
    assert not plainly_within_limits(b"[" * 65 + b"]" * 65)
    assert plainly_within_limits(b"[" * 10 + b"]" * 10)


def test_screen_rpc_refuses_an_overflowing_argument_naming_it() -> None:
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "ingest_trace"}}
    text = json.dumps(message).encode()[:-2] + b', "arguments": {"trace": {"cost": 1' + b"0" * 298 + b"e11}}}}"
    rejected = screen_rpc(text)
    assert rejected is not None and rejected.response is not None
    assert rejected.error.details["field"] == "trace.cost"
    assert rejected.response["result"]["isError"] is True


def test_screen_rpc_line_still_refuses_a_plain_line_that_is_not_json() -> None:
    # stdio parses every line (the SDK drops a line it cannot parse without answering): a line with nothing
    # that could break a limit is parsed but not walked, and a parse error is still answered with its id.
    broken = b'{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {'
    assert plainly_within_limits(broken)
    assert screen_rpc(broken) is None  # HTTP: the SDK answers a parse error itself
    rejected, _ = screen_rpc_line(broken)
    assert rejected is not None and rejected.response is not None
    assert rejected.response["id"] == 7 and rejected.response["error"]["code"] == -32700
    not_utf8 = b'{"jsonrpc": "2.0", "id": 8, "method": "ping", "params": {"x": "\xed\xa0\x80"}}'
    assert not plainly_within_limits(not_utf8)  # a surrogate as raw bytes: json.loads would let it through
    rejected, _ = screen_rpc_line(not_utf8)
    assert rejected is not None and rejected.response is not None and rejected.response["id"] == 8
    assert plainly_within_limits('{"x": "\ud7ff \ue000 \U0001f600"}'.encode())  # ED 9F BF, EE 80 80, F0 9F…


def test_screen_rpc_line_passes_a_plain_message() -> None:
    line = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {"a": [1.5, "é"]}}}
    ).encode()
    assert screen_rpc_line(line) == (None, json.loads(line))
