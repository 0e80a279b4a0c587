"""Removing secrets from text and parameters before anything is returned, logged or stored."""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "scrub", "scrub_params"]

REDACTED = "[REDACTED]"

_TOKEN_PATTERNS = [
    # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-...), and other sk- style keys
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google API key
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"\bgsk_[A-Za-z0-9]{20,}"),  # Groq
    re.compile(r"\br8_[A-Za-z0-9]{30,}"),  # Replicate
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT
]
# "Bearer <token>" and "Basic <token>" in headers or messages
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}")
# key=value / "key": "value" / key: value, for secret-looking key names
_ASSIGNMENT = re.compile(
    r"(?i)((?:x-)?(?:api[_-]?key|access[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token"
    r"|auth[_-]?token|refresh[_-]?token|session[_-]?token|id[_-]?token|password|passwd|secret|token"
    r"|authorization|credentials?)"
    r"[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\[REDACTED\]|(?:bearer|basic)\s)([^\s\"',;&}]{4,})"
)
# ?key=... in URLs (Gemini, Azure SAS, ...)
_QUERY = re.compile(r"(?i)([?&](?:key|api[_-]?key|token|access[_-]?token|sig|signature)=)[^&\s\"']+")

_SECRET_ENV_NAME = re.compile(r"(?i)(api[_-]?key|_key$|token|secret|password|passwd|credential)")
_MIN_ENV_SECRET = 8

# Parameter names that carry credentials. ``max_tokens`` and friends are counts, not secrets.
_SECRET_PARAM = re.compile(
    r"(?i)^(?:x-)?(?:"
    r".*api[_-]?keys?|key|keys|secret|.*[_-]secret|password|passwd|token|.*[_-]token"
    r"|authorization|auth|credentials?|aws_secret_access_key"
    r"|(?:.*[_-])?(?:access|secret|private|client|service|subscription|master|admin|auth)[_-]?key"
    r")$"
)
_NOT_SECRET_PARAM = re.compile(r"(?i)tokens$")


def is_secret_name(name: str) -> bool:
    """True for parameter / header names that carry credentials (``api_key``, ``x-api-key``,
    ``aws_secret_access_key``, ``token``...), false for ``max_tokens`` and other counts."""
    return bool(_SECRET_PARAM.match(name)) and not _NOT_SECRET_PARAM.match(name)


def _env_secrets() -> list[str]:
    values = []
    for name, value in os.environ.items():
        if len(value) >= _MIN_ENV_SECRET and _SECRET_ENV_NAME.search(name) and not value.isdigit():
            values.append(value)
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with API keys, bearer tokens and other credentials replaced by ``[REDACTED]``.

    Catches the well-known key formats, ``Authorization: Bearer ...``, ``api_key=...`` style
    assignments, secret query parameters in URLs, and the literal value of every secret-looking
    environment variable (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...).
    """
    if not text:
        return text
    for value in _env_secrets():
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def scrub_params(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A deep copy of ``params`` without credential-like keys (at any depth), and the dropped paths."""
    dropped: list[str] = []

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = str(k)
                sub = f"{path}.{key}" if path else key
                if is_secret_name(key):
                    dropped.append(sub)
                    continue
                out[k] = walk(v, sub)
            return out
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            return scrub(value)
        return value

    return walk(params, ""), dropped
