"""The search page and the spec pages: HTML over the same SearchResult as the API."""

from __future__ import annotations

import re
from urllib.parse import quote_plus

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape

from searcher.errors import BadRequest, QueryError
from searcher.schema import FACET_NAMES, FACETS
from searcher.search import (
    DEFAULT_PER_PAGE,
    MAX_FACET_SIZE,
    SORTS,
    SearchRequest,
    SearchResult,
    search,
    spec_details,
)
from searcher.views import request_params, snapshot

bp = Blueprint("web", __name__)


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
    for name in expand:
        if name not in FACET_NAMES:
            raise BadRequest(f"cannot expand '{name}': facets are {', '.join(FACET_NAMES)}")
    shown = current_app.config["FACET_VALUES_SHOWN"]
    # One more than shown tells the template whether a "more" link is needed.
    params["facet_size"] = [str(MAX_FACET_SIZE if expand else shown + 1)]
    try:
        request = SearchRequest.from_params(params)
    except QueryError as exc:
        # Keep the user's text in the box and point at the offending character.
        q = params.get("q", [""])[0]
        return render_template("search.html", error=exc, q=q, result=None, links=None), 400
    result = search(snapshot(), request)
    links = PageLinks(result, expand)
    return render_template(
        "search.html",
        error=None,
        q=request.q,
        result=result,
        links=links,
        facets=FACETS,
        shown=shown,
        sorts=SORTS,
    )


@bp.get("/spec/<tag>/<hash_>")
def spec_page(tag: str, hash_: str) -> ResponseReturnValue:
    """Every field of one spec, how to install it, and the other tags that hold it."""
    details = spec_details(snapshot(), tag, hash_)
    return render_template("spec.html", details=details, spec=details.spec)


class PageLinks:
    """URLs for every state reachable from a result page (all state lives in the URL).

    Each selection is encoded once; a link joins the encoded pieces it keeps, so a page's
    links cost time in proportion to their length, not to re-encoding every selection.
    """

    def __init__(self, result: SearchResult, expand: list[str]):
        self.request = result.request
        self.expand = expand
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
    ) -> str:
        q = self.request.q if q is None else q
        sort = sort or self.request.sort
        parts: list[str] = []
        if q:
            parts.append(_pair("q", q))
        for facet in FACET_NAMES:
            encoded = self._encoded.get(facet, {})
            parts.extend(encoded.get(v) or _pair(facet, v) for v in filters.get(facet, ()))
        if page > 1:
            parts.append(_pair("page", str(page)))
        if self.request.per_page != DEFAULT_PER_PAGE:
            parts.append(_pair("per_page", str(self.request.per_page)))
        if sort != "relevance":
            parts.append(_pair("sort", sort))
        parts.extend(_pair("expand", f) for f in (self.expand if expand is None else expand))
        return self._base + ("?" + "&".join(parts) if parts else "")

    def toggle(self, facet: str, value: str) -> str:
        """Select a facet value (ORed with others of its facet), or unselect it."""
        filters = dict(self.request.filters)
        values = filters.get(facet, ())
        filters[facet] = (
            tuple(v for v in values if v != value) if value in values else (*values, value)
        )
        return self._url(filters)

    def with_query(self, q: str) -> str:
        """The same filters with other query text (did-you-mean)."""
        return self._url(dict(self.request.filters), q=q)

    def sorted_by(self, sort: str) -> str:
        """The same search in another order."""
        return self._url(dict(self.request.filters), sort=sort)

    def clear(self) -> str:
        """Drop every facet selection, keep the query text."""
        return self._url({}, expand=[])

    def page(self, number: int) -> str:
        """The same search on another page."""
        return self._url(dict(self.request.filters), page=number)

    def expand_facet(self, facet: str) -> str:
        """List every value of a facet, not just the top ones."""
        return self._url(dict(self.request.filters), expand=[*self.expand, facet])

    def collapse_facet(self, facet: str) -> str:
        """Back to the top values of a facet."""
        return self._url(dict(self.request.filters), expand=[f for f in self.expand if f != facet])

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
