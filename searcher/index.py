"""The on-disk index: generations, the writer lock, the atomic switch-over, and reading.

Layout of an index directory::

    index/
      CURRENT              name of the generation being served (replaced atomically)
      gen-<stamp>/         one complete generation: meta.json, facets.bin, order.npy,
                           stats.json... (README, Layout) and
        shards/<tag>/      one Whoosh index per build-cache tag (+ its postings.bin,
                           hashes.npy, sizes.npy and export rows, rows.bin)
      .build-<stamp>-<pid>/  a generation being built; never served
      .lock                held (flock) by the one running reindex

A reindex builds a new generation in a ``.build-*`` directory, renames it to ``gen-*`` and
only then points CURRENT at it, so a reindex that fails or is killed at any moment leaves
the previous generation serving. Readers look at CURRENT on every request and move to a new
generation when it changes.

This module and searcher/schema.py are the only ones that import Whoosh (pinned and frozen:
keep our use of it small and tested).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

from searcher.bitmaps import BitmapStore, ShardPostings
from searcher.columns import Column
from searcher.documents import Spec
from searcher.errors import IndexUnavailable, ReindexRunning
from searcher.graph import DependencyGraph, ShardGraph
from searcher.hashes import HashIndex, save_shard_hashes
from searcher.rows import Row, RowReader, RowWriter
from searcher.schema import FACETS, SCHEMA_VERSION, make_schema
from searcher.stats import STATS_FILE, count_stats, merge_sizes, save_shard_sizes

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
GEN_PREFIX = "gen-"
BUILD_PREFIX = ".build-"


# -- layout, lock, switch-over ----------------------------------------------------------


_GENERATION = re.compile(r"gen-[0-9T]{15,40}")


class IndexDir:
    """An index directory holding generations; see the module docstring."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def current_name(self) -> str | None:
        """The generation CURRENT points at, or None when nothing was published yet.

        IndexUnavailable when CURRENT is damaged (not a generation's name); the next
        reindex repairs it.
        """
        try:
            with open(self.root / CURRENT, "rb") as file:
                raw = file.read(128)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._damaged(exc.strerror or str(exc)) from None
        name = raw.strip().decode("ascii", errors="replace")
        if not name:
            return None
        if not _GENERATION.fullmatch(name):
            raise self._damaged(f"it does not name a generation: {name[:40]!r}")
        return name

    def _damaged(self, why: str) -> IndexUnavailable:
        return IndexUnavailable(
            f"{self.root / CURRENT} is damaged ({why}); run `searcher reindex` to repair it"
        )

    def current_path(self) -> Path:
        """The served generation's directory; IndexUnavailable if there is none."""
        name = self.current_name()
        if name is None or not (self.root / name).is_dir():
            raise IndexUnavailable(
                f"no index in {self.root}: build one with `searcher reindex --source DIR`"
            )
        return self.root / name

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the single-writer lock; ReindexRunning if another process has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ReindexRunning(
                    f"another reindex is running on {self.root} ({_holder(fd)}); "
                    "wait for it to finish, then run this one again"
                ) from None
            # The kernel drops an flock when its process dies, so a killed reindex never
            # leaves a stale lock behind; the text is only for the message above. Written
            # before the truncation, so that a reader never sees it empty after the first
            # holder.
            text = f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}".encode()
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
            yield
        finally:
            os.close(fd)

    def new_build_dir(self) -> Path:
        """A fresh directory to build a generation in (call with the lock held)."""
        path = self.root / f"{BUILD_PREFIX}{_stamp()}-{os.getpid()}"
        path.mkdir(parents=True)
        return path

    def publish(self, build_dir: Path) -> str:
        """Make a finished build the served generation, atomically; returns its name."""
        name = f"{GEN_PREFIX}{_stamp()}"
        _fsync_tree(build_dir)
        os.rename(build_dir, self.root / name)
        tmp = self.root / f".{CURRENT}.{os.getpid()}"
        with open(tmp, "w") as out:
            out.write(name + "\n")
            out.flush()
            os.fsync(out.fileno())
        current = self.root / CURRENT
        if current.is_dir() and not current.is_symlink():
            # Something made a directory of CURRENT (a damaged index): it holds no data of
            # ours, and the rename below cannot replace it.
            shutil.rmtree(current)
        os.replace(tmp, current)
        _fsync_dir(self.root)
        return name

    def clean(self) -> list[str]:
        """Remove leftover builds and old generations (call with the lock held).

        Kept: the served generation and the one before it (a server may still be
        finishing a request on it). While CURRENT is damaged no generation is removed:
        which one was served cannot be known, and nothing is lost by waiting for the
        reindex that repairs it.
        """
        try:
            current = self.current_name()
        except IndexUnavailable:
            current = None
            keep_all = True
        else:
            keep_all = False
        gens = sorted(p.name for p in self.root.glob(f"{GEN_PREFIX}*") if p.is_dir())
        keep = set(gens) if keep_all else {current}
        if current in gens:
            older = [g for g in gens if g < current]
            keep.update(older[-1:])
        removed = []
        for path in [*self.root.glob(f"{BUILD_PREFIX}*"), *self.root.glob(f".{CURRENT}.*")]:
            _remove(path)
            removed.append(path.name)
        for name in gens:
            if name not in keep:
                _remove(self.root / name)
                removed.append(name)
        return removed


def _holder(fd: int) -> str:
    """Who holds the lock, from the text it wrote (it writes it right after locking)."""
    deadline = time.monotonic() + 2
    while True:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text or time.monotonic() > deadline:
            return text or "holder unknown"
        time.sleep(0.01)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir():
            _fsync_tree(child)
        else:
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


# -- writing ------------------------------------------------------------------------------

SHARDS_DIR = "shards"


class ShardWriter:
    """Writes one shard (all specs of one build-cache tag): a Whoosh index + its postings.

    Facet values are not Whoosh fields: ShardPostings records them by document number as
    documents are added. A single writer on a fresh index numbers documents 0, 1, 2... in
    the order they are added; finish() checks that against the committed index.
    """

    def __init__(self, directory: Path, *, limitmb: int = 128):
        self.directory = directory
        # Not parents=True: a worker finishing after its reindex was stopped (and its
        # .build-* directory removed) must fail here, not bring the directory back.
        directory.mkdir()
        self._ix = whoosh_index.create_in(str(directory), make_schema())
        self._writer = self._ix.writer(limitmb=limitmb)
        self._rows = RowWriter(directory)  # the same rows again, for exports (rows.py)
        self.postings = ShardPostings()
        self._hashes: list[str] = []
        self._sizes: list[int | None] = []
        self._checkpoints: dict[int, str] = {}  # docnum -> id, to verify the numbering
        self.count = 0

    def add(self, spec: Spec) -> None:
        """Add one spec as one document."""
        row = spec.to_row()
        self._writer.add_document(doc=row)
        self._rows.add(row)
        self.postings.add(self.count, spec.facet_values())
        self._hashes.append(spec.hash)
        self._sizes.append(spec.size)
        if self.count % 10_000 == 0:
            self._checkpoints[self.count] = spec.id
        self._last_id = spec.id
        self.count += 1

    def cancel(self) -> None:
        """Abandon the shard (the caller removes its directory)."""
        with contextlib.suppress(Exception):
            self._writer.cancel()
        self._ix.close()
        self._rows.cancel()

    def finish(self, graph: ShardGraph | None = None) -> None:
        """Commit the documents, check their numbering, write the postings (and the
        shard's dependency graph, for specs from mirrors: graph.py)."""
        self._writer.commit()
        self._rows.finish()
        if self.count:
            with self._ix.searcher() as searcher:
                checkpoints = {**self._checkpoints, self.count - 1: self._last_id}
                numbered = searcher.doc_count_all() == self.count and all(
                    Spec.from_row(searcher.stored_fields(docnum)["doc"]).id == doc_id
                    for docnum, doc_id in checkpoints.items()
                )
            if not numbered:
                self._ix.close()
                raise RuntimeError("Whoosh numbered documents out of insertion order")
        self._ix.close()
        self.postings.save(self.directory)
        save_shard_hashes(self.directory, self._hashes)
        save_shard_sizes(self.directory, self._sizes)
        if graph is not None:
            if graph.docs != self.count:
                raise RuntimeError(f"a graph of {graph.docs} documents for {self.count}")
            graph.save(self.directory)


def write_generation(directory: Path, shards: list[dict[str, Any]], meta: dict[str, Any]) -> int:
    """Merge the shards (in the given order) into the generation's files: the bitmap store
    (facets.bin, order.npy), the value columns, the sorted hashes, the dependency graph
    and the stats (stats.py, counted with the shards' sizes); then its meta.json.
    Returns the number of documents."""
    shard_dirs = [directory / SHARDS_DIR / s["dir"] for s in shards]
    store = BitmapStore.merge([ShardPostings.load(d) for d in shard_dirs])
    store.save(directory)
    columns = {
        f.name: Column.build(store.bitmaps[f.name], store.doc_count, f.multi) for f in FACETS
    }
    for name, column in columns.items():
        column.save(directory, name)
    HashIndex.merge(shard_dirs, store.order).save(directory)
    stats = count_stats(store, columns, merge_sizes(shard_dirs, store.order))
    (directory / STATS_FILE).write_text(json.dumps(stats, separators=(",", ":")) + "\n")
    DependencyGraph.merge(shard_dirs, [s["docs"] for s in shards], store.rank_of).save(directory)
    meta = {
        **meta,
        "schema_version": SCHEMA_VERSION,
        "doc_count": store.doc_count,
        "shards": shards,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return store.doc_count


def read_meta(directory: Path) -> dict[str, Any]:
    """A generation's meta.json."""
    meta: dict[str, Any] = json.loads((directory / META_FILE).read_text())
    return meta


def link_shard(source: Path, target: Path) -> None:
    """Reuse a finished shard in a new generation: hard links, as its files never change."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:  # another filesystem, or no hard links: copy
            shutil.copy2(path, target / path.name)


# -- reading ------------------------------------------------------------------------------


class ShardReader:
    """One shard opened for reading: its stored specs (Whoosh), and its export rows
    (rows.py)."""

    def __init__(self, directory: Path, docs: int):
        # Without mmap: Whoosh turns a mapped segment into resident memory (20 shards of the
        # 1M-spec benchmark: 371 MB with mmap, 10 MB without); we read a page of stored
        # specs and a few terms per request, which plain file reads serve as fast.
        self._ix = FileStorage(str(directory), supports_mmap=False).open_index()
        self._searcher = self._ix.searcher()
        # Whoosh's readers share file objects: one look-up at a time per shard.
        self._lock = threading.Lock()
        try:
            self._rows = RowReader(directory, docs)
        except (OSError, ValueError):
            self.close()
            raise

    def specs(self, numbers: Iterable[int]) -> list[Spec]:
        """The stored specs of these document numbers, in order."""
        return [Spec.from_row(row) for row in self.rows(numbers)]

    def rows(self, numbers: Iterable[int]) -> list[tuple[Any, ...]]:
        """The stored rows (documents.ROW_FIELDS) of these document numbers, in order."""
        stored = self._searcher.stored_fields
        with self._lock:
            return [tuple(stored(n)["doc"]) for n in numbers]

    def export_rows(self, numbers: list[int]) -> list[Row]:
        """The same rows from the export file: many at a time, for exports."""
        return self._rows.rows(numbers)

    def close(self) -> None:
        """Release the Whoosh searcher, its files and the export rows."""
        self._searcher.close()
        self._ix.close()
        if hasattr(self, "_rows"):
            self._rows.close()
