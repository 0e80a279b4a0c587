"""The one place where a failed model call becomes an error type, a message and a retry decision.

LiteLLM maps provider failures to ``litellm.exceptions.*`` (OpenAI-SDK subclasses), but not always
helpfully: a refused connection arrives as ``InternalServerError``, messages are prefixed with
``litellm.XError: XError: OpenAIException -`` and embed the provider's raw response body (which can
echo the API key, or carry whatever an endpoint chose to send), sometimes a traceback with file paths.
:func:`classify` turns any exception from an attempt into a :class:`Failure` whose message is built
from the error's class and status code only, with a short reason from a fixed vocabulary (``connection
refused``...) and a hint of what to do. No text of the exception itself ever reaches the message,
except for the built-in offline model, whose errors are this project's own words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agnt_traces.llm.pricing import LOCAL_PROVIDER
from agnt_traces.llm.scrub import scrub

__all__ = ["CallContext", "EmptyResponse", "Failure", "classify", "describe", "format_seconds"]

_MAX_DETAIL = 300

_CONNECTION_TEXT = re.compile(
    r"(?i)connection error|cannot connect to host|connect call failed|connection refused|connecterror"
    r"|server disconnected|remoteprotocolerror|connection reset|connection aborted|broken pipe"
    r"|name or service not known|nodename nor servname|temporary failure in name resolution"
    r"|no address associated|getaddrinfo failed|network is unreachable|no route to host"
    r"|transferencodingerror|payload is not completed|incomplete chunked read|peer closed connection"
)
_PREFIXES = re.compile(r"^(?:\s*(?:litellm\.)?[A-Za-z][\w-]*(?:Error|Exception|Timeout)\s*[:-]\s*)+")
_NOISE = [
    re.compile(r"\.?\s*Handle with `litellm\.[A-Za-z]+`\.?"),
    re.compile(r"\s*LiteLLM Retried: \d+ times.*$"),
    re.compile(r"\s*Received Model Group=.*$", re.S),
    re.compile(r" ssl:(?:<[^>]*>|default|None|True|False)"),
]
_PROVIDER_NOT_PROVIDED = "LLM Provider NOT provided"


class EmptyResponse(Exception):
    """A 200 answer with nothing in it (e.g. a stream that ended before any output)."""


@dataclass(slots=True)
class CallContext:
    provider: str
    model: str  # "provider/name"
    called_api_base: str | None  # as called; only ever shown through ``api_base``
    timeout: float
    key_env: str  # e.g. "OPENAI_API_KEY"

    @property
    def api_base(self) -> str | None:
        """The endpoint as a failure may name it, credentials scrubbed. Scrubbed here, when a failure is
        described, rather than before every call: scrubbing reads the whole environment (~0.1 ms)."""
        return scrub(self.called_api_base) if self.called_api_base is not None else None


@dataclass(slots=True)
class Failure:
    type: str
    summary: str  # what happened, e.g. "rate limited by openai (429)"
    detail: str = ""  # a short reason of our own ("connection refused"), never the provider's words
    hint: str = ""  # what to do
    status: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    repeat_detail: bool = True  # include the detail in the final message
    hint_sep: str = "; "

    def message(self, attempts: int) -> str:
        text = self.summary
        if attempts > 1:
            text += f" ({attempts} attempts)" if " after " in text else f" after {attempts} attempts"
        show_detail = bool(self.detail and self.repeat_detail)
        if show_detail:
            text += f": {self.detail}"
        if self.hint:
            text += f"{self.hint_sep}{self.hint}"
        return scrub(text)


def format_seconds(seconds: float) -> str:
    text = f"{seconds:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _detail(exc: BaseException) -> str:
    raw = getattr(exc, "message", None)
    text = raw if isinstance(raw, str) and raw else str(exc)
    text = _PREFIXES.sub("", text.strip())
    for pattern in _NOISE:
        text = pattern.sub("", text)
    text = text.strip()
    # The provider's JSON error body, when LiteLLM passed it through verbatim (sometimes as b'...').
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            body = json.loads(text[start : end + 1])
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error", body)
            msg = err.get("message") if isinstance(err, dict) else err
            if isinstance(msg, str) and msg:
                before = text[:start].strip()
                before = before[:-2].strip() if before.endswith("b'") else before
                text = (before + " " + msg).strip()
    text = text.split("Traceback (most recent call last)", 1)[0]  # LiteLLM puts its traceback in some messages
    text = " ".join(scrub(text).split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return text


def _retry_after(exc: BaseException) -> float | None:
    try:
        headers: Any = getattr(getattr(exc, "response", None), "headers", None)
        if headers is None:
            return None
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        if (sec := headers.get("retry-after")) is not None:
            return max(0.0, float(sec))
    except (TypeError, ValueError, AttributeError):
        return None
    return None


def _status(exc: BaseException) -> int | None:
    for attr in ("status_code", "provider_status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None


def classify(exc: BaseException, ctx: CallContext) -> Failure:
    """Map an exception raised by one attempt to a :class:`Failure` (type, message, retryable)."""
    p = ctx.provider
    where = ctx.api_base or "its default endpoint"
    if isinstance(exc, TimeoutError) or _is(exc, "Timeout", "APITimeoutError"):
        return Failure(
            "Timeout",
            f"{ctx.model} timed out after {format_seconds(ctx.timeout)} s",
            retryable=True,
            hint="" if ctx.timeout >= 30 else "raise the timeout if the model needs longer",
        )
    if isinstance(exc, EmptyResponse):
        return Failure("APIError", f"{p} sent an empty response", str(exc), retryable=True)
    raw = _detail(exc)  # to classify with, never shown: it is (or quotes) the provider's response body
    detail = raw if p == LOCAL_PROVIDER else ""  # the offline model's errors are our own words
    status = _status(exc)
    retry_after = _retry_after(exc)
    if _is(exc, "RateLimitError"):
        return Failure(
            "RateLimitError", f"rate limited by {p} (429)", detail, status=429, retryable=True, retry_after=retry_after
        )
    if _is(exc, "AuthenticationError"):
        return Failure(
            "AuthenticationError",
            f"authentication failed for {p}",
            detail,
            hint=f"check {ctx.key_env}",
            hint_sep=": ",
            status=status or 401,
            repeat_detail=False,  # providers echo (parts of) the key they got; nothing else is useful
        )
    if _is(exc, "PermissionDeniedError"):
        return Failure(
            "PermissionDeniedError",
            f"permission denied by {p} (403)",
            detail,
            hint=f"check that the key in {ctx.key_env} may use {ctx.model}",
            status=403,
        )
    if _is(exc, "ContextWindowExceededError"):
        return Failure(
            "ContextWindowExceededError",
            f"the prompt is too long for {ctx.model}",
            detail,
            hint="shorten the prompt or pick a model with a larger context window",
            status=status or 400,
        )
    if _is(exc, "ContentPolicyViolationError"):
        return Failure("ContentPolicyViolationError", f"{p} refused the content", detail, status=status or 400)
    if _is(exc, "UnsupportedParamsError"):
        return Failure(
            "UnsupportedParamsError",
            f"{ctx.model} does not support a parameter that was passed",
            detail,
            hint="remove it from the model params",
            status=400,
        )
    if _is(exc, "NotFoundError"):
        return Failure(
            "NotFoundError",
            f"{p} answered 404 for {ctx.model}",
            detail,
            hint="check the model name" + (" and api_base" if ctx.api_base else ""),
            status=404,
        )
    if _is(exc, "BadRequestError", "UnprocessableEntityError"):
        if _PROVIDER_NOT_PROVIDED in raw or _is(exc, "LiteLLMUnknownProvider"):
            return Failure(
                "BadRequestError",
                f"unknown provider {p!r}",
                hint="use a LiteLLM provider name such as openai, anthropic, gemini, or agnt-local "
                "(the offline test model)",
                status=400,
            )
        code = status or 400
        return Failure("BadRequestError", f"{p} rejected the request ({code})", detail, status=code)
    text = f"{type(exc).__name__} {raw}"
    if _CONNECTION_TEXT.search(text) or _is(exc, "APIConnectionError", "ConnectError", "ConnectionError"):
        if "json" in raw.lower() and _is(exc, "APIConnectionError"):
            return Failure("APIError", f"{p} sent an invalid response", detail, retryable=True, status=status)
        return Failure(
            "APIConnectionError",
            f"connection to {p} at {where} failed",
            _connection_reason(text),
            hint="check api_base and the network" if ctx.api_base else "check the network",
            retryable=True,
        )
    if status is not None and (status >= 500 or status in (408, 409)):
        kind = {502: "BadGatewayError", 503: "ServiceUnavailableError"}.get(status, "InternalServerError")
        if _is(exc, "ServiceUnavailableError"):
            kind = "ServiceUnavailableError"
        return Failure(
            kind, f"{p} server error ({status})", detail, status=status, retryable=True, retry_after=retry_after
        )
    if _is(exc, "APIError", "APIStatusError", "InternalServerError", "ServiceUnavailableError", "BadGatewayError"):
        return Failure("APIError", f"{p} failed", detail, status=status, retryable=True, retry_after=retry_after)
    return Failure(type(exc).__name__, f"calling {ctx.model} failed", detail, status=status)


_CONNECTION_REASONS = [
    (re.compile(r"(?i)connection refused|connect call failed|cannot connect to host"), "connection refused"),
    (
        re.compile(
            r"(?i)name or service not known|nodename nor servname|temporary failure in name resolution"
            r"|no address associated|getaddrinfo failed"
        ),
        "host name not resolved",
    ),
    (re.compile(r"(?i)network is unreachable|no route to host"), "network unreachable"),
    (
        re.compile(
            r"(?i)server disconnected|remoteprotocolerror|connection reset|connection aborted|broken pipe"
            r"|peer closed connection|payload is not completed|incomplete chunked read|transferencodingerror"
        ),
        "the connection closed early",
    ),
]


def _connection_reason(text: str) -> str:
    """A short reason from a fixed vocabulary (never the exception's own text)."""
    return next((reason for pattern, reason in _CONNECTION_REASONS if pattern.search(text)), "")


def describe(exc: BaseException, provider: str, model: str, *, key_env: str = "") -> tuple[str, str]:
    """(type, message) of a failed call, in the same words as the server's own calls: for errors that
    LiteLLM raised in an application's process (the LiteLLM callback)."""
    ctx = CallContext(
        provider=provider or "the provider",
        model=f"{provider}/{model}" if provider else model,
        called_api_base=None,
        timeout=float(getattr(exc, "timeout", 0) or 0) or 60.0,
        key_env=key_env or (provider.upper().replace("-", "_") + "_API_KEY" if provider else "the provider's API key"),
    )
    failure = classify(exc, ctx)
    return failure.type, failure.message(1)


def _is(exc: BaseException, *names: str) -> bool:
    """isinstance by class name along the MRO: works for litellm, openai and anthropic classes alike
    without importing them (they are loaded lazily, and not always the same module)."""
    return any(cls.__name__ in names for cls in type(exc).__mro__)
