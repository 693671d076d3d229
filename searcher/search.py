"""Executing a search: query clauses + facet selections -> one SearchResult.

Semantics, as in Elasticsearch's ``post_filter`` faceting: the query text narrows the set
everything is counted over; facet selections filter the hits, different facets AND, and
values of one facet OR together (a spec has one OS), except for the variant facet, whose
values AND (a spec has many variants; `+cuda` and `+mpi` mean both). The counts shown for
an OR facet ignore that facet's own selection, so its other values stay clickable with
honest counts; an AND facet's counts are over the hits, what each value would narrow to.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from searcher import targets
from searcher.bitmaps import bitmap_of, ids
from searcher.documents import RUNTIME_DEPTYPES, Dependency, Spec, normalize_compiler
from searcher.errors import BadRequest, NotFound, QueryError
from searcher.facets import SORT_FACETS, FacetCount
from searcher.graph import Node
from searcher.query import FacetValue, HashPrefix, ParsedQuery, SpecClause, Word, parse
from searcher.schema import FACET_BY_NAME, FACET_NAMES
from searcher.snapshot import Snapshot
from searcher.sources import show

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
DEFAULT_FACET_SIZE = 20
MAX_FACET_SIZE = 1000
MAX_PAGE = 10_000
# Facet values selected in one request, all facets together. Each result page links to
# every state one click away, each link carrying every selection: the page's size grows
# with the square of this number (4 s per page at 500 values before the cap).
MAX_FILTER_VALUES = 50
MAX_VALUE_LENGTH = 1000
PARAMS = ("q", "page", "per_page", "facet_size", "sort", "runs_on")
SORTS = ("relevance", "package", *SORT_FACETS)
# Facets whose values did-you-mean offers for a word that matched nothing.
SUGGEST_FROM = ("package", "os", "target", "platform", "compiler", "stack", "tag")


@dataclass(frozen=True)
class SearchRequest:
    """A validated search: query text, facet selections, page and sizes."""

    q: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    facet_size: int = DEFAULT_FACET_SIZE
    sort: str = "relevance"
    # A microarchitecture: only builds that run on it (targets.runs_on), ANDed with all.
    runs_on: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]]) -> SearchRequest:
        """Validate request parameters (name -> values); BadRequest names the bad one."""
        for name in params:
            if name not in PARAMS and name not in FACET_NAMES:
                raise BadRequest(
                    f"unknown parameter '{name}': facets are {', '.join(FACET_NAMES)}; "
                    f"other parameters are {', '.join(PARAMS)}"
                )
        for name in PARAMS:
            if len(params.get(name, ())) > 1:
                raise BadRequest(f"parameter '{name}' given more than once")
        for name, values in params.items():
            for value in values:
                check_characters(name, value)
        filters = {}
        for facet in FACET_NAMES:
            values = [v.strip() for v in params.get(facet, ()) if v.strip()]
            for value in values:
                if len(value) > MAX_VALUE_LENGTH:
                    raise BadRequest(
                        f"a value of '{facet}' is too long ({len(value)} characters; "
                        f"at most {MAX_VALUE_LENGTH})"
                    )
            if values:
                filters[facet] = tuple(dict.fromkeys(values))
        selected = sum(len(values) for values in filters.values())
        if selected > MAX_FILTER_VALUES:
            raise BadRequest(
                f"too many facet values selected ({selected}); at most {MAX_FILTER_VALUES} "
                "per request"
            )
        q = _single(params, "q", "").strip()
        # A query that cannot be parsed is a bad parameter like any other. Which words are
        # packages is known at search time; every name taken for one here asks the least
        # (no two anonymous specs merge), and search() reports what remains.
        parse(q, lambda name: True)
        sort = _single(params, "sort", "relevance").strip() or "relevance"
        if sort not in SORTS:
            raise BadRequest(f"parameter 'sort' must be one of {', '.join(SORTS)}, got {sort!r}")
        runs_on = _single(params, "runs_on", "").strip().lower()
        if runs_on and not targets.known(runs_on):
            near = difflib.get_close_matches(runs_on, targets.every(), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise BadRequest(
                f"parameter 'runs_on': archspec knows no microarchitecture {show(runs_on)}{hint}"
            )
        return cls(
            q=q,
            filters=filters,
            runs_on=runs_on,
            page=integer_param(params, "page", 1, 1, MAX_PAGE),
            per_page=integer_param(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
            facet_size=integer_param(params, "facet_size", DEFAULT_FACET_SIZE, 1, MAX_FACET_SIZE),
            sort=sort,
        )

    def to_dict(self) -> dict[str, Any]:
        """The "query" object of the JSON answer."""
        return {
            "q": self.q,
            "filters": {k: list(v) for k, v in self.filters.items()},
            "page": self.page,
            "per_page": self.per_page,
            "sort": self.sort,
            "runs_on": self.runs_on or None,
        }


@dataclass(frozen=True)
class Suggestion:
    """Did-you-mean: a word or value that matched nothing, a near spelling, the new query."""

    text: str
    suggestion: str
    q: str

    def to_dict(self) -> dict[str, str]:
        """The JSON shape of a suggestion."""
        return {"text": self.text, "suggestion": self.suggestion, "q": self.q}


@dataclass
class SearchResult:
    """Everything one search found; the page and /api/search both render this."""

    request: SearchRequest
    total: int
    hits: list[Spec]
    facets: dict[str, list[FacetCount]]
    took_ms: float
    suggestions: list[Suggestion] = field(default_factory=list)
    highlight: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # facet -> the documents its counts are over (not part of the JSON answer).
    bases: dict[str, BitMap] = field(default_factory=dict, repr=False)
    matched: BitMap = field(default_factory=BitMap, repr=False)  # every hit, not one page
    parsed: ParsedQuery = field(default_factory=lambda: ParsedQuery(""), repr=False)
    # How the query was read where it may surprise: a target archspec does not know...
    notes: list[str] = field(default_factory=list)

    def matched_for(self, facet: str) -> BitMap:
        """The documents a facet's counts were taken over."""
        return self.bases[facet]

    @property
    def pages(self) -> int:
        """How many pages of per_page hits there are."""
        return max(1, -(-self.total // self.request.per_page))

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of /api/search (the documented contract)."""
        return {
            "query": self.request.to_dict(),
            "total": self.total,
            "hits": [spec.to_record() for spec in self.hits],
            "facets": {name: [c.to_dict() for c in rows] for name, rows in self.facets.items()},
            "suggestions": [s.to_dict() for s in self.suggestions],
            "notes": self.notes,
            "took_ms": round(self.took_ms, 3),
        }


def search(snapshot: Snapshot, request: SearchRequest) -> SearchResult:
    """Run one search against one open generation of the index."""
    started = time.perf_counter()
    parsed = parse(request.q, snapshot.is_package)
    matched = _match_query(snapshot, parsed, request.runs_on)

    selections = {f: snapshot.selected(f, values) for f, values in request.filters.items()}
    hits = matched
    for docs in selections.values():
        hits = hits & docs

    facets, bases = {}, {}
    for facet in FACET_NAMES:
        base = matched
        for other, docs in selections.items():
            # An OR facet's counts ignore its own selection (what each value would add);
            # an AND facet's include it (what each value would narrow the hits to).
            if other != facet or FACET_BY_NAME[facet].combine == "and":
                base = base & docs
        selected = [snapshot.canonical(facet, v) for v in request.filters.get(facet, ())]
        facets[facet] = snapshot.top_counts(facet, base, request.facet_size, selected)
        bases[facet] = base

    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    if request.sort in SORT_FACETS:
        page = snapshot.page_sorted(hits, request.sort, start, stop)
    elif request.sort == "relevance" and parsed.words:
        page = _page(_relevance_groups(snapshot, parsed.words, hits), start, stop)
    else:
        page = _page([hits], start, stop)
    return SearchResult(
        request=request,
        total=len(hits),
        hits=snapshot.specs(page),
        facets=facets,
        took_ms=(time.perf_counter() - started) * 1000,
        suggestions=[] if hits else _suggestions(snapshot, parsed),
        highlight=_highlight_terms(parsed),
        bases=bases,
        matched=hits,
        parsed=parsed,
        notes=_notes(parsed, request.runs_on, request.filters),
    )


def _notes(parsed: ParsedQuery, runs_on: str, filters: Mapping[str, tuple[str, ...]]) -> list[str]:
    """What the answer should say about how the query was read."""
    notes: list[str] = []

    def walk(spec: SpecClause) -> None:
        for clause in spec.arch:
            for name in clause.targets.unknown() if clause.targets else ():
                notes.append(
                    f"target '{name}' is not a microarchitecture archspec knows: matched "
                    "exactly, not as a range"
                )
            for item in clause.targets.items if clause.targets else ():
                low, high = item.low, item.high
                both = bool(low and high) and targets.known(low) and targets.known(high)
                if both and not targets.at_most(low, high):
                    notes.append(
                        f"target={low}:{high} holds no microarchitecture: {low} is not "
                        f"{high} or one of its ancestors"
                    )
        for dependency in spec.dependencies:
            walk(dependency)

    for spec in parsed.specs:
        walk(spec)
    for value in filters.get("target", ()):
        if ":" in value or "," in value:
            notes.append(
                f"the target filter takes one exact value ({value!r} is matched as it is); "
                f"for Spack's ranges, write q=target={value}"
            )
    if runs_on:
        runnable = sorted(targets.runs_on(runs_on), key=targets.sort_key)
        notes.append(f"runs_on={runs_on}: builds for {', '.join(runnable)}")
    return list(dict.fromkeys(notes))


def _match_query(snapshot: Snapshot, parsed: ParsedQuery, runs_on: str = "") -> BitMap:
    """Documents matching the query text: any of its specs, and all its other clauses;
    with runs_on, only the builds that run on that microarchitecture."""
    result = BitMap(snapshot.all_docs)
    if runs_on:
        result &= snapshot.matching("target", targets.runs_on_constraint(runs_on))
    for clause in parsed.clauses:
        if isinstance(clause, HashPrefix):
            result &= snapshot.hash_prefix_set(clause.prefix)
        else:
            result &= _facet_docs(snapshot, clause)
    for word in parsed.words:
        if not result:
            break
        docs = snapshot.term_set(_term(word), word.prefix)
        if word.may_be_hash:
            docs = docs | snapshot.hash_prefix_set(word.text)
        result &= docs
    if parsed.specs and result:
        specs = BitMap()
        for spec in parsed.specs:
            specs |= _spec_docs(snapshot, spec, result)
        result &= specs
    return result


def _spec_docs(snapshot: Snapshot, spec: SpecClause, within: BitMap) -> BitMap:
    """Documents (among within) that satisfy one spec of the query."""
    docs = BitMap(within)
    if spec.name:
        docs &= snapshot.value_set("package", spec.name)
    for versions in spec.versions:
        docs &= snapshot.matching("version", versions)
    for compiler in spec.compilers:
        docs &= snapshot.matching("compiler", compiler)
    for variant in spec.variants:
        docs &= snapshot.matching("variant", variant)
    for arch in spec.arch:
        docs &= _facet_docs(snapshot, arch)
    for hash_ in spec.hashes:
        docs &= snapshot.hash_prefix_set(hash_.prefix)
    for dependency in spec.dependencies:
        if not docs:
            break
        docs &= _dependents(snapshot, dependency)
    return docs


def _dependents(snapshot: Snapshot, dependency: SpecClause) -> BitMap:
    """Documents with a node satisfying the clause anywhere in their dependency DAG: the
    documents that satisfy it, or records that are no documents (externals).

    A bare virtual name (^mpi) is met by a DAG in which something depends on a provider
    of it; ^[virtuals=mpi] openmpi (^mpi=openmpi) by one in which something depends on
    openmpi as its mpi: the edges naming the virtual say which.
    """
    name = dependency.name or ""
    matching = _spec_docs(snapshot, dependency, BitMap(snapshot.all_docs))
    if not name and not dependency.virtuals:  # ^* with options: any node
        nodes = snapshot.numbers(matching)
    else:
        nodes = snapshot.numbers(matching) if name else np.zeros(0, np.int64)
        extra = [n for n, node in snapshot.extra_nodes(name) if _node_satisfies(node, dependency)]
        nodes = np.concatenate([nodes, np.array(extra, dtype=np.int64)])
    found = BitMap()
    bare = not (
        dependency.versions
        or dependency.compilers
        or dependency.variants
        or dependency.arch
        or dependency.hashes
    )
    if bare and not dependency.virtuals:
        parents, _ = snapshot.virtual_edges(name)
        found |= snapshot.ranks_of_nodes(parents) | snapshot.dependents(parents)
    if dependency.virtuals:
        # The edges naming every one of the virtuals (c,cxx=gcc: one edge gives both).
        edges = None
        for virtual in dependency.virtuals:
            parents, children = snapshot.virtual_edges(virtual)
            pairs = parents * (1 << 32) + children
            edges = pairs if edges is None else np.intersect1d(edges, pairs)
        assert edges is not None
        parents, children = edges >> 32, edges & ((1 << 32) - 1)
        if name:  # only the edges to a provider that satisfies the clause
            parents = parents[_member(children, nodes)]
        above = ids(bitmap_of(parents))  # distinct, sorted: faster than np.unique here
        return snapshot.ranks_of_nodes(above) | snapshot.dependents(above)
    return found | snapshot.dependents(nodes)


def _member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """np.isin for small non-negative integers (graph nodes), by a lookup table: 69,331
    mpi edges against 3,789 nodes took 5.3 ms with np.isin's sort."""
    if not len(values) or not len(of):
        return np.zeros(len(values), dtype=bool)
    table = np.zeros(int(max(values.max(), of.max())) + 1, dtype=bool)
    table[of] = True
    found: np.ndarray = table[values]
    return found


def _node_satisfies(node: Node, clause: SpecClause) -> bool:
    """Whether a record that is no document satisfies a ^ clause (what the bitmaps answer
    for documents, for the few records outside them)."""
    compiler = normalize_compiler(node.compiler)
    arch = {"os": node.os, "platform": node.platform, "target": node.target}
    return (
        all(versions.matches(node.version) for versions in clause.versions if node.version)
        and (node.version != "" or not clause.versions)
        and all(c.matches(compiler) for c in clause.compilers)
        and all(any(v.matches(have) for have in node.variants) for v in clause.variants)
        and all(_value_satisfies(arch.get(a.facet, ""), a) for a in clause.arch)
        and all(node.hash.startswith(h.prefix) for h in clause.hashes)
    )


def _value_satisfies(value: str, clause: FacetValue) -> bool:
    if clause.targets is not None:
        return clause.targets.matches(value)
    if clause.prefix:
        return value.casefold().startswith(clause.value.casefold())
    return value.casefold() == clause.value.casefold()


def _facet_docs(snapshot: Snapshot, clause: FacetValue) -> BitMap | FrozenBitMap:
    if clause.targets is not None:  # a union of the few target values' bitmaps
        return snapshot.matching(clause.facet, clause.targets)
    if clause.prefix:
        return snapshot.value_prefix_set(clause.facet, clause.value)
    return snapshot.value_set(clause.facet, clause.value)


def _suggestions(snapshot: Snapshot, parsed: ParsedQuery) -> list[Suggestion]:
    """Did-you-mean: for each word or facet value that matched nothing, near spellings."""
    found = []
    tried: list[tuple[str, Sequence[str], int]] = [
        (w.text, SUGGEST_FROM, w.position)
        for w in parsed.words
        if not w.prefix and not snapshot.term_set(_term(w))
    ]
    clauses = [*parsed.clauses, *(a for spec in parsed.specs for a in spec.arch)]
    for clause in clauses:
        if not isinstance(clause, FacetValue) or clause.prefix or clause.targets:
            continue  # a range found nothing for its meaning, not its spelling
        if not snapshot.value_set(clause.facet, clause.value):
            start = parsed.text.find(clause.value, clause.position)
            tried.append((clause.value, (clause.facet,), start))
    for text, facets, position in tried:
        for better in snapshot.closest(facets, text):
            q = parsed.text[:position] + better + parsed.text[position + len(text) :]
            found.append(Suggestion(text, better, q))
    return found


def _highlight_terms(parsed: ParsedQuery) -> dict[str, tuple[str, ...]]:
    """What to mark in each column of the results: what the query matched there.

    Free-text words may have matched any column; spec parts mark only their own field.
    """
    words = [w.text for w in parsed.words]
    marks: dict[str, list[str]] = {k: list(words) for k in HIGHLIGHTED}
    for spec in parsed.specs:
        if spec.name:
            marks["package"].append(spec.name)
        for v in spec.variants:
            if v.values:  # the whole `name=value` (`backend=jax`), not just its name
                marks["variants"] += [f"{v.name}={value}" for value in v.values]
            else:
                marks["variants"].append(("+" if v.enabled else "~") + v.name)
        marks["compiler"] += [c.name for c in spec.compilers]
        for arch in spec.arch:
            marks.setdefault(arch.facet, []).append(arch.value)
    for clause in parsed.clauses:
        if isinstance(clause, FacetValue):
            marks.setdefault(FACET_BY_NAME[clause.facet].column, []).append(clause.value)
    return {k: tuple(dict.fromkeys(t for t in v if t)) for k, v in marks.items()}


# The result columns the page marks matches in.
HIGHLIGHTED = ("package", "tag", "os", "target", "compiler", "variants", "stacks")


def _term(word: Word) -> str:
    # Terms are indexed lowercased, with compilers in both spellings (gcc@=11 / gcc@11).
    return normalize_compiler(word.text)


def _relevance_groups(snapshot: Snapshot, words: tuple[Word, ...], hits: BitMap) -> list[BitMap]:
    """Hits split into relevance tiers, best first; each tier is listed in display order.

    Per word, a spec scores 0 when its package is the word, 1 when the word is part of the
    package name (keras in py-keras), 2 when it matched elsewhere; tiers are the sums. On
    documents this alike, that ranks what people mean (the package they typed) above
    everything that merely mentions it, deterministically and at any number of hits.
    """
    tiers = {0: BitMap(hits)}
    for word in words:
        exact, part = snapshot.name_sets(_term(word), word.prefix)
        moved: dict[int, BitMap] = {}
        for score, docs in tiers.items():
            in_exact = docs & exact
            in_part = (docs & part) - in_exact
            elsewhere = docs - in_exact - in_part
            for extra, group in ((0, in_exact), (1, in_part), (2, elsewhere)):
                if group:
                    moved[score + extra] = moved.get(score + extra, BitMap()) | group
        tiers = moved
    return [tiers[score] for score in sorted(tiers)]


def _page(groups: list[BitMap], start: int, stop: int) -> list[int]:
    """Documents at positions start:stop of the groups laid end to end."""
    page: list[int] = []
    for group in groups:
        if stop <= 0:
            break
        if start < len(group):
            page.extend(group[max(start, 0) : stop])
        start -= len(group)
        stop -= len(group)
    return page


# Control characters (C0, DEL, C1) and the Unicode controls that reorder or hide text
# (bidi embeddings, overrides and isolates; zero-width marks): no spec, package, variant
# or tag holds one, and echoed back they would garble or disguise the page (U+202E
# reverses everything after it).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """text with each control character replaced by U+FFFD (one for one: positions stay)."""
    return _CONTROL.sub("\ufffd", text)


def check_characters(name: str, value: str) -> None:
    """BadRequest (a QueryError with the position, for q) at a control character."""
    found = _CONTROL.search(value)
    if found is None:
        return
    message = (
        f"parameter '{name}' holds a control character (U+{ord(found.group()):04X}) at "
        f"position {found.start()}: specs, packages and values never contain one"
    )
    if name == "q":
        raise QueryError(message, position=found.start())
    raise BadRequest(message)


def _single(params: Mapping[str, Sequence[str]], name: str, default: str) -> str:
    values = params.get(name, ())
    return values[0] if values else default


_DIGITS = re.compile(r"-?[0-9]{1,9}")


def integer_param(
    params: Mapping[str, Sequence[str]], name: str, default: int, lo: int, hi: int
) -> int:
    """A whole-number parameter in lo..hi (default when absent); BadRequest otherwise.

    Only ASCII digits (and a minus, answered with the range): int() also takes "١٢",
    "1_000", "+5" and " 12 ", and str.isdigit() passes "²", which int() then rejects.
    """
    raw = _single(params, name, "")
    if not raw:
        return default
    if not _DIGITS.fullmatch(raw):
        raise BadRequest(f"parameter '{name}' must be a whole number, got {raw[:20]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"parameter '{name}' must be between {lo} and {hi}, got {value}")
    return value


MIRROR_URL = "https://binaries.spack.io/{tag}"


# The spec page's dependency tree and "used by" list stop here (a DAG of a few hundred
# nodes is shown whole; a library used by thousands of specs is not).
MAX_TREE_ROWS = 500
MAX_USED_BY = 200


@dataclass(frozen=True)
class TreeRow:
    """One line of a spec's dependency tree (link and run dependencies)."""

    depth: int
    name: str
    version: str
    hash: str
    deptypes: tuple[str, ...]
    virtuals: tuple[str, ...]
    indexed: bool  # a document of the same tag (its page can be linked)
    repeated: bool  # shown above already: its own dependencies are not repeated

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a row."""
        return {
            "depth": self.depth,
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "deptypes": list(self.deptypes),
            "virtuals": list(self.virtuals),
            "indexed": self.indexed,
            "repeated": self.repeated,
        }


@dataclass
class SpecDetails:
    """A spec page: the spec, how to install it, the other tags that hold its hash, its
    dependency tree and the specs of its tag that depend on it."""

    spec: Spec
    other_tags: list[str]
    tree: list[TreeRow] = field(default_factory=list)
    used_by: list[Spec] = field(default_factory=list)
    used_by_total: int = 0

    @property
    def build_only(self) -> list[Dependency]:
        """Direct dependencies needed only to build it (folded away on the page)."""
        return [d for d in self.spec.dependencies if not RUNTIME_DEPTYPES & set(d.deptypes)]

    @property
    def install_commands(self) -> list[str]:
        """Shell commands that install this exact build from its build cache."""
        spec = self.spec
        return [
            f"spack mirror add {spec.tag} {MIRROR_URL.format(tag=spec.tag)}",
            "spack buildcache keys --install --trust",
            f"spack install --cache-only {spec.package}@{spec.version} /{spec.hash}",
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of /api/spec/<tag>/<hash>."""
        return {
            "spec": self.spec.to_record(),
            "other_tags": self.other_tags,
            "install": self.install_commands,
            "tree": [row.to_dict() for row in self.tree],
            "used_by": [
                {"id": s.id, "package": s.package, "version": s.version, "hash": s.hash}
                for s in self.used_by
            ],
            "used_by_total": self.used_by_total,
        }


def spec_details(snapshot: Snapshot, tag: str, hash_: str) -> SpecDetails:
    """The spec `<tag>/<hash>`; NotFound if the index does not hold it."""
    rank = snapshot.rank_for_id(f"{tag}/{hash_}")
    if rank is None:
        raise NotFound(f"no spec {tag}/{hash_} in the index")
    (spec,) = snapshot.specs([rank])
    others = snapshot.specs(r for r in snapshot.ranks_for_hash(hash_) if r != rank)
    node = snapshot.node_of(rank)
    users = sorted(
        r
        for n in snapshot.direct_dependents(node)
        if (r := snapshot.rank_of_node(int(n))) is not None
    )
    return SpecDetails(
        spec=spec,
        other_tags=sorted(s.tag for s in others),
        tree=_tree(snapshot, node),
        used_by=snapshot.specs(users[:MAX_USED_BY]),
        used_by_total=len(users),
    )


def _tree(snapshot: Snapshot, root: int) -> list[TreeRow]:
    """The link/run dependencies below a node, depth first, each node expanded once."""
    rows: list[TreeRow] = []
    seen = {root}

    def walk(node: int, depth: int) -> None:
        children = [c for c in snapshot.children(node) if RUNTIME_DEPTYPES & set(c[1])]
        for child, deptypes, virtuals in sorted(
            children, key=lambda c: snapshot.node_identity(c[0])
        ):
            if len(rows) >= MAX_TREE_ROWS:
                return
            name, version, hash_ = snapshot.node_identity(child)
            repeated = child in seen
            seen.add(child)
            indexed = snapshot.rank_of_node(child) is not None
            rows.append(TreeRow(depth, name, version, hash_, deptypes, virtuals, indexed, repeated))
            if not repeated:
                walk(child, depth + 1)

    walk(root, 0)
    return rows


# -- zero results: which part emptied the search ---------------------------------------------

# Hints for what people type for Spack syntax: a comparison before a version.
_COMPARISON = re.compile(
    r"^(?P<name>[A-Za-z0-9][\w.+-]*?)?(?P<op>>=|<=|>|<|==)(?P<version>[\w.]+)$"
)
MAX_RELAXATIONS = 16


@dataclass(frozen=True)
class Relaxation:
    """One change to a search that found nothing, and how many specs it would find."""

    kind: str  # "filter": drop a facet value; "text": drop a word; "hint": Spack syntax
    label: str  # what is dropped, or the corrected text
    q: str
    filters: Mapping[str, tuple[str, ...]]
    count: int


def _filtered(
    snapshot: Snapshot,
    parsed: ParsedQuery,
    filters: Mapping[str, tuple[str, ...]],
    runs_on: str = "",
) -> BitMap:
    """Documents matching the query text, every facet selection and runs_on (no counts,
    no page)."""
    hits = _match_query(snapshot, parsed, runs_on)
    for facet, values in filters.items():
        if not hits:
            break
        hits = hits & snapshot.selected(facet, values)
    return hits


def count(snapshot: Snapshot, request: SearchRequest) -> int:
    """How many specs a request finds (no facets, no page)."""
    parsed = parse(request.q, snapshot.is_package)
    return len(_filtered(snapshot, parsed, request.filters, request.runs_on))


def relaxations(snapshot: Snapshot, request: SearchRequest) -> list[Relaxation]:
    """For a search that found nothing: the count of each search with one part removed
    (a facet value, a word of the query) and of Spack-syntax corrections (`>=1.2` is
    `@1.2:`; `+jax` is `backend=jax` when jax is the value of a valued variant)."""
    words = request.q.split()
    # Each candidate costs a search: a bounded number of them (a hostile query of 32 words
    # and 50 filter values must not cost 82 searches).
    candidates: list[tuple[str, str, str | None, Mapping[str, tuple[str, ...]]]] = [
        ("hint", text, text, request.filters) for text in _hints(snapshot, request, words)
    ]
    removals = []
    for facet, values in request.filters.items():
        for value in values:
            kept = {**request.filters, facet: tuple(v for v in values if v != value)}
            kept = {f: v for f, v in kept.items() if v}
            removals.append(("filter", f"{facet}: {value}", None, kept))
    if request.runs_on:
        removals.insert(0, ("runs_on", f"runs on: {request.runs_on}", None, dict(request.filters)))
    candidates += removals[: MAX_RELAXATIONS // 2]
    if len(words) > 1:
        for i, word in enumerate(words[: MAX_RELAXATIONS // 2]):
            q = " ".join(words[:i] + words[i + 1 :])
            candidates.append(("text", word, q, request.filters))
    found = (_relaxed(snapshot, request, *c) for c in candidates[:MAX_RELAXATIONS])
    return [r for r in found if r is not None]


def _relaxed(
    snapshot: Snapshot,
    request: SearchRequest,
    kind: str,
    label: str,
    q: str | None,
    filters: Mapping[str, tuple[str, ...]],
) -> Relaxation | None:
    q = request.q if q is None else q
    runs_on = "" if kind == "runs_on" else request.runs_on
    changed = SearchRequest(
        q=q, filters=filters, sort=request.sort, per_page=request.per_page, runs_on=runs_on
    )
    try:
        return Relaxation(kind, label, q, filters, count(snapshot, changed))
    except QueryError:  # what is left does not parse: no help to offer
        return None


def _hints(snapshot: Snapshot, request: SearchRequest, words: list[str]) -> list[str]:
    """Whole corrected queries, one per slip found."""
    hints: list[str] = []
    for i, word in enumerate(words[:MAX_RELAXATIONS]):
        if len(hints) >= 3:
            break
        rest = [*words[:i], *words[i + 1 :]]
        match = _COMPARISON.match(word)
        if match and match["op"] != "==":
            version, op = match["version"], match["op"]
            spack = f"@{version}:" if op.startswith(">") else f"@:{version}"
            hints.append(" ".join([*words[:i], (match["name"] or "") + spack, *rest[i:]]))
        elif word[:1] in "+~" and len(word) > 1 and _VARIANT_NAME.fullmatch(word[1:]):
            name = word[1:]
            # The specs the rest of the search finds: do any of them have this variant?
            others = _rest_hits(snapshot, request, " ".join(rest))
            if others is None:
                continue
            boolean = snapshot.any_of("variant", [f"+{name}", f"~{name}"])
            if others.intersection_cardinality(boolean):
                continue
            valued = sorted(
                {v.partition("=")[0] for v in snapshot.variant_values() if v.endswith(f"={name}")}
            )
            if valued:  # +jax where jax is backend's value
                hints.append(" ".join([*words[:i], f"{valued[0]}={name}", *rest[i:]]))
            if word[0] == "+":  # no such variant here: the word itself (a stack, a value)
                hints.append(" ".join([*words[:i], name, *rest[i:]]))
    return hints[:3]


_VARIANT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _rest_hits(snapshot: Snapshot, request: SearchRequest, q: str) -> BitMap | None:
    try:
        return _filtered(snapshot, parse(q, snapshot.is_package), request.filters, request.runs_on)
    except QueryError:
        return None


# -- export: every hit, in the request's order, a chunk at a time ------------------------------

EXPORT_CHUNK = 2000
MAX_EXPORT = 1_000_000


# An exported hit: its stored row (documents.ROW_FIELDS) and its direct dependencies as
# `name@version/hash`.
ExportRow = tuple[tuple[Any, ...], list[str]]


@dataclass
class Export:
    """Every hit of a request: how many, and the rows in order, read a chunk at a time."""

    total: int
    chunks: Iterator[list[ExportRow]]


def export_hits(snapshot: Snapshot, request: SearchRequest, limit: int = MAX_EXPORT) -> Export:
    """The hits of a request in its sort order (BadRequest past `limit` hits); memory stays
    one chunk of specs whatever the total."""
    parsed = parse(request.q, snapshot.is_package)
    hits = _filtered(snapshot, parsed, request.filters, request.runs_on)
    if len(hits) > limit:
        raise BadRequest(
            f"the query has {len(hits):,} hits, more than the {limit:,} an export may hold: "
            "narrow it with filters"
        )
    if request.sort in SORT_FACETS:
        groups: list[np.ndarray] = [snapshot.all_sorted(hits, request.sort)]
    elif request.sort == "relevance" and parsed.words:
        groups = [ids(g) for g in _relevance_groups(snapshot, parsed.words, hits)]
    else:
        groups = [ids(hits)]

    def chunks() -> Iterator[list[ExportRow]]:
        for ranks in groups:
            for start in range(0, len(ranks), EXPORT_CHUNK):
                yield snapshot.export_rows(ranks[start : start + EXPORT_CHUNK])

    return Export(len(hits), chunks())
