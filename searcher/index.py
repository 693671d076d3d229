"""The on-disk index: generations, the writer lock, the atomic switch-over, and reading.

Layout of an index directory::

    index/
      CURRENT              name of the generation being served (replaced atomically)
      gen-<stamp>/         one complete generation: Whoosh files, facets.bin, rank.npy,
                           meta.json
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
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pyroaring import BitMap
from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh.scoring import BM25F

from searcher.documents import Spec
from searcher.errors import IndexUnavailable, ReindexRunning
from searcher.facets import FacetTable, FacetTableBuilder
from searcher.schema import NAME_BOOST, SCHEMA_VERSION, make_schema

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
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


# -- writing ------------------------------------------------------------------------------


class GenerationWriter:
    """Writes one new generation: Whoosh documents, then the facet structures and meta.

    Facet values are not Whoosh fields: FacetTableBuilder records them by document number
    as documents are added. A single writer on a fresh index numbers documents 0, 1, 2...
    in the order they are added; finish() checks that against the committed index.
    """

    def __init__(self, directory: Path, *, limitmb: int = 256):
        self.directory = directory
        self._ix = whoosh_index.create_in(str(directory), make_schema())
        self._writer = self._ix.writer(limitmb=limitmb)
        self._facets = FacetTableBuilder()
        self._checkpoints: dict[int, str] = {}  # docnum -> id, to verify the numbering
        self.count = 0

    def add(self, spec: Spec) -> None:
        """Add one spec as one document."""
        self._writer.add_document(
            id=spec.id,
            hash=spec.hash,
            name=" ".join(spec.name_terms()),
            text=" ".join(spec.text_terms()),
            doc=spec.to_record(),
        )
        self._facets.add(self.count, spec.facet_values())
        if self.count == 0 or self.count % 10_000 == 0:
            self._checkpoints[self.count] = spec.id
        self._last_id = spec.id
        self.count += 1

    def cancel(self) -> None:
        """Abandon the generation (the caller removes its directory)."""
        with contextlib.suppress(Exception):
            self._writer.cancel()
        self._ix.close()

    def finish(self, meta: dict) -> FacetTable:
        """Commit the documents, check the numbering, write the facet structures and meta."""
        self._writer.commit()
        with self._ix.searcher() as searcher:
            checkpoints = {**self._checkpoints, self.count - 1: self._last_id}
            numbered = searcher.doc_count_all() == self.count and all(
                searcher.stored_fields(docnum)["id"] == doc_id
                for docnum, doc_id in checkpoints.items()
            )
        self._ix.close()
        if not numbered:
            raise RuntimeError("Whoosh numbered documents out of insertion order")
        facets = self._facets.finish()
        facets.save(self.directory)
        meta = {**meta, "schema_version": SCHEMA_VERSION, "doc_count": len(facets.live)}
        (self.directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return facets


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTerm:
    """A free-text word of a query: matched in package names (boosted) and every field."""

    word: str
    prefix: bool = False
    hash_prefix: bool = False

    def whoosh_query(self) -> wq.Query:
        """The Whoosh query matching this word."""
        make = wq.Prefix if self.prefix else wq.Term
        parts = [make("name", self.word, boost=NAME_BOOST), make("text", self.word)]
        if self.hash_prefix:
            parts.append(wq.Prefix("hash", self.word))
        return wq.Or(parts)


class Snapshot:
    """One open generation: Whoosh searcher, facet table and meta, safe to share by threads."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.name = directory.name
        try:
            self.meta = json.loads((directory / META_FILE).read_text())
            self.facets = FacetTable.load(directory)
            self._ix = whoosh_index.open_dir(str(directory))
        except (OSError, ValueError, whoosh_index.IndexError) as exc:
            raise IndexUnavailable(f"cannot open index generation {directory}: {exc}") from exc
        self._searcher = self._ix.searcher(weighting=BM25F())
        # Whoosh's readers share file objects; one search at a time per snapshot keeps
        # them consistent. The Python-level work is GIL-bound anyway.
        self.lock = threading.RLock()
        self.users = 0

    def close(self) -> None:
        """Release the Whoosh searcher and index files."""
        self._searcher.close()
        self._ix.close()

    @property
    def doc_count(self) -> int:
        """Live documents in this generation."""
        return len(self.facets.live)

    def match_text(self, term: TextTerm) -> BitMap:
        """Documents matching one free-text word, unscored."""
        with self.lock:
            return BitMap(self._searcher.docs_for_query(term.whoosh_query())) & self.facets.live

    def match_hash_prefix(self, prefix: str) -> BitMap:
        """Documents whose hash starts with prefix."""
        with self.lock:
            found = self._searcher.docs_for_query(wq.Prefix("hash", prefix))
            return BitMap(found) & self.facets.live

    def scores(self, terms: Iterable[TextTerm], docs: BitMap) -> dict[int, float]:
        """BM25F scores of the given documents for the free-text words (all must match)."""
        terms = list(terms)
        query = wq.And([t.whoosh_query() for t in terms]) if len(terms) > 1 else None
        query = query or terms[0].whoosh_query()
        result: dict[int, float] = {}
        with self.lock:
            matcher = query.matcher(self._searcher, self._searcher.context(weighting=BM25F()))
            for docnum in docs:
                if not matcher.is_active():
                    break
                if matcher.id() < docnum:
                    matcher.skip_to(docnum)
                    if not matcher.is_active():
                        break
                if matcher.id() == docnum:
                    result[docnum] = matcher.score()
        return result

    def specs(self, docnums: Iterable[int]) -> list[Spec]:
        """The stored specs of the given documents, in the given order."""
        with self.lock:
            return [Spec.from_record(self._searcher.stored_fields(d)["doc"]) for d in docnums]

    def docnums_for_hash(self, hash_: str) -> list[int]:
        """Every live document (one per tag) listing this exact hash."""
        with self.lock:
            found = self._searcher.docs_for_query(wq.Term("hash", hash_))
            return sorted(d for d in found if d in self.facets.live)

    def docnum_for_id(self, doc_id: str) -> int | None:
        """The document number of ``<tag>/<hash>``, or None."""
        with self.lock:
            docnum = self._searcher.document_number(id=doc_id)
        return docnum if docnum is not None and docnum in self.facets.live else None


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
