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
from searcher.index import Snapshot, TextTerm
from searcher.query import FacetValue, HashPrefix, ParsedQuery, Variant, Word, parse
from searcher.schema import FACET_NAMES

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
DEFAULT_FACET_SIZE = 20
MAX_FACET_SIZE = 1000
MAX_PAGE = 10_000
# Above this many hits, results are listed in display order instead of scored: BM25 over
# near-identical spec documents says little, and scoring costs time per hit.
RANK_LIMIT = 5_000
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
        facets[facet] = _facet_rows(
            table.counts(facet, base), request.filters.get(facet, ()), request.facet_size
        )

    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    ranked = bool(parsed.words) and 0 < len(hits) <= RANK_LIMIT
    if ranked:
        scores = snapshot.scores([_text_term(w) for w in parsed.words], hits)
        order = sorted(hits, key=lambda d: (-round(scores.get(d, 0.0), 6), table.rank_of(d)))
        page_docs = order[start:stop]
    else:
        page_docs = table.page(hits, start, stop)
    return SearchResult(
        request=request,
        total=len(hits),
        hits=snapshot.specs(page_docs),
        facets=facets,
        took_ms=(time.perf_counter() - started) * 1000,
        ranked=ranked,
    )


def _match_query(snapshot: Snapshot, parsed: ParsedQuery) -> BitMap:
    """Documents matching every clause of the query text (all live documents if none)."""
    table = snapshot.facets
    result = BitMap(table.live)
    # Cheap facet clauses first, so an empty intersection skips the text index entirely.
    for clause in sorted(parsed.clauses, key=lambda c: isinstance(c, Word | HashPrefix)):
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
            docs = snapshot.match_text(_text_term(clause))
        result &= docs
    return result


def _text_term(word: Word) -> TextTerm:
    return TextTerm(word.text, prefix=word.prefix, hash_prefix=word.may_be_hash)


def _starts_with(prefix: str):
    folded = prefix.casefold()
    return lambda value: value.casefold().startswith(folded)


def _facet_rows(counts: dict[str, int], selected: Sequence[str], size: int) -> list[FacetCount]:
    """Top values by count (then name), plus every selected value even if not among them."""
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    shown = {value for value, _ in rows}
    chosen = set(selected)
    result = [FacetCount(value, count, value in chosen) for value, count in rows]
    result.extend(FacetCount(v, counts.get(v, 0), True) for v in selected if v not in shown)
    return result


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
    docnum = snapshot.docnum_for_id(f"{tag}/{hash_}")
    if docnum is None:
        raise NotFound(f"no spec {tag}/{hash_} in the index")
    (spec,) = snapshot.specs([docnum])
    others = snapshot.specs(d for d in snapshot.docnums_for_hash(hash_) if d != docnum)
    return SpecDetails(spec=spec, other_tags=sorted(s.tag for s in others))
