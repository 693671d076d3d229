"""The HTML pages: search, spec, stats, package and compare, over the same answers as the
JSON API."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape
from pyroaring import BitMap

from searcher import targets
from searcher.charts import Chart, bar_chart, size_text
from searcher.compare import compare, spec_rank
from searcher.documents import Spec
from searcher.errors import BadRequest, NotFound, QueryError
from searcher.package import package_timeline, tag_diff
from searcher.query import MIN_HASH_PREFIX
from searcher.schema import FACET_NAMES, FACETS
from searcher.search import (
    DEFAULT_PER_PAGE,
    MAX_FACET_SIZE,
    SORTS,
    Relaxation,
    SearchRequest,
    SearchResult,
    check_characters,
    relaxations,
    search,
    spec_details,
    visible,
)
from searcher.stats import tag_date, timeline
from searcher.views import compare_params, no_params, request_params, snapshot, stats_for

bp = Blueprint("web", __name__)
# A facet's value search: `find_variant=cuda` lists the variant values holding "cuda".
FIND_PREFIX = "find_"
MAX_FIND_LENGTH = 200
# Facets that offer their value search without "more…" first (their lists run long).
LONG_FACETS = ("package", "version", "variant", "dependency")


@bp.app_template_filter("highlight")
def highlight(text: str, terms: tuple[str, ...]) -> Markup:
    """text, escaped, with every case-insensitive occurrence of a query term in <mark>."""
    terms = tuple(t for t in terms if t)
    if not terms:
        return escape(text)
    pattern = re.compile(
        "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE
    )
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(Markup("<mark>%s</mark>") % match.group())
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


# An absolute http(s) URL without spaces or control characters: the only kind of URL
# from the listing that is rendered as a link (a "javascript:" tarball would run script).
_HTTP_URL = re.compile(r"https?://[^\s/?#\\]+[^\s\x00-\x1f\x7f]*", re.IGNORECASE)


@bp.app_template_filter("http_url")
def http_url(url: str | None) -> str | None:
    """url if it is safe to link to (http or https), else None: show it as text."""
    return url if url and _HTTP_URL.fullmatch(url) else None


@bp.get("/")
def home() -> ResponseReturnValue:
    """Open on the default tag (explicitly, in the URL) when the index has it."""
    tag = current_app.config["DEFAULT_TAG"]
    if tag in snapshot().meta.get("tags", []):
        return redirect(url_for("web.search_page", tag=tag))
    return redirect(url_for("web.search_page"))


@bp.get("/search")
def search_page() -> ResponseReturnValue:
    """The search box, facet sidebar, chips, results and paging."""
    params = request_params()
    expand = list(dict.fromkeys(f for f in params.pop("expand", []) if f))
    finds = _pop_finds(params)
    for name in [*expand, *finds]:
        if name not in FACET_NAMES:
            raise BadRequest(f"no facet '{name}': facets are {', '.join(FACET_NAMES)}")
    # A value search lists every value of its facet that holds the text.
    expand = list(dict.fromkeys([*expand, *finds]))
    shown = current_app.config["FACET_VALUES_SHOWN"]
    # One more than shown tells the template whether a "more" link is needed.
    params["facet_size"] = [str(MAX_FACET_SIZE if expand else shown + 1)]
    try:
        request = SearchRequest.from_params(params)
    except QueryError as exc:
        # Keep the user's text in the box, point at the offending character, and keep
        # every filter and the sort in the form, so correcting the query loses nothing.
        q = visible(params.get("q", [""])[0])  # shown back: no control character
        state = [
            (name, value)
            for name in (*FACET_NAMES, "sort", "per_page")
            for value in params.get(name, ())
            if value.strip() and visible(value) == value
        ]
        caret = None if exc.position is None else _display_width(q[: exc.position])
        return render_template(
            "search.html",
            error=exc,
            q=q,
            caret=caret,
            result=None,
            links=None,
            form_state=state,
        ), 400
    result = search(snapshot(), request)
    links = PageLinks(result, expand, finds)
    # The constraints typed in the box, each a chip that removes it from the query.
    parsed = result.parsed
    query_chips = [(part, links.with_query(parsed.without(part))) for part in parsed.parts]
    # Nothing found: what each single change would find (hints first, then by count).
    relaxed = relaxations(snapshot(), request) if not result.total else []
    relaxed.sort(key=lambda r: (r.kind != "hint", -r.count))
    return render_template(
        "search.html",
        error=None,
        q=request.q,
        result=result,
        links=links,
        form_state=links.form_state(),
        facets=FACETS,
        facet_rows=_facet_rows(result, expand, finds, shown),
        groups=group_hits(result.hits, result.matched),
        shown=shown,
        long_facets=LONG_FACETS,
        sorts=SORTS,
        relaxed=relaxed,
        query_chips=query_chips,
        runs_on_choices=RUNS_ON_CHOICES,
        target_label=targets.label,
        max_export=current_app.config["MAX_EXPORT"],
        # Only the empty front page takes the focus: elsewhere a keyboard or screen-reader
        # user lands at the top of the page, not inside the box.
        autofocus=not request.q and set(request.filters) <= {"tag"} and request.page == 1,
    )


def _display_width(text: str) -> int:
    """Columns text takes in a monospace font: wide (CJK, emoji) characters two, combining
    marks none; where the caret under a query's problem goes."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _pop_finds(params: dict[str, list[str]]) -> dict[str, str]:
    """`find_<facet>=text` parameters (a facet's value search), removed from params."""
    finds = {}
    for name in [n for n in params if n.startswith(FIND_PREFIX)]:
        values = params.pop(name)
        text = values[-1].strip() if values else ""
        check_characters(name, text)
        if len(text) > MAX_FIND_LENGTH:
            raise BadRequest(f"'{name}' is too long (at most {MAX_FIND_LENGTH} characters)")
        if text:
            finds[name[len(FIND_PREFIX) :]] = text
    return finds


@dataclass
class FacetRow:
    """One value of a facet as the page lists it."""

    value: str
    count: int
    selected: bool
    packages: list[str] = field(default_factory=list)  # versions: the packages holding it
    label: str = ""  # shown instead of the value (targets: 'zen4 (x86_64_v4)')
    group: str = ""  # targets: the family heading it is listed under


def _facet_rows(
    result: SearchResult, expand: list[str], finds: dict[str, str], shown: int
) -> dict[str, list[FacetRow]]:
    """Each facet's rows: filtered by its value search, versions and tags in their order
    (versions newest first, with their packages when the hits hold several)."""
    rows: dict[str, list[FacetRow]] = {}
    snap = snapshot()
    for facet in FACET_NAMES:
        counted = result.facets[facet]
        find = finds.get(facet, "").casefold()
        if find:
            counted = [c for c in counted if find in c.value.casefold()]
        if facet not in expand:
            # Top values by count, plus the selected ones; one more than shown tells the
            # template to offer "more".
            counted = counted[: shown + 1] + [c for c in counted[shown + 1 :] if c.selected]
        if facet in ("version", "tag", "target"):
            values = [c.value for c in counted]
            if facet == "target":  # the lattice: by family, generic to specific
                values = sorted(values, key=targets.sort_key)
            else:
                values = snap.in_sort_order(facet, values)
            order = {v: i for i, v in enumerate(values)}
            head = sorted(counted[:shown], key=lambda c: order[c.value])
            counted = (
                head + counted[shown:]
                if facet not in expand
                else sorted(counted, key=lambda c: order[c.value])
            )
        packages: dict[str, list[str]] = {}
        if facet == "version" and len(result.facets["package"]) > 1 and counted:
            packages = snap.packages_holding(
                "version", result.matched_for("version"), [c.value for c in counted]
            )
        rows[facet] = [
            FacetRow(c.value, c.count, c.selected, packages.get(c.value, [])) for c in counted
        ]
    rows["target"] = _lattice(rows["target"], "target" in expand, shown)
    return rows


def _lattice(rows: list[FacetRow], expanded: bool, shown: int) -> list[FacetRow]:
    """The target facet's rows by family, generic to specific, each with its generic
    level; the rows the page shows (the top ones, and any selected) sorted together, a
    family heading before the first shown row of each family."""
    visible = [r for i, r in enumerate(rows) if expanded or i < shown or r.selected]
    hidden = [r for r in rows if all(r is not v for v in visible)]
    visible.sort(key=lambda r: targets.sort_key(r.value))
    last = None
    for row in visible:
        row.label = targets.label(row.value)
        group = targets.family_label(row.value)
        row.group = group if group != last else ""
        last = group
    return visible + hidden


# The columns of a row of hits that can tell two builds of one package@version apart.
GROUP_COLUMNS = ("tag", "os", "target", "platform", "compiler", "variants", "stacks")


@dataclass
class HitGroup:
    """Consecutive hits of one package@version, and what tells them apart."""

    specs: list[Spec]
    differs: tuple[str, ...]  # columns whose value is not the same in every build
    common_variants: frozenset[str]  # variants every build of the group has
    total: int = 0  # builds of this package@version among all the hits, on every page

    @property
    def label(self) -> str:
        """package@version."""
        return f"{self.specs[0].package}@{self.specs[0].version}"


def group_hits(hits: list[Spec], matched: BitMap) -> list[HitGroup]:
    """Runs of hits with the same package@version, each with the columns that differ and
    how many builds of it all the hits hold (a run may go on over the next page)."""
    snap = snapshot()
    groups: list[HitGroup] = []
    for spec in hits:
        last = groups[-1].specs if groups else None
        if last and (last[0].package, last[0].version) == (spec.package, spec.version):
            last.append(spec)
        else:
            groups.append(HitGroup([spec], (), frozenset()))
    for group in groups:
        if len(group.specs) > 1:
            group.differs = tuple(
                column
                for column in GROUP_COLUMNS
                if len({getattr(s, column) for s in group.specs}) > 1
            )
            group.common_variants = frozenset.intersection(
                *(frozenset(s.variants) for s in group.specs)
            )
        first = group.specs[0]
        group.total = matched.intersection_cardinality(
            snap.value_set("package", first.package) & snap.value_set("version", first.version)
        )
    return groups


@bp.get("/spec/<tag>/<hash_>")
def spec_page(tag: str, hash_: str) -> ResponseReturnValue:
    """Every field of one spec, how to install it, and the other tags that hold it. A hash
    prefix (the 7 characters a result shows) that only one spec of the tag starts with
    redirects to that spec's page."""
    snap = snapshot()
    try:
        details = spec_details(snap, tag, hash_)
    except NotFound:
        if len(hash_) >= MIN_HASH_PREFIX and hash_.isalnum():
            specs = [s for s in snap.specs(snap.hash_prefix_set(hash_.lower())) if s.tag == tag]
            if len(specs) == 1:
                return redirect(url_for("web.spec_page", tag=tag, hash_=specs[0].hash))
        raise
    return render_template("spec.html", details=details, spec=details.spec)


# The runs-on selector: every microarchitecture of the main families, by family, from
# generic to specific.
RUNS_ON_CHOICES = {
    targets.FAMILY_LABELS.get(f, f): names for f, names in targets.families().items()
}
# Bars per facet chart of the stats page (the search page's facet lists every value).
MAX_BARS = 30
# Other builds offered to compare a spec with.
MAX_CANDIDATES = 40


@bp.app_template_filter("target_label")
def target_label_filter(name: str) -> str:
    """A target with its generic level: 'zen4 (x86_64_v4)'."""
    return targets.label(name)


@bp.app_template_filter("common_hosts")
def common_hosts_filter(name: str) -> list[str]:
    """The common CPUs a build for this target runs on (archspec)."""
    return targets.common_hosts(name)


@bp.app_template_filter("target_family")
def target_family_filter(name: str) -> str:
    """The family heading of a target ('' when archspec does not know it)."""
    return targets.family_label(name) if targets.known(name) else ""


@bp.app_template_filter("size")
def size_filter(size: int) -> str:
    """A byte count for people (1.5 KiB, 2.3 GiB)."""
    return size_text(size)


@bp.get("/stats")
def stats_page() -> ResponseReturnValue:
    """Specs per tag over time; OS, target, stack and compiler of a tag; the largest
    packages: SVG bar charts, every bar a link into the search."""
    snap = snapshot()
    tag, counts = stats_for(snap, request_params())
    rows = snap.stats.tag_rows()
    by_tag = {row["tag"]: row for row in rows}
    snapshots, releases = timeline(snap.stats.tags)
    charts = _over_time(
        ("chart-snapshots", "chart-releases"),
        "Specs",
        [(t, by_tag[t]["specs"]) for t in snapshots],
        [(t, by_tag[t]["specs"]) for t in releases],
        "specs",
        {},
    )
    scope = {"tag": tag} if tag else {}
    where = tag or "all tags"
    facet_charts = []
    for facet, label in (
        ("os", "OS"),
        ("target", "Target"),
        ("stack", "Stack"),
        ("compiler", "Compiler"),
    ):
        held = list(counts[facet].items())
        chart = bar_chart(
            f"chart-{facet}",
            f"{label}, {where}"
            + (f" (the {MAX_BARS} largest of {len(held)})" if len(held) > MAX_BARS else ""),
            [(v, n, _search_url({**scope, facet: v})) for v, n in held[:MAX_BARS]],
        )
        facet_charts.append(chart)
    sized = counts["sized"] > 0
    largest = counts["largest"]  # most bytes, then most specs (stats.count_stats)
    facet_charts.append(
        bar_chart(
            "chart-largest",
            f"Largest packages, {where}, by " + ("size" if sized else "builds (no sizes listed)"),
            [
                (
                    p["package"],
                    p["bytes"] if sized else p["specs"],
                    _search_url({**scope, "package": p["package"]}),
                )
                for p in largest
            ],
            unit="bytes" if sized else "specs",
        )
    )
    return render_template(
        "stats.html", tag=tag, counts=counts, rows=rows, charts=charts, facet_charts=facet_charts
    )


def _search_url(filters: dict[str, Any]) -> str:
    """The search page with these facet values selected."""
    return url_for("web.search_page", **filters)


def _over_time(
    ids: tuple[str, str],
    what: str,
    snapshots: list[tuple[str, int]],
    releases: list[tuple[str, int]],
    unit: str,
    filters: dict[str, str],
) -> list[Chart]:
    """Counts per snapshot in time order, and per release when there are any (stats.
    timeline), each bar the search of its tag (and filters)."""

    def rows(counts: list[tuple[str, int]]) -> list[tuple[str, int, str]]:
        return [(t, n, _search_url({"tag": t, **filters})) for t, n in counts]

    charts = [
        bar_chart(
            ids[0], f"{what} per snapshot, oldest first (develop: now)", rows(snapshots), unit
        )
    ]
    if releases:
        charts.append(bar_chart(ids[1], f"{what} per release", rows(releases), unit))
    return charts


@bp.get("/package/<name>")
def package_page(name: str) -> ResponseReturnValue:
    """A package across tags: the tag x version grid, its build count per snapshot."""
    no_params(request_params(), "/package")
    found = package_timeline(snapshot(), name)
    charts = _over_time(
        ("chart-timeline", "chart-package-releases"),
        f"Builds of {found.package}",
        found.snapshots,
        found.releases,
        "builds",
        {"package": found.package},
    )
    return render_template(
        "package.html", found=found, charts=charts, tags=snapshot().stats.tags, tag_date=tag_date
    )


@bp.get("/compare")
def compare_page() -> ResponseReturnValue:
    """Two specs side by side; a package between two tags; or, given only a=, the builds
    to compare a spec with."""
    package, a, b = compare_params(request_params(), need_b=False)
    if package is None and not b:
        return _compare_candidates(a)
    if package is not None:
        return render_template("compare_tags.html", diff=tag_diff(snapshot(), package, a, b))
    return render_template("compare.html", comparison=compare(snapshot(), a, b))


def _compare_candidates(doc_id: str) -> ResponseReturnValue:
    snap = snapshot()
    rank = spec_rank(snap, "a", doc_id)
    (spec,) = snap.specs([rank])
    same = snap.value_set("package", spec.package)
    here = same & snap.value_set("tag", spec.tag)
    # Builds of the package in its tag first, then in the other tags (display order).
    ranks = [r for r in here[: MAX_CANDIDATES + 1] if r != rank][:MAX_CANDIDATES]
    if len(ranks) < MAX_CANDIDATES:
        ranks += list((same - here)[: MAX_CANDIDATES - len(ranks)])
    return render_template(
        "compare_pick.html", spec=spec, candidates=snap.specs(ranks), total=len(same) - 1
    )


class PageLinks:
    """URLs for every state reachable from a result page (all state lives in the URL).

    Each selection is encoded once; a link joins the encoded pieces it keeps, so a page's
    links cost time in proportion to their length, not to re-encoding every selection.
    """

    def __init__(self, result: SearchResult, expand: list[str], finds: dict[str, str]):
        self.request = result.request
        self.expand = expand
        self.finds = finds
        self.result = result
        self._base = url_for("web.search_page")
        self._encoded = {
            facet: {v: _pair(facet, v) for v in values}
            for facet, values in self.request.filters.items()
        }

    def _url(
        self,
        filters: dict[str, tuple[str, ...]],
        page: int = 1,
        expand: list[str] | None = None,
        q: str | None = None,
        sort: str | None = None,
        runs_on: str | None = None,
    ) -> str:
        q = self.request.q if q is None else q
        sort = sort or self.request.sort
        parts: list[str] = []
        if q:
            parts.append(_pair("q", q))
        for facet in FACET_NAMES:
            encoded = self._encoded.get(facet, {})
            parts.extend(encoded.get(v) or _pair(facet, v) for v in filters.get(facet, ()))
        runs_on = self.request.runs_on if runs_on is None else runs_on
        if runs_on:
            parts.append(_pair("runs_on", runs_on))
        if page > 1:
            parts.append(_pair("page", str(page)))
        if self.request.per_page != DEFAULT_PER_PAGE:
            parts.append(_pair("per_page", str(self.request.per_page)))
        if sort != "relevance":
            parts.append(_pair("sort", sort))
        expand = self.expand if expand is None else expand
        parts.extend(_pair("expand", f) for f in expand)
        # A facet's value search stays while its facet stays expanded.
        parts.extend(_pair(FIND_PREFIX + f, t) for f, t in self.finds.items() if f in expand)
        return self._base + ("?" + "&".join(parts) if parts else "")

    def form_state(self, without: str = "") -> list[tuple[str, str]]:
        """(name, value) of every selection but the query text and the page: the hidden
        inputs of a form that keeps them (the search box; a facet's value search, which
        passes its own facet as `without`)."""
        state = [(f, v) for f in FACET_NAMES for v in self.request.filters.get(f, ())]
        if self.request.runs_on and without != "runs_on":
            state.append(("runs_on", self.request.runs_on))
        if self.request.sort != "relevance":
            state.append(("sort", self.request.sort))
        if self.request.per_page != DEFAULT_PER_PAGE:
            state.append(("per_page", str(self.request.per_page)))
        state += [("expand", f) for f in self.expand if f != without]
        state += [(FIND_PREFIX + f, t) for f, t in self.finds.items() if f != without]
        return state

    def choose(self, facet: str, value: str | None) -> str:
        """Select only this value of a facet (None: none of them), as the tag selector does."""
        filters = dict(self.request.filters)
        filters[facet] = () if value is None else (value,)
        return self._url(filters)

    def toggle(self, facet: str, value: str) -> str:
        """Select a facet value (with the others of its facet), or unselect it."""
        filters = dict(self.request.filters)
        values = filters.get(facet, ())
        filters[facet] = (
            tuple(v for v in values if v != value) if value in values else (*values, value)
        )
        return self._url(filters)

    def export(self, kind: str) -> str:
        """Every hit of this search as CSV or NDJSON (/api/search.csv, .ndjson)."""
        parts = [_pair("q", self.request.q)] if self.request.q else []
        parts += [_pair(f, v) for f in FACET_NAMES for v in self.request.filters.get(f, ())]
        if self.request.runs_on:
            parts.append(_pair("runs_on", self.request.runs_on))
        if self.request.sort != "relevance":
            parts.append(_pair("sort", self.request.sort))
        base = url_for("api.search_csv" if kind == "csv" else "api.search_ndjson")
        return base + ("?" + "&".join(parts) if parts else "")

    def without_runs_on(self) -> str:
        """The same search for any CPU."""
        return self._url(dict(self.request.filters), runs_on="")

    def relaxed(self, relaxation: Relaxation) -> str:
        """The search with one part removed or corrected (zero-result help)."""
        runs_on = "" if relaxation.kind == "runs_on" else None
        return self._url(dict(relaxation.filters), q=relaxation.q, expand=[], runs_on=runs_on)

    def with_query(self, q: str) -> str:
        """The same filters with other query text (did-you-mean)."""
        return self._url(dict(self.request.filters), q=q)

    def sorted_by(self, sort: str) -> str:
        """The same search in another order."""
        return self._url(dict(self.request.filters), sort=sort)

    def clear(self) -> str:
        """Drop every facet selection and the CPU, keep the query text."""
        return self._url({}, expand=[], runs_on="")

    def page(self, number: int) -> str:
        """The same search on another page."""
        return self._url(dict(self.request.filters), page=number)

    def expand_facet(self, facet: str) -> str:
        """List every value of a facet, not just the top ones (the page stays at it)."""
        url = self._url(dict(self.request.filters), expand=[*self.expand, facet])
        return f"{url}#facet-{facet}"

    def collapse_facet(self, facet: str) -> str:
        """Back to the top values of a facet."""
        url = self._url(dict(self.request.filters), expand=[f for f in self.expand if f != facet])
        return f"{url}#facet-{facet}"

    def page_numbers(self) -> list[int | None]:
        """Page numbers to offer: first, last, and a window around the current (None: gap)."""
        current, last = self.request.page, self.result.pages
        wanted = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
        numbers: list[int | None] = []
        for n in wanted:
            if numbers and n - (numbers[-1] or 0) > 1:
                numbers.append(None)
            numbers.append(n)
        return numbers


def _pair(name: str, value: str) -> str:
    return f"{quote_plus(name)}={quote_plus(value)}"
