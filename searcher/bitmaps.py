"""The bitmap store: every facet value's documents, as roaring bitmaps of display ranks.

Every document gets a *rank*: its position in display order (package, newest version,
tag, os, target, compiler, then listing order). All document sets above this module are
roaring bitmaps of ranks, so the first page of any set of hits is a rank-select on its
bitmap (``hits[start:stop]``), whatever its size, and filters, terms and relevance tiers
combine with C-speed set operations.

Shards (one per build-cache tag) record their documents' facet values by local document
number while they are built (``ShardPostings``, ``postings.bin``); ``BitmapStore.merge``
lays the shards end to end, computes the ranks and maps everything to rank space
(``facets.bin``; ``order.npy`` and ``rank_of.npy``, rank <-> document number).
``postings.bin`` and ``facets.bin`` are a JSON header (each facet's values and their
bitmaps' sizes) followed by the serialized bitmaps.
"""

from __future__ import annotations

import array
import json
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from searcher.columns import mapped
from searcher.schema import FACETS
from searcher.versions import parse_version

FORMAT = "searcher-facets/3"
FACETS_FILE = "facets.bin"
ORDER_FILE = "order.npy"
RANKS_FILE = "rank_of.npy"
SHARD_POSTINGS_FILE = "postings.bin"
# Display order: these facets, in this order, then position in the listing.
_ORDER = ("package", "version", "tag", "os", "target", "compiler")
_HEADER = struct.Struct("<Q")
# A set of documents (ranks): a union or intersection may give either kind.
DocSet = BitMap | FrozenBitMap


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


class BitmapStore:
    """One generation's facet values, their documents (bitmaps of ranks), and rank order."""

    def __init__(
        self,
        values: dict[str, list[str]],
        bitmaps: dict[str, list[FrozenBitMap]],
        order: np.ndarray,
        rank_of: np.ndarray,
    ):
        self.values = values
        self.bitmaps = bitmaps
        # order[rank] = global document number (shards laid end to end in tag order), and
        # rank_of[number] = its rank.
        self.order = order
        self.rank_of = rank_of
        self.doc_count = len(order)
        self.all_docs = FrozenBitMap(range(self.doc_count))
        self._index = {name: {v: i for i, v in enumerate(vals)} for name, vals in values.items()}
        self._folded = {
            name: {v.casefold(): i for i, v in reversed(list(enumerate(vals)))}
            for name, vals in values.items()
        }
        # How many documents hold each value, by facet and value index.
        self.sizes = {
            name: np.array([len(b) for b in maps], dtype=np.int64) for name, maps in bitmaps.items()
        }
        # Values of each facet from the most documents to the fewest (then by name).
        self.by_size = {name: self._biggest_first(name) for name in values}

    def _biggest_first(self, facet: str) -> list[int]:
        sizes, names = self.sizes[facet], self.values[facet]
        return sorted(range(len(names)), key=lambda i: (-int(sizes[i]), names[i]))

    @classmethod
    def merge(cls, shards: Sequence[ShardPostings]) -> BitmapStore:
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
                    parts[index[value]].append(ids(bitmap) + offset)
            global_ids[facet.name] = [
                np.concatenate(p) if p else np.empty(0, np.int64) for p in parts
            ]
        order = _display_order(total, values, global_ids)
        rank_of = np.empty(total, dtype=np.int64)
        rank_of[order] = np.arange(total)
        bitmaps = {
            name: [frozen_bitmap_of(rank_of[ids]) for ids in per_value]
            for name, per_value in global_ids.items()
        }
        return cls(values, bitmaps, order.astype(np.int64), rank_of.astype(np.int32))

    def save(self, directory: Path) -> None:
        """Write facets.bin (JSON header, serialized bitmaps), order.npy and rank_of.npy."""
        header = {"format": FORMAT, "doc_count": self.doc_count}
        _write_facet_file(directory / FACETS_FILE, header, self.values, self.bitmaps)
        np.save(directory / ORDER_FILE, self.order, allow_pickle=False)
        np.save(directory / RANKS_FILE, self.rank_of, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> BitmapStore:
        """Read what save() wrote."""
        header, values, bitmaps = _read_facet_file(directory / FACETS_FILE, FrozenBitMap)
        if header.get("format") != FORMAT:
            raise ValueError(f"{directory / FACETS_FILE}: unknown format {header.get('format')}")
        # Memory-mapped: the processes of a server share them. A damaged pair (not each
        # other's inverse, so not a permutation) is refused here, not met by a request.
        order, rank_of = mapped(directory / ORDER_FILE), mapped(directory / RANKS_FILE)
        total = len(order)
        if (
            order.dtype != np.int64
            or rank_of.dtype != np.int32
            or len(rank_of) != total
            or header.get("doc_count") != total
            or (total and not (order.min() >= 0 and order.max() < total))
            or not np.array_equal(rank_of[order], np.arange(total, dtype=np.int32))
        ):
            raise ValueError(f"{directory / ORDER_FILE}: not the order of {total} documents")
        return cls(values, bitmaps, order, rank_of)

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

    def index_of(self, facet: str) -> dict[str, int]:
        """value -> its index among the facet's values (read only)."""
        return self._index[facet]

    def has_value(self, facet: str, value: str) -> bool:
        """Whether some document holds this facet value (in any letter case)."""
        return value in self._index[facet] or value.casefold() in self._folded[facet]

    def values_set(self, facet: str, match: Callable[[str], bool]) -> DocSet:
        """Documents holding any value of a facet for which match(value) is true."""
        maps = [b for v, b in zip(self.values[facet], self.bitmaps[facet], strict=True) if match(v)]
        return BitMap.union(*maps) if maps else BitMap()

    def any_of(self, facet: str, values: Iterable[str]) -> DocSet:
        """Documents holding at least one of the given values of a facet (an OR)."""
        maps = [self.value_set(facet, v) for v in values]
        return BitMap.union(*maps) if maps else BitMap()

    def all_of(self, facet: str, values: Iterable[str]) -> DocSet:
        """Documents holding every one of the given values of a facet (an AND)."""
        maps = sorted((self.value_set(facet, v) for v in values), key=len)
        return BitMap.intersection(*maps) if maps else BitMap()


def bitmap_of(values: np.ndarray) -> BitMap:
    """A bitmap of these (non-negative, 32-bit) numbers, sorted or not, repeats allowed.

    pyroaring iterates a numpy array element by element, but reads an array.array('I')
    through the buffer protocol: 400,000 numbers took 30-50 ms one way and 3-5 ms the other
    (pyroaring 1.2). Every bitmap made from an array goes through here.
    """
    return BitMap(_uint32(values))


def frozen_bitmap_of(values: np.ndarray) -> FrozenBitMap:
    """bitmap_of, immutable."""
    return FrozenBitMap(_uint32(values))


def _uint32(values: np.ndarray) -> array.array[int]:
    data = array.array("I")
    data.frombytes(np.ascontiguousarray(values, dtype=np.uint32).tobytes())
    return data


def ids(bitmap: BitMap | FrozenBitMap) -> np.ndarray:
    """The ranks (or document numbers) of a bitmap, as an int64 array."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32).astype(np.int64)


def _display_order(
    total: int, values: dict[str, list[str]], global_ids: dict[str, list[np.ndarray]]
) -> np.ndarray:
    """Global document numbers sorted by _ORDER (newest version first), then number."""
    keys = []
    for name in _ORDER:
        names = values[name]
        position = positions(value_order(name, names))
        column = np.full(total, len(names), dtype=np.int64)
        for i, numbers in enumerate(global_ids[name]):
            column[numbers] = position[i]
        keys.append(column)
    # np.lexsort sorts by the last key first; document number breaks the remaining ties.
    return np.lexsort((np.arange(total), *reversed(keys)))


def value_order(facet: str, names: list[str]) -> list[int]:
    """Value indexes in the order a facet sorts: versions newest first (Spack's order);
    tags develop first, then newest first (dated snapshots, releases); others by name."""
    if facet == "version":
        return sorted(range(len(names)), key=lambda i: parse_version(names[i]), reverse=True)
    if facet == "tag":
        order = sorted(range(len(names)), key=lambda i: names[i], reverse=True)
        order.sort(key=lambda i: names[i] != "develop")
        return order
    return sorted(range(len(names)), key=lambda i: names[i])


def positions(order: list[int]) -> np.ndarray:
    """position[value index] = where the value comes in `order`."""
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return position


def _write_facet_file(
    path: Path, header: dict[str, Any], values: dict[str, list[str]], bitmaps: dict[str, list[Any]]
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


def _read_facet_file(
    path: Path, kind: type[BitMap] | type[FrozenBitMap]
) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, list[Any]]]:
    """What _write_facet_file wrote: (header, values, bitmaps of the given kind)."""
    data = path.read_bytes()
    (head_len,) = _HEADER.unpack_from(data)
    header = json.loads(data[_HEADER.size : _HEADER.size + head_len])
    view = memoryview(data)
    offset = _HEADER.size + head_len
    values: dict[str, list[str]] = {}
    bitmaps: dict[str, list[Any]] = {}
    for facet in FACETS:
        entry = header["facets"][facet.name]
        values[facet.name] = entry["values"]
        bitmaps[facet.name] = []
        for size in entry["sizes"]:
            bitmaps[facet.name].append(kind.deserialize(bytes(view[offset : offset + size])))
            offset += size
    return header, values, bitmaps
