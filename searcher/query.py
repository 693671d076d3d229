"""Turning the user's query text (Spack spec syntax mixed with plain words) into clauses.

A query is a sequence of whitespace-separated chunks. Spec syntax, as `spack find` reads
it (the subset that fits build-cache listings)::

    py-torch            a package name (one the index knows): starts a spec
    @3.9.2 @=3.9.2 @1.2:1.4 @:3 @4.2: @1.2,1.5:   versions (Spack's order and ranges)
    %gcc %gcc@11:       compiler (%none: built without one)
    +mpi ~shared -shared   boolean variants (-x only at the start of a chunk)
    key=value key=a,b key:=a,b key=true   valued variants (a,b: has at least a and b;
                        := exactly these; true/false as +key/~key)
    arch=linux-ubuntu24.04-aarch64 arch=aarch64 platform= os= target=
    target=x86_64_v3: target=:zen4 target=a:b,c   Spack's target ranges (targets.py)
    /abc1234            hash prefix
    ^openmpi@5: ^cuda@12+dev   a dependency anywhere in the DAG (options after it are the
                        dependency's; several ^ AND); ^mpi: any provider of a virtual

Options attach to the spec named last (or to an anonymous spec before any name); several
specs OR together, as in `spack find a b`. Attached forms work: py-torch@2.7:+cuda%gcc.

Searcher's own, ANDed with everything: plain words (any word that is not a package name;
`py-ker*` for a prefix; 7+ letters/digits also match hash prefixes), `field:value` on any
facet (tag:develop, stack:e4s, os:ubuntu24.04, value* for a prefix) and `hash:abc`;
"..." takes text literally.

Mistakes raise QueryError with the position of the offending character.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from searcher.errors import QueryError
from searcher.schema import FACET_NAMES
from searcher.targets import TargetConstraint
from searcher.versions import VersionList, VersionSyntaxError, parse_version_list

MAX_QUERY_LENGTH = 1000
MAX_CLAUSES = 32
MIN_HASH_PREFIX = 7
FIELDS = (*FACET_NAMES, "hash")
ARCH_KEYS = ("arch", "platform", "os", "target")

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_NAME_RE = re.compile(rf"{_NAME}\*?")
# A version list, with spaces around its commas allowed as in Spack (@4.3, 4.6).
_HASH_BODY = re.compile(r"[A-Za-z0-9]*")
_VERSION_CHARS = re.compile(r"[=A-Za-z0-9_.:-]*(?:\s*,\s*[=A-Za-z0-9_.:-]*)*")
_HASH_CHARS = re.compile(r"^[a-z0-9]+$")
_FIELD = re.compile(rf"^({_NAME}):(?!=)(.*)$", re.S)
_KEY_VALUE = re.compile(rf"^({_NAME})(:?==?)(.*)$", re.S)


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
    # target= with Spack's ranges or a list (x86_64_v3:, :zen4, a,b): what a value must
    # satisfy instead of being equal (targets.py).
    targets: TargetConstraint | None = None


@dataclass(frozen=True)
class HashPrefix:
    """The beginning of a DAG hash."""

    prefix: str
    position: int = 0


@dataclass(frozen=True)
class Variant:
    """A variant constraint as Spack writes it."""

    name: str
    values: tuple[str, ...] = ()  # empty for boolean variants
    enabled: bool = True  # for boolean variants: +name or ~name
    exact: bool = False  # key:=a,b
    # Where it was written, for messages; not part of what it means (so equal conditions
    # are equal, and one cache entry serves them wherever they appear).
    position: int = field(default=0, compare=False)

    @classmethod
    def from_key_value(cls, key: str, op: str, value: str, position: int) -> Variant:
        """key=value (true/false as booleans), key=a,b, key:=a,b."""
        if op == "=" and value.lower() in ("true", "false"):
            return cls(key, (), value.lower() == "true", position=position)
        values = tuple(v for v in value.split(",") if v)
        return cls(key, values, exact=op == ":=", position=position)

    def matches(self, candidate: str) -> bool:
        """Whether one indexed variant value (e.g. '+mpi', 'libs:=shared,static') satisfies."""
        if not self.values:
            if candidate[:1] in "+~":
                return candidate[1:] == self.name and (candidate[0] == "+") == self.enabled
            key, _, value = candidate.partition("=")
            return key.rstrip(":") == self.name and value.lower() == str(self.enabled).lower()
        key, sep, value = candidate.partition("=")
        if not sep or key.rstrip(":") != self.name:
            return False
        have = set(value.split(","))
        return have == set(self.values) if self.exact else have >= set(self.values)


@dataclass(frozen=True)
class Compiler:
    """%name[@versions]."""

    name: str
    versions: VersionList | None = None
    position: int = field(default=0, compare=False)  # as Variant.position

    def matches(self, candidate: str) -> bool:
        """Whether an indexed compiler value ('gcc@11.4.0', 'none') satisfies."""
        name, _, version = candidate.partition("@")
        if name.lower() != self.name.lower():
            return False
        return self.versions is None or (bool(version) and self.versions.matches(version))


@dataclass
class SpecClause:
    """One spec of the query: a package (or none), and its node options, all ANDed."""

    name: str | None = None
    position: int = 0
    versions: list[VersionList] = field(default_factory=list)
    compilers: list[Compiler] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    arch: list[FacetValue] = field(default_factory=list)
    hashes: list[HashPrefix] = field(default_factory=list)
    # ^name...: nodes that must appear anywhere in the spec's dependency DAG (all ANDed).
    dependencies: list[SpecClause] = field(default_factory=list)
    # ^[virtuals=mpi] openmpi, ^mpi=openmpi: the dependency provides these virtuals.
    virtuals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Part:
    """Where one constraint of the query was written: text[start:end] (the page shows it
    as a chip, and removes it by cutting that span). kind: package, version, compiler,
    variant, arch, hash, dependency (with the options after it), field, word."""

    kind: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ParsedQuery:
    """Specs (ORed), then words and facet/hash clauses ANDed with them; none: everything."""

    text: str
    specs: tuple[SpecClause, ...] = ()
    words: tuple[Word, ...] = ()
    clauses: tuple[FacetValue | HashPrefix, ...] = ()
    parts: tuple[Part, ...] = ()

    def without(self, part: Part) -> str:
        """The query text with one part cut out (spaces tidied)."""
        return " ".join((self.text[: part.start] + " " + self.text[part.end :]).split())


def parse(text: str, is_package: Callable[[str], bool] = lambda name: False) -> ParsedQuery:
    """Parse query text; raises QueryError pointing at the first problem.

    is_package tells package names (which start a spec) from plain words.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"query is too long ({len(text)} characters; at most {MAX_QUERY_LENGTH})",
            position=MAX_QUERY_LENGTH,
        )
    state = _State(is_package)
    for chunk, position, quoted in _glued(text, _chunks(text)):
        if quoted:
            state.compiler_waiting = None
            for offset, word in _words_of(chunk):
                state.add_word(Word(word.lower(), position=position + offset))
        else:
            _parse_chunk(state, chunk, position)
        if state.count > MAX_CLAUSES:
            raise QueryError(f"too many terms (at most {MAX_CLAUSES})", position=position)
    parts = tuple(Part(kind, a, b, text[a:b]) for kind, a, b in state.parts)
    return ParsedQuery(text, tuple(state.specs), tuple(state.words), tuple(state.clauses), parts)


class _State:
    def __init__(self, is_package: Callable[[str], bool]):
        self.is_package = is_package
        self.specs: list[SpecClause] = []
        self.words: list[Word] = []
        self.clauses: list[FacetValue | HashPrefix] = []
        self.count = 0
        self.node: SpecClause | None = None  # where options go: the last spec or ^dependency
        # %intel just read, without versions: an @ right after it is the compiler's.
        self.compiler_waiting: Compiler | None = None
        self.parts: list[list[Any]] = []  # [kind, start, end] of each constraint
        self.count_words = 0  # words added (unlike self.words, repeats counted)

    def record(self, token: str, start: int, end: int, waiting: Compiler | None) -> None:
        """Note where the token just parsed was written (ParsedQuery.parts)."""
        sigil = token[:1]
        last = self.parts[-1] if self.parts else None
        in_dependency = bool(self.specs) and self.node in self.specs[-1].dependencies
        if sigil == "^":
            self.parts.append(["dependency", start, end])
        elif in_dependency and last is not None and last[0] == "dependency":
            last[2] = end  # the dependency's own options
        elif sigil == "@" and waiting is not None and last is not None and last[0] == "compiler":
            last[2] = end  # %intel @12.1: the compiler's versions
        elif sigil in "@%/+~-":
            kinds = {"@": "version", "%": "compiler", "/": "hash"}
            self.parts.append([kinds.get(sigil, "variant"), start, end])
        elif m := _KEY_VALUE.match(token):
            key = m.group(1)
            kind = "arch" if key in ARCH_KEYS else "field" if key in FACET_NAMES else "variant"
            self.parts.append([kind, start, end])
        elif self.node is not None and self.node.position == start and self.node.name:
            self.parts.append(["package", start, end])

    def current(self, position: int) -> SpecClause:
        if self.node is None:
            self.start_spec(SpecClause(position=position))
        assert self.node is not None
        return self.node

    def start_spec(self, spec: SpecClause) -> None:
        self.specs.append(spec)
        self.node = spec

    def start_dependency(self, dependency: SpecClause) -> None:
        if not self.specs:
            self.specs.append(SpecClause(position=dependency.position))
        self.specs[-1].dependencies.append(dependency)
        self.node = dependency

    def set_compiler_versions(self, compiler: Compiler, versions: VersionList) -> None:
        node = self.current(compiler.position)
        index = node.compilers.index(compiler)
        node.compilers[index] = Compiler(compiler.name, versions, compiler.position)
        self.compiler_waiting = None

    def add_versions(self, node: SpecClause, versions: VersionList, at: int) -> None:
        if node.versions:  # Spack refuses x@1.2@2.3
            raise QueryError(f"{_node_name(node)} has two versions: give one list", position=at)
        node.versions.append(versions)

    def add_variant(self, node: SpecClause, variant: Variant) -> None:
        """A variant of a node; refused when the node has it already (repeated, or
        contradicted: +foo ~foo), as Spack refuses it."""
        for have in node.variants:
            if have.name == variant.name:
                same = have == variant
                raise QueryError(
                    f"variant '{variant.name}' of {_node_name(node)} is "
                    + ("repeated" if same else "given twice, contradicting itself"),
                    position=variant.position,
                )
        node.variants.append(variant)

    def add_arch(self, node: SpecClause, values: list[FacetValue]) -> None:
        for value in values:
            if any(a.facet == value.facet for a in node.arch):
                raise QueryError(
                    f"{_node_name(node)} has two {value.facet}= values", position=value.position
                )
            node.arch.append(value)

    def add_word(self, word: Word) -> None:
        self.count += 1
        self.count_words += 1
        if word not in self.words:
            self.words.append(word)

    def add_clause(self, clause: FacetValue | HashPrefix) -> None:
        self.count += 1
        self.clauses.append(clause)


def _node_name(node: SpecClause) -> str:
    return node.name or "the spec"


def _longest(pattern: re.Pattern[str], text: str, at: int) -> str:
    """What a pattern that may match nothing matches at text[at:]."""
    found = pattern.match(text, at)
    return found.group() if found else ""


def _chunks(text: str) -> Iterator[tuple[str, int, bool]]:
    """Split on whitespace; double quotes group. Yields (chunk, start, was_quoted)."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, parts, quoted = i, [], False
        while i < n and (not text[i].isspace() or _in_version_list(text, start, i)):
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


# A chunk that cannot stand alone: a sigil (and edge properties) whose value follows
# after spaces, as Spack reads `+ debug % intel @ 12.1` and `^[virtuals=mpi] openmpi`.
_OPEN = re.compile(r"(\^|%%?|\+\+?|~~?|--?|@)\s*(\[[^\]]*\]?)?\s*|(\^|%%?)\s*\[[^\]]*")


def _glued(text: str, chunks: Iterator[tuple[str, int, bool]]) -> Iterator[tuple[str, int, bool]]:
    """Chunks, with an unfinished one (a sigil alone, an open '[') joined to the next (the
    text between them kept, so positions stay those of the query)."""
    pending: tuple[str, int, bool] | None = None
    for chunk, start, quoted in chunks:
        if pending is not None:
            if quoted:
                yield pending
            else:
                chunk, start = text[pending[1] : start + len(chunk)], pending[1]
            pending = None
        if not quoted and _OPEN.fullmatch(chunk):
            pending = (chunk, start, quoted)
            continue
        yield chunk, start, quoted
    if pending is not None:
        yield pending


def _in_version_list(text: str, start: int, i: int) -> bool:
    """Whether the space at i sits by a comma of a version list (@4.3, 4.6): Spack reads
    the list across it, so the chunk goes on."""
    before, after = text[start:i].rstrip(), text[i:].lstrip()
    at = before.rfind("@")
    # Everything since the last '@' is a version list so far (@=1.2, @1.2:1.4, ...).
    in_versions = at >= 0 and _VERSION_CHARS.fullmatch(before, at + 1) is not None
    return in_versions and (before.endswith(",") or after.startswith(","))


def _words_of(chunk: str) -> Iterator[tuple[int, str]]:
    for match in re.finditer(r"\S+", chunk):
        yield match.start(), match.group()


def _parse_chunk(state: _State, chunk: str, pos: int) -> None:
    if chunk == "*":
        state.compiler_waiting = None
        return
    # Searcher's field syntax first: tag:develop, stack:e4s, hash:abc (not key:=value).
    if m := _FIELD.match(chunk):
        state.compiler_waiting = None
        key, value = m.groups()
        if key not in FIELDS:
            raise QueryError(f"unknown field '{key}': use one of {', '.join(FIELDS)}", position=pos)
        _need(value, f"{key}:", pos + len(key) + 1)
        if key == "hash":
            state.add_clause(_hash(value, pos + len(key) + 1))
        else:
            state.add_clause(_facet_value(key, value, pos, pos + len(key) + 1))
        state.parts.append(["field", pos, pos + len(chunk)])
        return
    i = 0
    while i < len(chunk):
        waiting, words = state.compiler_waiting, state.count_words
        end = _parse_token(state, chunk, i, pos)
        if state.count_words > words:  # a plain word (or py-ker*): removable too
            state.parts.append(["word", pos + i, pos + end])
        else:
            state.record(chunk[i:end], pos + i, pos + end, waiting)
        i = end


def _parse_token(state: _State, chunk: str, i: int, pos: int) -> int:
    """Parse one spec token of a chunk starting at i; returns where the next one starts."""
    at = pos + i
    rest = chunk[i:]
    sigil = rest[0]
    waiting, state.compiler_waiting = state.compiler_waiting, None
    if sigil == "@":
        skip = _spaces(rest, 1)
        body = _longest(_VERSION_CHARS, rest, skip)
        _need(body, "@", at + skip)
        if waiting is not None:  # %intel @12.1: the compiler's versions, as in Spack
            state.set_compiler_versions(waiting, _versions(body, at + skip))
        else:
            state.add_versions(state.current(at), _versions(body, at + skip), at)
        state.count += 1
        return i + skip + len(body)
    if sigil == "%":
        return _compiler_token(state, rest, i, at)
    if sigil in "+~" or (sigil == "-" and i == 0):
        # ++x ~~x --x (propagated to dependencies in Spack) match as +x ~x.
        doubled = 2 if rest[1:2] == sigil else 1
        skip = _spaces(rest, doubled)
        name = re.match(rf"{_NAME}", rest[skip:])
        if not name:
            raise QueryError(
                f"'{sigil}' must be followed by a variant name, as in {sigil}mpi",
                position=at + skip,
            )
        variant = Variant(name.group(), (), sigil == "+", position=at)
        state.add_variant(state.current(at), variant)
        state.count += 1
        return i + skip + name.end()
    if sigil == "^":
        skip, virtuals = _edge(rest, 1, at)
        assigned = _VIRTUAL_ASSIGNMENT.match(rest, skip)
        if assigned:  # ^mpi=openmpi
            virtuals += tuple(assigned.group(1).split(","))
            skip = assigned.start(2)
        name = re.match(rf"{_NAME}|\*", rest[skip:])
        if not name:
            raise QueryError(
                "'^' must be followed by a dependency's name, as in ^openmpi", position=at + skip
            )
        package = None if name.group() == "*" else _unqualified(name.group())
        dependency = SpecClause(name=package, position=at, virtuals=virtuals)
        state.start_dependency(dependency)
        state.count += 1
        return i + skip + name.end()
    if sigil == "/":
        body = _longest(_HASH_BODY, rest, 1)
        state.current(at).hashes.append(_hash(body, at + 1, after="/"))
        state.count += 1
        return i + 1 + len(body)
    if m := _KEY_VALUE.match(rest):
        key, op, value = m.groups()
        _need(value, f"{key}{op}", at + len(key) + len(op))
        state.count += 1
        if op.endswith("=="):  # key==value: propagated in Spack; matched as key=value
            op = op[:-1]
        if key in ARCH_KEYS and op == "=":
            state.add_arch(state.current(at), _arch(key, value, at + len(key) + 1))
        elif key in FACET_NAMES and op == "=":
            state.add_clause(_facet_value(key, value, at, at + len(key) + 1))
        else:
            state.add_variant(state.current(at), Variant.from_key_value(key, op, value, at))
        return len(chunk)  # a value runs to the end of the chunk, as in Spack
    name = _NAME_RE.match(rest)
    if not name:
        if "*" in rest:
            star = rest.index("*")
            message = (
                "'*' needs at least one character before it"
                if star == 0
                else "'*' may only end a word (as in py-ker*)"
            )
            raise QueryError(message, position=at + star)
        return _plain_word(state, chunk, i, pos)
    text = name.group()
    end = i + len(text)
    if chunk[end : end + 1] == "*":  # py-ker**
        raise QueryError("'*' may only end a word (as in py-ker*)", position=pos + end)
    if text.endswith("*") and end < len(chunk) and chunk[end] not in "@%+~/^":  # py*keras
        raise QueryError("'*' may only end a word (as in py-ker*)", position=pos + end - 1)
    if text.endswith("*"):
        state.add_word(Word(text[:-1].lower(), True, at))
    elif state.is_package(text):
        state.start_spec(SpecClause(name=text, position=at))
        state.count += 1
    elif "." in text and state.is_package(_unqualified(text)):  # builtin.zlib: a namespace
        state.start_spec(SpecClause(name=_unqualified(text), position=at))
        state.count += 1
    else:
        state.add_word(Word(text.lower(), False, at))
    return end


# c,cxx=gcc after % or ^: the dependency provides these virtuals.
_VIRTUAL_ASSIGNMENT = re.compile(
    r"([A-Za-z0-9_][A-Za-z0-9_-]*(?:,[A-Za-z0-9_][A-Za-z0-9_-]*)*)=(\S)"
)
_EDGE_KEYS = ("virtuals", "deptypes")
_DEPTYPES = ("build", "link", "run", "test")


def _spaces(rest: str, at: int) -> int:
    """Where the value after a sigil starts: Spack allows spaces between them."""
    while at < len(rest) and rest[at].isspace():
        at += 1
    return at


def _unqualified(name: str) -> str:
    """A namespace (builtin.zlib) names the repository, not the package: dropped."""
    return name.rpartition(".")[2] or name


def _edge(rest: str, at: int, pos: int) -> tuple[int, tuple[str, ...]]:
    """Edge properties after ^ or % ([virtuals=mpi deptypes=link]): (where the node
    starts, the virtuals asked). deptypes are checked, and searched as any type."""
    skip = _spaces(rest, at)
    if rest[skip : skip + 1] != "[":
        return skip, ()
    close = rest.find("]", skip)
    if close < 0:
        raise QueryError("'[' of edge properties is not closed: add ']'", position=pos + skip)
    virtuals: tuple[str, ...] = ()
    inner = rest[skip + 1 : close]
    if not inner.strip():
        raise QueryError("empty edge properties '[]'", position=pos + skip)
    for m in re.finditer(r"\S+", inner):
        where = pos + skip + 1 + m.start()
        key, sep, value = m.group().partition("=")
        if not sep or not value or key not in _EDGE_KEYS:
            raise QueryError(
                f"edge properties are virtuals=... or deptypes=..., not {m.group()!r}",
                position=where,
            )
        items = tuple(v for v in value.split(",") if v)
        if key == "virtuals":
            virtuals += items
        elif unknown := [t for t in items if t not in _DEPTYPES]:
            raise QueryError(
                f"unknown dependency type {unknown[0]!r} (build, link, run, test)", position=where
            )
    return _spaces(rest, close + 1), virtuals


def _compiler_token(state: _State, rest: str, i: int, at: int) -> int:
    """%gcc[@v], %%gcc, %c=gcc, %[virtuals=c] gcc: the compiler (Spack 1.x writes it as a
    direct dependency providing c/cxx/fortran; the index has it as the compiler)."""
    skip = 2 if rest[1:2] == "%" else 1
    skip, _ = _edge(rest, skip, at)
    assigned = _VIRTUAL_ASSIGNMENT.match(rest, skip)
    if assigned:
        skip = assigned.start(2)
    name = re.match(rf"{_NAME}", rest[skip:])
    if not name:
        raise QueryError("'%' must be followed by a compiler name, as in %gcc", position=at + skip)
    end = skip + name.end()
    versions = None
    if rest[end : end + 1] == "@":
        vskip = _spaces(rest, end + 1)
        body = _longest(_VERSION_CHARS, rest, vskip)
        _need(body, "@", at + vskip)
        versions = _versions(body, at + vskip)
        end = vskip + len(body)
    compiler = Compiler(_unqualified(name.group()), versions, at)
    state.current(at).compilers.append(compiler)
    state.compiler_waiting = compiler if versions is None else None
    state.count += 1
    return i + end


def _plain_word(state: _State, chunk: str, i: int, pos: int) -> int:
    """Anything else up to the next sigil is searched as a plain word."""
    end = i + 1
    while end < len(chunk) and chunk[end] not in "@%+~/^":
        end += 1
    state.add_word(Word(chunk[i:end].lower(), False, pos + i))
    return end


def _versions(body: str, at: int) -> VersionList:
    try:
        return parse_version_list(body)
    except VersionSyntaxError as exc:
        raise QueryError(f"{exc}", position=at + exc.offset) from None


def _arch(key: str, value: str, at: int) -> list[FacetValue]:
    if key != "arch":
        return [_target(key, value, at - len(key) - 1, at)]
    parts = value.split("-")
    if len(parts) == 1:
        return [_target("target", value, at, at)]
    if len(parts) != 3 or not all(parts):
        raise QueryError(
            "arch= takes platform-os-target (linux-ubuntu24.04-aarch64) or a target", position=at
        )
    start = at + len(parts[0]) + len(parts[1]) + 2  # where the target begins
    platform, os = (
        FacetValue(f, v, False, at) for f, v in zip(ARCH_KEYS[1:3], parts, strict=False)
    )
    return [platform, os, _target("target", parts[2], at, start)]


def _target(facet: str, value: str, at: int, value_at: int) -> FacetValue:
    """A facet value; for target= with ':' or ',' (Spack's ranges and lists), with the
    constraint it stands for."""
    if facet != "target" or not (":" in value or "," in value):
        return FacetValue(facet, value, False, at)
    try:
        return FacetValue(facet, value, False, at, TargetConstraint.parse(value))
    except ValueError as exc:
        raise QueryError(f"{exc} (in target={value})", position=value_at) from None


def _hash(value: str, at: int, after: str = "hash:") -> HashPrefix:
    prefix = value.lower()
    if not prefix:
        raise QueryError(f"'{after}' must be followed by the start of a hash", position=at)
    if not _HASH_CHARS.match(prefix):
        raise QueryError("a hash has only letters and digits", position=at)
    return HashPrefix(prefix, at)


def _facet_value(facet: str, value: str, pos: int, value_pos: int) -> FacetValue:
    prefix = value.endswith("*")
    body = value[:-1] if prefix else value
    if "*" in body:
        raise QueryError(
            "'*' may only end a word (as in py-ker*)", position=value_pos + body.index("*")
        )
    if prefix and not body:
        raise QueryError("'*' needs at least one character before it", position=value_pos)
    return FacetValue(facet, body, prefix, pos)


def _need(value: str, after: str, pos: int) -> None:
    if not value:
        raise QueryError(f"missing value after '{after}'", position=pos)
