"""Rebuilding the index from a source tree: one shard per tag, in parallel, incrementally.

Each build-cache tag (a top-level folder of the source) becomes one shard: a Whoosh index
of its specs plus their facet postings. A reindex compares every tag's fingerprint (the
paths, sizes and modification times of its pages) with the served generation's and only
rebuilds the tags that changed; the others are hard-linked into the new generation. The
facet table is then merged from all shards in tag order, so an incremental reindex gives
exactly the index a full rebuild would. Shards to build are spread over worker processes
(searcher/workers.py: fresh interpreters, no fork of a threaded process).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from searcher.database import MirrorError, Record, assemble
from searcher.documents import Spec
from searcher.errors import IndexUnavailable, IndexWriteError
from searcher.fetch import Fetcher, FetchError, is_url
from searcher.graph import ShardGraph
from searcher.index import (
    SHARDS_DIR,
    IndexDir,
    ShardWriter,
    link_shard,
    read_meta,
    write_generation,
)
from searcher.mirrors import (
    CACHE_DIR,
    DEFAULT_S3_BASE,
    Mirror,
    S3Base,
    download_all,
    find_mirrors,
    find_remote,
    fingerprint,
    layout_of,
    prune_cache,
    read_catalog,
    read_database,
    resolve_all,
)
from searcher.schema import SCHEMA_VERSION
from searcher.sources import (
    PageFile,
    SourceError,
    SourceTreeError,
    find_pages,
    iter_pages,
    printable,
)
from searcher.workers import WorkerError, WorkerPool

# What --format names: listing pages, one mirror, a tree of mirrors (<tag>/<stack>/), a
# catalog of mirrors by tag (JSON).
FORMATS = ("pages", "mirror", "tree", "catalog")

# Problems kept (in meta.json, and printed) per tag; the rest are counted.
MAX_PROBLEMS_PER_TAG = 1000

# Called with (files done, files total); the CLI turns it into a bar or log lines.
Progress = Callable[[int, int], None]
# Called with one "path: reason" line per problem.
Warn = Callable[[str], None]


@dataclass
class ShardResult:
    """What building one tag's shard found; kept in meta.json for incremental runs."""

    tag: str
    dir: str
    fingerprint: str
    files: int = 0
    docs: int = 0
    files_skipped: int = 0
    specs_skipped: int = 0
    problems: list[str] = field(default_factory=list)
    mirrors: bool = False  # built from mirrors (files are mirrors), not listing pages


@dataclass
class ReindexReport:
    """What a reindex did: counts for the summary line and every problem found."""

    files_read: int = 0
    files_skipped: int = 0
    specs_indexed: int = 0
    specs_skipped: int = 0
    seconds: float = 0.0
    generation: str = ""
    kept_tags: int = 0
    kept_specs: int = 0
    total_specs: int = 0
    tags: int = 0
    up_to_date: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def specs_per_second(self) -> float:
        """Indexing throughput over the whole run."""
        return self.specs_indexed / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """The summary printed at the end of a reindex: the counts of this run, then totals."""
        line = (
            f"{self.files_read} files read, {self.specs_indexed} specs indexed, "
            f"{self.files_skipped} files skipped, {self.specs_skipped} specs skipped, "
            f"{self.seconds:.1f} s, {self.specs_per_second:,.0f} specs/s"
        )
        if self.up_to_date:
            return (
                f"{line}\nindex is up to date: no tag changed ({self.total_specs} specs in "
                f"{self.tags} tags)"
            )
        if self.kept_tags:
            line += (
                f"\nkept {self.kept_tags} unchanged tags ({self.kept_specs} specs); the "
                f"index holds {self.total_specs} specs in {self.tags} tags"
            )
        return line


@dataclass
class _TagPlan:
    tag: str
    pages: list[PageFile]
    fingerprint: str
    mirrors: list[Mirror] = field(default_factory=list)

    @property
    def files(self) -> int:
        return len(self.pages) + len(self.mirrors)

    @property
    def dir(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", self.tag)
        return f"{safe}-{hashlib.sha1(self.tag.encode()).hexdigest()[:8]}"


def detect_format(location: str | Path) -> str | None:
    """Which FORMATS a source holds: a JSON file (or URL) is a catalog; a directory holds
    a mirror itself, a tree of mirrors (a mirror in <tag>/ or <tag>/<stack>/), else listing
    pages (<tag>/<package>/specs.md). None: a URL, which is a mirror or a tree (asked)."""
    if is_url(str(location)):
        return "catalog" if str(location).split("?")[0].endswith(".json") else None
    source = Path(location)
    if source.is_file():
        return "catalog"
    if not source.is_dir():
        raise SourceTreeError(f"source directory {printable(str(source))} does not exist")
    if layout_of(source):
        return "mirror"
    if (source / "_cache").is_dir() or any(source.glob("*/*/specs.md")):
        return "pages"
    for pattern in ("*", "*/*"):
        if any(layout_of(d) for d in source.glob(pattern) if d.is_dir()):
            return "tree"
    return "pages"  # whose reader says what was expected


def reindex(
    source: str | Path,
    index_root: Path,
    *,
    full: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    warn: Warn | None = None,
    source_format: str | None = None,
    tag: str | None = None,
    s3_base: str = DEFAULT_S3_BASE,
    downloading: Progress | None = None,
) -> ReindexReport:
    """Bring the index up to date with source and switch to the result atomically.

    Raises ReindexRunning if another reindex holds the lock, SourceTreeError if the source
    has no pages or no spec could be indexed, IndexWriteError if the index directory cannot
    be written. Problems with files or specs are reported (warn) and skipped. Whatever
    stops it, the previous index stays served.
    """
    index_dir = IndexDir(index_root)
    kind = source_format or detect_format(source)
    if kind is not None and kind not in FORMATS:
        raise SourceTreeError(f"unknown source format {kind!r}: use one of {', '.join(FORMATS)}")
    if kind == "pages" and is_url(str(source)):
        raise SourceTreeError("listing pages are read from a directory, not a URL")
    try:
        s3 = S3Base.parse(s3_base)
    except ValueError as exc:
        raise SourceTreeError(str(exc)) from None
    fetch = _Fetching(s3, downloading)
    try:
        return _reindex(index_dir, source, kind, tag, full, jobs, progress, warn, fetch)
    except OSError as exc:
        message = f"cannot write the index in {index_dir.root}: {_os_error(exc)}"
        raise IndexWriteError(message) from exc
    except WorkerError as exc:
        tag = printable(exc.task.get("tag", "?"))
        if exc.os_error:
            raise IndexWriteError(
                f"cannot write the index in {index_dir.root} (tag {tag}): {exc.message}"
            ) from exc
        raise IndexWriteError(f"building tag {tag} failed: {exc.message}") from exc
    finally:
        fetch.close()


@dataclass
class _Fetching:
    """How remote sources are fetched: one Fetcher for the whole reindex, made on use."""

    s3: S3Base
    progress: Progress | None
    _fetcher: Fetcher | None = None

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            try:
                self._fetcher = Fetcher()
            except ValueError as exc:  # a bad SEARCHER_HTTP_* setting
                raise SourceTreeError(str(exc)) from None
        return self._fetcher

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()


def _os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _reindex(
    index_dir: IndexDir,
    source: str | Path,
    kind: str | None,
    tag: str | None,
    full: bool,
    jobs: int | None,
    progress: Progress | None,
    warn: Warn | None,
    fetch: _Fetching,
) -> ReindexReport:
    started = time.perf_counter()
    report = ReindexReport()
    jobs = max(1, jobs or min(os.cpu_count() or 1, 4))

    def record(result: ShardResult, kept: bool) -> None:
        for line in result.problems:
            report.problems.append(line)
            if warn:
                warn(line)
        if kept:
            report.kept_tags += 1
            report.kept_specs += result.docs
        else:
            report.files_read += result.files
            report.specs_indexed += result.docs
            report.files_skipped += result.files_skipped
            report.specs_skipped += result.specs_skipped

    with index_dir.lock():
        index_dir.clean()
        pages = kind == "pages"
        plans = _plan(Path(source)) if pages else _plan_mirrors(source, kind, tag, fetch)
        previous = None if full else _previous_shards(index_dir)
        kept = {
            p.tag: previous[p.tag]
            for p in plans
            if previous and p.tag in previous and previous[p.tag].fingerprint == p.fingerprint
        }
        to_build = [p for p in plans if p.tag not in kept]

        if previous is not None and not to_build and set(previous) == {p.tag for p in plans}:
            for result in kept.values():
                record(result, kept=True)
            report.up_to_date = True
            report.total_specs = report.kept_specs
            report.tags = sum(1 for result in kept.values() if result.docs)
            report.generation = index_dir.current_name() or ""
            report.seconds = time.perf_counter() - started
            return report

        try:
            # Inside the try: a Ctrl-C landing just after the directory is made (before
            # the try was entered) would leave it behind until the next run.
            build_dir = index_dir.new_build_dir()
            (build_dir / SHARDS_DIR).mkdir()
            if kept:
                current = index_dir.current_path()
                for result in kept.values():
                    shard = Path(SHARDS_DIR, result.dir)
                    link_shard(current / shard, build_dir / shard)
                    record(result, kept=True)
            cache = index_dir.root / CACHE_DIR
            _download(to_build, cache, fetch)
            built = _build_shards(to_build, build_dir, jobs, progress, record, cache)
            for result in _keep_failed_tags(built, previous, index_dir, build_dir):
                report.problems.append(result.problems[-1])
                if warn:
                    warn(result.problems[-1])
            results = {**kept, **built}
            shards = [vars(results[p.tag]) for p in plans]
            report.total_specs = sum(s["docs"] for s in shards)
            report.tags = sum(1 for s in shards if s["docs"])
            if not report.total_specs:
                raise SourceTreeError(
                    f"no spec in {printable(str(source))} could be indexed; "
                    "the previous index stays in place"
                )
            write_generation(
                build_dir,
                shards,
                {
                    "source": str(source) if is_url(str(source)) else str(Path(source).resolve()),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "tags": sorted(s["tag"] for s in shards if s["docs"]),
                },
            )
            report.generation = index_dir.publish(build_dir)
            if kind != "pages":
                prune_cache(cache, [m for plan in plans for m in plan.mirrors])
        except BaseException:
            # Whatever stopped us (an error, Ctrl-C), CURRENT still names the previous
            # generation (publish switches last); drop the half-built one now rather than
            # at the next run. The workers are already stopped (_build_shards).
            index_dir.clean()
            raise
        index_dir.clean()
    report.seconds = time.perf_counter() - started
    return report


def _plan(source: Path) -> list[_TagPlan]:
    """Pages grouped by tag folder, with each tag's fingerprint, in tag order."""
    plans = []
    for tag, group in groupby(find_pages(source), key=lambda p: p.tag):
        pages = list(group)
        digest = hashlib.sha256()
        for page in pages:
            # What was seen when listing the tree (rsync's quick check); a page that
            # changes or goes away after this is read, or reported, as it is then.
            line = f"{page.path}\t{page.size}\t{page.mtime_ns}\t{page.problem or ''}\n"
            digest.update(line.encode(errors="surrogateescape"))
        plans.append(_TagPlan(tag, pages, digest.hexdigest()))
    return plans


def _plan_mirrors(
    source: str | Path, kind: str | None, tag: str | None, fetch: _Fetching
) -> list[_TagPlan]:
    """Mirrors grouped by tag, each resolved (where its database is, and its checksum), with
    each tag's fingerprint: its mirrors' checksums. A tag none of whose databases changed
    is neither downloaded nor read again."""
    location = str(source)
    try:
        if kind == "catalog":
            mirrors = read_catalog(location, fetch.fetcher, fetch.s3)
        elif is_url(location):
            as_tree = {"mirror": False, "tree": True}.get(kind or "")
            mirrors = find_remote(location, fetch.fetcher, tag, as_tree=as_tree)
        elif kind == "mirror":
            if not layout_of(Path(source)):
                raise MirrorError(source, "not a mirror: no build_cache/index.json or v3 manifest")
            mirrors = find_mirrors(Path(source), tag)
        else:
            mirrors = find_mirrors(Path(source), as_tree=True)
    except (MirrorError, FetchError) as exc:
        raise SourceTreeError(str(exc)) from None
    remote = any(is_url(m.location) for m in mirrors)
    mirrors = resolve_all(mirrors, fetch.fetcher if remote else None)
    plans = []
    for name, group in groupby(mirrors, key=lambda m: m.tag):
        members = list(group)
        digest = hashlib.sha256()
        for mirror in members:
            line = f"{mirror.label}\t{mirror.location}\t{fingerprint(mirror)}\n"
            digest.update(line.encode(errors="surrogateescape"))
        plans.append(_TagPlan(name, [], digest.hexdigest(), members))
    return plans


def _download(plans: list[_TagPlan], cache: Path, fetch: _Fetching) -> None:
    """Fetch the remote databases of the tags to build (in parallel), into the cache."""
    todo = [m for plan in plans for m in plan.mirrors if m.local is None and not m.problem]
    if not todo:
        return
    fetched = iter(download_all(todo, fetch.fetcher, cache, fetch.progress))
    for plan in plans:
        plan.mirrors = [
            next(fetched) if m.local is None and not m.problem else m for m in plan.mirrors
        ]


def _keep_failed_tags(
    built: dict[str, ShardResult],
    previous: dict[str, ShardResult] | None,
    index_dir: IndexDir,
    build_dir: Path,
) -> list[ShardResult]:
    """A tag of mirrors none of which could be read keeps the previous index's documents
    (a mirror that is down must not empty its tag); returns the tags so kept."""
    kept = []
    for name, result in list(built.items()):
        old = (previous or {}).get(name)
        if not (result.mirrors and result.files_skipped == result.files) or not old:
            continue
        if not old.docs:
            continue
        shutil.rmtree(build_dir / SHARDS_DIR / result.dir)
        link_shard(
            index_dir.current_path() / SHARDS_DIR / old.dir, build_dir / SHARDS_DIR / old.dir
        )
        line = (
            f"tag {printable(name)}: none of its {result.files} mirrors could be read; "
            f"kept its {old.docs} specs from the previous index"
        )
        # The old fingerprint stays: the next run tries the mirrors again.
        built[name] = ShardResult(
            **{**vars(old), "problems": [*result.problems, line], "mirrors": True}
        )
        kept.append(built[name])
    return kept


def _previous_shards(index_dir: IndexDir) -> dict[str, ShardResult] | None:
    """The served generation's shards by tag, if it can be built upon."""
    try:
        name = index_dir.current_name()
    except IndexUnavailable:  # a damaged CURRENT: build everything anew
        return None
    if name is None or not (index_dir.root / name).is_dir():
        return None
    try:
        meta = read_meta(index_dir.root / name)
        if meta.get("schema_version") != SCHEMA_VERSION:
            return None
        return {s["tag"]: ShardResult(**s) for s in meta["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build_shards(
    plans: list[_TagPlan],
    build_dir: Path,
    jobs: int,
    progress: Progress | None,
    record: Callable[[ShardResult, bool], None],
    cache: Path,
) -> dict[str, ShardResult]:
    total = sum(p.files for p in plans)
    done = 0
    results: dict[str, ShardResult] = {}

    def finished(result: dict[str, Any]) -> None:
        nonlocal done
        shard = ShardResult(**result)
        results[shard.tag] = shard
        record(shard, False)  # built, not kept
        done += shard.files
        if progress:
            progress(done, total)

    tasks: list[dict[str, Any]] = [
        {
            "tag": p.tag,
            "pages": [vars(page) for page in p.pages],
            "mirrors": [vars(mirror) for mirror in p.mirrors],
            "cache": str(cache),
            "directory": str(build_dir / SHARDS_DIR / p.dir),
            "dirname": p.dir,
            "fingerprint": p.fingerprint,
        }
        for p in sorted(plans, key=lambda p: -p.files)
    ]
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            finished(build_shard(**task))
        return results
    with WorkerPool(min(jobs, len(tasks))) as pool:
        for _, result in pool.run(tasks):
            finished(result)
    return results


def build_shard(
    tag: str,
    pages: list[dict[str, Any]],
    directory: str,
    dirname: str,
    fingerprint: str,
    mirrors: list[dict[str, Any]] | None = None,
    cache: str | None = None,
) -> dict[str, Any]:
    """Index one tag's pages (or mirrors) into a new shard directory; returns its
    ShardResult's fields.

    Runs in a worker process (searcher/workers.py), or in the reindex itself for one tag.
    """
    with _without_cyclic_gc():
        if mirrors:
            return _build_mirror_shard(tag, mirrors, directory, dirname, fingerprint, cache)
        return _build_page_shard(tag, pages, directory, dirname, fingerprint)


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while a shard is built, then one collection.

    A shard holds a tag's records, specs and graph as millions of small objects, and
    every few hundred allocations the collector walks its young objects; every tenth of
    those walks, older ones, until a full pass over the whole heap. Building one
    16,618-spec mirror tag took 3.61 s with it and 2.45 s without (medians of 5). What the
    build makes is freed by reference counting; the collection after it picks up any
    cycle (a traceback, a parser's)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def _build_page_shard(
    tag: str, pages: list[dict[str, Any]], directory: str, dirname: str, fingerprint: str
) -> dict[str, Any]:
    result = ShardResult(tag=tag, dir=dirname, fingerprint=fingerprint)
    problems = _Problems(result, tag)

    def specs() -> Iterator[Spec]:
        seen: dict[str, str] = {}
        for page in iter_pages(PageFile(**p) for p in pages):
            result.files += 1
            if isinstance(page, SourceError):
                result.files_skipped += 1
                problems.add(str(page))
                continue
            result.specs_skipped += page.skipped
            for line in page.problems:
                problems.add(f"{printable(page.path)}: {line}")
            for spec in page.specs:
                if spec.id in seen:
                    result.specs_skipped += 1
                    problems.add(
                        f"{printable(page.path)}: {spec.id} is also listed in "
                        f"{printable(seen[spec.id])}, kept the first"
                    )
                    continue
                seen[spec.id] = page.path
                yield spec

    result.docs = _write_shard(Path(directory), specs())
    problems.close()
    return vars(result)


def _write_shard(directory: Path, specs: Iterable[Spec], graph: ShardGraph | None = None) -> int:
    """Write a shard of these specs (read as they are written); its document count. A
    failure, or Ctrl-C, leaves no half-written shard committed."""
    writer = ShardWriter(directory)
    try:
        for spec in specs:
            writer.add(spec)
        writer.finish(graph)
    except BaseException:
        writer.cancel()
        raise
    return writer.count


def _build_mirror_shard(
    tag: str,
    mirrors: list[dict[str, Any]],
    directory: str,
    dirname: str,
    fingerprint: str,
    cache: str | None,
) -> dict[str, Any]:
    result = ShardResult(tag=tag, dir=dirname, fingerprint=fingerprint, mirrors=True)
    problems = _Problems(result, tag)
    databases = []
    known: dict[str, Record] = {}
    for fields in mirrors:
        result.files += 1
        try:
            db = read_database(Mirror(**fields), Path(cache) if cache else None, known)
        except MirrorError as exc:
            result.files_skipped += 1
            problems.add(str(exc))
            continue
        result.specs_skipped += db.skipped
        for line in db.problems:
            problems.add(line)
        databases.append(db)
        for hash_, record in db.records.items():
            known.setdefault(hash_, record)
    assembled = assemble(tag, databases)
    for line in assembled.problems:
        problems.add(line)
    result.docs = _write_shard(Path(directory), assembled.specs, assembled.graph)
    problems.close()
    return vars(result)


class _Problems:
    """A shard's problem lines, the first MAX_PROBLEMS_PER_TAG kept, the rest counted."""

    def __init__(self, result: ShardResult, tag: str):
        self.result, self.tag, self.omitted = result, tag, 0

    def add(self, line: str) -> None:
        if len(self.result.problems) < MAX_PROBLEMS_PER_TAG:
            self.result.problems.append(line)
        else:
            self.omitted += 1

    def close(self) -> None:
        if self.omitted:
            self.result.problems.append(
                f"... and {self.omitted} more problems in tag {printable(self.tag)}"
            )
