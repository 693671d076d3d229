"""What the page and the JSON API share: the request's snapshot and its parameters."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from searcher.errors import BadRequest
from searcher.search import check_characters
from searcher.snapshot import Snapshot
from searcher.sources import show


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


def no_params(params: dict[str, list[str]], where: str) -> None:
    """BadRequest naming the first parameter of a page that takes none."""
    if params:
        raise BadRequest(f"unknown parameter '{next(iter(params))}': {where} takes none")


def _single_params(
    params: dict[str, list[str]], allowed: tuple[str, ...], where: str
) -> dict[str, str]:
    """Parameters that may each be given once, and only these."""
    for name in params:
        if name not in allowed:
            raise BadRequest(f"unknown parameter '{name}': {where} takes {', '.join(allowed)}")
    for name, values in params.items():
        if len(values) > 1:
            raise BadRequest(f"parameter '{name}' given more than once")
        check_characters(name, values[0])
    return {name: values[0].strip() for name, values in params.items()}


def stats_for(snap: Snapshot, params: dict[str, list[str]]) -> tuple[str | None, dict[str, Any]]:
    """(the tag asked for by ?tag=, None for every tag; its counts); BadRequest for a
    tag the index does not hold."""
    tag = _single_params(params, ("tag",), "/stats").get("tag") or None
    if tag is not None:
        tag = snap.canonical("tag", tag)
        if tag not in snap.stats.tags:
            held = ", ".join(snap.stats.tags[:10])
            raise BadRequest(f"parameter 'tag': no tag {show(tag)} in the index (it holds {held}…)")
    return tag, snap.stats.of(tag)


def compare_params(
    params: dict[str, list[str]], need_b: bool = True
) -> tuple[str | None, str, str]:
    """(package or None, a, b) of a comparison: two specs, or a package's two tags; b is
    "" when not need_b and not given (the page then offers builds to compare a with)."""
    given = _single_params(params, ("a", "b", "package"), "/compare")
    if "package" in given and not given["package"]:
        raise BadRequest("parameter 'package' is empty: name the package to compare tags of")
    for name in ("a", "b") if need_b or "package" in given else ("a",):
        if not given.get(name):
            raise BadRequest(
                f"parameter '{name}' is missing: compare a=<tag>/<hash>&b=<tag>/<hash>, "
                "or package=<name>&a=<tag>&b=<tag>"
            )
    return given.get("package") or None, given["a"], given.get("b", "")
