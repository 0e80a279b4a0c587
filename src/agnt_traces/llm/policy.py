"""What a prompt's model params may do: the one policy for every model param, written or called.

A tenant writes model params (a prompt's ``model.params``, a session's models, a prompt file); the
operator decides where model calls may go and with which key. This module owns both sides:

* an ALLOWLIST of params forwarded to LiteLLM, each with a type and size check. Anything else is
  refused where it is written (:meth:`ModelPolicy.check_params` raises ``invalid_argument`` naming the
  params and listing the allowed ones) and dropped where it is only read (:meth:`ModelPolicy.filter_params`,
  used at call time and when a trace is opened in a playground).
* endpoints: ``api_base`` (or its alias ``base_url``) must name one of the operator's endpoints
  (``AGNT_TRACES_MODEL_ENDPOINTS``): same scheme, host and port, and a path at or below the entry's
  path. With none configured, only each provider's default endpoint (and the offline model) works.
* keys: an endpoint ``URL=ENV_NAME`` gets that variable's value as its key, never another; an entry
  without one gets the provider's usual key (``OPENAI_API_KEY``…), or, on a loopback URL when that is
  not set, the placeholder ``sk-local``.
* headers: ``extra_headers`` / ``headers`` may carry only the names the operator allows
  (``AGNT_TRACES_MODEL_HEADERS``, none by default).
* ``timeout``: at most the operator's ``AGNT_TRACES_MODEL_TIMEOUT``; refused above it at write, clamped
  to it at call time (prompts stored under a higher limit, traces).
* output: at most ``AGNT_TRACES_MAX_OUTPUT_CHARS`` characters are kept (the call marks the truncation).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agnt_traces.errors import InvalidArgument

__all__ = [
    "ALLOWED_PARAMS",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "Endpoint",
    "FilteredParams",
    "ModelPolicy",
    "is_loopback_host",
    "parse_endpoint_url",
]

ENDPOINTS_ENV = "AGNT_TRACES_MODEL_ENDPOINTS"
HEADERS_ENV = "AGNT_TRACES_MODEL_HEADERS"
TIMEOUT_ENV = "AGNT_TRACES_MODEL_TIMEOUT"
MAX_OUTPUT_ENV = "AGNT_TRACES_MAX_OUTPUT_CHARS"

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_OUTPUT_CHARS = 200_000
MAX_TOKENS_LIMIT = 1_000_000
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
MAX_JSON_PARAM_CHARS = 64_000  # response_format (a JSON schema), tool_choice, thinking, logit_bias
MAX_HEADER_VALUE_CHARS = 1_024
MAX_URL_CHARS = 2_048

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# Deliberately narrow: what two URL parsers (ours, httpx's) can only read one way. No userinfo (@),
# backslash, percent-encoding, query, fragment, white space; hosts are names or bracketed IPv6.
_URL_RE = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~:+/-]*)?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


# ---------------------------------------------------------------------------------------------------
# URLs and endpoints


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    host: str  # lower case; IPv6 compressed, without brackets
    port: int
    path: str  # "" for the root, else "/a/b" without a trailing slash

    def under(self, other: _Url) -> bool:
        """Same origin, and this path is the other's path or below it at a ``/`` boundary."""
        if (self.scheme, self.host, self.port) != (other.scheme, other.host, other.port):
            return False
        return not other.path or self.path == other.path or self.path.startswith(other.path + "/")

    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_endpoint_url(url: Any) -> _Url | None:
    """The normalized form of a model endpoint URL, or None when it is not one we accept.

    Accepted: ``http``/``https``, a host name or IP address (IPv6 in brackets), an optional port, and a
    path of plain segments. Refused: userinfo, backslashes, percent-encoding, queries, fragments,
    empty, ``.`` or ``..`` path segments, ports outside 1-65535.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        return None
    m = _URL_RE.match(url)
    if m is None:
        return None
    scheme = m.group("scheme").lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    host = m.group("host").lower()
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        host = address.compressed
    port = int(m.group("port")) if m.group("port") is not None else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        return None
    path = m.group("path") or ""
    stripped = path.rstrip("/")
    segments = stripped.split("/")[1:] if stripped else []
    if any(s in ("", ".", "..") for s in segments) or (path and not stripped and path != "/"):
        return None
    return _Url(scheme, host, port, stripped)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operator-approved base URL, and the environment variable holding its key (if any)."""

    url: _Url
    key_env: str | None = None

    @classmethod
    def parse(cls, entry: str) -> Endpoint:
        """``URL`` or ``URL=ENV_NAME``.

        Raises:
            InvalidArgument: naming the entry and what is wrong with it.
        """
        text = entry.strip()
        key_env = None
        if "=" in text:
            text, key_env = (part.strip() for part in text.rsplit("=", 1))
            if not _ENV_NAME_RE.match(key_env):
                raise InvalidArgument(
                    f"{ENDPOINTS_ENV}: {entry.strip()!r} names no valid environment variable after '='",
                    {"setting": ENDPOINTS_ENV},
                )
        url = parse_endpoint_url(text)
        if url is None:
            raise InvalidArgument(
                f"{ENDPOINTS_ENV}: {text!r} is not a plain http(s) base URL (scheme://host[:port][/path], no "
                "user, query, fragment or percent-encoding)",
                {"setting": ENDPOINTS_ENV},
            )
        return cls(url, key_env)

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.url.host)

    def describe(self) -> str:
        return self.url.text() + (f"={self.key_env}" if self.key_env else "")


# ---------------------------------------------------------------------------------------------------
# Param checks: each returns an error text, or None when the value is acceptable.

Check = Callable[[Any, "ModelPolicy"], str | None]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(lo: float, hi: float) -> Check:
    def check(v: Any, _: ModelPolicy) -> str | None:
        return None if _is_number(v) and lo <= v <= hi else f"must be a number from {lo:g} to {hi:g}"

    return check


def _integer(lo: int, hi: int) -> Check:
    def check(v: Any, _: ModelPolicy) -> str | None:
        return None if _is_int(v) and lo <= v <= hi else f"must be an integer from {lo} to {hi}"

    return check


def _boolean(v: Any, _: ModelPolicy) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _one_of(*choices: str) -> Check:
    def check(v: Any, _: ModelPolicy) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"

    return check


def _short_string(max_chars: int, pattern: str = r"^[\x20-\x7e]*$") -> Check:
    regex = re.compile(pattern)

    def check(v: Any, _: ModelPolicy) -> str | None:
        if isinstance(v, str) and 0 < len(v) <= max_chars and regex.match(v):
            return None
        return f"must be a string of 1-{max_chars} printable characters"

    return check


def _json_size(v: Any) -> int:
    try:
        return len(json.dumps(v, allow_nan=False))
    except (TypeError, ValueError):
        return MAX_JSON_PARAM_CHARS + 1


def _json_object(*, type_choices: tuple[str, ...] = ()) -> Check:
    def check(v: Any, _: ModelPolicy) -> str | None:
        if not isinstance(v, dict) or _json_size(v) > MAX_JSON_PARAM_CHARS:
            return f"must be a JSON object of at most {MAX_JSON_PARAM_CHARS} characters"
        if type_choices and v.get("type") not in type_choices:
            return f"needs type {', '.join(type_choices)}"
        return None

    return check


def _stop(v: Any, _: ModelPolicy) -> str | None:
    items = [v] if isinstance(v, str) else v
    if (
        isinstance(items, list)
        and 1 <= len(items) <= MAX_STOP_SEQUENCES
        and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in items)
    ):
        return None
    return f"must be a string or a list of at most {MAX_STOP_SEQUENCES} strings of 1-{MAX_STOP_CHARS} characters"


def _tool_choice(v: Any, policy: ModelPolicy) -> str | None:
    if v in ("auto", "none", "required"):
        return None
    if isinstance(v, dict) and _json_object()(v, policy) is None:
        return None
    return "must be auto, none, required, or an object naming a tool"


def _logit_bias(v: Any, _: ModelPolicy) -> str | None:
    if (
        isinstance(v, dict)
        and len(v) <= 300
        and all(isinstance(k, str) and k.isdigit() and len(k) <= 10 for k in v)
        and all(_is_number(b) and -100 <= b <= 100 for b in v.values())
    ):
        return None
    return "must map at most 300 token ids to numbers from -100 to 100"


def _timeout(v: Any, policy: ModelPolicy) -> str | None:
    if _is_number(v) and 0 < v <= policy.max_timeout:
        return None
    limit = f"{policy.max_timeout:g}"
    return f"must be a number of seconds above 0 and at most {limit} (the server's {TIMEOUT_ENV})"


def _api_base(v: Any, policy: ModelPolicy) -> str | None:
    url = parse_endpoint_url(v)
    if url is None:
        return "must be a plain http(s) base URL (scheme://host[:port][/path])"
    if policy.endpoint_for(url) is None:
        return "is not one of this server's model endpoints (" + policy.endpoints_text() + ")"
    return None


def _headers(v: Any, policy: ModelPolicy) -> str | None:
    if not isinstance(v, dict) or not v:
        return "must be an object of header name to string value"
    refused = [str(k) for k in v if not isinstance(k, str) or k.lower() not in policy.allowed_headers]
    if refused:
        allowed = ", ".join(sorted(policy.allowed_headers)) or "none"
        return (
            f"may not set header(s) {', '.join(map(repr, refused))}: the headers this server lets a prompt set "
            f"are {allowed} (AGNT_TRACES_MODEL_HEADERS)"
        )
    for value in v.values():
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_CHARS or re.search(r"[\x00-\x1f\x7f]", value):
            return f"header values must be strings of at most {MAX_HEADER_VALUE_CHARS} characters, one line"
    return None


#: Every param a prompt may set, and how its value is checked. Anything else is refused at write time
#: and dropped at call time. ``n`` is left out on purpose: only the first choice is recorded, so n > 1
#: would pay for outputs nobody sees.
_CHECKS: dict[str, Check] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_k": _integer(1, 1000),
    "max_tokens": _integer(1, MAX_TOKENS_LIMIT),
    "max_completion_tokens": _integer(1, MAX_TOKENS_LIMIT),
    "stop": _stop,
    "seed": _integer(-(2**63), 2**63 - 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "logit_bias": _logit_bias,
    "logprobs": _boolean,
    "top_logprobs": _integer(0, 20),
    "response_format": _json_object(type_choices=("text", "json_object", "json_schema")),
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _boolean,
    "reasoning_effort": _one_of("none", "minimal", "low", "medium", "high"),
    "thinking": _json_object(type_choices=("enabled", "disabled")),
    "user": _short_string(128),
    "prompt_cache_key": _short_string(64, r"^[A-Za-z0-9_.:-]+$"),
    "timeout": _timeout,
    "api_base": _api_base,
    "base_url": _api_base,  # an alias of api_base
    "extra_headers": _headers,
    "headers": _headers,
}
ALLOWED_PARAMS: tuple[str, ...] = tuple(sorted(_CHECKS))

_CREDENTIAL_NAME = re.compile(
    r"(?i)(api[_-]?key|secret|password|passwd|token$|^token|authorization|credential|^auth$|^key$|_key$)"
)


@dataclass(slots=True)
class FilteredParams:
    """What a call may send, and what was left out (for the call's metadata or a session note)."""

    params: dict[str, Any]
    endpoint: Endpoint | None = None  # the endpoint ``api_base`` matched, if any
    dropped: dict[str, str] = field(default_factory=dict)  # param name -> why
    clamped: dict[str, Any] = field(default_factory=dict)  # param name -> the value it was clamped from


# ---------------------------------------------------------------------------------------------------
# The policy


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgument(f"{name}={raw!r} must be a positive number")
    return value


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """The operator's rules for model calls. ``ModelPolicy.from_env()`` reads ``AGNT_TRACES_MODEL_*``."""

    endpoints: tuple[Endpoint, ...] = ()
    allowed_headers: frozenset[str] = frozenset()  # lower case
    max_timeout: float = DEFAULT_TIMEOUT
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS

    def __post_init__(self) -> None:
        if not (self.max_timeout > 0 and math.isfinite(self.max_timeout)):
            raise ValueError("max_timeout must be a positive number of seconds")
        if self.max_output_chars < 1:
            raise ValueError("max_output_chars must be at least 1")

    @classmethod
    def build(
        cls,
        endpoints: Iterable[str] = (),
        headers: Iterable[str] = (),
        *,
        max_timeout: float = DEFAULT_TIMEOUT,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> ModelPolicy:
        """A policy from plain strings (``"http://127.0.0.1:8000/v1"``, ``"https://x/v1=X_API_KEY"``).

        Raises:
            InvalidArgument: an entry that is not a plain base URL, or a header name that is not one.
        """
        parsed = tuple(Endpoint.parse(e) for e in endpoints if e.strip())
        names = set()
        for h in headers:
            name = h.strip()
            if not name:
                continue
            if not _HEADER_NAME_RE.match(name):
                raise InvalidArgument(f"{HEADERS_ENV}: {name!r} is not a header name", {"setting": HEADERS_ENV})
            names.add(name.lower())
        return cls(parsed, frozenset(names), max_timeout=max_timeout, max_output_chars=max_output_chars)

    @classmethod
    def from_env(cls, *, max_timeout: float | None = None) -> ModelPolicy:
        """The operator's policy from the environment (see the module docstring for the variables).

        Raises:
            InvalidArgument: a malformed setting, naming it.
        """
        max_output = _float_env(MAX_OUTPUT_ENV, DEFAULT_MAX_OUTPUT_CHARS)
        if max_output != int(max_output):
            raise InvalidArgument(f"{MAX_OUTPUT_ENV} must be a whole number of characters")
        return cls.build(
            os.environ.get(ENDPOINTS_ENV, "").split(","),
            os.environ.get(HEADERS_ENV, "").split(","),
            max_timeout=max_timeout if max_timeout is not None else _float_env(TIMEOUT_ENV, DEFAULT_TIMEOUT),
            max_output_chars=int(max_output),
        )

    # -- endpoints -------------------------------------------------------------------------------------

    def endpoint_for(self, url: _Url) -> Endpoint | None:
        """The most specific configured endpoint that ``url`` is at or below, if any."""
        matches = [e for e in self.endpoints if url.under(e.url)]
        return max(matches, key=lambda e: len(e.url.path), default=None)

    def endpoints_text(self) -> str:
        if not self.endpoints:
            return (
                "none are configured, so only each provider's default endpoint works; the operator lists "
                f"endpoints in {ENDPOINTS_ENV}"
            )
        return "allowed: " + ", ".join(e.url.text() for e in self.endpoints) + f" ({ENDPOINTS_ENV})"

    # -- params ----------------------------------------------------------------------------------------

    def problems(self, params: dict[str, Any]) -> dict[str, str]:
        """Each param that may not be sent as it is, and why (empty when all are fine)."""
        out: dict[str, str] = {}
        for name, value in params.items():
            check = _CHECKS.get(name)
            if check is None:
                out[name] = "credential" if _CREDENTIAL_NAME.search(str(name)) else "unknown"
                continue
            if (reason := check(value, self)) is not None:
                out[name] = reason
        both = "api_base" in params and "base_url" in params and not {"api_base", "base_url"} & set(out)
        if both and parse_endpoint_url(params["api_base"]) != parse_endpoint_url(params["base_url"]):
            out["base_url"] = "differs from api_base: set only one of them"
        return out

    def check_params(self, params: dict[str, Any], field_name: str = "content.model.params") -> None:
        """Refuse model params that this server would not send (at write time: upsert, update_models,
        prompt files).

        Raises:
            InvalidArgument: naming every refused param, why, and listing the allowed ones.
        """
        if not isinstance(params, dict):
            raise InvalidArgument(f"{field_name} must be an object", {"field": field_name})
        problems = self.problems(params)
        if not problems:
            return
        credentials = sorted(k for k, why in problems.items() if why == "credential")
        unknown = sorted(k for k, why in problems.items() if why == "unknown")
        bad = {k: why for k, why in problems.items() if why not in ("credential", "unknown")}
        parts = []
        if credentials:
            parts.append(
                f"{', '.join(map(repr, credentials))} look like credentials; API keys are never part of a prompt: "
                "the server takes them from its environment (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY)"
            )
        if unknown:
            parts.append(f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not allowed")
        parts += [f"{name!r} {why}" for name, why in sorted(bad.items())]
        message = f"{field_name}: " + "; ".join(parts)
        if credentials or unknown:
            message += f". Allowed params: {', '.join(ALLOWED_PARAMS)}"
        raise InvalidArgument(
            message,
            {"field": field_name, "names": sorted(problems), "allowed": list(ALLOWED_PARAMS)},
        )

    def filter_params(self, params: dict[str, Any]) -> FilteredParams:
        """The params a call may send (at call time, and when a trace is read): refused params are dropped,
        a ``timeout`` above the limit is clamped to it, ``base_url`` becomes ``api_base``."""
        problems = self.problems(params)
        out = FilteredParams(params={})
        for name, value in params.items():
            why = problems.get(name)
            if name == "timeout" and why is not None and _is_number(value) and value > 0:
                out.params["timeout"] = self.max_timeout
                out.clamped["timeout"] = value
            elif why is not None:
                out.dropped[str(name)] = why
            else:
                out.params[name] = value
        if "base_url" in out.params:
            base = out.params.pop("base_url")
            out.params.setdefault("api_base", base)
        if "api_base" in out.params:
            url = parse_endpoint_url(out.params["api_base"])
            assert url is not None  # checked above
            out.endpoint = self.endpoint_for(url)
        return out

    def output_limit(self, text: str | None) -> tuple[str | None, bool]:
        """``text`` cut to the output limit, and whether it was cut."""
        if text is None or len(text) <= self.max_output_chars:
            return text, False
        return text[: self.max_output_chars], True
