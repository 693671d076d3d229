"""The JSON API: /api/search (and its exports), /api/spec/<tag>/<hash>, /api/stats,
/api/package/<name>, /api/compare, /api/suggest, /api/health."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify, stream_with_context

from searcher.compare import compare
from searcher.errors import BadRequest
from searcher.export import FORMATS, lines
from searcher.package import package_timeline, tag_diff
from searcher.search import SearchRequest, export_hits, integer_param, search, spec_details
from searcher.views import compare_params, no_params, request_params, snapshot, stats_for

bp = Blueprint("api", __name__, url_prefix="/api")
# Package names are shorter; a longer prefix completes nothing.
MAX_SUGGEST_LENGTH = 200


@bp.get("/search")
def search_json() -> Response:
    """Hits, facet counts and paging for a query, as JSON (the contract in README)."""
    request = SearchRequest.from_params(request_params())
    return jsonify(search(snapshot(), request).to_dict())


@bp.get("/search.csv")
def search_csv() -> Response:
    """Every hit of a query as CSV (same parameters as /api/search), streamed."""
    return _export("csv")


@bp.get("/search.ndjson")
def search_ndjson() -> Response:
    """Every hit of a query as newline-delimited JSON, streamed."""
    return _export("ndjson")


def _export(kind: str) -> Response:
    request = SearchRequest.from_params(request_params())
    result = export_hits(snapshot(), request, current_app.config["MAX_EXPORT"])
    # content_type, not mimetype: FORMATS already names the charset where it has one.
    response = Response(stream_with_context(lines(result, kind)), content_type=FORMATS[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="searcher-export.{kind}"'
    response.headers["X-Total-Count"] = str(result.total)
    return response


@bp.get("/suggest")
def suggest_json() -> Response:
    """Package names for autocomplete: the ones whose name or a part of it starts with q."""
    params = request_params()
    for name in params:
        if name not in ("q", "limit"):
            raise BadRequest(f"unknown parameter '{name}': /api/suggest takes q and limit")
    for name in ("q", "limit"):
        if len(params.get(name, ())) > 1:
            raise BadRequest(f"parameter '{name}' given more than once")
    q = (params.get("q") or [""])[0].strip().lower()
    if len(q) > MAX_SUGGEST_LENGTH:
        raise BadRequest(f"parameter 'q' is too long (at most {MAX_SUGGEST_LENGTH} characters)")
    limit = integer_param(params, "limit", 10, 1, 50)
    found = snapshot().complete(q, limit) if q else []
    return jsonify({"q": q, "suggestions": [{"value": v, "count": n} for v, n in found]})


@bp.get("/spec/<tag>/<hash_>")
def spec_json(tag: str, hash_: str) -> Response:
    """One spec, its install commands and the other tags holding the same hash."""
    return jsonify(spec_details(snapshot(), tag, hash_).to_dict())


@bp.get("/stats")
def stats_json() -> Response:
    """Specs, packages and bytes per tag; OS, target, stack, compiler and platform counts
    and the largest packages, for ?tag= (default: every tag)."""
    tag, counts = stats_for(snapshot(), request_params())
    rows = snapshot().stats.tag_rows()
    return jsonify({"tag": tag, "tags": rows, **counts})


@bp.get("/package/<name>")
def package_json(name: str) -> Response:
    """A package across tags: builds per tag and version, and per snapshot over time."""
    no_params(request_params(), "/api/package")
    return jsonify(package_timeline(snapshot(), name).to_dict())


@bp.get("/compare")
def compare_json() -> Response:
    """Two specs side by side (a=<tag>/<hash>&b=<tag>/<hash>), or a package between two
    tags (package=<name>&a=<tag>&b=<tag>)."""
    package, a, b = compare_params(request_params())
    if package is not None:
        return jsonify(tag_diff(snapshot(), package, a, b).to_dict())
    return jsonify(compare(snapshot(), a, b).to_dict())


@bp.get("/health")
def health() -> Response:
    """Which index generation is served, how many specs it holds and when it was built."""
    snap = snapshot()
    return jsonify(
        {
            "status": "ok",
            "generation": snap.name,
            "documents": snap.doc_count,
            "tags": snap.meta.get("tags", []),
            "built_at": snap.meta.get("built_at"),
            # Which server process answered (each follows the index on its own).
            "process": os.getpid(),
        }
    )
