"""One package across the index: its builds per tag and version (the package page), and
what changed for it between two tags.

Both are answered from the facet columns (one pass over the package's documents), not
from stored specs: the grid of a package with 70,000 builds in 60 tags is one
``np.unique`` over their (tag, version) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from searcher.documents import Spec
from searcher.errors import BadRequest, NotFound
from searcher.search import check_characters
from searcher.snapshot import Snapshot
from searcher.sources import show
from searcher.stats import tag_date, timeline

# Builds listed per side of a tag diff (their counts are always whole).
MAX_DIFF_SPECS = 200


@dataclass
class TagRow:
    """The builds of a package in one tag, by version (newest first)."""

    tag: str
    specs: int
    versions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a row."""
        return {
            "tag": self.tag,
            "date": tag_date(self.tag),
            "specs": self.specs,
            "versions": self.versions,
        }


@dataclass
class PackageTimeline:
    """A package across tags: the grid of tags (tag facet order) x versions (newest
    first), and its build count per snapshot in time order (zero where it is absent)."""

    package: str
    specs: int
    versions: list[str]
    tags: list[TagRow]
    snapshots: list[tuple[str, int]]
    releases: list[tuple[str, int]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of /api/package/<name>."""
        return {
            "package": self.package,
            "specs": self.specs,
            "versions": self.versions,
            "tags": [row.to_dict() for row in self.tags],
            "timeline": [{"tag": t, "date": tag_date(t), "specs": n} for t, n in self.snapshots],
            "releases": [{"tag": t, "specs": n} for t, n in self.releases],
        }


def package_docs(snapshot: Snapshot, name: str) -> tuple[str, Any]:
    """(the index's spelling of a package, its documents); NotFound with the nearest
    names when the index has no such package."""
    check_characters("package", name)
    if not snapshot.is_package(name):
        near = snapshot.closest(["package"], name)
        hint = f"; did you mean {', '.join(near[:3])}?" if near else ""
        raise NotFound(f"no package {show(name)} in the index{hint}")
    canonical = snapshot.canonical("package", name)
    return canonical, snapshot.value_set("package", canonical)


def package_timeline(snapshot: Snapshot, name: str) -> PackageTimeline:
    """The package page's numbers."""
    package, docs = package_docs(snapshot, name)
    cells = snapshot.cross_counts(docs, "tag", "version")
    versions = snapshot.in_sort_order("version", sorted({v for _, v, _ in cells}))
    position = {v: i for i, v in enumerate(versions)}
    by_tag: dict[str, list[tuple[str, int]]] = {}
    for tag, version, count in cells:
        by_tag.setdefault(tag, []).append((version, count))
    tags = []
    for tag in snapshot.in_sort_order("tag", list(by_tag)):
        held = sorted(by_tag[tag], key=lambda vc: position[vc[0]])
        tags.append(TagRow(tag, sum(n for _, n in held), dict(held)))
    per_tag = {row.tag: row.specs for row in tags}
    snapshots, releases = timeline(snapshot.stats.tags)
    return PackageTimeline(
        package=package,
        specs=len(docs),
        versions=versions,
        tags=tags,
        snapshots=[(t, per_tag.get(t, 0)) for t in snapshots],
        releases=[(t, per_tag.get(t, 0)) for t in releases],
    )


@dataclass
class TagDiff:
    """A package's builds in tag a and in tag b, by hash: only in a, only in b, in both."""

    package: str
    a: str
    b: str
    only_a: list[Spec]
    only_b: list[Spec]
    only_a_total: int
    only_b_total: int
    both: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of /api/compare?package=&a=<tag>&b=<tag>."""
        return {
            "package": self.package,
            "a": self.a,
            "b": self.b,
            "only_a": [s.to_record() for s in self.only_a],
            "only_b": [s.to_record() for s in self.only_b],
            "only_a_total": self.only_a_total,
            "only_b_total": self.only_b_total,
            "both": self.both,
        }


def tag_diff(snapshot: Snapshot, name: str, a: str, b: str) -> TagDiff:
    """What changed for a package from tag a to tag b (each a tag of the index)."""
    package, docs = package_docs(snapshot, name)
    tags = []
    for which, tag in (("a", a), ("b", b)):
        canonical = snapshot.canonical("tag", tag)
        if not snapshot.value_set("tag", canonical):
            raise BadRequest(f"parameter '{which}': no tag {show(tag)} in the index")
        tags.append(canonical)
    ranks = [docs & snapshot.value_set("tag", tag) for tag in tags]
    hashes = [dict(zip(snapshot.hashes_of(r), r, strict=True)) for r in ranks]
    only = [
        sorted(h[x] for x in h.keys() - other.keys())
        for h, other in zip(hashes, hashes[::-1], strict=True)
    ]
    return TagDiff(
        package=package,
        a=tags[0],
        b=tags[1],
        only_a=snapshot.specs(only[0][:MAX_DIFF_SPECS]),
        only_b=snapshot.specs(only[1][:MAX_DIFF_SPECS]),
        only_a_total=len(only[0]),
        only_b_total=len(only[1]),
        both=len(hashes[0].keys() & hashes[1].keys()),
    )
