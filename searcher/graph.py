"""The dependency graph: every spec's direct dependencies, and who depends on each node.

Specs read from binary mirrors (mirrors.py) record their dependencies, resolved through
the records of the same build-cache tag. The graph's *nodes* are the documents (global
document numbers ``0 .. N-1``) and, after them, the records that are no documents:
externals and other records not in the build cache, and dependencies no mirror of the
tag holds ("extra" nodes ``N ..``). Two tables, both compressed sparse rows, by node:

- ``dep_*``: the node's direct dependencies (child node, dependency types, virtuals);
- ``used_*``: the documents (as ranks) that depend on the node *anywhere* in their DAG,
  through any dependency type. A ``^openmpi@5:`` query finds the nodes that match
  ``openmpi@5:`` and gathers their rows: time in proportion to the answer.

A shard computes its part while it is built (``ShardGraph``, ``graph.npz`` and
``graph.json``: local numbers, extra nodes after the shard's documents), in the worker
that builds it; a generation lays the shards' parts end to end (``DependencyGraph.merge``)
and maps documents to ranks. Served, the arrays are memory-mapped.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap

from searcher.bitmaps import bitmap_of
from searcher.columns import mapped, rows

DEPTYPES = ("build", "link", "run", "test")
SHARD_ARRAYS = "graph.npz"
SHARD_TABLE = "graph.json"
TABLE_FILE = "graph.json"
_ARRAYS = (
    "dep_ptr",
    "dep_child",
    "dep_kind",
    "dep_virtuals",
    "used_ptr",
    "used_by",
    "vedge_parent",
    "vedge_child",
)
_SHARD_ARRAYS = _ARRAYS[:6]


def deptype_bits(deptypes: Sequence[str]) -> int:
    """The dependency types as bits (DEPTYPES order); unknown types are dropped."""
    bits = 0
    for i, name in enumerate(DEPTYPES):
        if name in deptypes:
            bits |= 1 << i
    return bits


@functools.lru_cache(maxsize=256)  # bits < 2**len(DEPTYPES): a handful of values
def deptype_names(bits: int) -> tuple[str, ...]:
    """The inverse of deptype_bits."""
    return tuple(name for i, name in enumerate(DEPTYPES) if bits & (1 << i))


@dataclass(frozen=True, slots=True)
class Node:
    """A record that is not a document (an external, a build-only record, or a dependency
    no mirror of the tag holds): what a ``^`` clause may match and a hit shows."""

    name: str
    version: str = ""
    hash: str = ""
    compiler: str = "none"
    os: str = ""
    platform: str = ""
    target: str = ""
    variants: tuple[str, ...] = ()
    external: bool = False

    def to_list(self) -> list[Any]:
        """The compact JSON form (graph.json)."""
        return [
            self.name,
            self.version,
            self.hash,
            self.compiler,
            self.os,
            self.platform,
            self.target,
            list(self.variants),
            self.external,
        ]

    @classmethod
    def from_list(cls, row: list[Any]) -> Node:
        """The inverse of to_list (ValueError when it does not fit)."""
        if not isinstance(row, list) or len(row) != 9:
            raise ValueError("a node of graph.json is not a list of 9 fields")
        name, version, hash_, compiler, os_, platform, target, variants, external = row
        strings = (name, version, hash_, compiler, os_, platform, target)
        if not all(isinstance(s, str) for s in strings) or not isinstance(variants, list):
            raise ValueError("a node of graph.json has fields of the wrong type")
        return cls(
            name,
            version,
            hash_,
            compiler,
            os_,
            platform,
            target,
            tuple(str(v) for v in variants),
            bool(external),
        )


@dataclass
class ShardGraph:
    """One shard's graph while it is built, in local numbers: documents 0..docs-1 in the
    order the shard adds them, then its extra nodes."""

    docs: int = 0
    extra: list[Node] = field(default_factory=list)
    # One entry per edge: parent, child, dependency-type bits, index of its virtuals.
    parents: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    virtual_ids: list[int] = field(default_factory=list)
    virtuals: dict[str, int] = field(default_factory=lambda: {"": 0})
    _kinds: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int, int]] = field(
        default_factory=dict, repr=False
    )

    def add_edge(
        self, parent: int, child: int, deptypes: tuple[str, ...], virtuals: tuple[str, ...]
    ) -> None:
        """A direct dependency of parent on child (local node numbers)."""
        kind = self._kinds.get((deptypes, virtuals))
        if kind is None:
            vid = self.virtuals.setdefault(",".join(virtuals), len(self.virtuals))
            kind = self._kinds[(deptypes, virtuals)] = (deptype_bits(deptypes), vid)
        self.parents.append(parent)
        self.children.append(child)
        self.kinds.append(kind[0])
        self.virtual_ids.append(kind[1])

    @property
    def nodes(self) -> int:
        """Documents and extra nodes."""
        return self.docs + len(self.extra)

    def save(self, directory: Path) -> None:
        """Write graph.npz (edges by parent, and who depends on each node) and graph.json."""
        n = self.nodes
        parents = np.array(self.parents, dtype=np.int64)
        order = np.argsort(parents, kind="stable")
        dep_ptr = _offsets(np.bincount(parents, minlength=n) if n else np.zeros(0, np.int64))
        children = np.array(self.children, dtype=np.int32)[order]
        used_ptr, used_by = self._dependents()
        np.savez(
            directory / SHARD_ARRAYS,
            dep_ptr=dep_ptr,
            dep_child=children,
            dep_kind=np.array(self.kinds, dtype=np.uint8)[order],
            dep_virtuals=np.array(self.virtual_ids, dtype=np.int32)[order],
            used_ptr=used_ptr,
            used_by=used_by,
        )
        table = {
            "docs": self.docs,
            "extra": [node.to_list() for node in self.extra],
            "virtuals": sorted(self.virtuals, key=self.virtuals.__getitem__),
        }
        (directory / SHARD_TABLE).write_text(json.dumps(table))

    def _dependents(self) -> tuple[np.ndarray, np.ndarray]:
        """For every node, the documents that depend on it anywhere in their DAG.

        Each node's dependency closure is the union of its children's, computed children
        first (Kahn's order over the reversed edges). A cycle (Spack DAGs have none, but
        input comes from outside) is closed by a plain walk from each node left over.
        """
        n = self.nodes
        kids: list[list[int]] = [[] for _ in range(n)]
        waiting = [0] * n  # children whose closure is not known yet
        up: list[list[int]] = [[] for _ in range(n)]
        for parent, child in zip(self.parents, self.children, strict=True):
            if child != parent:
                kids[parent].append(child)
                up[child].append(parent)
        for parent in range(n):
            kids[parent] = list(dict.fromkeys(kids[parent]))
            waiting[parent] = len(kids[parent])
        for child in range(n):
            up[child] = list(dict.fromkeys(up[child]))
        closure: list[frozenset[int] | None] = [None] * n
        ready = deque(i for i in range(n) if not waiting[i])
        while ready:
            node = ready.popleft()
            below: set[int] = set(kids[node])
            for child in kids[node]:
                below |= closure[child] or frozenset()
            closure[node] = frozenset(below)
            for parent in up[node]:
                waiting[parent] -= 1
                if not waiting[parent]:
                    ready.append(parent)
        for node in range(n):
            if closure[node] is None:  # on or above a cycle
                closure[node] = frozenset(_reachable(kids, node))
        # Documents only depend: pairs (node, document) for every node below a document.
        sizes = [len(closure[d] or ()) for d in range(self.docs)]
        below_docs = np.fromiter(
            chain.from_iterable(closure[d] or () for d in range(self.docs)),
            dtype=np.int64,
            count=sum(sizes),
        )
        owners = np.repeat(np.arange(self.docs, dtype=np.int32), sizes)
        order = np.argsort(below_docs, kind="stable")
        counts = np.bincount(below_docs, minlength=n) if n else np.zeros(0, np.int64)
        return _offsets(counts), owners[order]


def _reachable(kids: list[list[int]], start: int) -> set[int]:
    seen: set[int] = set()
    todo = list(kids[start])
    while todo:
        node = todo.pop()
        if node not in seen and node != start:
            seen.add(node)
            todo.extend(kids[node])
    return seen


def _offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


@dataclass
class DependencyGraph:
    """One generation's graph (see the module docstring)."""

    doc_count: int
    extra: list[Node]
    extra_tags: list[int]  # shard index of each extra node
    virtuals: list[str]
    arrays: dict[str, np.ndarray]
    # The edges naming each virtual: their positions in vedge_*.npy, by virtual (CSR).
    virtual_names: list[str] = field(default_factory=list)
    virtual_ptr: list[int] = field(default_factory=lambda: [0])
    # Each entry of `virtuals` as a tuple, made once: read for every dependency shown.
    _split_virtuals: list[tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._split_virtuals = [_split(v) for v in self.virtuals]

    @classmethod
    def merge(
        cls, shard_dirs: Sequence[Path], doc_counts: Sequence[int], rank_of: np.ndarray
    ) -> DependencyGraph:
        """Lay the shards' graphs end to end: documents in shard order (global numbers),
        then every shard's extra nodes; documents that depend are mapped to ranks."""
        doc_offsets = np.cumsum([0, *doc_counts])
        total = int(doc_offsets[-1])
        extra: list[Node] = []
        extra_tags: list[int] = []
        virtuals: dict[str, int] = {"": 0}
        parts: dict[str, list[np.ndarray]] = defaultdict(list)
        extra_parts: dict[str, list[np.ndarray]] = defaultdict(list)
        for s, directory in enumerate(shard_dirs):
            docs = int(doc_counts[s])
            if not (directory / SHARD_TABLE).exists():  # a shard from listing pages
                for name in ("dep", "used"):
                    parts[f"{name}_len"].append(np.zeros(docs, np.int64))
                continue
            table = json.loads((directory / SHARD_TABLE).read_text())
            if table["docs"] != docs:
                raise ValueError(f"{directory}: its graph has {table['docs']} documents")
            nodes = [Node.from_list(row) for row in table["extra"]]
            extra_base = total + len(extra)
            extra += nodes
            extra_tags += [s] * len(nodes)
            vmap = np.array([virtuals.setdefault(v, len(virtuals)) for v in table["virtuals"]])
            with np.load(directory / SHARD_ARRAYS, allow_pickle=False) as data:
                arrays = {name: data[name] for name in _SHARD_ARRAYS}

            for name in ("dep", "used"):
                lengths = np.diff(arrays[f"{name}_ptr"])
                parts[f"{name}_len"].append(lengths[:docs])
                extra_parts[f"{name}_len"].append(lengths[docs:])
                split = int(arrays[f"{name}_ptr"][docs])
                if name == "dep":
                    local = arrays["dep_child"].astype(np.int64)
                    offset = int(doc_offsets[s])
                    child = np.where(local < docs, local + offset, local - docs + extra_base)
                    columns = {
                        "dep_child": child,
                        "dep_kind": arrays["dep_kind"],
                        "dep_virtuals": vmap[arrays["dep_virtuals"]]
                        if len(arrays["dep_virtuals"])
                        else arrays["dep_virtuals"],
                    }
                else:
                    ranks = rank_of[arrays["used_by"].astype(np.int64) + doc_offsets[s]]
                    columns = {"used_by": ranks}
                for column, values in columns.items():
                    parts[column].append(values[:split])
                    extra_parts[column].append(values[split:])

        def joined(name: str, dtype: Any) -> np.ndarray:
            pieces = parts.get(name, []) + extra_parts.get(name, [])
            return np.concatenate(pieces).astype(dtype) if pieces else np.zeros(0, dtype)

        arrays = {
            "dep_ptr": _offsets(joined("dep_len", np.int64)),
            "dep_child": joined("dep_child", np.int32),
            "dep_kind": joined("dep_kind", np.uint8),
            "dep_virtuals": joined("dep_virtuals", np.int32),
            "used_ptr": _offsets(joined("used_len", np.int64)),
            "used_by": joined("used_by", np.int32),
        }
        names = sorted(virtuals, key=virtuals.__getitem__)
        # The edges naming each virtual (mpi, c, blas...), parent and child: a ^mpi or
        # ^[virtuals=mpi] openmpi query reads its own slice instead of every edge.
        edge_parents = (
            np.searchsorted(arrays["dep_ptr"], np.arange(len(arrays["dep_child"])), side="right")
            - 1
        )
        by_virtual: dict[str, list[np.ndarray]] = defaultdict(list)
        kinds = arrays["dep_virtuals"]
        for vid in np.unique(kinds).tolist():
            for virtual in _split(names[vid]):
                by_virtual[virtual].append(np.flatnonzero(kinds == vid))
        graph = cls(total, extra, extra_tags, names, arrays)
        parents, children = [], []
        for virtual in sorted(by_virtual):
            positions = np.sort(np.concatenate(by_virtual[virtual]))
            parents.append(edge_parents[positions])
            children.append(arrays["dep_child"][positions])
            graph.virtual_names.append(virtual)
            graph.virtual_ptr.append(graph.virtual_ptr[-1] + len(positions))
        arrays["vedge_parent"] = (np.concatenate(parents) if parents else np.zeros(0)).astype(
            np.int32
        )
        arrays["vedge_child"] = (np.concatenate(children) if children else np.zeros(0)).astype(
            np.int32
        )
        return graph

    def save(self, directory: Path) -> None:
        """Write dep_*.npy, used_*.npy and graph.json into a generation."""
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", self.arrays[name], allow_pickle=False)
        table = {
            "doc_count": self.doc_count,
            "extra": [node.to_list() for node in self.extra],
            "extra_tags": self.extra_tags,
            "virtuals": self.virtuals,
            "virtual_names": self.virtual_names,
            "virtual_ptr": self.virtual_ptr,
        }
        (directory / TABLE_FILE).write_text(json.dumps(table))

    @classmethod
    def load(cls, directory: Path, doc_count: int) -> DependencyGraph:
        """Map what save() wrote; ValueError if it does not fit the generation."""
        table = json.loads((directory / TABLE_FILE).read_text())
        extra = [Node.from_list(row) for row in table["extra"]]
        arrays = {name: mapped(directory / f"{name}.npy") for name in _ARRAYS}
        graph = cls(
            doc_count,
            extra,
            list(table["extra_tags"]),
            list(table["virtuals"]),
            arrays,
            [str(v) for v in table["virtual_names"]],
            [int(n) for n in table["virtual_ptr"]],
        )
        graph._check(table)
        return graph

    def _check(self, table: dict[str, Any]) -> None:
        nodes = self.doc_count + len(self.extra)
        a = self.arrays
        fits = table.get("doc_count") == self.doc_count and len(self.extra_tags) == len(self.extra)
        for ptr, data in (("dep_ptr", "dep_child"), ("used_ptr", "used_by")):
            p = a[ptr]
            fits = fits and (
                p.dtype == np.int64
                and len(p) == nodes + 1
                and p[0] == 0
                and p[-1] == len(a[data])
                and bool(np.all(np.diff(p) >= 0))
            )
        edges = len(a["dep_child"])
        fits = fits and len(a["dep_kind"]) == edges and len(a["dep_virtuals"]) == edges
        if fits and edges:
            fits = int(a["dep_child"].min()) >= 0 and int(a["dep_child"].max()) < nodes
            fits = fits and int(a["dep_virtuals"].min()) >= 0
            fits = fits and int(a["dep_virtuals"].max()) < len(self.virtuals)
        if fits and len(a["used_by"]):
            fits = int(a["used_by"].min()) >= 0 and int(a["used_by"].max()) < self.doc_count
        vp = self.virtual_ptr
        fits = fits and (
            len(vp) == len(self.virtual_names) + 1
            and vp[0] == 0
            and all(a <= b for a, b in pairwise(vp))
            and vp[-1] == len(a["vedge_parent"]) == len(a["vedge_child"])
        )
        for name in ("vedge_parent", "vedge_child"):
            if fits and len(a[name]):
                fits = int(a[name].min()) >= 0 and int(a[name].max()) < nodes
        if not fits:
            raise ValueError(f"the dependency graph does not fit {self.doc_count} documents")

        self._extra_by_name: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.extra):
            self._extra_by_name[node.name.casefold()].append(self.doc_count + i)

    # -- questions ---------------------------------------------------------------------

    def extra_named(self, name: str) -> list[tuple[int, Node]]:
        """The extra nodes of a package name (any letter case), with their node numbers."""
        return [
            (i, self.extra[i - self.doc_count])
            for i in self._extra_by_name.get(name.casefold(), ())
        ]

    def children(self, node: int) -> list[tuple[int, tuple[str, ...], tuple[str, ...]]]:
        """A node's direct dependencies: (child node, dependency types, virtuals)."""
        start, stop = int(self.arrays["dep_ptr"][node]), int(self.arrays["dep_ptr"][node + 1])
        kinds = self.arrays["dep_kind"][start:stop].tolist()
        virtual_ids = self.arrays["dep_virtuals"][start:stop].tolist()
        split = self._split_virtuals
        return [
            (child, deptype_names(kind), split[vid])
            for child, kind, vid in zip(
                self.arrays["dep_child"][start:stop].tolist(), kinds, virtual_ids, strict=True
            )
        ]

    def children_of(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(child nodes, how many belong to each node): the direct dependencies of many
        nodes at once, each node's in a run, in the order given."""
        positions, _ = rows(self.arrays["dep_ptr"], nodes)
        ptr = self.arrays["dep_ptr"]
        children: np.ndarray = self.arrays["dep_child"][positions]
        return children, ptr[nodes + 1] - ptr[nodes]

    def dependents(self, nodes: np.ndarray) -> BitMap:
        """Ranks of the documents that depend, anywhere in their DAG, on any of these nodes."""
        positions, _ = rows(self.arrays["used_ptr"], nodes)
        return bitmap_of(self.arrays["used_by"][positions])

    def virtual_edges(self, virtual: str) -> tuple[np.ndarray, np.ndarray]:
        """(parents, children) of the edges naming a virtual: who depends on which provider."""
        if virtual not in self.virtual_names:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        i = self.virtual_names.index(virtual)
        lo, hi = self.virtual_ptr[i], self.virtual_ptr[i + 1]
        parents = self.arrays["vedge_parent"][lo:hi].astype(np.int64)
        return parents, self.arrays["vedge_child"][lo:hi].astype(np.int64)

    def parents_among(self, candidates: np.ndarray, node: int) -> np.ndarray:
        """Those of the candidate nodes that depend directly on node."""
        positions, owners = rows(self.arrays["dep_ptr"], candidates)
        hits = self.arrays["dep_child"][positions] == node
        return np.unique(candidates[owners[hits]])


def _split(virtuals: str) -> tuple[str, ...]:
    return tuple(virtuals.split(",")) if virtuals else ()
