"""Facet and term structures beside the Whoosh shards, in display-rank space.

Every document gets a *rank*: its position in display order (package, newest version, tag,
os, target, compiler, then listing order). All our document sets are roaring bitmaps of
ranks, so:

- the first page of any set of hits is a rank-select on its bitmap (``hits[start:stop]``),
  whatever its size: no sorting at query time;
- a facet value's documents, a filter, a free-text term's matches and a relevance tier are
  all bitmaps, combined with C-speed set operations;
- counting a facet is an intersection cardinality per value, visited in order of the value's
  overall size so that the exact top values are found without visiting most of the tail
  (or one ``bincount`` over the hits' values read from a column, for small hit sets:
  searcher/columns.py).

Free-text terms are derived from facet values (``documents.word_terms``), at the vocabulary
level: a term's documents are the union of the documents of the values it appears in.

Shards (one per build-cache tag) each record their documents' facet values by local
document number (``ShardPostings``); ``FacetTable.merge`` lays shards end to end, computes
the ranks and maps everything to rank space.
"""

from __future__ import annotations

import bisect
import heapq
import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from searcher.columns import Column
from searcher.documents import normalize_compiler, word_terms
from searcher.schema import FACETS
from searcher.versions import parse_version

FORMAT = "searcher-facets/3"
FACETS_FILE = "facets.bin"
ORDER_FILE = "order.npy"
SHARD_POSTINGS_FILE = "postings.bin"
# Display order: these facets, in this order, then position in the listing.
_ORDER = ("package", "version", "tag", "os", "target", "compiler")
_HEADER = struct.Struct("<Q")
# Hit sets up to this share of the index (50k specs of 1M) are counted with one bincount
# over their values (columns.py); larger sets by intersecting the largest values.
_BINCOUNT_SHARE = 20
_TERM_CACHE = 512


@dataclass(frozen=True)
class FacetCount:
    """One row of a facet: a value, how many matching documents hold it, is it selected."""

    value: str
    count: int
    selected: bool

    def to_dict(self) -> dict:
        """The JSON shape of a facet row."""
        return {"value": self.value, "count": self.count, "selected": self.selected}


# -- a shard's postings ----------------------------------------------------------------------


class ShardPostings:
    """One shard's facet values by local document number, recorded while it is built."""

    def __init__(self, doc_count: int = 0, postings: dict[str, dict[str, BitMap]] | None = None):
        self.doc_count = doc_count
        self.postings = postings or {f.name: {} for f in FACETS}

    def add(self, docnum: int, values: dict[str, list[str]]) -> None:
        """Record the facet values (Spec.facet_values()) of one document."""
        for facet, facet_values in values.items():
            table = self.postings[facet]
            for value in facet_values:
                bitmap = table.get(value)
                if bitmap is None:
                    bitmap = table[value] = BitMap()
                bitmap.add(docnum)
        self.doc_count = max(self.doc_count, docnum + 1)

    def save(self, directory: Path) -> None:
        """Write postings.bin beside the shard's Whoosh files."""
        values = {facet.name: sorted(self.postings[facet.name]) for facet in FACETS}
        bitmaps = {name: [self.postings[name][v] for v in vals] for name, vals in values.items()}
        _write_facet_file(
            directory / SHARD_POSTINGS_FILE, {"doc_count": self.doc_count}, values, bitmaps
        )

    @classmethod
    def load(cls, directory: Path) -> ShardPostings:
        """Read what save() wrote."""
        header, values, bitmaps = _read_facet_file(directory / SHARD_POSTINGS_FILE, BitMap)
        postings = {name: dict(zip(values[name], bitmaps[name], strict=True)) for name in values}
        return cls(header["doc_count"], postings)


# -- the global table ------------------------------------------------------------------------


class FacetTable:
    """Facet values, their document bitmaps (ranks), and term lookups for one generation."""

    def __init__(
        self,
        values: dict[str, list[str]],
        bitmaps: dict[str, list[FrozenBitMap]],
        order: np.ndarray,
        columns: dict[str, Column],
    ):
        self.values = values
        self.bitmaps = bitmaps
        # order[rank] = global document number (shards laid end to end in tag order).
        self.order = order
        self.doc_count = len(order)
        self.live = FrozenBitMap(range(self.doc_count))
        self._index = {name: {v: i for i, v in enumerate(vals)} for name, vals in values.items()}
        self._folded = {
            name: {v.casefold(): i for i, v in reversed(list(enumerate(vals)))}
            for name, vals in values.items()
        }
        self._sizes = {
            name: np.array([len(b) for b in maps], dtype=np.int64) for name, maps in bitmaps.items()
        }
        # Values of each facet from the most documents to the fewest (then by name).
        self._by_size = {
            name: sorted(
                range(len(values[name])), key=lambda i, n=name: (-self._sizes[n][i], values[n][i])
            )
            for name in values
        }
        self._columns = columns
        self._terms = _TermIndex(values)
        # Position of each value in the order sort=version / sort=tag lists them.
        self._sort_position = {
            name: _positions(_value_order(name, values[name])) for name in ("version", "tag")
        }
        self._cache: OrderedDict[tuple, FrozenBitMap] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- building and storage ------------------------------------------------------------

    @classmethod
    def merge(cls, shards: Sequence[ShardPostings]) -> FacetTable:
        """Lay shards end to end (in the given order), rank every document, map to ranks."""
        offsets = np.cumsum([0] + [s.doc_count for s in shards])
        total = int(offsets[-1])
        values = {f.name: sorted({v for s in shards for v in s.postings[f.name]}) for f in FACETS}
        # Global document numbers of each value, before ranking.
        global_ids: dict[str, list[np.ndarray]] = {}
        for facet in FACETS:
            index = {v: i for i, v in enumerate(values[facet.name])}
            parts: list[list[np.ndarray]] = [[] for _ in values[facet.name]]
            for offset, shard in zip(offsets, shards, strict=False):
                for value, bitmap in shard.postings[facet.name].items():
                    parts[index[value]].append(_ids(bitmap) + offset)
            global_ids[facet.name] = [
                np.concatenate(p) if p else np.empty(0, np.int64) for p in parts
            ]
        order = _display_order(total, values, global_ids)
        rank_of = np.empty(total, dtype=np.int64)
        rank_of[order] = np.arange(total)
        bitmaps = {
            name: [FrozenBitMap(np.sort(rank_of[ids]).astype(np.uint32)) for ids in per_value]
            for name, per_value in global_ids.items()
        }
        columns = {f.name: Column.build(bitmaps[f.name], total, f.multi) for f in FACETS}
        return cls(values, bitmaps, order.astype(np.int64), columns)

    def save(self, directory: Path) -> None:
        """Write facets.bin (JSON header, serialized bitmaps), order.npy and the columns."""
        header = {"format": FORMAT, "doc_count": self.doc_count}
        _write_facet_file(directory / FACETS_FILE, header, self.values, self.bitmaps)
        np.save(directory / ORDER_FILE, self.order, allow_pickle=False)
        for name, column in self._columns.items():
            column.save(directory, name)

    @classmethod
    def load(cls, directory: Path) -> FacetTable:
        """Read what save() wrote."""
        header, values, bitmaps = _read_facet_file(directory / FACETS_FILE, FrozenBitMap)
        if header.get("format") != FORMAT:
            raise ValueError(f"{directory / FACETS_FILE}: unknown format {header.get('format')}")
        order = np.load(directory / ORDER_FILE, allow_pickle=False)
        columns = {f.name: Column.load(directory, f.name, f.multi, len(order)) for f in FACETS}
        return cls(values, bitmaps, order, columns)

    # -- document sets ----------------------------------------------------------------------

    def value_set(self, facet: str, value: str) -> FrozenBitMap:
        """Documents holding one facet value (exact, else case-insensitive); may be empty."""
        i = self._index[facet].get(value)
        if i is None:
            i = self._folded[facet].get(value.casefold())
        return self.bitmaps[facet][i] if i is not None else FrozenBitMap()

    def canonical(self, facet: str, value: str) -> str:
        """The index's spelling of a facet value (the value itself when unknown)."""
        if value in self._index[facet]:
            return value
        i = self._folded[facet].get(value.casefold())
        return self.values[facet][i] if i is not None else value

    def values_set(self, facet: str, match: Callable[[str], bool]) -> BitMap:
        """Documents holding any value of a facet for which match(value) is true."""
        maps = [b for v, b in zip(self.values[facet], self.bitmaps[facet], strict=True) if match(v)]
        return BitMap.union(*maps) if maps else BitMap()

    def matching(self, facet: str, key: object, match: Callable[[str], bool]) -> FrozenBitMap:
        """values_set, remembered under key (a hashable description of match)."""
        return self._cached(
            ("match", facet, key),
            lambda: [(facet, i) for i, v in enumerate(self.values[facet]) if match(v)],
        )

    def is_package(self, name: str) -> bool:
        """Whether the index holds this package (in any letter case)."""
        return name in self._index["package"] or name.casefold() in self._folded["package"]

    def complete(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Packages whose name, or a part of it, starts with prefix; most specs first."""
        found = {i for _, i in self._terms.name_refs(prefix.lower(), True, exact=False)}
        sizes = self._sizes["package"]
        best = sorted(found, key=lambda i: (-sizes[i], self.values["package"][i]))[:limit]
        return [(self.values["package"][i], int(sizes[i])) for i in best]

    def closest(self, facets: Sequence[str], text: str, limit: int = 3) -> list[str]:
        """Values of the given facets within a small edit distance of text (did-you-mean)."""
        text = text.lower()
        reach = 1 if len(text) <= 4 else 2
        scored = []
        for facet in facets:
            for i, value in enumerate(self.values[facet]):
                folded = value.lower()
                if abs(len(folded) - len(text)) <= reach and folded != text:
                    distance = _distance(text, folded, reach)
                    if distance <= reach:
                        scored.append((distance, -int(self._sizes[facet][i]), value))
        # Only the nearest spellings: ubuntu2404 -> ubuntu24.04, not also ubuntu20.04.
        nearest = min((d for d, _, _ in scored), default=0)
        return list(dict.fromkeys(v for d, _, v in sorted(scored) if d == nearest))[:limit]

    def page_sorted(self, docs, facet: str, start: int, stop: int) -> list[int]:
        """Positions start:stop of docs ordered by a facet's sort order, then display order."""
        if start >= len(docs):
            return []
        ranks = _ids(docs)
        keys = self._sort_position[facet][self._columns[facet].of(ranks)] * self.doc_count + ranks
        stop = min(stop, len(keys))
        nearest = (
            np.argpartition(keys, stop - 1)[:stop] if stop < len(keys) else np.arange(len(keys))
        )
        ordered = nearest[np.argsort(keys[nearest], kind="stable")]
        return [int(r) for r in ranks[ordered[start:stop]]]

    def any_of(self, facet: str, values: Iterable[str]) -> BitMap:
        """Documents holding at least one of the given values of a facet (an OR)."""
        maps = [self.value_set(facet, v) for v in values]
        return BitMap.union(*maps) if maps else BitMap()

    def term_set(self, word: str, prefix: bool = False) -> FrozenBitMap:
        """Documents with a free-text term (or a term starting with word, for a prefix)."""
        return self._cached(("term", word, prefix), lambda: self._terms.refs(word, prefix))

    def name_sets(self, word: str, prefix: bool = False) -> tuple[FrozenBitMap, FrozenBitMap]:
        """(documents whose package is word, documents with word in the package name)."""
        exact = self._cached(
            ("exact", word, prefix), lambda: self._terms.name_refs(word, prefix, exact=True)
        )
        part = self._cached(
            ("part", word, prefix), lambda: self._terms.name_refs(word, prefix, exact=False)
        )
        return exact, part

    def _cached(self, key: tuple, refs: Callable[[], list[tuple[str, int]]]) -> FrozenBitMap:
        # The documents of frequent words are unions of many values; keep recent ones.
        # Server threads share this cache: every use of it holds the lock.
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        maps = [self.bitmaps[facet][i] for facet, i in refs()]
        found = FrozenBitMap(BitMap.union(*maps)) if maps else FrozenBitMap()
        with self._cache_lock:
            self._cache[key] = found
            if len(self._cache) > _TERM_CACHE:
                self._cache.popitem(last=False)
        return found

    # -- counting and paging ----------------------------------------------------------------

    def top_counts(
        self, facet: str, docs: BitMap | FrozenBitMap, size: int, selected: Sequence[str] = ()
    ) -> list[FacetCount]:
        """The `size` values held by most of docs (count desc, then value), + selected ones."""
        values, sizes = self.values[facet], self._sizes[facet]
        chosen = set(selected)
        if not docs:
            counted = []
        elif len(docs) == self.doc_count:
            counted = [(values[i], int(sizes[i])) for i in self._by_size[facet][:size]]
        elif len(docs) <= self.doc_count // _BINCOUNT_SHARE:
            counted = _top_of_tally(
                self._columns[facet].tally(_ids(docs), len(values)), values, size
            )
        else:
            counted = self._top_by_intersection(facet, docs, size)
        rows = [FacetCount(v, c, v in chosen) for v, c in counted if c]
        shown = {row.value for row in rows}
        for value in selected:
            if value not in shown:
                count = docs.intersection_cardinality(self.value_set(facet, value))
                rows.append(FacetCount(value, count, True))
        return rows

    def _top_by_intersection(self, facet: str, docs, size: int) -> list[tuple[str, int]]:
        # Visit values from the biggest overall; a value held by fewer documents than the
        # size-th best count so far cannot enter the top, nor can any after it.
        values, sizes, maps = self.values[facet], self._sizes[facet], self.bitmaps[facet]
        best: list[tuple[int, int]] = []  # min-heap of the `size` best (count, value index)
        found: list[tuple[str, int]] = []
        for i in self._by_size[facet]:
            if len(best) >= size and sizes[i] < best[0][0]:
                break
            count = docs.intersection_cardinality(maps[i])
            if count:
                found.append((values[i], count))
                heapq.heappush(best, (count, i))
                if len(best) > size:
                    heapq.heappop(best)
        found.sort(key=lambda vc: (-vc[1], vc[0]))
        return found[:size]


class _TermIndex:
    """Free-text term -> the facet values it appears in, and package-name terms."""

    def __init__(self, values: dict[str, list[str]]):
        refs: dict[str, list[tuple[str, int]]] = {}
        for facet in FACETS:
            for i, value in enumerate(values[facet.name]):
                spellings = [value]
                if facet.name == "compiler":
                    spellings.append(normalize_compiler(value))
                for term in dict.fromkeys(t for s in spellings for t in word_terms(s)):
                    refs.setdefault(term, []).append((facet.name, i))
        self._refs = refs
        self._vocabulary = sorted(refs)
        self._packages = [p.lower() for p in values["package"]]
        parts: dict[str, list[int]] = {}
        for i, package in enumerate(self._packages):
            for term in word_terms(package):
                parts.setdefault(term, []).append(i)
        self._name_parts = parts
        self._name_vocabulary = sorted(parts)

    def refs(self, word: str, prefix: bool) -> list[tuple[str, int]]:
        if not prefix:
            return self._refs.get(word, [])
        return [ref for term in _starting(self._vocabulary, word) for ref in self._refs[term]]

    def name_refs(self, word: str, prefix: bool, *, exact: bool) -> list[tuple[str, int]]:
        if exact:
            return [
                ("package", i)
                for i, name in enumerate(self._packages)
                if (name.startswith(word) if prefix else name == word)
            ]
        terms = _starting(self._name_vocabulary, word) if prefix else [word]
        found = sorted({i for term in terms for i in self._name_parts.get(term, [])})
        return [("package", i) for i in found]


def _starting(vocabulary: list[str], prefix: str) -> list[str]:
    start = bisect.bisect_left(vocabulary, prefix)
    end = bisect.bisect_left(vocabulary, prefix + "\U0010ffff")
    return vocabulary[start:end]


def _top_of_tally(tally: np.ndarray, values: list[str], size: int) -> list[tuple[str, int]]:
    """The `size` values with the highest counts (ties by value), from counts by index."""
    held = np.flatnonzero(tally)
    if len(held) > size:
        # Only values counted at least as often as the size-th best can be in the top:
        # sort those (all of them, ties included) rather than every value held.
        counts = tally[held]
        kth = np.partition(counts, len(counts) - size)[len(counts) - size]
        held = held[counts >= kth]
    best = sorted((-int(tally[i]), values[i]) for i in held)[:size]
    return [(v, -c) for c, v in best]


def _ids(bitmap: BitMap | FrozenBitMap) -> np.ndarray:
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32).astype(np.int64)


def _display_order(
    total: int, values: dict[str, list[str]], global_ids: dict[str, list[np.ndarray]]
) -> np.ndarray:
    """Global document numbers sorted by _ORDER (newest version first), then number."""
    keys = []
    for name in _ORDER:
        names = values[name]
        position = _positions(_value_order(name, names))
        column = np.full(total, len(names), dtype=np.int64)
        for i, ids in enumerate(global_ids[name]):
            column[ids] = position[i]
        keys.append(column)
    # np.lexsort sorts by the last key first; document number breaks the remaining ties.
    return np.lexsort((np.arange(total), *reversed(keys)))


def _value_order(facet: str, names: list[str]) -> list[int]:
    """Value indexes in the order a facet sorts: versions newest first (Spack's order);
    tags develop first, then newest first (dated snapshots, releases); others by name."""
    if facet == "version":
        return sorted(range(len(names)), key=lambda i: parse_version(names[i]), reverse=True)
    if facet == "tag":
        order = sorted(range(len(names)), key=lambda i: names[i], reverse=True)
        order.sort(key=lambda i: names[i] != "develop")
        return order
    return sorted(range(len(names)), key=lambda i: names[i])


def _positions(order: list[int]) -> np.ndarray:
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return position


def _distance(a: str, b: str, limit: int) -> int:
    """Edit distance with adjacent transpositions, giving up above limit."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _write_facet_file(
    path: Path, header: dict, values: dict[str, list[str]], bitmaps: dict[str, list]
) -> None:
    """A JSON header (with every facet's values and their bitmaps' sizes), then the bitmaps."""
    header = {**header, "facets": {}}
    blobs: list[bytes] = []
    for facet in FACETS:
        serialized = [b.serialize() for b in bitmaps[facet.name]]
        header["facets"][facet.name] = {
            "values": values[facet.name],
            "sizes": [len(blob) for blob in serialized],
        }
        blobs.extend(serialized)
    head = json.dumps(header).encode()
    with open(path, "wb") as out:
        out.write(_HEADER.pack(len(head)))
        out.write(head)
        for blob in blobs:
            out.write(blob)


def _read_facet_file(path: Path, kind) -> tuple[dict, dict[str, list[str]], dict[str, list]]:
    """What _write_facet_file wrote: (header, values, bitmaps of the given kind)."""
    data = path.read_bytes()
    (head_len,) = _HEADER.unpack_from(data)
    header = json.loads(data[_HEADER.size : _HEADER.size + head_len])
    view = memoryview(data)
    offset = _HEADER.size + head_len
    values, bitmaps = {}, {}
    for facet in FACETS:
        entry = header["facets"][facet.name]
        values[facet.name] = entry["values"]
        bitmaps[facet.name] = []
        for size in entry["sizes"]:
            bitmaps[facet.name].append(kind.deserialize(bytes(view[offset : offset + size])))
            offset += size
    return header, values, bitmaps
