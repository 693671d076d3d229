"""The on-disk index: generations, the writer lock, the atomic switch-over, and reading.

Layout of an index directory::

    index/
      CURRENT              name of the generation being served (replaced atomically)
      gen-<stamp>/         one complete generation: meta.json, facets.bin, order.npy and
        shards/<tag>/      one Whoosh index per build-cache tag (+ its postings.bin)
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

import bisect
import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from pyroaring import BitMap
from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh.filedb.filestore import FileStorage

from searcher.documents import Spec
from searcher.errors import IndexUnavailable, ReindexRunning
from searcher.facets import FacetTable, ShardPostings
from searcher.schema import SCHEMA_VERSION, make_schema

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
GEN_PREFIX = "gen-"
BUILD_PREFIX = ".build-"


# -- layout, lock, switch-over ----------------------------------------------------------


class IndexDir:
    """An index directory holding generations; see the module docstring."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def current_name(self) -> str | None:
        """The generation CURRENT points at, or None when nothing was published yet."""
        try:
            name = (self.root / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

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
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise ReindexRunning(
                    f"another reindex is running on {self.root} ({holder}); "
                    "wait for it to finish, then run this one again"
                ) from None
            # The kernel drops an flock when its process dies, so a killed reindex never
            # leaves a stale lock behind; the text is only for the message above.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}".encode(), 0)
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
        os.replace(tmp, self.root / CURRENT)
        _fsync_dir(self.root)
        return name

    def clean(self, keep_previous: bool = True) -> list[str]:
        """Remove leftover builds and old generations (call with the lock held)."""
        current = self.current_name()
        gens = sorted(p.name for p in self.root.glob(f"{GEN_PREFIX}*") if p.is_dir())
        keep = {current}
        if keep_previous and current in gens:
            # A server may still be finishing a request on the previous generation.
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
        self.postings = ShardPostings()
        self._checkpoints: dict[int, str] = {}  # docnum -> id, to verify the numbering
        self.count = 0

    def add(self, spec: Spec) -> None:
        """Add one spec as one document."""
        self._writer.add_document(
            id=spec.id, hash=spec.hash, name=" ".join(spec.name_terms()), doc=spec.to_row()
        )
        self.postings.add(self.count, spec.facet_values())
        if self.count % 10_000 == 0:
            self._checkpoints[self.count] = spec.id
        self._last_id = spec.id
        self.count += 1

    def cancel(self) -> None:
        """Abandon the shard (the caller removes its directory)."""
        with contextlib.suppress(Exception):
            self._writer.cancel()
        self._ix.close()

    def finish(self) -> None:
        """Commit the documents, check their numbering, write the postings."""
        self._writer.commit()
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


def write_generation(directory: Path, shards: list[dict], meta: dict) -> FacetTable:
    """Merge the shards' postings (in the given order) into facets.bin/order.npy + meta."""
    table = FacetTable.merge(
        [ShardPostings.load(directory / SHARDS_DIR / s["dir"]) for s in shards]
    )
    table.save(directory)
    meta = {
        **meta,
        "schema_version": SCHEMA_VERSION,
        "doc_count": table.doc_count,
        "shards": shards,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return table


def read_meta(directory: Path) -> dict:
    """A generation's meta.json."""
    return json.loads((directory / META_FILE).read_text())


def link_shard(source: Path, target: Path) -> None:
    """Reuse a finished shard in a new generation: hard links, as its files never change."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:  # another filesystem, or no hard links: copy
            shutil.copy2(path, target / path.name)


# -- reading ------------------------------------------------------------------------------


class _Shard:
    """One open shard: its Whoosh searcher and where its documents start globally."""

    def __init__(self, directory: Path, offset: int):
        self.offset = offset
        # Without mmap: Whoosh turns a mapped segment into resident memory (20 shards of the
        # 1M-spec benchmark: 371 MB with mmap, 10 MB without); we read a page of stored
        # specs and a few terms per request, which plain file reads serve as fast.
        self.ix = FileStorage(str(directory), supports_mmap=False).open_index()
        self.searcher = self.ix.searcher()

    def close(self) -> None:
        self.searcher.close()
        self.ix.close()


class Snapshot:
    """One open generation: shards, facet table and meta; safe to share between threads.

    Documents are known by rank (display order) everywhere above this class; a rank maps to
    a global document number (shards laid end to end), which maps to a shard and a Whoosh
    document number within it.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.name = directory.name
        self._shards: list[_Shard] = []
        try:
            self.meta = read_meta(directory)
            if self.meta.get("schema_version") != SCHEMA_VERSION:
                raise ValueError("built by another version of searcher; run searcher reindex")
            self.facets = FacetTable.load(directory)
            offset = 0
            for shard in self.meta["shards"]:
                self._shards.append(_Shard(directory / SHARDS_DIR / shard["dir"], offset))
                offset += shard["docs"]
        except (OSError, ValueError, KeyError, whoosh_index.IndexError) as exc:
            self.close()
            raise IndexUnavailable(f"cannot open index generation {directory}: {exc}") from exc
        self._offsets = [s.offset for s in self._shards]
        self._shard_of_tag = {s["tag"]: i for i, s in enumerate(self.meta["shards"])}
        self._rank_of = np.empty(self.facets.doc_count, dtype=np.int32)
        self._rank_of[self.facets.order] = np.arange(self.facets.doc_count, dtype=np.int32)
        # Whoosh's readers share file objects: one look-up at a time per snapshot.
        self.lock = threading.RLock()
        self.users = 0

    def close(self) -> None:
        """Release the shards' Whoosh searchers and files."""
        for shard in self._shards:
            shard.close()

    @property
    def doc_count(self) -> int:
        """Documents in this generation."""
        return self.facets.doc_count

    def _ranks(self, shard: _Shard, docnums: Iterable[int]) -> list[int]:
        return [int(self._rank_of[shard.offset + d]) for d in docnums]

    def match_hash_prefix(self, prefix: str) -> BitMap:
        """Documents (ranks) whose hash starts with prefix."""
        found = BitMap()
        with self.lock:
            for shard in self._shards:
                found.update(
                    self._ranks(shard, shard.searcher.docs_for_query(wq.Prefix("hash", prefix)))
                )
        return found

    def ranks_for_hash(self, hash_: str) -> list[int]:
        """Every document (one per tag) listing this exact hash."""
        found = []
        with self.lock:
            for shard in self._shards:
                found += self._ranks(shard, shard.searcher.docs_for_query(wq.Term("hash", hash_)))
        return sorted(found)

    def rank_for_id(self, doc_id: str) -> int | None:
        """The rank of ``<tag>/<hash>``, or None."""
        i = self._shard_of_tag.get(doc_id.partition("/")[0])
        if i is None:
            return None
        shard = self._shards[i]
        with self.lock:
            docnum = shard.searcher.document_number(id=doc_id)
        return None if docnum is None else self._ranks(shard, [docnum])[0]

    def specs(self, ranks: Iterable[int]) -> list[Spec]:
        """The stored specs of the given documents, in the given order."""
        result = []
        with self.lock:
            for rank in ranks:
                number = int(self.facets.order[rank])
                shard = self._shards[bisect.bisect_right(self._offsets, number) - 1]
                row = shard.searcher.stored_fields(number - shard.offset)["doc"]
                result.append(Spec.from_row(row))
        return result


class IndexHandle:
    """What the server holds: the current Snapshot, reopened when CURRENT changes."""

    def __init__(self, root: Path | str):
        self.dir = IndexDir(root)
        self._snapshot: Snapshot | None = None
        self._unopenable: str | None = None  # a generation that failed to open, not retried
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The generation to answer one request from; closed once no request uses it."""
        snap = self._acquire()
        try:
            yield snap
        finally:
            with self._lock:
                snap.users -= 1
                if snap is not self._snapshot and snap.users == 0:
                    snap.close()

    def _acquire(self) -> Snapshot:
        name = self.dir.current_name()
        with self._lock:
            snap = self._snapshot
            if snap is None or (snap.name != name and name != self._unopenable):
                try:
                    fresh = Snapshot(self.dir.current_path())
                except IndexUnavailable as exc:
                    if snap is None:
                        raise
                    # Keep answering from the generation we have rather than fail requests.
                    self._unopenable = name
                    log.warning("%s; still serving %s", exc.message, snap.name)
                else:
                    if snap is not None and snap.users == 0:
                        snap.close()
                    self._snapshot = snap = fresh
            snap.users += 1
            return snap

    def close(self) -> None:
        """Close the open generation (at shutdown)."""
        with self._lock:
            if self._snapshot is not None and self._snapshot.users == 0:
                self._snapshot.close()
            self._snapshot = None
