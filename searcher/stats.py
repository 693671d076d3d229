"""Build-cache statistics: per tag (specs, packages, bytes, date), per OS, target, stack,
compiler and platform, and the largest packages.

Counted once per generation, at reindex (index.write_generation), from the columns the
generation already holds (one ``np.unique`` over tag-and-value pairs per facet: ~0.3 s at
a million specs) into ``stats.json``; a server reads that file when it opens the
generation and answers /stats and /api/stats from memory. The numbers are the facet
counts of the same generation: the stack count of a tag here is what /api/search?tag=
counts for that stack.

Sizes (bytes) come from the listing's ``size`` field: each shard records its documents'
sizes in document order (``sizes.npy``, -1 where a spec has none); a reindex lays them out
by rank for counting (nothing reads them when serving).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searcher.bitmaps import BitmapStore, value_order
from searcher.columns import Column
from searcher.versions import parse_version

STATS_FILE = "stats.json"
SIZES_FILE = "sizes.npy"
FORMAT = 1
# The facets counted per tag (the dependency facet is left out: thousands of values, and
# the search page's facet already answers it).
STAT_FACETS = ("os", "target", "stack", "compiler", "platform")
# Packages listed as the largest, per tag and over all tags.
LARGEST = 25
NO_SIZE = -1

_DATE = re.compile(r"(?<![0-9])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![0-9])")


# -- sizes --------------------------------------------------------------------------------


def save_shard_sizes(directory: Path, sizes: Sequence[int | None]) -> None:
    """Write a shard's sizes in its document order (NO_SIZE where unknown)."""
    array = np.array([NO_SIZE if s is None else s for s in sizes], dtype=np.int64)
    np.save(directory / SIZES_FILE, array, allow_pickle=False)


def merge_sizes(shard_dirs: Sequence[Path], order: np.ndarray) -> np.ndarray:
    """The shards' sizes laid end to end (global document numbers), by rank."""
    parts = [np.load(d / SIZES_FILE, allow_pickle=False) for d in shard_dirs]
    by_number = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    if by_number.dtype != np.int64 or len(by_number) != len(order):
        raise ValueError(f"the shards' sizes do not fit {len(order)} documents")
    sized: np.ndarray = by_number[order]
    return sized


# -- tags ---------------------------------------------------------------------------------


def tag_date(tag: str) -> str | None:
    """The date a tag's name holds (develop-2025-03-23 -> 2025-03-23), else None."""
    found = _DATE.search(tag)
    if found is None:
        return None
    try:
        return dt.date(*(int(part) for part in found.groups())).isoformat()
    except ValueError:  # 2025-13-40: not a date
        return None


def timeline(tags: Sequence[str]) -> tuple[list[str], list[str]]:
    """(snapshots, releases) in time order: tags holding a date by date, then the rolling
    `develop` (the newest state); the other tags (releases, which hold no date) by
    version, oldest first."""
    dated = sorted((t for t in tags if tag_date(t)), key=lambda t: (tag_date(t), t))
    if "develop" in tags:
        dated.append("develop")
    others = [t for t in tags if t not in dated]
    releases = sorted(others, key=lambda t: (parse_version(t.lstrip("vV")), t))
    return dated, releases


# -- counting (at reindex) ------------------------------------------------------------------


def count_stats(
    store: BitmapStore, columns: dict[str, Column], sizes: np.ndarray
) -> dict[str, Any]:
    """Every number /api/stats answers, for every tag and for all tags together."""
    tags = store.values["tag"]
    tag_of = columns["tag"].values.astype(np.int64)
    known = sizes >= 0
    packages = store.values["package"]
    package_of = columns["package"].values.astype(np.int64)

    per_tag: list[dict[str, Any]] = [{} for _ in tags]
    everything: dict[str, Any] = {}
    specs = np.bincount(tag_of, minlength=len(tags))
    nbytes = _sums(tag_of[known], sizes[known], len(tags))
    sized = np.bincount(tag_of[known], minlength=len(tags))
    # (tag, package) pairs: distinct packages per tag and the largest packages.
    pairs = tag_of * len(packages) + package_of
    unique, inverse, counts = np.unique(pairs, return_inverse=True, return_counts=True)
    pair_bytes = _sums(inverse[known], sizes[known], len(unique))
    pair_tag, pair_package = unique // len(packages), unique % len(packages)
    distinct = np.bincount(pair_tag, minlength=len(tags))
    for t in range(len(tags)):
        mine = pair_tag == t
        per_tag[t].update(
            specs=int(specs[t]),
            packages=int(distinct[t]),
            bytes=int(nbytes[t]),
            sized=int(sized[t]),
            largest=_largest(packages, pair_package[mine], counts[mine], pair_bytes[mine]),
        )
    all_counts = np.bincount(package_of, minlength=len(packages))
    all_bytes = _sums(package_of[known], sizes[known], len(packages))
    held = np.flatnonzero(all_counts)
    everything.update(
        specs=store.doc_count,
        packages=len(held),
        bytes=int(nbytes.sum()),
        sized=int(known.sum()),
        largest=_largest(packages, held, all_counts[held], all_bytes[held]),
    )
    for facet in STAT_FACETS:
        names = store.values[facet]
        column = columns[facet]
        if column.offsets is None:
            value_of, owner_tag = column.values.astype(np.int64), tag_of
            has = value_of >= 0
            value_of, owner_tag = value_of[has], owner_tag[has]
        else:
            value_of = column.values.astype(np.int64)
            owner_tag = np.repeat(tag_of, np.diff(column.offsets))
        found, tally = np.unique(owner_tag * len(names) + value_of, return_counts=True)
        for t in range(len(tags)):
            per_tag[t][facet] = {}
        for key, n in zip(found.tolist(), tally.tolist(), strict=True):
            per_tag[key // len(names)][facet][names[key % len(names)]] = n
        for t in range(len(tags)):
            per_tag[t][facet] = _by_count(per_tag[t][facet])
        everything[facet] = _by_count(
            dict(zip(names, np.bincount(value_of, minlength=len(names)).tolist(), strict=True))
        )
    order = [tags[i] for i in value_order("tag", tags)]
    by_name = dict(zip(tags, per_tag, strict=True))
    return {"format": FORMAT, "tags": order, "all": everything, "by_tag": by_name}


# Byte totals saturate here rather than wrap (int64): 8 EiB is no real build cache.
MAX_TOTAL = 2**63 - 1


def _sums(keys: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
    """Integer sums of weights by key (np.bincount's weights are floats, exact only to
    2**53 bytes in all), saturated at MAX_TOTAL where the float sums say they would wrap."""
    total = np.zeros(length, dtype=np.int64)
    np.add.at(total, keys, weights)
    approx = np.bincount(keys, weights=weights.astype(np.float64), minlength=length)
    total[approx >= 2.0**62] = MAX_TOTAL
    return total


def _largest(
    names: Sequence[str], which: np.ndarray, counts: np.ndarray, nbytes: np.ndarray
) -> list[dict[str, Any]]:
    """The LARGEST packages: most bytes, then most specs, then by name."""
    rows = [(int(b), int(c), names[int(p)]) for p, c, b in zip(which, counts, nbytes, strict=True)]
    rows.sort(key=lambda row: (-row[0], -row[1], row[2]))
    return [{"package": p, "specs": c, "bytes": b} for b, c, p in rows[:LARGEST]]


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    held = [(v, n) for v, n in counts.items() if n]
    held.sort(key=lambda item: (-item[1], item[0]))
    return dict(held)


# -- serving ----------------------------------------------------------------------------------


class Stats:
    """A generation's stats.json, as read when the generation is opened."""

    def __init__(self, table: dict[str, Any]):
        if table.get("format") != FORMAT:
            raise ValueError(f"{STATS_FILE}: unknown format {table.get('format')}")
        self.tags: list[str] = [str(t) for t in table["tags"]]
        self._all: dict[str, Any] = table["all"]
        self._by_tag: dict[str, dict[str, Any]] = table["by_tag"]
        if sorted(self._by_tag) != sorted(self.tags):
            raise ValueError(f"{STATS_FILE}: its tags do not match its counts")

    def tag_rows(self) -> list[dict[str, Any]]:
        """Every tag, in the tag facet's order: its name, specs, packages, bytes, date."""
        return [
            {
                "tag": tag,
                "specs": self._by_tag[tag]["specs"],
                "packages": self._by_tag[tag]["packages"],
                "bytes": self._by_tag[tag]["bytes"],
                "sized": self._by_tag[tag]["sized"],
                "date": tag_date(tag),
            }
            for tag in self.tags
        ]

    def of(self, tag: str | None) -> dict[str, Any]:
        """The counts of one tag (None: all tags together)."""
        return self._all if tag is None else self._by_tag[tag]
