"""What the page and the JSON API share: the request's snapshot and its parameters."""

from __future__ import annotations

from flask import current_app, g, request

from searcher.index import Snapshot


def snapshot() -> Snapshot:
    """The index generation this request reads; released when the request ends."""
    if "searcher_snapshot" not in g:
        manager = current_app.extensions["searcher.index"].snapshot()
        g.searcher_snapshot = manager.__enter__()
        g.searcher_snapshot_cm = manager
    return g.searcher_snapshot


def request_params() -> dict[str, list[str]]:
    """The query string as name -> every value given, in order."""
    return {name: request.args.getlist(name) for name in request.args}
