"""Turning the user's query text into clauses the search layer can evaluate.

Grammar (all clauses AND together)::

    word        free text: found in package names (boosted) and every other field;
                a word of 7+ letters/digits also matches hash prefixes
    word*       prefix of a word (py-ker*)
    field:value one facet value (os:ubuntu24.04, stack:e4s, tag:develop); value* for a
                prefix; hash:abc1234 for a hash prefix
    os=value    the same for facet names written Spack-style
    +mpi ~ipo -shared  build_system=cmake  patches:=abc   variants, as Spack writes them
    /abc1234    a hash prefix
    *           everything
    "..."       quotes take text literally (no operators) and may hold spaces

Mistakes raise QueryError with the position of the offending character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from searcher.errors import QueryError
from searcher.schema import FACET_NAMES

MAX_QUERY_LENGTH = 1000
MAX_CLAUSES = 32
_IDENT = r"[A-Za-z_][A-Za-z0-9_.-]*"
_FIELD = re.compile(rf"^({_IDENT}):(.*)$", re.S)
_KEY_EXACT = re.compile(rf"^({_IDENT}):=(.*)$", re.S)
_KEY_VALUE = re.compile(rf"^({_IDENT})=(.*)$", re.S)
_BOOL_VARIANT = re.compile(r"^([+~-])(.*)$", re.S)
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HASH_CHARS = re.compile(r"^[a-z0-9]+$")
# A typed word this long made of hash characters may be the start of a DAG hash.
MIN_HASH_PREFIX = 7
FIELDS = (*FACET_NAMES, "hash")


@dataclass(frozen=True)
class Word:
    """Free text; prefix when it ended in '*'."""

    text: str
    prefix: bool = False
    position: int = 0

    @property
    def may_be_hash(self) -> bool:
        """Whether this word could also be the beginning of a spec's hash."""
        return len(self.text) >= MIN_HASH_PREFIX and bool(_HASH_CHARS.match(self.text))


@dataclass(frozen=True)
class FacetValue:
    """field:value on a facet; prefix when the value ended in '*'."""

    facet: str
    value: str
    prefix: bool = False
    position: int = 0


@dataclass(frozen=True)
class Variant:
    """A variant as Spack writes it: +name, ~name, key=value, key:=value."""

    value: str
    position: int = 0

    def matches(self, candidate: str) -> bool:
        """Whether an indexed variant value satisfies this one."""
        if candidate == self.value:
            return True
        # key=value also accepts the exact form key:=value that newer Spack prints.
        key, sep, value = self.value.partition("=")
        return bool(sep) and ":" not in key and candidate == f"{key}:={value}"


@dataclass(frozen=True)
class HashPrefix:
    """The beginning of a DAG hash."""

    prefix: str
    position: int = 0


Clause = Word | FacetValue | Variant | HashPrefix


@dataclass(frozen=True)
class ParsedQuery:
    """The clauses of a query; no clauses means everything."""

    text: str
    clauses: tuple[Clause, ...]

    @property
    def words(self) -> tuple[Word, ...]:
        """The free-text clauses (the ones relevance ranking scores)."""
        return tuple(c for c in self.clauses if isinstance(c, Word))


def parse(text: str) -> ParsedQuery:
    """Parse query text; raises QueryError pointing at the first problem."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"query is too long ({len(text)} characters; at most {MAX_QUERY_LENGTH})",
            position=MAX_QUERY_LENGTH,
        )
    clauses: list[Clause] = []
    for token, position, quoted in _tokens(text):
        if quoted:
            clauses.extend(_literal_words(token, position))
        else:
            clause = _clause(token, position)
            if clause is not None:
                clauses.append(clause)
        if len(clauses) > MAX_CLAUSES:
            raise QueryError(f"too many terms (at most {MAX_CLAUSES})", position=position)
    return ParsedQuery(text=text, clauses=tuple(dict.fromkeys(clauses)))


def _tokens(text: str):
    """Split on whitespace; double quotes group. Yields (token, start, was_quoted)."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, parts, quoted = i, [], False
        while i < n and not text[i].isspace():
            if text[i] == '"':
                close = text.find('"', i + 1)
                if close < 0:
                    raise QueryError('unterminated quote: add the closing "', position=i)
                parts.append(text[i + 1 : close])
                quoted = True
                i = close + 1
            else:
                parts.append(text[i])
                i += 1
        yield "".join(parts), start, quoted


def _literal_words(token: str, position: int) -> list[Word]:
    return [Word(w.lower(), position=position) for w in token.split()]


def _clause(token: str, pos: int) -> Clause | None:
    if token == "*":
        return None
    if token.startswith("/"):
        prefix = token[1:].lower()
        if not prefix or not _HASH_CHARS.match(prefix):
            raise QueryError(
                "'/' must be followed by the start of a hash (letters and digits)", position=pos + 1
            )
        return HashPrefix(prefix, pos)
    if m := _BOOL_VARIANT.match(token):
        sign, name = m.groups()
        if not _VARIANT_NAME.match(name):
            raise QueryError(
                f"'{sign}' must be followed by a variant name, as in {sign}mpi", position=pos + 1
            )
        return Variant(("~" if sign == "-" else sign) + name, pos)
    if m := _KEY_EXACT.match(token):
        key, value = m.groups()
        _need_value(value, f"{key}:=", pos + len(key) + 2)
        return Variant(f"{key}:={value}", pos)
    if m := _KEY_VALUE.match(token):
        key, value = m.groups()
        _need_value(value, f"{key}=", pos + len(key) + 1)
        if key in FACET_NAMES:
            return _facet_value(key, value, pos, pos + len(key) + 1)
        return Variant(f"{key}={value}", pos)
    if m := _FIELD.match(token):
        key, value = m.groups()
        if key not in FIELDS:
            raise QueryError(f"unknown field '{key}': use one of {', '.join(FIELDS)}", position=pos)
        _need_value(value, f"{key}:", pos + len(key) + 1)
        if key == "hash":
            prefix = value.lower()
            if not _HASH_CHARS.match(prefix):
                raise QueryError("a hash has only letters and digits", position=pos + len(key) + 1)
            return HashPrefix(prefix, pos)
        return _facet_value(key, value, pos, pos + len(key) + 1)
    word, prefix = _star(token.lower(), pos)
    return Word(word, prefix, pos)


def _facet_value(facet: str, value: str, pos: int, value_pos: int) -> FacetValue:
    value, prefix = _star(value, value_pos)
    return FacetValue(facet, value, prefix, pos)


def _star(text: str, pos: int) -> tuple[str, bool]:
    """Strip one trailing '*' (prefix search); reject '*' anywhere else."""
    prefix = text.endswith("*")
    body = text[:-1] if prefix else text
    if "*" in body:
        raise QueryError("'*' may only end a word (as in py-ker*)", position=pos + body.index("*"))
    if prefix and not body:
        raise QueryError("'*' needs at least one character before it", position=pos)
    return body, prefix


def _need_value(value: str, after: str, pos: int) -> None:
    if not value:
        raise QueryError(f"missing value after '{after}'", position=pos)
