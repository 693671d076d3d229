"""Facet counting and paging: the top values of each facet over a set of hits, and pages of
hits in a facet's sort order.

Counting a facet over a large hit set intersects its values' bitmaps with the hits,
biggest value first, and stops when no remaining value can reach the top: exact, without
visiting most of the tail. A hit set up to a twentieth of the index is tallied from the
value columns instead (searcher/columns.py), in time proportional to its size. The same
FacetCount rows feed the page and /api/search.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from searcher.bitmaps import BitmapStore, ids, positions, value_order
from searcher.columns import Column

# Hit sets up to this share of the index (50k specs of 1M) are counted with one bincount
# over their values (columns.py); larger sets by intersecting the largest values.
_BINCOUNT_SHARE = 20
# Facets results can be sorted by, besides relevance and display order.
SORT_FACETS = ("version", "tag")


@dataclass(frozen=True)
class FacetCount:
    """One row of a facet: a value, how many matching documents hold it, is it selected."""

    value: str
    count: int
    selected: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a facet row."""
        return {"value": self.value, "count": self.count, "selected": self.selected}


class FacetCounter:
    """Counts and sorted pages over one generation's BitmapStore and value columns."""

    def __init__(self, store: BitmapStore, columns: dict[str, Column]):
        self._store = store
        self._columns = columns
        # Position of each value in the order sort=version / sort=tag lists them, and one
        # more at the end: a column's -1 (no value) indexes it, after every value.
        self._sort_position = {
            name: np.append(
                positions(value_order(name, store.values[name])), len(store.values[name])
            )
            for name in SORT_FACETS
        }

    def top_counts(
        self, facet: str, docs: BitMap | FrozenBitMap, size: int, selected: Sequence[str] = ()
    ) -> list[FacetCount]:
        """The `size` values held by most of docs (count desc, then value), + selected ones."""
        values, sizes = self._store.values[facet], self._store.sizes[facet]
        chosen = set(selected)
        if not docs:
            counted = []
        elif len(docs) == self._store.doc_count:
            counted = [(values[i], int(sizes[i])) for i in self._store.by_size[facet][:size]]
        elif len(docs) <= self._store.doc_count // _BINCOUNT_SHARE:
            counted = _top_of_tally(
                self._columns[facet].tally(ids(docs), len(values)), values, size
            )
        else:
            counted = self._top_by_intersection(facet, docs, size)
        rows = [FacetCount(v, c, v in chosen) for v, c in counted if c]
        shown = {row.value for row in rows}
        for value in selected:
            if value not in shown:
                count = docs.intersection_cardinality(self._store.value_set(facet, value))
                rows.append(FacetCount(value, count, True))
        return rows

    def _top_by_intersection(
        self, facet: str, docs: BitMap | FrozenBitMap, size: int
    ) -> list[tuple[str, int]]:
        # Visit values from the biggest overall; a value held by fewer documents than the
        # size-th best count so far cannot enter the top, nor can any after it.
        store = self._store
        values, sizes, maps = store.values[facet], store.sizes[facet], store.bitmaps[facet]
        best: list[tuple[int, int]] = []  # min-heap of the `size` best (count, value index)
        found: list[tuple[str, int]] = []
        for i in store.by_size[facet]:
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

    def in_sort_order(self, facet: str, values: Sequence[str]) -> list[str]:
        """These values of a sortable facet (version, tag) in its sort order; unknown last."""
        position, index = self._sort_position[facet], self._store.index_of(facet)
        last = len(position) - 1
        return sorted(values, key=lambda v: int(position[index.get(v, last)]))

    def packages_holding(
        self, facet: str, docs: BitMap | FrozenBitMap, values: Sequence[str], limit: int
    ) -> dict[str, list[str]]:
        """For each of these values of a single-valued facet, the packages of docs holding
        it (most documents first, at most `limit`): one pass over the two columns."""
        index = self._store.index_of(facet)
        wanted = np.array([index[v] for v in values if v in index], dtype=np.int64)
        if not len(wanted) or not docs:
            return {}
        ranks = ids(docs)
        held = self._columns[facet].of(ranks).astype(np.int64)
        keep = np.isin(held, wanted)
        packages = self._columns["package"].of(ranks[keep]).astype(np.int64)
        names = self._store.values["package"]
        pairs, counts = np.unique(held[keep] * len(names) + packages, return_counts=True)
        found: dict[str, list[tuple[int, str]]] = {}
        for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
            value = self._store.values[facet][pair // len(names)]
            found.setdefault(value, []).append((-count, names[pair % len(names)]))
        return {v: [name for _, name in sorted(rows)[:limit]] for v, rows in found.items()}

    def cross_counts(
        self, docs: BitMap | FrozenBitMap, first: str, second: str
    ) -> list[tuple[str, str, int]]:
        """(value of first, value of second, documents) for every pair of values of two
        single-valued facets that docs hold together: one pass over the two columns."""
        ranks = ids(docs)
        a = self._columns[first].of(ranks).astype(np.int64)
        b = self._columns[second].of(ranks).astype(np.int64)
        keep = (a >= 0) & (b >= 0)
        width = len(self._store.values[second])
        pairs, counts = np.unique(a[keep] * width + b[keep], return_counts=True)
        names_a, names_b = self._store.values[first], self._store.values[second]
        return [
            (names_a[pair // width], names_b[pair % width], count)
            for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True)
        ]

    def all_sorted(self, docs: BitMap | FrozenBitMap, facet: str) -> np.ndarray:
        """Every one of docs in a facet's sort order, then display order (an export)."""
        ranks = ids(docs)
        position = self._sort_position[facet][self._columns[facet].of(ranks)]
        order: np.ndarray = ranks[np.argsort(position * self._store.doc_count + ranks)]
        return order

    def page_sorted(self, docs: BitMap, facet: str, start: int, stop: int) -> list[int]:
        """Positions start:stop of docs ordered by a facet's sort order, then display order."""
        if start >= len(docs):
            return []
        ranks = ids(docs)
        position = self._sort_position[facet][self._columns[facet].of(ranks)]
        keys = position * self._store.doc_count + ranks
        stop = min(stop, len(keys))
        nearest = (
            np.argpartition(keys, stop - 1)[:stop] if stop < len(keys) else np.arange(len(keys))
        )
        ordered = nearest[np.argsort(keys[nearest], kind="stable")]
        return [int(r) for r in ranks[ordered[start:stop]]]


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
