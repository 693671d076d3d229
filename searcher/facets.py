"""Facet structures built at reindex time beside the index, and counting with them.

For every facet value we keep the set of documents holding it as a roaring bitmap, keyed
by Whoosh document number. Counting a facet for a query is then an intersection per value
(multi-valued facets) or one ``bincount`` over a per-document value column (single-valued
facets), instead of Whoosh's ``groupedby``, which scores every hit and rebuilds value lists
from postings on every query. The same bitmaps answer facet filters.

The table also keeps each document's rank in display order (package, newest version, tag,
os, target, compiler), which orders results that have no relevance score.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from searcher.schema import FACETS
from searcher.versions import version_key

FORMAT = "searcher-facets/1"
FACETS_FILE = "facets.bin"
RANK_FILE = "rank.npy"
# Display order: these facets, in this order, then document number.
_ORDER = ("package", "version", "tag", "os", "target", "compiler")
_HEADER = struct.Struct("<Q")


@dataclass(frozen=True)
class FacetCount:
    """One row of a facet: a value, how many matching documents hold it, is it selected."""

    value: str
    count: int
    selected: bool

    def to_dict(self) -> dict:
        """The JSON shape of a facet row."""
        return {"value": self.value, "count": self.count, "selected": self.selected}


class FacetTableBuilder:
    """Collects each document's facet values, by document number, while a build runs."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, BitMap]] = {f.name: {} for f in FACETS}
        self.doc_count = 0

    def add(self, docnum: int, values: dict[str, list[str]]) -> None:
        """Record the facet values (Spec.facet_values()) of one document."""
        for facet, facet_values in values.items():
            table = self._postings[facet]
            for value in facet_values:
                bitmap = table.get(value)
                if bitmap is None:
                    bitmap = table[value] = BitMap()
                bitmap.add(docnum)
        self.doc_count = max(self.doc_count, docnum + 1)

    def finish(self) -> FacetTable:
        """The table over documents 0..doc_count-1, all live."""
        live = BitMap(range(self.doc_count))
        return FacetTable.build(self.doc_count, live, self._postings)


class FacetTable:
    """Per-facet-value document bitmaps over one generation of the index."""

    def __init__(
        self,
        doc_count: int,
        live: FrozenBitMap,
        values: dict[str, list[str]],
        bitmaps: dict[str, list[FrozenBitMap]],
        rank: np.ndarray,
    ):
        self.doc_count = doc_count
        self.live = live
        self.values = values
        self.bitmaps = bitmaps
        self.rank = rank
        self._index = {name: {v: i for i, v in enumerate(vals)} for name, vals in values.items()}
        self._folded = {
            name: {v.casefold(): i for i, v in reversed(list(enumerate(vals)))}
            for name, vals in values.items()
        }
        self._sizes = {name: [len(b) for b in maps] for name, maps in bitmaps.items()}
        # Single-valued facets also get a column: value index per document (-1: none).
        self._columns: dict[str, np.ndarray] = {}
        for facet in FACETS:
            if facet.multi:
                continue
            column = np.full(doc_count, -1, dtype=np.int32)
            for i, bitmap in enumerate(bitmaps[facet.name]):
                column[_ids(bitmap)] = i
            self._columns[facet.name] = column

    @classmethod
    def build(
        cls, doc_count: int, live: BitMap, postings: dict[str, dict[str, BitMap]]
    ) -> FacetTable:
        """Build from facet -> value -> documents holding it (see FacetTableBuilder)."""
        values: dict[str, list[str]] = {}
        bitmaps: dict[str, list[FrozenBitMap]] = {}
        live = FrozenBitMap(live)
        for facet in FACETS:
            by_value = postings.get(facet.name, {})
            values[facet.name] = sorted(by_value)
            bitmaps[facet.name] = [FrozenBitMap(by_value[v]) & live for v in values[facet.name]]
        rank = _display_rank(doc_count, values, bitmaps)
        return cls(doc_count, live, values, bitmaps, rank)

    # -- storage -------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write facets.bin (a JSON header, then the serialized bitmaps) and rank.npy."""
        blobs: list[bytes] = [self.live.serialize()]
        header = {"format": FORMAT, "doc_count": self.doc_count, "facets": {}}
        for facet in FACETS:
            serialized = [b.serialize() for b in self.bitmaps[facet.name]]
            header["facets"][facet.name] = {
                "values": self.values[facet.name],
                "sizes": [len(s) for s in serialized],
            }
            blobs.extend(serialized)
        header["live_size"] = len(blobs[0])
        head = json.dumps(header).encode()
        with open(directory / FACETS_FILE, "wb") as out:
            out.write(_HEADER.pack(len(head)))
            out.write(head)
            for blob in blobs:
                out.write(blob)
        np.save(directory / RANK_FILE, self.rank, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> FacetTable:
        """Read what save() wrote."""
        data = (directory / FACETS_FILE).read_bytes()
        (head_len,) = _HEADER.unpack_from(data)
        header = json.loads(data[_HEADER.size : _HEADER.size + head_len])
        if header.get("format") != FORMAT:
            raise ValueError(f"{directory / FACETS_FILE}: unknown format {header.get('format')}")
        offset = _HEADER.size + head_len
        view = memoryview(data)

        def take(size: int) -> FrozenBitMap:
            nonlocal offset
            bitmap = FrozenBitMap.deserialize(bytes(view[offset : offset + size]))
            offset += size
            return bitmap

        live = take(header["live_size"])
        values, bitmaps = {}, {}
        for facet in FACETS:
            entry = header["facets"][facet.name]
            values[facet.name] = entry["values"]
            bitmaps[facet.name] = [take(size) for size in entry["sizes"]]
        rank = np.load(directory / RANK_FILE, allow_pickle=False)
        return cls(header["doc_count"], live, values, bitmaps, rank)

    # -- lookups ---------------------------------------------------------------------

    def value_set(self, facet: str, value: str) -> FrozenBitMap:
        """Documents holding one facet value (exact, else case-insensitive); may be empty."""
        i = self._index[facet].get(value)
        if i is None:
            i = self._folded[facet].get(value.casefold())
        return self.bitmaps[facet][i] if i is not None else FrozenBitMap()

    def values_set(self, facet: str, match: Callable[[str], bool]) -> BitMap:
        """Documents holding any value of a facet for which match(value) is true."""
        maps = [b for v, b in zip(self.values[facet], self.bitmaps[facet], strict=True) if match(v)]
        return BitMap.union(*maps) if maps else BitMap()

    def any_of(self, facet: str, values: Iterable[str]) -> BitMap:
        """Documents holding at least one of the given values of a facet (an OR)."""
        maps = [self.value_set(facet, v) for v in values]
        return BitMap.union(*maps) if maps else BitMap()

    # -- counting --------------------------------------------------------------------

    def counts(self, facet: str, docs: BitMap | FrozenBitMap) -> dict[str, int]:
        """How many of the given documents hold each value of a facet (zeros left out)."""
        values = self.values[facet]
        if len(docs) == len(self.live) and docs == self.live:
            sizes = self._sizes[facet]
            return {v: n for v, n in zip(values, sizes, strict=True) if n}
        column = self._columns.get(facet)
        if column is not None:
            picked = column[_ids(docs)]
            tally = np.bincount(picked[picked >= 0], minlength=len(values))
            nonzero = np.flatnonzero(tally)
            return {values[i]: int(tally[i]) for i in nonzero}
        result = {}
        for value, bitmap in zip(values, self.bitmaps[facet], strict=True):
            n = docs.intersection_cardinality(bitmap)
            if n:
                result[value] = n
        return result

    def page(self, docs: BitMap | FrozenBitMap, start: int, stop: int) -> list[int]:
        """Document numbers at positions start:stop of docs in display order."""
        if start >= len(docs) or stop <= start:
            return []
        ids = _ids(docs)
        ranks = self.rank[ids]
        stop = min(stop, len(ids))
        if stop < len(ids):
            nearest = np.argpartition(ranks, stop - 1)[:stop]
        else:
            nearest = np.arange(len(ids))
        ordered = nearest[np.argsort(ranks[nearest], kind="stable")]
        return [int(d) for d in ids[ordered[start:stop]]]

    def rank_of(self, docnum: int) -> int:
        """A document's position in display order (lower comes first)."""
        return int(self.rank[docnum])


def _ids(bitmap: BitMap | FrozenBitMap) -> np.ndarray:
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32).astype(np.int64)


def _display_rank(
    doc_count: int, values: dict[str, list[str]], bitmaps: dict[str, list[FrozenBitMap]]
) -> np.ndarray:
    """Each document's position when ordered by _ORDER (newest version first)."""
    keys = []
    for name in _ORDER:
        names = values[name]
        if name == "version":
            order = sorted(range(len(names)), key=lambda i: version_key(names[i]), reverse=True)
        elif name == "tag":
            # develop first, then the rest newest first (dated snapshots, releases).
            order = sorted(range(len(names)), key=lambda i: names[i], reverse=True)
            order.sort(key=lambda i: names[i] != "develop")
        else:
            order = sorted(range(len(names)), key=lambda i: names[i])
        position = np.empty(len(names), dtype=np.int64)
        position[order] = np.arange(len(names))
        column = np.full(doc_count, len(names), dtype=np.int64)
        for i, bitmap in enumerate(bitmaps[name]):
            column[_ids(bitmap)] = position[i]
        keys.append(column)
    # np.lexsort sorts by the last key first; document number breaks the remaining ties.
    order = np.lexsort((np.arange(doc_count), *reversed(keys)))
    rank = np.empty(doc_count, dtype=np.int32)
    rank[order] = np.arange(doc_count, dtype=np.int32)
    return rank
