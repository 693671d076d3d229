"""Two specs side by side: which of their fields differ.

Compared, in this order: the identity and arch fields (package, version, tag, hash,
compiler, os, platform, target), each variant by name (`+cuda` against `~cuda`,
`cuda_arch=80` against `cuda_arch=90`, or against its absence), the stacks, the tags
holding each hash, the size, and, when the index knows them, each direct dependency by
name (its version and hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from searcher.documents import Spec
from searcher.errors import BadRequest, NotFound
from searcher.query import MIN_HASH_PREFIX
from searcher.search import check_characters
from searcher.snapshot import Snapshot
from searcher.sources import show

FIELDS = ("package", "version", "tag", "hash", "compiler", "os", "platform", "target")


@dataclass(frozen=True)
class Row:
    """One compared field: its name, the value of each side (None: absent) and whether
    they differ."""

    field: str
    a: Any
    b: Any

    @property
    def differs(self) -> bool:
        """Whether the two sides hold different values."""
        return bool(self.a != self.b)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a difference."""
        return {"field": self.field, "a": self.a, "b": self.b}


@dataclass
class Comparison:
    """Two specs, the tags holding each, and every compared field."""

    a: Spec
    b: Spec
    a_tags: list[str]
    b_tags: list[str]
    rows: list[Row]

    @property
    def differences(self) -> list[Row]:
        """The fields whose values differ."""
        return [row for row in self.rows if row.differs]

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of /api/compare?a=&b=."""
        return {
            "a": {**self.a.to_record(), "tags": self.a_tags},
            "b": {**self.b.to_record(), "tags": self.b_tags},
            "differences": [row.to_dict() for row in self.differences],
            "same": [row.field for row in self.rows if not row.differs],
        }


def variant_name(variant: str) -> str:
    """The name a variant value sets: '+cuda', '~cuda' -> 'cuda'; 'cuda_arch=80' ->
    'cuda_arch'."""
    if variant[:1] in "+~-":
        return variant[1:]
    return variant.partition("=")[0]


def _by_name(values: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    for name, value in values:
        found.setdefault(name, []).append(value)
    return {name: ", ".join(sorted(held)) for name, held in found.items()}


def spec_rank(snapshot: Snapshot, which: str, doc_id: str) -> int:
    """The document a parameter names: `<tag>/<hash>`, or `<tag>/<prefix>` with the 7+
    characters a result shows when one build of the tag starts with them. BadRequest for
    a malformed or ambiguous one, NotFound when the index has none."""
    check_characters(which, doc_id)
    tag, slash, hash_ = doc_id.partition("/")
    if not (tag and slash and hash_):
        raise BadRequest(f"parameter '{which}' must be <tag>/<hash>, not {show(doc_id)}")
    rank = snapshot.rank_for_id(doc_id)
    if rank is None and len(hash_) >= MIN_HASH_PREFIX and hash_.isalnum():
        tagged = snapshot.value_set("tag", snapshot.canonical("tag", tag))
        found = snapshot.hash_prefix_set(hash_.lower()) & tagged
        if len(found) > 1:
            raise BadRequest(
                f"parameter '{which}': {len(found)} builds of {show(tag)} have hashes "
                f"starting with {show(hash_)}: give more of it"
            )
        rank = found.min() if found else None
    if rank is None:
        raise NotFound(f"parameter '{which}': no spec {show(doc_id)} in the index")
    return int(rank)


def compare(snapshot: Snapshot, a: str, b: str) -> Comparison:
    """Compare the specs `a` and `b` (each `<tag>/<hash>`, or a unique hash prefix)."""
    specs = [snapshot.specs([spec_rank(snapshot, w, d)])[0] for w, d in (("a", a), ("b", b))]
    left, right = specs
    rows = [Row(name, getattr(left, name), getattr(right, name)) for name in FIELDS]
    variants = [_by_name([(variant_name(v), v) for v in s.variants]) for s in specs]
    for name in sorted(variants[0].keys() | variants[1].keys()):
        rows.append(Row(f"variant {name}", variants[0].get(name), variants[1].get(name)))
    rows.append(Row("stacks", sorted(left.stacks), sorted(right.stacks)))
    tags = [snapshot.tags_of_hash(s.hash) for s in specs]
    rows.append(Row("tags", tags[0], tags[1]))
    rows.append(Row("size", left.size, right.size))
    if left.dependencies or right.dependencies:
        deps = [
            _by_name(
                [(d.name, f"{d.version}/{d.hash}" if d.version else d.hash) for d in s.dependencies]
            )
            for s in specs
        ]
        for name in sorted(deps[0].keys() | deps[1].keys()):
            rows.append(Row(f"dependency {name}", deps[0].get(name), deps[1].get(name)))
    return Comparison(left, right, tags[0], tags[1], rows)
