"""Bounds on a full-text ``query`` before it reaches SQLite's FTS5 (backend-neutral).

FTS5 reads the postings of every term a query names, and a prefix term reads those of every indexed
word it starts: ``a* b* c* …`` reads most of the index, many times. A query is refused, before any
work, when it is longer than ``MAX_QUERY_CHARS``, names more than ``MAX_TERMS`` words, or has a prefix
term shorter than ``MIN_PREFIX_CHARS``. What passes is still bounded by the read time budget.
"""

from __future__ import annotations

from ..errors import InvalidArgument

__all__ = ["MAX_QUERY_CHARS", "MAX_TERMS", "MIN_PREFIX_CHARS", "check_fulltext_query"]

MAX_QUERY_CHARS = 256
MAX_TERMS = 16
MIN_PREFIX_CHARS = 3
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})


def _refuse(message: str, rule: str, limit: int) -> InvalidArgument:
    return InvalidArgument(message, {"field": "query", "rule": rule, "limit": limit})


def _words(text: str) -> list[str]:
    """Words as FTS5's unicode61 tokenizer cuts them: runs of letters and digits."""
    out: list[str] = []
    word = ""
    for ch in text:
        if ch.isalnum():
            word += ch
        elif word:
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


def _pieces(text: str) -> list[tuple[str, bool]]:
    """(text, quoted) pieces of a query: ``"…"`` phrases (``""`` escapes a quote) and the rest."""
    pieces: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            j, phrase = i + 1, ""
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        phrase += '"'
                        j += 2
                        continue
                    break
                phrase += text[j]
                j += 1
            pieces.append((phrase, True))
            i = j + 1
        else:
            j = text.find('"', i)
            j = n if j < 0 else j
            pieces.append((text[i:j], False))
            i = j
    return pieces


def check_fulltext_query(text: str) -> None:
    """Refuse a full-text query too costly to run (syntax is left to the engine).

    Raises:
        InvalidArgument: naming the field ``query`` and the rule broken (``details.rule``).
    """
    if len(text) > MAX_QUERY_CHARS:
        raise _refuse(
            f"query is {len(text)} characters long; a full-text query may have at most {MAX_QUERY_CHARS}: "
            "search for a few distinctive words or a quoted phrase",
            "max_length",
            MAX_QUERY_CHARS,
        )
    terms = 0
    last_word = ""
    pieces = _pieces(text)
    for k, (piece, quoted) in enumerate(pieces):
        words = _words(piece)
        if not quoted:
            words = [w for w in words if w not in _OPERATORS]
            # A bare prefix term: the word right before each '*'.
            for pos, ch in enumerate(piece):
                if ch == "*":
                    before = _words(piece[:pos] + " ")
                    tail = piece[:pos]
                    word = before[-1] if before and tail and tail[-1].isalnum() else ""
                    if not word and pos == 0 and k > 0 and pieces[k - 1][1]:
                        word = last_word  # "phrase"* : a prefix on the phrase's last word
                    _check_prefix(word)
        terms += len(words)
        if quoted:
            phrase_words = _words(piece)
            last_word = phrase_words[-1] if phrase_words else ""
    if terms > MAX_TERMS:
        raise _refuse(
            f"query names {terms} words; a full-text query may name at most {MAX_TERMS}: use fewer, more "
            "distinctive words, or narrow the list with filters (since, promptName, tags …)",
            "max_terms",
            MAX_TERMS,
        )


def _check_prefix(word: str) -> None:
    if len(word) < MIN_PREFIX_CHARS:
        shown = f"{word}*" if word else "*"
        raise _refuse(
            f"query prefix term {shown!r} is too short: a prefix search needs at least {MIN_PREFIX_CHARS} "
            "letters before '*' (e.g. refu*); use longer words or search whole words",
            "min_prefix_chars",
            MIN_PREFIX_CHARS,
        )
