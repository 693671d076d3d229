"""Spack databases, the index of a binary mirror: their records, and a tag's documents.

A database is ``{"database": {"version", "installs": {hash: record}}}`` (versions 6, 7
and 8), the same one `spack buildcache update-index` writes. A tag's documents are the
records of its mirrors (the tag's top-level mirror, ``root``, and one per stack) that are
in the build cache, one per hash, with ``stacks`` = the labels of the mirrors holding it.
Dependencies resolve through every record of the tag, in the cache or not (externals).
Nothing here knows about files, URLs or the index: mirrors.py finds and reads the
databases, graph.py stores the dependencies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from searcher.documents import Spec, at_runtime
from searcher.graph import Node, ShardGraph
from searcher.sources import MAX_LIST_ITEMS, MAX_VALUE_CHARS, SourceError, printable, show

ROOT = "root"
DB_VERSIONS = ("6", "7", "8")
# A database is read whole. The public develop mirror's index is the biggest known, some
# hundreds of MB; a file beyond this is refused, not read (memory is bounded).
MAX_INDEX_BYTES = 2 * 2**30
# The languages whose provider is the compiler, in the order one is picked.
COMPILER_LANGUAGES = ("c", "cxx", "fortran")
# Compiler-flag parameters: shown only when set.
FLAG_KEYS = frozenset(("cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs"))
# Problems described per database; the rest are counted.
MAX_PROBLEMS = 20
_HASH = re.compile(r"^[a-z0-9]{8,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class MirrorError(SourceError):
    """A mirror (or its index) that cannot be read, with the reason."""


@dataclass(slots=True)
class Record:
    """One record of a mirror's database, as searcher needs it."""

    hash: str
    name: str
    version: str
    platform: str
    os: str
    target: str
    variants: tuple[str, ...]
    compiler: str | None  # v7's compiler, or annotations.compiler; else from dependencies
    dependencies: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]
    in_cache: bool
    external: bool
    where: str = ""


@dataclass
class Database:
    """What one mirror's index holds, and the records that could not be read."""

    label: str  # the mirror's stack, or root
    records: dict[str, Record] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0


class _Target(msgspec.Struct):
    name: str


class _Arch(msgspec.Struct):
    platform: str
    platform_os: str
    target: str | _Target


class _DepParams(msgspec.Struct):
    # Tuples, decoded as such: shared (_shared) without a conversion.
    deptypes: tuple[str, ...] = ()
    virtuals: tuple[str, ...] = ()


class _Dep(msgspec.Struct):
    name: str
    hash: str | None = None
    build_hash: str | None = None
    full_hash: str | None = None
    parameters: _DepParams | None = None
    deptype: list[str] | str | None = msgspec.field(default=None, name="type")


class _Compiler(msgspec.Struct):
    name: str
    version: str


class _Node(msgspec.Struct):
    name: str
    version: str
    arch: _Arch
    parameters: dict[str, Any] = {}
    dependencies: list[_Dep] | dict[str, _Dep] = []
    compiler: _Compiler | None = None
    annotations: dict[str, Any] = {}
    external: dict[str, Any] | None = None


class _Record(msgspec.Struct):
    spec: _Node
    in_buildcache: bool = False


class _OldRecord(msgspec.Struct):  # older records wrap the node in {name: node}
    spec: dict[str, Any]
    in_buildcache: bool = False


class _Database(msgspec.Struct):
    version: str | int
    installs: dict[str, msgspec.Raw]


class _Top(msgspec.Struct):
    database: _Database


_top = msgspec.json.Decoder(_Top)
_record = msgspec.json.Decoder(_Record)
_old_record = msgspec.json.Decoder(_OldRecord)


class _Held(msgspec.Struct):
    in_buildcache: bool = False


_held = msgspec.json.Decoder(_Held)


def parse_database(
    data: bytes, where: str, label: str, known: dict[str, Record] | None = None
) -> Database:
    """The records of one database's JSON text; bad records are reported and skipped.

    known: records already read from another mirror of the tag (the same hash is the same
    spec): only whether this mirror holds them in its cache is read again. A stack's
    mirror repeats the root's records; this halves a tag's parsing.
    """
    known = known or {}
    try:
        top = _top.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MirrorError(where, f"not a Spack database: {exc}") from None
    version = str(top.database.version)
    if version not in DB_VERSIONS:
        raise MirrorError(
            where,
            f"unknown database version {show(version)} (searcher reads {', '.join(DB_VERSIONS)})",
        )
    db = Database(label)
    names: set[str] = set()  # dependency names already checked
    hashes: set[str] = set()  # and their hashes
    for key, raw in top.database.installs.items():
        seen = known.get(key)
        if seen is not None:
            try:
                held = _held.decode(raw).in_buildcache
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                held = seen.in_cache
            db.records[key] = seen if seen.in_cache == held else replace(seen, in_cache=held)
            continue
        try:
            record = _parse_record(key, raw, names, hashes)
        except ValueError as exc:
            db.skipped += 1
            if len(db.problems) < MAX_PROBLEMS:
                db.problems.append(f"{printable(where)}: installs[{show(key)}]: {exc}")
            continue
        record.where = where
        db.records[key] = record
    if db.skipped > len(db.problems):
        db.problems.append(
            f"{printable(where)}: ... and {db.skipped - len(db.problems)} more records skipped"
        )
    return db


def _parse_record(key: str, raw: msgspec.Raw, names: set[str], hashes: set[str]) -> Record:
    if not _HASH.fullmatch(key):
        raise ValueError("the key is not a Spack DAG hash")
    try:
        parsed = _record.decode(raw)
        node, in_cache = parsed.spec, parsed.in_buildcache
    except (msgspec.ValidationError, RecursionError) as exc:
        node, in_cache = _old_form(raw, exc)
    name, version = node.name, node.version
    if not _NAME.fullmatch(name):
        raise ValueError(f"'name' {show(name)} is not a package name")
    target = node.arch.target if isinstance(node.arch.target, str) else node.arch.target.name
    values = (version, node.arch.platform, node.arch.platform_os, target)
    if not all(v.strip() for v in values):
        raise ValueError("'version' and 'arch' fields must not be empty")
    if max(map(len, values)) > MAX_VALUE_CHARS:
        raise ValueError(f"a value is longer than {MAX_VALUE_CHARS} characters")
    deps = node.dependencies
    entries = list(deps.values()) if isinstance(deps, dict) else deps
    dep_names = list(deps) if isinstance(deps, dict) else [d.name for d in deps]
    if len(entries) > MAX_LIST_ITEMS or len(node.parameters) > MAX_LIST_ITEMS:
        raise ValueError(f"more than {MAX_LIST_ITEMS} dependencies or parameters")
    return Record(
        hash=key,
        name=name,
        version=version,
        platform=node.arch.platform,
        os=node.arch.platform_os,
        target=target,
        variants=variants_of(node.parameters),
        compiler=_recorded_compiler(node),
        dependencies=tuple(
            _dependency(n, d, names, hashes) for n, d in zip(dep_names, entries, strict=True)
        ),
        in_cache=in_cache,
        external=node.external is not None,
    )


def _old_form(raw: msgspec.Raw, error: Exception) -> tuple[_Node, bool]:
    """A record whose spec is {name: node} (older databases), else the first error."""
    try:
        old = _old_record.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        raise ValueError(str(error)) from None
    if len(old.spec) != 1:
        raise ValueError(str(error))
    ((name, body),) = old.spec.items()
    if not isinstance(body, dict):
        raise ValueError(str(error))
    try:
        node = msgspec.convert({**body, "name": name}, _Node)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    return node, old.in_buildcache


# Dependency types and virtuals repeat across a database: one tuple each.
_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared(items: Sequence[str]) -> tuple[str, ...]:
    key = tuple(items)
    if len(_TUPLES) > 10_000:  # hostile input cannot grow it without bound
        return key
    return _TUPLES.setdefault(key, key)


def _dependency(
    name: str, dep: _Dep, names: set[str], hashes: set[str]
) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    hash_ = dep.hash or dep.build_hash or dep.full_hash
    if hash_ not in hashes:
        if not hash_ or not _HASH.fullmatch(hash_):
            raise ValueError(f"dependency {show(name)} has no DAG hash")
        hashes.add(hash_)
    if dep.parameters is not None:
        deptypes, virtuals = dep.parameters.deptypes, dep.parameters.virtuals
    else:
        deptype = dep.deptype or ()
        deptypes = (deptype,) if isinstance(deptype, str) else tuple(deptype)
        virtuals = ()
    if name not in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"dependency name {show(name)} is not a package name")
        names.add(name)
    return name, hash_, _shared(deptypes), _shared(virtuals)


# Parameter names already found to be variant names (they repeat across records).
_VARIANT_NAMES: set[str] = set()


def variants_of(parameters: dict[str, Any]) -> tuple[str, ...]:
    """A record's parameters as listing variants, by name: true -> +x, false -> ~x,
    a list -> x=a,b, anything else -> x=v; compiler flags only when set."""
    found = []
    for key in sorted(parameters):
        value = parameters[key]
        if key not in _VARIANT_NAMES:
            if not _NAME.fullmatch(key):
                continue
            if len(_VARIANT_NAMES) < 10_000:  # hostile input cannot grow it without bound
                _VARIANT_NAMES.add(key)
        if key in FLAG_KEYS:
            if isinstance(value, list) and value:
                found.append(f'{key}="{" ".join(str(v) for v in value)}"')
            continue
        if isinstance(value, bool):
            found.append(("+" if value else "~") + key)
        elif isinstance(value, list):
            if value:
                found.append(f"{key}={','.join(str(v) for v in value)}")
        elif isinstance(value, str | int | float):
            found.append(f"{key}={value}")
    return tuple(v for v in found if len(v) <= MAX_VALUE_CHARS)


def _recorded_compiler(node: _Node) -> str | None:
    if node.compiler is not None:
        return f"{node.compiler.name}@{node.compiler.version}"
    recorded = node.annotations.get("compiler")
    return recorded if isinstance(recorded, str) and recorded.strip() else None


# -- a tag: its mirrors' records as documents ----------------------------------------------


@dataclass
class Tag:
    """One tag's documents (in the order they are added to its shard) and their graph."""

    specs: list[Spec]
    graph: ShardGraph
    problems: list[str]


def assemble(tag: str, databases: list[Database]) -> Tag:
    """A tag's documents from its mirrors' databases (root first, then stacks by name)."""
    records: dict[str, Record] = {}
    stacks: dict[str, list[str]] = {}
    for db in databases:
        for hash_, record in db.records.items():
            known = records.setdefault(hash_, record)
            if record.in_cache:
                if not known.in_cache:  # held in the cache here: describe it from here
                    records[hash_] = record
                stacks.setdefault(hash_, []).append(db.label)
    problems: list[str] = []
    in_cache = sorted((r for r in records.values() if r.in_cache), key=lambda r: (r.name, r.hash))
    number = {r.hash: i for i, r in enumerate(in_cache)}
    graph = ShardGraph(docs=len(in_cache))

    def node_of(dep_name: str, dep_hash: str, user: Record) -> int:
        found = number.get(dep_hash)
        if found is not None:
            return found
        record = records.get(dep_hash)
        if record is None:
            problems.append(
                f"{printable(user.where)}: {user.name}/{user.hash[:7]} depends on "
                f"{dep_name}/{dep_hash[:7]}, which no mirror of tag {printable(tag)} holds"
            )
            extra = Node(dep_name, hash=dep_hash)
        else:
            extra = Node(
                record.name,
                record.version,
                record.hash,
                _compiler(record, records),
                record.os,
                record.platform,
                record.target,
                record.variants,
                record.external,
            )
        number[dep_hash] = graph.docs + len(graph.extra)
        graph.extra.append(extra)
        # An extra node's own dependencies are part of the DAGs above it.
        if record is not None:
            pending.append(record)
        return number[dep_hash]

    pending: list[Record] = list(in_cache)
    specs = []
    done = 0
    add_edge = graph.add_edge
    while done < len(pending):
        record = pending[done]
        parent = number[record.hash]
        for dep_name, dep_hash, deptypes, virtuals in record.dependencies:
            child = number.get(dep_hash)
            if child is None:
                child = node_of(dep_name, dep_hash, record)
            add_edge(parent, child, deptypes, virtuals)
        if done < len(in_cache):
            # The dependencies themselves are the graph's: a document needs only the
            # names of its runtime ones (the dependency facet).
            names = tuple(d[0] for d in record.dependencies if at_runtime(d[2]))
            specs.append(
                Spec(
                    tag=tag,
                    package=record.name,
                    hash=record.hash,
                    version=record.version,
                    compiler=_compiler(record, records),
                    os=record.os,
                    platform=record.platform,
                    target=record.target,
                    variants=record.variants,
                    stacks=tuple(sorted(set(stacks[record.hash]))),
                    runtime_names=names,
                )
            )
        done += 1
    return Tag(specs, graph, problems)


def _compiler(record: Record, records: dict[str, Record]) -> str:
    """The compiler a record was built with: as recorded (v7's field, or the annotation
    of converted records), else the build dependency providing C, C++ or Fortran."""
    if record.compiler:
        return record.compiler
    for language in COMPILER_LANGUAGES:
        for _name, dep_hash, deptypes, virtuals in record.dependencies:
            if language in virtuals and "build" in deptypes:
                provider = records.get(dep_hash)
                if provider is None:
                    return _name
                return f"{provider.name}@{provider.version}"
    return "none"
