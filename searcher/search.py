"""Executing a search: query clauses + facet selections -> one SearchResult.

Semantics, as in Elasticsearch's ``post_filter`` faceting: the query text narrows the set
everything is counted over; facet selections filter the hits, values of one facet OR
together, different facets AND; and the counts shown for a facet ignore that facet's own
selection, so its other values stay clickable with honest counts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyroaring import BitMap

from searcher.documents import Spec
from searcher.errors import BadRequest, NotFound
from searcher.facets import FacetCount
from searcher.index import Snapshot
from searcher.query import FacetValue, HashPrefix, ParsedQuery, Variant, Word, parse
from searcher.schema import FACET_NAMES

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
DEFAULT_FACET_SIZE = 20
MAX_FACET_SIZE = 1000
MAX_PAGE = 10_000
PARAMS = ("q", "page", "per_page", "facet_size")


@dataclass(frozen=True)
class SearchRequest:
    """A validated search: query text, facet selections, page and sizes."""

    q: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    facet_size: int = DEFAULT_FACET_SIZE

    @classmethod
    def from_params(
        cls, params: Mapping[str, Sequence[str]], *, extra: Sequence[str] = ()
    ) -> SearchRequest:
        """Validate request parameters (name -> values); BadRequest names the bad one."""
        for name in params:
            if name not in PARAMS and name not in FACET_NAMES and name not in extra:
                raise BadRequest(
                    f"unknown parameter '{name}': facets are {', '.join(FACET_NAMES)}; "
                    f"other parameters are {', '.join(PARAMS)}"
                )
        for name in PARAMS:
            if len(params.get(name, ())) > 1:
                raise BadRequest(f"parameter '{name}' given more than once")
        filters = {}
        for facet in FACET_NAMES:
            values = [v.strip() for v in params.get(facet, ()) if v.strip()]
            if values:
                filters[facet] = tuple(dict.fromkeys(values))
        q = _single(params, "q", "").strip()
        parse(q)  # a query that cannot be parsed is a bad parameter like any other
        return cls(
            q=q,
            filters=filters,
            page=_integer(params, "page", 1, 1, MAX_PAGE),
            per_page=_integer(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
            facet_size=_integer(params, "facet_size", DEFAULT_FACET_SIZE, 1, MAX_FACET_SIZE),
        )

    def to_dict(self) -> dict:
        """The "query" object of the JSON answer."""
        return {
            "q": self.q,
            "filters": {k: list(v) for k, v in self.filters.items()},
            "page": self.page,
            "per_page": self.per_page,
        }


@dataclass
class SearchResult:
    """Everything one search found; the page and /api/search both render this."""

    request: SearchRequest
    total: int
    hits: list[Spec]
    facets: dict[str, list[FacetCount]]
    took_ms: float
    ranked: bool = False

    @property
    def pages(self) -> int:
        """How many pages of per_page hits there are."""
        return max(1, -(-self.total // self.request.per_page))

    def to_dict(self) -> dict:
        """The JSON answer of /api/search (the documented contract)."""
        return {
            "query": self.request.to_dict(),
            "total": self.total,
            "hits": [spec.to_record() for spec in self.hits],
            "facets": {name: [c.to_dict() for c in rows] for name, rows in self.facets.items()},
            "took_ms": round(self.took_ms, 3),
        }


def search(snapshot: Snapshot, request: SearchRequest) -> SearchResult:
    """Run one search against one open generation of the index."""
    started = time.perf_counter()
    parsed = parse(request.q)
    table = snapshot.facets
    matched = _match_query(snapshot, parsed)

    selections = {f: table.any_of(f, values) for f, values in request.filters.items()}
    hits = matched
    for docs in selections.values():
        hits = hits & docs

    facets = {}
    for facet in FACET_NAMES:
        base = matched
        for other, docs in selections.items():
            if other != facet:
                base = base & docs
        selected = [table.canonical(facet, v) for v in request.filters.get(facet, ())]
        facets[facet] = table.top_counts(facet, base, request.facet_size, selected)

    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    words = parsed.words
    groups = _relevance_groups(table, words, hits) if words else [hits]
    return SearchResult(
        request=request,
        total=len(hits),
        hits=snapshot.specs(_page(groups, start, stop)),
        facets=facets,
        took_ms=(time.perf_counter() - started) * 1000,
        ranked=len(groups) > 1,
    )


def _match_query(snapshot: Snapshot, parsed: ParsedQuery) -> BitMap:
    """Documents matching every clause of the query text (all documents if none)."""
    table = snapshot.facets
    result = BitMap(table.live)
    for clause in parsed.clauses:
        if not result:
            break
        if isinstance(clause, FacetValue):
            if clause.prefix:
                docs = table.values_set(clause.facet, _starts_with(clause.value))
            else:
                docs = table.value_set(clause.facet, clause.value)
        elif isinstance(clause, Variant):
            docs = table.values_set("variant", clause.matches)
        elif isinstance(clause, HashPrefix):
            docs = snapshot.match_hash_prefix(clause.prefix)
        else:
            docs = table.term_set(_term(clause), clause.prefix)
            if clause.may_be_hash:
                docs = docs | snapshot.match_hash_prefix(clause.text)
        result &= docs
    return result


def _term(word: Word) -> str:
    # Terms are indexed lowercased, with compilers in both spellings (gcc@=11 / gcc@11).
    return word.text.replace("@=", "@")


def _relevance_groups(table, words: tuple[Word, ...], hits: BitMap) -> list[BitMap]:
    """Hits split into relevance tiers, best first; each tier is listed in display order.

    Per word, a spec scores 0 when its package is the word, 1 when the word is part of the
    package name (keras in py-keras), 2 when it matched elsewhere; tiers are the sums. On
    documents this alike, that ranks what people mean (the package they typed) above
    everything that merely mentions it, deterministically and at any number of hits.
    """
    tiers = {0: BitMap(hits)}
    for word in words:
        exact, part = table.name_sets(_term(word), word.prefix)
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


def _starts_with(prefix: str):
    folded = prefix.casefold()
    return lambda value: value.casefold().startswith(folded)


def _single(params: Mapping[str, Sequence[str]], name: str, default: str) -> str:
    values = params.get(name, ())
    return values[0] if values else default


def _integer(params: Mapping[str, Sequence[str]], name: str, default: int, lo: int, hi: int) -> int:
    raw = _single(params, name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"parameter '{name}' must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"parameter '{name}' must be between {lo} and {hi}, got {value}")
    return value


MIRROR_URL = "https://binaries.spack.io/{tag}"


@dataclass
class SpecDetails:
    """A spec page: the spec, how to install it, and the other tags that hold its hash."""

    spec: Spec
    other_tags: list[str]

    @property
    def install_commands(self) -> list[str]:
        """Shell commands that install this exact build from its build cache."""
        spec = self.spec
        return [
            f"spack mirror add {spec.tag} {MIRROR_URL.format(tag=spec.tag)}",
            "spack buildcache keys --install --trust",
            f"spack install --cache-only {spec.package}@{spec.version} /{spec.hash}",
        ]

    def to_dict(self) -> dict:
        """The JSON answer of /api/spec/<tag>/<hash>."""
        return {
            "spec": self.spec.to_record(),
            "other_tags": self.other_tags,
            "install": self.install_commands,
        }


def spec_details(snapshot: Snapshot, tag: str, hash_: str) -> SpecDetails:
    """The spec `<tag>/<hash>`; NotFound if the index does not hold it."""
    rank = snapshot.rank_for_id(f"{tag}/{hash_}")
    if rank is None:
        raise NotFound(f"no spec {tag}/{hash_} in the index")
    (spec,) = snapshot.specs([rank])
    others = snapshot.specs(r for r in snapshot.ranks_for_hash(hash_) if r != rank)
    return SpecDetails(spec=spec, other_tags=sorted(s.tag for s in others))
