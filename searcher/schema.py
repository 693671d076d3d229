"""The Whoosh schema and the facet list: the one place field types are chosen."""

from __future__ import annotations

from dataclasses import dataclass

from whoosh import fields

# 3: hashes in hashes.npy, not Whoosh; no package-name terms in Whoosh (unused).
# 4: rank_of.npy beside order.npy.
# 5: the dependency facet and graph (dep_*.npy, used_*.npy, graph.json).
# 6: no `id` field in Whoosh (its one posting list per document was a third of a
#    mirror shard's build time); `<tag>/<hash>` is found through hashes.npy.
# 7: sizes.npy (shards and generations), stats.json (stats.py), and each shard's
#    export rows (rows.bin, rows-offsets.npy: rows.py).
SCHEMA_VERSION = 7


@dataclass(frozen=True)
class Facet:
    """A facet: its URL parameter name, its label, whether a spec holds several values."""

    name: str
    label: str
    multi: bool = False
    field: str = ""  # the spec's field (and hit column) its values come from; default: name
    # Whether plain words find its values; a dependency's name does not (`^name` does):
    # `cuda` finds the cuda package and +cuda builds, not everything linked with it.
    text: bool = True
    # How several selected values combine: "or" (the default: any of them, as one spec
    # holds one OS) or "and" (every one: a spec holds many variants, and a user picking
    # `+cuda` and `+mpi` means a build with both).
    combine: str = "or"

    @property
    def column(self) -> str:
        """The spec field, and the column of a hit, that holds this facet's values."""
        return self.field or self.name


FACETS: tuple[Facet, ...] = (
    Facet("tag", "Build-cache tag"),
    Facet("package", "Package"),
    Facet("version", "Version"),
    Facet("compiler", "Compiler"),
    Facet("os", "OS"),
    Facet("platform", "Platform"),
    Facet("target", "Target"),
    Facet("stack", "Stack", multi=True, field="stacks"),
    Facet("variant", "Variant", multi=True, field="variants", combine="and"),
    Facet("dependency", "Dependency", multi=True, field="dependency_names", text=False),
)
FACET_NAMES: tuple[str, ...] = tuple(f.name for f in FACETS)
FACET_BY_NAME: dict[str, Facet] = {f.name: f for f in FACETS}


def make_schema() -> fields.Schema:
    """The schema of one shard of the index.

    Whoosh holds each spec as a stored row: what a page of hits shows, by document number.
    Everything a query matches lives beside it: facet values and the free-text terms
    derived from them as bitmaps (bitmaps.py, terms.py), hashes in one sorted array
    (hashes.py), which also finds a spec by `<tag>/<hash>`. Indexing facets in Whoosh too
    cost 2.7x in build time (4.2k vs 11.3k docs/s, 30k specs) and answering them from
    Whoosh postings costs a Python loop per matching document; a hash prefix looked up in
    Whoosh's terms took 16.7 ms at a million specs (one lexicon per tag), against two
    binary searches in the array. A unique `id` field cost a third of a mirror shard's
    build (a posting list, compressed on its own, per document) and is gone since 6.
    """
    return fields.Schema(doc=fields.STORED())
