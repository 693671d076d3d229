"""What the page and the JSON API share: the request's snapshot and its parameters."""

from __future__ import annotations

from flask import current_app, g, request

from searcher.snapshot import Snapshot


def snapshot() -> Snapshot:
    """The index generation this request reads; released when the request ends
    (app.py's teardown)."""
    if "searcher_snapshot" not in g:
        g.searcher_snapshot = current_app.extensions["searcher.index"].acquire()
    snap: Snapshot = g.searcher_snapshot
    return snap


def request_params() -> dict[str, list[str]]:
    """The query string as name -> every value given, in order."""
    return {name: request.args.getlist(name) for name in request.args}
