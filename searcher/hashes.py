"""Hash look-ups: every document's DAG hash in one sorted array, for prefixes and exact hashes.

A shard records its documents' hashes in the order it numbers them (``hashes.npy`` beside
its Whoosh files); a generation merges them into one array sorted by hash, with the rank
of each document beside it (``hashes.npy`` and ``hash_ranks.npy``). Served, both are
memory-mapped: a look-up is two binary searches touching a few pages, and the processes of
a server share those pages in the kernel's cache instead of each holding a copy.

Why not Whoosh's terms: a prefix look-up visited the hash terms of every shard, one
Whoosh lexicon per build-cache tag; at a million specs in 60 tags that took 16.7 ms per
query (bench/bench_search.py, "hash prefix"), the slowest class by far.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from searcher.bitmaps import bitmap_of
from searcher.columns import mapped

SHARD_HASHES_FILE = "hashes.npy"
HASHES_FILE = "hashes.npy"
RANKS_FILE = "hash_ranks.npy"


def save_shard_hashes(directory: Path, hashes: Sequence[str]) -> None:
    """Write a shard's hashes, in its document order (ASCII: sources checks them)."""
    np.save(directory / SHARD_HASHES_FILE, np.array(hashes, dtype=np.bytes_), allow_pickle=False)


class HashIndex:
    """Hashes sorted (ties in rank order), and the rank of the document holding each."""

    def __init__(self, hashes: np.ndarray, ranks: np.ndarray):
        self.hashes = hashes
        self.ranks = ranks

    @classmethod
    def merge(cls, shard_dirs: Sequence[Path], order: np.ndarray) -> HashIndex:
        """Lay the shards' hashes end to end (global document numbers), sort by hash.

        order[rank] is the global document number of each rank (BitmapStore.order).
        """
        parts = [np.load(d / SHARD_HASHES_FILE, allow_pickle=False) for d in shard_dirs]
        by_number = np.concatenate(parts) if parts else np.empty(0, dtype="S1")
        by_rank = by_number[order]
        # Stable: a hash in several tags lists its documents in rank order.
        ranks = np.argsort(by_rank, kind="stable").astype(np.uint32)
        return cls(by_rank[ranks], ranks)

    def save(self, directory: Path) -> None:
        """Write hashes.npy and hash_ranks.npy into a generation."""
        np.save(directory / HASHES_FILE, self.hashes, allow_pickle=False)
        np.save(directory / RANKS_FILE, self.ranks, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, doc_count: int) -> HashIndex:
        """Map what save() wrote; ValueError if it does not fit the generation."""
        hashes = mapped(directory / HASHES_FILE)
        ranks = mapped(directory / RANKS_FILE)
        if hashes.dtype.kind != "S" or ranks.dtype != np.uint32:
            raise ValueError(f"{directory / HASHES_FILE}: not an array of hashes and ranks")
        if len(hashes) != doc_count or len(ranks) != doc_count:
            raise ValueError(
                f"{directory / HASHES_FILE}: {len(hashes)} hashes for {doc_count} documents"
            )
        # Out of order, a binary search finds the wrong hashes; refuse it at open.
        if doc_count and (int(ranks.max()) >= doc_count or np.any(hashes[1:] < hashes[:-1])):
            raise ValueError(f"{directory / HASHES_FILE}: not sorted hashes of this generation")
        return cls(hashes, ranks)

    def with_prefix(self, prefix: str) -> BitMap:
        """Ranks of the documents whose hash starts with prefix."""
        key = prefix.encode("ascii", "replace")
        # No hash holds a 0xff byte: every hash starting with key sorts before key + 0xff.
        lo, hi = np.searchsorted(self.hashes, [key, key + b"\xff"])
        return bitmap_of(self.ranks[lo:hi])

    def exactly(self, hash_: str) -> list[int]:
        """Ranks of the documents (one per tag) whose hash is exactly hash_."""
        key = hash_.encode("ascii", "replace")
        lo = np.searchsorted(self.hashes, key, side="left")
        hi = np.searchsorted(self.hashes, key, side="right")
        return sorted(int(r) for r in self.ranks[lo:hi])
