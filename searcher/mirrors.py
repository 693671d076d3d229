"""Spack binary mirrors as a source: their index databases, in either layout, by tag.

A mirror's index is a Spack database (``{"database": {"version", "installs": {hash:
record}}}``), the same one `spack buildcache update-index` writes:

- v2 layout: ``build_cache/index.json``, with ``build_cache/index.json.hash`` (the sha256
  hex of index.json) beside it;
- v3 layout: ``v3/manifests/index/index.manifest.json`` names the database as a blob,
  ``blobs/<algorithm>/<checksum[:2]>/<checksum>``, checked against its checksum.

A tag's documents are the records of its mirrors (the tag's top-level mirror, ``root``,
and one per stack) that are in the build cache, one per hash, with ``stacks`` = the labels
of the mirrors holding it. Dependencies resolve through every record of the tag, in the
cache or not (externals). Nothing here knows about the index; graph.py stores the result.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from searcher.documents import Dependency, Spec
from searcher.graph import Node, ShardGraph
from searcher.sources import MAX_LIST_ITEMS, MAX_VALUE_CHARS, SourceError, printable, show

V2_INDEX = "build_cache/index.json"
V2_HASH = "build_cache/index.json.hash"
V3_MANIFEST = "v3/manifests/index/index.manifest.json"
ROOT = "root"
DB_VERSIONS = ("6", "7", "8")
# A database is read whole. The public develop mirror's index is the biggest known, some
# hundreds of MB; a file beyond this is refused, not read (memory is bounded).
MAX_INDEX_BYTES = 2 * 2**30
MAX_MANIFEST_BYTES = 2**20
# The languages whose provider is the compiler, in the order one is picked.
COMPILER_LANGUAGES = ("c", "cxx", "fortran")
# Compiler-flag parameters: shown only when set.
FLAG_KEYS = frozenset(("cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs"))
# Folders of a mirror that are its layout, not stacks below a tag.
_LAYOUT_DIRS = frozenset(("build_cache", "v3", "blobs", "manifests"))
_HASH = re.compile(r"^[a-z0-9]{8,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class MirrorError(SourceError):
    """A mirror (or its index) that cannot be read, with the reason."""


@dataclass(frozen=True)
class Mirror:
    """One mirror of a tag: its label (a stack, or root) and its directory."""

    tag: str
    label: str
    location: str
    problem: str | None = None  # known unusable when listed (a link leaving the tree)


# -- finding mirrors ----------------------------------------------------------------------


def layout_of(directory: Path) -> str | None:
    """'v3' or 'v2' when directory is a mirror (v3 preferred when it has both), else None."""
    if (directory / V3_MANIFEST).is_file():
        return "v3"
    if (directory / V2_INDEX).is_file():
        return "v2"
    return None


def find_mirrors(source: Path, tag: str | None = None, *, as_tree: bool = False) -> list[Mirror]:
    """The mirrors of a source directory: one mirror (its tag: tag, else the folder's name),
    or a tree ``<tag>/`` (the tag's root mirror) and ``<tag>/<stack>/`` (its stacks).

    Links are followed only while they stay inside the source; one leaving it is listed
    with its problem and never read. Raises MirrorError when no mirror is found.
    """
    source = Path(source)
    real_root = os.path.realpath(source)
    if layout_of(source) and not as_tree:
        name = tag or source.resolve().name
        if not _NAME.fullmatch(name):
            raise MirrorError(
                source, f"{show(name)} is not a build-cache tag name: name one with --tag"
            )
        return [Mirror(name, ROOT, str(source))]
    mirrors = []
    for tag_dir in _folders(source, real_root):
        if isinstance(tag_dir, Mirror):
            mirrors.append(tag_dir)
            continue
        if layout_of(tag_dir):
            mirrors.append(Mirror(tag_dir.name, ROOT, str(tag_dir)))
        for stack_dir in _folders(tag_dir, real_root, tag_dir.name):
            if isinstance(stack_dir, Mirror):
                mirrors.append(stack_dir)
            elif stack_dir.name not in _LAYOUT_DIRS and layout_of(stack_dir):
                mirrors.append(Mirror(tag_dir.name, stack_dir.name, str(stack_dir)))
    if not any(m.problem is None for m in mirrors):
        raise MirrorError(
            source,
            f"no mirror found (expected {V2_INDEX} or {V3_MANIFEST}, in it or in "
            "<tag>/ and <tag>/<stack>/ folders)",
        )
    return sorted(mirrors, key=lambda m: (m.tag, m.label != ROOT, m.label))


def _folders(parent: Path, real_root: str, tag: str | None = None) -> Iterable[Path | Mirror]:
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError as exc:
        yield Mirror(tag or parent.name, ROOT, str(parent), f"cannot list: {exc.strerror}")
        return
    for entry in entries:
        if entry.name.startswith(".") or not _NAME.match(entry.name):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                label = entry.name if tag else ROOT
                yield Mirror(
                    tag or entry.name,
                    label,
                    str(path),
                    f"symbolic link to {target} leaves the source tree, not followed",
                )
                continue
        try:
            if entry.is_dir():
                yield path
        except OSError:
            continue


def fingerprint(mirror: Mirror) -> str:
    """What identifies the mirror's index without reading it: v2's index.json.hash (else
    the index file's size and time), v3's manifest checksum. Unchanged: not read again."""
    root = Path(mirror.location)
    if mirror.problem:
        return f"problem:{mirror.problem}"
    try:
        if layout_of(root) == "v3":
            entry = _manifest_entry(mirror)
            return f"v3:{entry['checksumAlgorithm']}:{entry['checksum']}"
        hash_file = root / V2_HASH
        if hash_file.is_file():
            text = _read(hash_file, 1024).decode("ascii", "replace").strip()
            if _HEX64.fullmatch(text):
                return f"v2:{text}"
        info = (root / V2_INDEX).stat()
        return f"v2-stat:{info.st_size}:{info.st_mtime_ns}"
    except (OSError, MirrorError) as exc:
        # Read (and so reported) by the shard build: a fingerprint never fails.
        return f"unreadable:{exc}"


# -- reading one mirror's database ---------------------------------------------------------


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

    mirror: Mirror
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
    deptypes: list[str] = []
    virtuals: list[str] = []


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


def read_database(mirror: Mirror) -> Database:
    """Read a mirror's index; MirrorError when the index as a whole is unusable (missing,
    too big, not JSON, an unknown database version, a checksum that does not match)."""
    if mirror.problem:
        raise MirrorError(mirror.location, mirror.problem)
    root = Path(mirror.location)
    layout = layout_of(root)
    if layout == "v3":
        where, data = _v3_blob(mirror)
    elif layout == "v2":
        where = str(root / V2_INDEX)
        data = _read(root / V2_INDEX, MAX_INDEX_BYTES)
        _check_v2_hash(root, data)
    else:
        raise MirrorError(mirror.location, f"not a mirror: no {V2_INDEX} or {V3_MANIFEST}")
    return parse_database(data, where, mirror)


def parse_database(data: bytes, where: str, mirror: Mirror) -> Database:
    """The records of one database's JSON text; bad records are reported and skipped."""
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
    db = Database(mirror)
    for key, raw in top.database.installs.items():
        try:
            record = _parse_record(key, raw)
        except ValueError as exc:
            db.skipped += 1
            if len(db.problems) < 20:
                db.problems.append(f"{printable(where)}: installs[{show(key)}]: {exc}")
            continue
        record.where = where
        db.records[key] = record
    if db.skipped > len(db.problems):
        db.problems.append(
            f"{printable(where)}: ... and {db.skipped - len(db.problems)} more records skipped"
        )
    return db


def _parse_record(key: str, raw: msgspec.Raw) -> Record:
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
    names = list(deps) if isinstance(deps, dict) else [d.name for d in deps]
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
        dependencies=tuple(_dependency(n, d) for n, d in zip(names, entries, strict=True)),
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


def _dependency(name: str, dep: _Dep) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    hash_ = dep.hash or dep.build_hash or dep.full_hash
    if not hash_ or not _HASH.fullmatch(hash_):
        raise ValueError(f"dependency {show(name)} has no DAG hash")
    if dep.parameters is not None:
        deptypes, virtuals = dep.parameters.deptypes, dep.parameters.virtuals
    else:
        deptype = dep.deptype or []
        deptypes, virtuals = [deptype] if isinstance(deptype, str) else deptype, []
    if not _NAME.fullmatch(name):
        raise ValueError(f"dependency name {show(name)} is not a package name")
    return name, hash_, tuple(str(t) for t in deptypes), tuple(str(v) for v in virtuals)


def variants_of(parameters: dict[str, Any]) -> tuple[str, ...]:
    """A record's parameters as listing variants, by name: true -> +x, false -> ~x,
    a list -> x=a,b, anything else -> x=v; compiler flags only when set."""
    found = []
    for key in sorted(parameters):
        value = parameters[key]
        if not _NAME.fullmatch(key):
            continue
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


def _check_v2_hash(root: Path, data: bytes) -> None:
    hash_file = root / V2_HASH
    if not hash_file.is_file():
        return
    expected = _read(hash_file, 1024).decode("ascii", "replace").strip()
    actual = hashlib.sha256(data).hexdigest()
    if expected != actual:
        raise MirrorError(
            root / V2_INDEX,
            f"sha256 {actual[:12]}... does not match {V2_HASH} ({show(expected)}): "
            "the index changed while it was read, or is damaged",
        )


def _manifest_entry(mirror: Mirror) -> dict[str, Any]:
    path = Path(mirror.location) / V3_MANIFEST
    try:
        manifest = msgspec.json.decode(_read(path, MAX_MANIFEST_BYTES))
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MirrorError(path, f"not a manifest: {exc}") from None
    data = manifest.get("data") if isinstance(manifest, dict) else None
    for entry in data if isinstance(data, list) else ():
        if isinstance(entry, dict) and str(entry.get("mediaType", "")).startswith(
            "application/vnd.spack.db"
        ):
            algorithm, checksum = entry.get("checksumAlgorithm"), entry.get("checksum")
            if (
                algorithm != "sha256"
                or not isinstance(checksum, str)
                or not _HEX64.fullmatch(checksum)
            ):
                raise MirrorError(
                    path, f"the index blob's checksum is not sha256 hex: {show(checksum)}"
                )
            return entry
    raise MirrorError(path, "no data entry with an application/vnd.spack.db media type")


def _v3_blob(mirror: Mirror) -> tuple[str, bytes]:
    entry = _manifest_entry(mirror)
    checksum = entry["checksum"]
    path = Path(mirror.location) / "blobs" / "sha256" / checksum[:2] / checksum
    data = _read(path, MAX_INDEX_BYTES)
    actual = hashlib.sha256(data).hexdigest()
    if actual != checksum:
        raise MirrorError(path, f"sha256 {actual[:12]}... does not match its name: damaged blob")
    compression = entry.get("compression", "none")
    if compression == "gzip":
        data = _gunzip(path, data)
    elif compression not in ("none", None):
        raise MirrorError(path, f"unknown compression {show(compression)}")
    return str(path), data


def _gunzip(path: Path, data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(MAX_INDEX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise MirrorError(path, f"not gzip data: {exc}") from None
    if len(out) > MAX_INDEX_BYTES:
        raise MirrorError(path, f"decompresses to more than {MAX_INDEX_BYTES} bytes")
    return out


def _read(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise MirrorError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise MirrorError(path, f"larger than {limit} bytes, not read")
    return data


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
                stacks.setdefault(hash_, []).append(db.mirror.label)
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
    while done < len(pending):
        record = pending[done]
        parent = number[record.hash]
        deps = []
        for dep_name, dep_hash, deptypes, virtuals in record.dependencies:
            child = node_of(dep_name, dep_hash, record)
            graph.add_edge(parent, child, deptypes, virtuals)
            if done < len(in_cache):
                target = records.get(dep_hash)
                deps.append(
                    Dependency(
                        dep_name, target.version if target else "", dep_hash, deptypes, virtuals
                    )
                )
        if done < len(in_cache):
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
                    dependencies=tuple(deps),
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
