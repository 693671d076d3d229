"""Rebuilding the index from a source tree: one shard per tag, in parallel, incrementally.

Each build-cache tag (a top-level folder of the source) becomes one shard: a Whoosh index
of its specs plus their facet postings. A reindex compares every tag's fingerprint (the
paths, sizes and modification times of its pages) with the served generation's and only
rebuilds the tags that changed; the others are hard-linked into the new generation. The
facet table is then merged from all shards in tag order, so an incremental reindex gives
exactly the index a full rebuild would. Shards to build are spread over worker processes
(started with "spawn": no fork of a threaded process).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from searcher.index import (
    SHARDS_DIR,
    IndexDir,
    ShardWriter,
    link_shard,
    read_meta,
    write_generation,
)
from searcher.schema import SCHEMA_VERSION
from searcher.sources import SourceError, SourceTreeError, find_pages, iter_pages

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
    pages: list[Path]
    fingerprint: str

    @property
    def dir(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", self.tag)
        return f"{safe}-{hashlib.sha1(self.tag.encode()).hexdigest()[:8]}"


def reindex(
    source: Path,
    index_root: Path,
    *,
    full: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    warn: Warn | None = None,
) -> ReindexReport:
    """Bring the index up to date with source and switch to the result atomically.

    Raises ReindexRunning if another reindex holds the lock, SourceTreeError if the source
    has no pages or no spec could be indexed. Problems with files or specs are reported
    (warn) and skipped.
    """
    started = time.perf_counter()
    index_dir = IndexDir(index_root)
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
        plans = _plan(source)
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

        build_dir = index_dir.new_build_dir()
        (build_dir / SHARDS_DIR).mkdir()
        try:
            current = index_dir.current_path() if kept else None
            for result in kept.values():
                link_shard(current / SHARDS_DIR / result.dir, build_dir / SHARDS_DIR / result.dir)
                record(result, kept=True)
            built = _build_shards(to_build, build_dir, jobs, progress, record)
            results = {**kept, **built}
            shards = [vars(results[p.tag]) for p in plans]
            report.total_specs = sum(s["docs"] for s in shards)
            report.tags = sum(1 for s in shards if s["docs"])
            if not report.total_specs:
                raise SourceTreeError(
                    f"no spec in {source} could be indexed; the previous index stays in place"
                )
            write_generation(
                build_dir,
                shards,
                {
                    "source": str(Path(source).resolve()),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "tags": sorted(s["tag"] for s in shards if s["docs"]),
                },
            )
        except BaseException:
            # Whatever stopped us (an error, Ctrl-C), CURRENT still names the old
            # generation; stop every worker, then drop the half-built one now rather than
            # at the next run.
            _stop_workers()
            index_dir.clean()
            raise
        report.generation = index_dir.publish(build_dir)
        index_dir.clean()
    report.seconds = time.perf_counter() - started
    return report


def _plan(source: Path) -> list[_TagPlan]:
    """Pages grouped by tag folder, with each tag's fingerprint, in tag order."""
    plans = []
    for tag, pages in groupby(find_pages(source), key=lambda p: p.parent.parent.name):
        pages = list(pages)
        digest = hashlib.sha256()
        for page in pages:
            stat = page.stat()
            digest.update(f"{page.parent.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        plans.append(_TagPlan(tag, pages, digest.hexdigest()))
    return plans


def _previous_shards(index_dir: IndexDir) -> dict[str, ShardResult] | None:
    """The served generation's shards by tag, if it can be built upon."""
    name = index_dir.current_name()
    if name is None or not (index_dir.root / name).is_dir():
        return None
    try:
        meta = read_meta(index_dir.root / name)
        if meta.get("schema_version") != SCHEMA_VERSION:
            return None
        return {s["tag"]: ShardResult(**s) for s in meta["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build_shards(plans, build_dir: Path, jobs: int, progress, record) -> dict[str, ShardResult]:
    total = sum(len(p.pages) for p in plans)
    done = 0
    results: dict[str, ShardResult] = {}

    def finished(result: ShardResult) -> None:
        nonlocal done
        results[result.tag] = result
        record(result, kept=False)
        done += result.files
        if progress:
            progress(done, total)

    tasks = [
        (
            p.tag,
            [str(x) for x in p.pages],
            str(build_dir / SHARDS_DIR / p.dir),
            p.dir,
            p.fingerprint,
        )
        for p in sorted(plans, key=lambda p: -len(p.pages))
    ]
    if not tasks:  # only removals: nothing to build
        return results
    if jobs == 1 or len(tasks) == 1:
        for task in tasks:
            finished(build_shard(*task))
        return results
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        pending = {pool.submit(build_shard, *task) for task in tasks}
        while pending:
            complete, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in complete:
                finished(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _stop_workers() -> None:
    """Terminate and reap every worker process still alive (after an interruption)."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=10)


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the reindex that started us is gone.

    A killed reindex cannot stop its workers, and they would wait forever on the task
    queue (holding its output pipes open); its .build-* directory is removed by the next
    reindex.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def build_shard(
    tag: str, pages: list[str], directory: str, dirname: str, fingerprint: str
) -> ShardResult:
    """Index one tag's pages into a new shard directory (runs in a worker process)."""
    result = ShardResult(tag=tag, dir=dirname, fingerprint=fingerprint)
    writer = ShardWriter(Path(directory))
    try:
        seen: dict[str, str] = {}
        for page in iter_pages([Path(p) for p in pages]):
            result.files += 1
            if isinstance(page, SourceError):
                result.files_skipped += 1
                result.problems.append(str(page))
                continue
            for line in page.problems:
                result.specs_skipped += 1
                result.problems.append(f"{page.path}: {line}")
            for spec in page.specs:
                if spec.id in seen:
                    result.specs_skipped += 1
                    result.problems.append(
                        f"{page.path}: {spec.id} is also listed in {seen[spec.id]}, kept the first"
                    )
                    continue
                seen[spec.id] = page.path
                writer.add(spec)
        writer.finish()
    except BaseException:
        writer.cancel()
        raise
    result.docs = writer.count
    return result
