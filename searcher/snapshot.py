"""One open generation, the façade searches talk to, and the handle a server follows.

``Snapshot`` puts a generation's parts behind one object: the bitmap store (bitmaps.py),
the term index (terms.py), facet counting (facets.py), the sorted hashes (hashes.py) and
the shards' stored specs (index.py's ShardReader, the one place Whoosh is read). search.py
asks it questions in ranks and gets answers in ranks; it knows none of the parts.

``IndexHandle`` is what a server process holds: the current Snapshot, moved to a new
generation when CURRENT names one, without making requests wait.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from searcher.bitmaps import BitmapStore, DocSet, bitmap_of
from searcher.columns import Column
from searcher.documents import Dependency, Spec
from searcher.errors import IndexUnavailable
from searcher.facets import FacetCount, FacetCounter
from searcher.graph import DependencyGraph, Node
from searcher.hashes import HashIndex
from searcher.index import SHARDS_DIR, IndexDir, ShardReader, read_meta
from searcher.schema import FACET_BY_NAME, FACETS, SCHEMA_VERSION
from searcher.stats import STATS_FILE, Stats
from searcher.terms import Matcher, TermIndex

log = logging.getLogger(__name__)


class Snapshot:
    """One open generation; safe to share between threads.

    Documents are known by rank (display order) everywhere above this class; a rank maps to
    a global document number (shards laid end to end), which maps to a shard and a
    document number within it.
    """

    def __init__(self, directory: Path):
        self.name = directory.name
        self._shards: list[ShardReader] = []
        try:
            self.meta = read_meta(directory)
            if self.meta.get("schema_version") != SCHEMA_VERSION:
                raise ValueError("built by another version of searcher; run searcher reindex")
            store = BitmapStore.load(directory)
            columns = {
                f.name: Column.load(
                    directory, f.name, f.multi, store.doc_count, len(store.values[f.name])
                )
                for f in FACETS
            }
            self._hashes = HashIndex.load(directory, store.doc_count)
            self._graph = DependencyGraph.load(directory, store.doc_count)
            self.stats = Stats(json.loads((directory / STATS_FILE).read_text()))
            # Where each rank's hash sits in the sorted hashes: a dependency's hash by rank.
            self._hash_at = np.empty(store.doc_count, dtype=np.int32)
            self._hash_at[self._hashes.ranks] = np.arange(store.doc_count, dtype=np.int32)
            self._columns = columns
            # Graph node -> (package, version, hash): dependencies repeat across specs
            # (a page, an export); filled as they are shown, up to a bound.
            self._identities: dict[int, tuple[str, str, str]] = {}
            offsets = [0]
            for shard in self.meta["shards"]:
                path = directory / SHARDS_DIR / shard["dir"]
                self._shards.append(ShardReader(path, int(shard["docs"])))
                offsets.append(offsets[-1] + int(shard["docs"]))
            if offsets[-1] != store.doc_count:
                raise ValueError(f"its shards hold {offsets[-1]} documents, not {store.doc_count}")
            self._store = store
            self._terms = TermIndex(store)
            self._counter = FacetCounter(store, columns)
            self._offsets = offsets[:-1]
            self._offsets_array = np.array(offsets[:-1], dtype=np.int64)
            self._labels: dict[int, str] = {}  # graph node -> name@version/hash (exports)
            self._shard_of_tag = {s["tag"]: i for i, s in enumerate(self.meta["shards"])}
        except Exception as exc:
            # A damaged or foreign generation, whatever the damage: its files come from
            # disk like any input.
            self.close()
            raise IndexUnavailable(f"cannot open index generation {directory}: {exc}") from exc
        self.users = 0  # requests answering from this generation (IndexHandle counts them)

    def close(self) -> None:
        """Release the shards' files."""
        for shard in self._shards:
            shard.close()

    @property
    def doc_count(self) -> int:
        """Documents in this generation."""
        return self._store.doc_count

    # -- document sets, in ranks --------------------------------------------------------

    @property
    def all_docs(self) -> FrozenBitMap:
        """Every document."""
        return self._store.all_docs

    def value_set(self, facet: str, value: str) -> FrozenBitMap:
        """Documents holding a facet value (exact, else in any letter case)."""
        return self._store.value_set(facet, value)

    def value_prefix_set(self, facet: str, value_prefix: str) -> DocSet:
        """Documents holding a value of the facet that starts with value_prefix (any case)."""
        folded = value_prefix.casefold()
        return self._store.values_set(facet, lambda v: v.casefold().startswith(folded))

    def any_of(self, facet: str, values: Iterable[str]) -> DocSet:
        """Documents holding at least one of these values of a facet."""
        return self._store.any_of(facet, values)

    def all_of(self, facet: str, values: Iterable[str]) -> DocSet:
        """Documents holding every one of these values of a facet."""
        return self._store.all_of(facet, values)

    def selected(self, facet: str, values: Iterable[str]) -> DocSet:
        """Documents a selection of values of a facet keeps (its `combine` rule)."""
        if FACET_BY_NAME[facet].combine == "and":
            return self.all_of(facet, values)
        return self.any_of(facet, values)

    def matching(self, facet: str, clause: Matcher) -> FrozenBitMap:
        """Documents holding a value of a facet that clause.matches()."""
        return self._terms.matching(facet, clause)

    def term_set(self, word: str, prefix: bool = False) -> FrozenBitMap:
        """Documents with a free-text term (or a term starting with word)."""
        return self._terms.term_set(word, prefix)

    def name_sets(self, word: str, prefix: bool = False) -> tuple[FrozenBitMap, FrozenBitMap]:
        """(documents whose package is word, documents with word in their package name)."""
        return self._terms.name_sets(word, prefix)

    def hash_prefix_set(self, prefix: str) -> BitMap:
        """Documents whose hash starts with prefix."""
        return self._hashes.with_prefix(prefix)

    # -- values --------------------------------------------------------------------------

    def is_package(self, name: str) -> bool:
        """Whether the index holds this package (in any letter case)."""
        return self._store.has_value("package", name)

    def variant_values(self) -> list[str]:
        """Every variant value the generation holds (`+cuda`, `backend=jax`, ...)."""
        return self._store.values["variant"]

    def canonical(self, facet: str, value: str) -> str:
        """The index's spelling of a facet value (the value itself when unknown)."""
        return self._store.canonical(facet, value)

    def complete(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Packages whose name or a part of it starts with prefix, most specs first."""
        return self._terms.complete(prefix, limit)

    def closest(self, facets: Sequence[str], text: str) -> list[str]:
        """Values of these facets spelled nearly like text (did-you-mean)."""
        return self._terms.closest(facets, text)

    # -- counts and pages ----------------------------------------------------------------

    def top_counts(
        self, facet: str, docs: BitMap, size: int, selected: Sequence[str] = ()
    ) -> list[FacetCount]:
        """The `size` values of a facet held by most of docs, then the selected ones."""
        return self._counter.top_counts(facet, docs, size, selected)

    def in_sort_order(self, facet: str, values: Sequence[str]) -> list[str]:
        """Values of version or tag in that facet's order (versions newest first)."""
        return self._counter.in_sort_order(facet, values)

    def packages_holding(
        self, facet: str, docs: BitMap, values: Sequence[str], limit: int = 3
    ) -> dict[str, list[str]]:
        """value -> the packages of docs that hold it (most first, at most `limit`)."""
        return self._counter.packages_holding(facet, docs, values, limit)

    def cross_counts(self, docs: DocSet, first: str, second: str) -> list[tuple[str, str, int]]:
        """(value of first, value of second, documents of docs holding both), for two
        single-valued facets (tag and version...)."""
        return self._counter.cross_counts(docs, first, second)

    def all_sorted(self, docs: BitMap, facet: str) -> np.ndarray:
        """Every rank of docs in a facet's sort order (version, tag)."""
        return self._counter.all_sorted(docs, facet)

    def page_sorted(self, docs: BitMap, facet: str, start: int, stop: int) -> list[int]:
        """Ranks start:stop of docs in a facet's sort order (version, tag)."""
        return self._counter.page_sorted(docs, facet, start, stop)

    # -- specs -----------------------------------------------------------------------------

    def specs(self, ranks: Iterable[int]) -> list[Spec]:
        """The stored specs of the given documents, in the given order, with their direct
        dependencies."""
        found = []
        for rank in ranks:
            number = int(self._store.order[rank])
            i = bisect.bisect_right(self._offsets, number) - 1
            (spec,) = self._shards[i].specs([number - self._offsets[i]])
            deps = self._dependencies(number)
            found.append(dataclasses.replace(spec, dependencies=deps) if deps else spec)
        return found

    def export_rows(self, ranks: np.ndarray) -> list[tuple[tuple[Any, ...], list[str]]]:
        """(stored row, direct dependencies as `name@version/hash`) of each of these
        documents, in order: what an export writes, read without making a Spec or a
        Dependency per row (an export is a million of them)."""
        numbers = np.asarray(self._store.order[ranks], dtype=np.int64)
        # Read in document-number order (one call per shard, each file front to back),
        # then put the rows back in the order asked for.
        ascending = np.argsort(numbers, kind="stable")
        by_number = numbers[ascending]
        shard_of = np.searchsorted(self._offsets_array, by_number, side="right") - 1
        local = by_number - self._offsets_array[shard_of]
        read: list[tuple[Any, ...]] = []
        cuts = np.flatnonzero(np.diff(shard_of)) + 1
        for start, stop in zip([0, *cuts.tolist()], [*cuts.tolist(), len(numbers)], strict=True):
            if start < stop:
                shard = self._shards[int(shard_of[start])]
                try:
                    read.extend(shard.export_rows(local[start:stop].tolist()))
                except ValueError as exc:
                    raise IndexUnavailable(f"index generation {self.name}: {exc}") from exc
        stored: list[tuple[Any, ...]] = [()] * len(read)
        for position, row in zip(ascending.tolist(), read, strict=True):
            stored[position] = row
        children, counts = self._graph.children_of(numbers)
        # Rows share dependencies: label each distinct one once.
        distinct, inverse = np.unique(children, return_inverse=True)
        labels, label = self._labels, self._label
        known = np.array([labels.get(c) or label(c) for c in distinct.tolist()], dtype=object)
        names = known[inverse].tolist() if len(children) else []
        found, at = [], 0
        for row, n in zip(stored, counts.tolist(), strict=True):
            found.append((row, names[at : at + n]))
            at += n
        return found

    def _label(self, node: int) -> str:
        name, version, hash_ = self.node_identity(node)
        text = f"{name}@{version}/{hash_}" if version else f"{name}/{hash_}"
        if len(self._labels) < MAX_CACHED_IDENTITIES:
            self._labels[node] = text
        return text

    def _dependencies(self, number: int) -> tuple[Dependency, ...]:
        identity, known = self.node_identity, self._identities
        found = []
        for child, deptypes, virtuals in self._graph.children(number):
            ident = known.get(child)
            if ident is None:
                ident = identity(child)
                if len(known) < MAX_CACHED_IDENTITIES:
                    known[child] = ident
            found.append(Dependency(*ident, deptypes, virtuals))
        return tuple(found)

    # -- the dependency graph ------------------------------------------------------------

    def node_identity(self, node: int) -> tuple[str, str, str]:
        """(package, version, hash) of a graph node: a document's, or an extra node's."""
        if node >= self.doc_count:
            extra = self._graph.extra[node - self.doc_count]
            return extra.name, extra.version, extra.hash
        rank = int(self._store.rank_of[node])
        return (
            self._value_of("package", rank),
            self._value_of("version", rank),
            self._hashes.hashes[self._hash_at[rank]].decode("ascii"),
        )

    def _value_of(self, facet: str, rank: int) -> str:
        index = int(self._columns[facet].values[rank])
        return self._store.values[facet][index] if index >= 0 else ""

    def numbers(self, docs: DocSet) -> np.ndarray:
        """The graph nodes (global document numbers) of a set of documents (ranks)."""
        ranks = np.frombuffer(docs.to_array(), dtype=np.uint32).astype(np.int64)
        return np.asarray(self._store.order[ranks], dtype=np.int64)

    def node_of(self, rank: int) -> int:
        """The graph node of a document (its global document number)."""
        return int(self._store.order[rank])

    def rank_of_node(self, node: int) -> int | None:
        """The rank of a graph node that is a document, else None."""
        return int(self._store.rank_of[node]) if node < self.doc_count else None

    def extra_nodes(self, name: str) -> list[tuple[int, Node]]:
        """Graph nodes that are no documents (externals...) of a package name."""
        return self._graph.extra_named(name)

    def extra_node(self, node: int) -> Node:
        """The record of a graph node that is no document."""
        return self._graph.extra[node - self.doc_count]

    def virtual_edges(self, virtual: str) -> tuple[np.ndarray, np.ndarray]:
        """(parents, children): graph nodes depending on a provider of a virtual (mpi, c...),
        and that provider, edge by edge."""
        return self._graph.virtual_edges(virtual)

    def ranks_of_nodes(self, nodes: np.ndarray) -> BitMap:
        """The documents among these graph nodes, as ranks."""
        docs = nodes[nodes < self.doc_count]
        return bitmap_of(self._store.rank_of[docs])

    def dependents(self, nodes: np.ndarray) -> BitMap:
        """Documents with any of these graph nodes anywhere in their dependency DAG."""
        return self._graph.dependents(nodes)

    def direct_dependents(self, node: int) -> np.ndarray:
        """Graph nodes that depend directly on node (candidates: its dependents)."""
        candidates = self.numbers(self._graph.dependents(np.array([node])))
        return self._graph.parents_among(candidates, node)

    def children(self, node: int) -> list[tuple[int, tuple[str, ...], tuple[str, ...]]]:
        """A graph node's direct dependencies: (node, dependency types, virtuals)."""
        return self._graph.children(node)

    def rank_for_id(self, doc_id: str) -> int | None:
        """The rank of ``<tag>/<hash>``, or None: the hash's documents (one per tag that
        lists it, from the sorted hash array), then the one of that tag."""
        tag, _, hash_ = doc_id.partition("/")
        for rank in self._hashes.exactly(hash_):
            if self._value_of("tag", rank) == tag:
                return rank
        return None

    def tags_of_hash(self, hash_: str) -> list[str]:
        """The tags listing this exact hash, in the tag facet's order."""
        tags = [self._value_of("tag", rank) for rank in self._hashes.exactly(hash_)]
        return self.in_sort_order("tag", tags)

    def hashes_of(self, docs: DocSet) -> list[str]:
        """The hashes of a set of documents, in rank order."""
        ranks = np.frombuffer(docs.to_array(), dtype=np.uint32).astype(np.int64)
        return [h.decode("ascii") for h in self._hashes.hashes[self._hash_at[ranks]].tolist()]

    def ranks_for_hash(self, hash_: str) -> list[int]:
        """Every document (one per tag) listing this exact hash."""
        return self._hashes.exactly(hash_)


# About 40 MB at most (three shared or short strings per entry).
MAX_CACHED_IDENTITIES = 200_000


class IndexHandle:
    """What the server holds: the current Snapshot, reopened when CURRENT changes.

    Opening a generation takes a while at a million specs (~0.1-0.2 s). The first request
    that sees CURRENT change starts opening it in a background thread and, like every
    request meanwhile, is answered from the generation already open; the new one is
    swapped in once open. No request waits for it, except the very first open, when
    there is nothing to answer from yet.
    """

    def __init__(self, root: Path | str):
        self.dir = IndexDir(root)
        self._snapshot: Snapshot | None = None
        self._unopenable: str | None = None  # a generation that failed to open, not retried
        self._opening = False  # a thread is opening a newer generation
        self._closed = False
        self._warned: str | None = None
        self._lock = threading.Lock()  # guards the fields above and users counts
        self._first_open = threading.Lock()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The generation to answer one request from; closed once no request uses it."""
        snap = self.acquire()
        try:
            yield snap
        finally:
            self.release(snap)

    def release(self, snap: Snapshot) -> None:
        """Done answering from snap (from acquire()); closed once no request uses it."""
        with self._lock:
            snap.users -= 1
            if snap is not self._snapshot and snap.users == 0:
                snap.close()

    def acquire(self) -> Snapshot:
        """The generation to answer one request from; give it back with release()."""
        wanted = self._wanted()
        with self._lock:
            snap = self._snapshot
            if snap is not None:
                stale = wanted not in (None, snap.name, self._unopenable)
                if stale and not self._opening:
                    self._opening = True
                    threading.Thread(
                        target=self._open, args=(wanted,), name="open-generation", daemon=True
                    ).start()
                snap.users += 1
                return snap
        return self._open_first()

    def _open(self, name: str) -> None:
        """Open a generation and make it the one requests are answered from (in a thread
        of its own: whatever happens here, the next change of CURRENT is followed)."""
        fresh = None
        try:
            fresh = Snapshot(self.dir.root / name)
        except IndexUnavailable as exc:
            # Keep answering from the generation we have rather than fail requests.
            with self._lock:
                serving = self._snapshot.name if self._snapshot else "nothing"
            self._warn(exc.message, serving)
        except Exception:  # a bug, or no memory: log it and keep serving
            log.exception("opening %s failed", name)
        finally:
            if fresh is None:  # not retried until CURRENT names another generation
                with self._lock:
                    self._unopenable = name
                    self._opening = False
        if fresh is None:
            return
        with self._lock:
            self._opening = False
            # CURRENT may have moved on (or back, with a repair) while this one opened; a
            # request that read it earlier must not bring an older generation back.
            if self._closed or name != self._wanted_quietly():
                fresh.close()
                return
            old, self._snapshot = self._snapshot, fresh
            if old is not None and old.users == 0:
                old.close()

    def _wanted_quietly(self) -> str | None:
        try:
            return self.dir.current_name()
        except IndexUnavailable:
            return None

    def _wanted(self) -> str | None:
        """The generation CURRENT names; None when it cannot be read (keep what is open)."""
        try:
            return self.dir.current_name()
        except IndexUnavailable as exc:
            with self._lock:
                serving = self._snapshot.name if self._snapshot else None
            if serving is not None:
                self._warn(exc.message, serving)
            return None

    def _warn(self, message: str, serving: str) -> None:
        # Once per problem, not once per request.
        if message != self._warned:
            self._warned = message
            log.warning("%s; still serving %s", message, serving)

    def _open_first(self) -> Snapshot:
        with self._first_open:
            with self._lock:
                if self._snapshot is not None:  # another request opened it meanwhile
                    self._snapshot.users += 1
                    return self._snapshot
            fresh = Snapshot(self.dir.current_path())
            with self._lock:
                self._snapshot = fresh
                fresh.users += 1
                return fresh

    def warm(self) -> str | None:
        """Open the current generation now (at a server's start); its name, or None."""
        try:
            with self.snapshot() as snap:
                return snap.name
        except IndexUnavailable as exc:
            log.warning("%s", exc.message)
            return None

    def close(self) -> None:
        """Close the open generation (at shutdown)."""
        with self._lock:
            self._closed = True
            if self._snapshot is not None and self._snapshot.users == 0:
                self._snapshot.close()
            self._snapshot = None
