"""The document model: one built spec in one build-cache tag, and its searchable terms."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from searcher.schema import FACETS

# Splits a value into the parts a user may type alone: "py-keras" -> "py", "keras";
# "build_system=cmake" -> "build_system", "cmake". Dots and underscores stay inside
# a part so versions ("11.4.0"), OS names ("ubuntu24.04") and "x86_64" survive whole.
_PART_SPLIT = re.compile(r"[^a-z0-9._]+")


def normalize_compiler(compiler: str) -> str:
    """Fold Spack's two spellings of a pinned compiler: 'gcc@=11.4.0' and 'gcc@11.4.0'."""
    return compiler.replace("@=", "@")


def word_terms(value: str) -> list[str]:
    """The terms one whitespace-free value contributes to the text index."""
    word = value.lower()
    terms = [word]
    for part in _PART_SPLIT.split(word):
        part = part.strip("._")
        if part and part not in terms:
            terms.append(part)
    return terms


@dataclass(frozen=True, slots=True)
class Dependency:
    """A direct dependency of a spec, as its mirror's database records it."""

    name: str
    version: str  # "" when no record of the tag resolves its hash
    hash: str
    deptypes: tuple[str, ...] = ()
    virtuals: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """The JSON shape of a dependency in a hit."""
        return {
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "deptypes": list(self.deptypes),
            "virtuals": list(self.virtuals),
        }


# Dependency types whose dependencies a spec needs where it is installed (the others,
# build and test, are needed only to build it).
RUNTIME_DEPTYPES = frozenset(("link", "run"))
# deptypes tuple -> whether it holds a runtime type: few distinct tuples, read per edge.
_RUNTIME: dict[tuple[str, ...], bool] = {}


def at_runtime(deptypes: tuple[str, ...]) -> bool:
    """Whether dependency types include one needed where the spec is installed."""
    found = _RUNTIME.get(deptypes)
    if found is None:
        found = not RUNTIME_DEPTYPES.isdisjoint(deptypes)
        if len(_RUNTIME) < 1000:  # hostile input cannot grow it without bound
            _RUNTIME[deptypes] = found
    return found


@dataclass(frozen=True, slots=True)
class Spec:
    """One prebuilt spec as listed in one build-cache tag."""

    tag: str
    package: str
    hash: str
    version: str
    compiler: str
    os: str
    platform: str
    target: str
    variants: tuple[str, ...]
    stacks: tuple[str, ...]
    size: int | None = None
    tarball: str | None = None
    # Direct dependencies: known for specs read from mirrors; not part of the stored row
    # (the index's dependency graph holds them, graph.py).
    dependencies: tuple[Dependency, ...] = ()
    # The dependency facet's values, given instead of `dependencies` while a shard is
    # built from mirrors (the graph holds the edges; making a Dependency of each of ~7
    # edges a spec was a tenth of the build). None: from `dependencies`.
    runtime_names: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        """The document id: the same hash may be listed in several tags."""
        return f"{self.tag}/{self.hash}"

    @property
    def dependency_names(self) -> tuple[str, ...]:
        """Names of the direct link and run dependencies (the dependency facet)."""
        if self.runtime_names is not None:
            return self.runtime_names
        return tuple(d.name for d in self.dependencies if at_runtime(d.deptypes))

    def facet_values(self) -> dict[str, list[str]]:
        """The value(s) this spec holds for every facet (see schema.FACETS); compilers
        folded (normalize_compiler)."""
        values = {}
        for name, column, multi in _FACET_FIELDS:
            held = getattr(self, column)
            values[name] = list(dict.fromkeys(held)) if multi else [held]
        values["compiler"] = [normalize_compiler(self.compiler)]
        return values

    def name_terms(self) -> list[str]:
        """Terms that find this spec by package name: 'py-keras', 'py', 'keras'."""
        return word_terms(self.package)

    def to_record(self) -> dict[str, Any]:
        """The JSON shape of a hit (the API contract's hit object)."""
        return {
            "id": self.id,
            "package": self.package,
            "version": self.version,
            "tag": self.tag,
            "hash": self.hash,
            "compiler": self.compiler,
            "os": self.os,
            "platform": self.platform,
            "target": self.target,
            "variants": list(self.variants),
            "stacks": list(self.stacks),
            "size": self.size,
            "tarball": self.tarball,
            "dependencies": [d.to_record() for d in self.dependencies],
        }

    def to_row(self) -> tuple[Any, ...]:
        """The compact form stored in the index: fields in ROW_FIELDS order."""
        return tuple(getattr(self, name) for name in ROW_FIELDS)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Spec:
        """Rebuild a Spec from to_row()'s output."""
        return cls(**dict(zip(ROW_FIELDS, row, strict=True)))


# (facet, the Spec field holding its values, multi-valued): read once per document added.
_FACET_FIELDS = tuple((f.name, f.column, f.multi) for f in FACETS)

# Stored rows are tuples (no key names repeated per document: a smaller index, faster
# writes); changing this order changes the index format (schema.SCHEMA_VERSION).
ROW_FIELDS = (
    "tag",
    "package",
    "hash",
    "version",
    "compiler",
    "os",
    "platform",
    "target",
    "variants",
    "stacks",
    "size",
    "tarball",
)
