"""Full text on PostgreSQL with the SQLite store's semantics: the same words, the same query language.

SQLite indexes with FTS5's ``unicode61`` tokenizer (runs of letters and digits, lower-cased, diacritics
removed) and accepts FTS5 query syntax. Here both sides are cut into words in Python the same way, so
PostgreSQL's own parser (whose words depend on the database's locale and which keeps e-mail addresses,
URLs and hyphenated words whole) never decides what a word is:

- a document becomes a ``tsvector`` literal of normalised words with their positions;
- a query is parsed as the FTS5 subset ``word``, ``prefix*``, ``"a phrase"`` (``""`` escapes a quote;
  ``"a phrase"*``), implicit AND, ``AND``, ``OR``, ``NOT`` (binary) and parentheses, and becomes a
  ``tsquery`` literal. Words are letters and digits only, so no caller text can be an operator.

Both literals travel as bound parameters (``%s::tsvector``, ``%s::tsquery``), never inside SQL text.
What FTS5 refuses (a lone ``AND``, an open quote or parenthesis, ``NEAR(``, column filters) is refused
here with the same error; ``NEAR`` groups are refused with a sentence saying so.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..errors import InvalidArgument

__all__ = ["document_vector", "normalise_words", "to_tsquery_literal"]

_MAX_POSITION = 16383  # PostgreSQL's largest tsvector position
_MAX_POSITIONS_PER_WORD = 255
_MAX_WORD_BYTES = 2046
_MAX_VECTOR_CHARS = 900_000  # a tsvector holds at most 1 MB


def _fold(word: str) -> str:
    """A word as unicode61 (remove_diacritics 2) stores it: lower case, without diacritics."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def normalise_words(text: str) -> list[str]:
    """The words of ``text`` as the SQLite store's tokenizer sees them (runs of letters and digits)."""
    out: list[str] = []
    word: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    words = []
    for raw in out:
        folded = "".join(ch for ch in _fold(raw) if ch.isalnum())
        if folded:
            words.append(folded)
    return words


def document_vector(text: str) -> str:
    """The ``tsvector`` literal of a document: each word with the positions it has."""
    positions: dict[str, list[int]] = {}
    for i, word in enumerate(normalise_words(text), start=1):
        if len(word.encode()) > _MAX_WORD_BYTES:
            continue
        seen = positions.setdefault(word, [])
        if len(seen) < _MAX_POSITIONS_PER_WORD:
            seen.append(min(i, _MAX_POSITION))
    parts: list[str] = []
    size = 0
    for word, pos in positions.items():
        part = f"'{word}':{','.join(str(p) for p in dict.fromkeys(pos))}"
        size += len(part) + 1
        if size > _MAX_VECTOR_CHARS:
            break
        parts.append(part)
    return " ".join(parts)


# -- queries ------------------------------------------------------------------------------------------


def _syntax(query: str, problem: str) -> InvalidArgument:
    return InvalidArgument(
        f"query {query!r} is not a valid full-text query ({problem}): use plain words, "
        '"quoted phrases", OR, NOT, or prefix* — or put the whole text in double quotes',
        {"field": "query"},
    )


@dataclass(slots=True)
class _Token:
    kind: str  # "phrase", "word", "(", ")", "*"
    text: str


def _is_bare(ch: str) -> bool:
    """A character of an FTS5 bareword: letters, digits, '_' and anything outside ASCII."""
    return ch.isalnum() or ch == "_" or ord(ch) >= 0x80


def _tokens(query: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            j, phrase = i + 1, []
            while True:
                if j >= n:
                    raise _syntax(query, "unterminated string")
                if query[j] == '"':
                    if j + 1 < n and query[j + 1] == '"':
                        phrase.append('"')
                        j += 2
                        continue
                    break
                phrase.append(query[j])
                j += 1
            out.append(_Token("phrase", "".join(phrase)))
            i = j + 1
        elif ch in "()*":
            out.append(_Token(ch, ch))
            i += 1
        elif _is_bare(ch):
            j = i
            while j < n and _is_bare(query[j]):
                j += 1
            out.append(_Token("word", query[i:j]))
            i = j
        else:
            raise _syntax(query, f"syntax error near {ch!r}")
    return out


_FALSE = None  # a phrase with no words: matches nothing


class _Parser:
    """Recursive descent over FTS5's precedence: NOT binds tightest, then AND (or none), then OR."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokens(query)
        self.pos = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _is_op(self, name: str) -> bool:
        tok = self._peek()
        return tok is not None and tok.kind == "word" and tok.text == name

    def parse(self) -> str | None:
        if not self.tokens:
            raise _syntax(self.query, "empty query")
        expr = self._or()
        tok = self._peek()
        if tok is not None:
            raise _syntax(self.query, f"syntax error near {tok.text!r}")
        return expr

    def _or(self) -> str | None:
        left = self._and()
        while self._is_op("OR"):
            self.pos += 1
            right = self._and()
            left = right if left is _FALSE else left if right is _FALSE else f"({left} | {right})"
        return left

    def _starts_primary(self) -> bool:
        tok = self._peek()
        if tok is None:
            return False
        if tok.kind == "word":
            return tok.text not in ("OR", "AND", "NOT")
        return tok.kind in ("phrase", "(")

    def _and(self) -> str | None:
        left = self._not()
        while True:
            if self._is_op("AND"):
                self.pos += 1
            elif not self._starts_primary():
                return left
            right = self._not()
            left = _FALSE if left is _FALSE or right is _FALSE else f"({left} & {right})"

    def _not(self) -> str | None:
        left = self._primary()
        while self._is_op("NOT"):
            self.pos += 1
            right = self._primary()
            if left is not _FALSE and right is not _FALSE:
                left = f"({left} & !{right})"
        return left

    def _primary(self) -> str | None:
        tok = self._peek()
        if tok is None:
            raise _syntax(self.query, "the query ends where a word was expected")
        if tok.kind == "(":
            self.pos += 1
            inner = self._or()
            close = self._peek()
            if close is None or close.kind != ")":
                raise _syntax(self.query, "unbalanced parenthesis")
            self.pos += 1
            return inner
        if tok.kind == "word" and tok.text in ("OR", "AND", "NOT"):
            raise _syntax(self.query, f"syntax error near {tok.text!r}")
        if tok.kind == "word" and tok.text == "NEAR" and self._next_is("("):
            raise _syntax(self.query, "NEAR groups are not supported on the PostgreSQL store")
        if tok.kind not in ("word", "phrase"):
            raise _syntax(self.query, f"syntax error near {tok.text!r}")
        self.pos += 1
        prefix = False
        star = self._peek()
        if star is not None and star.kind == "*":
            self.pos += 1
            prefix = True
        return _phrase(normalise_words(tok.text), prefix)

    def _next_is(self, kind: str) -> bool:
        nxt = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
        return nxt is not None and nxt.kind == kind


def _phrase(words: list[str], prefix: bool) -> str | None:
    if not words:
        return _FALSE
    lexemes = [f"'{w}'" for w in words]  # letters and digits only: nothing to escape
    if prefix:
        lexemes[-1] += ":*"
    return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"


def to_tsquery_literal(query: str) -> str | None:
    """The ``tsquery`` literal of an FTS5-syntax query; None when it can match nothing (an empty phrase).

    Raises:
        InvalidArgument: the query is not valid FTS5 syntax (or uses ``NEAR``), naming the field ``query``.
    """
    return _Parser(query).parse()
