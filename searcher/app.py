"""The Flask application factory: configuration, the open index, blueprints, errors."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from searcher.compress import Compressor
from searcher.errors import SearcherError
from searcher.search import MAX_EXPORT
from searcher.server import MAX_REQUEST_LINE, SECURITY_HEADERS
from searcher.snapshot import IndexHandle

log = logging.getLogger(__name__)


def templates_dir() -> Path:
    """Templates ship inside the wheel as searcher/templates; in a checkout they are top-level."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


# Static files are linked with their content's digest (?v=...), so they can be cached
# for good: a new version has a new URL.
STATIC_MAX_AGE = 365 * 24 * 3600


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; config INDEX_DIR defaults to $SEARCHER_INDEX or ./index."""
    templates = templates_dir()
    # The static route is added below, once PROVIDE_AUTOMATIC_OPTIONS is set: Flask's own
    # (from static_folder=) is made first and would answer OPTIONS with an empty 200.
    app = Flask(__name__, template_folder=str(templates), static_folder=None)
    app.config.from_mapping(
        INDEX_DIR=os.environ.get("SEARCHER_INDEX", "index"),
        # The tag the front page opens on when the index has it (weekly snapshots copy
        # most of develop, so an unfiltered first page would repeat each spec per tag).
        DEFAULT_TAG="develop",
        # Facet values listed per facet before a "more" link.
        FACET_VALUES_SHOWN=8,
        # Hits an export (/api/search.csv, .ndjson) may hold; past it, a 400.
        MAX_EXPORT=int(os.environ.get("SEARCHER_MAX_EXPORT", MAX_EXPORT)),
        # No implicit OPTIONS answers (an empty 200 text/html): the API answers GET and
        # HEAD, and anything else with its JSON 405 and an Allow header.
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's
    # "/api//search" is not "/api/search": no redirect (an HTML 308) to guess the path.
    app.url_map.merge_slashes = False
    app.extensions["searcher.index"] = IndexHandle(app.config["INDEX_DIR"])
    app.static_folder = str(templates / "static")
    app.add_url_rule("/static/<path:filename>", "static", app.send_static_file)
    _register_assets(app, templates / "static")
    app.extensions["searcher.compress"] = Compressor()

    from searcher import api, web

    app.register_blueprint(web.bp)
    app.register_blueprint(api.bp)
    _register_errors(app)
    app.before_request(_check_length)
    app.after_request(_add_headers)
    return app


def _check_length() -> None:
    # The same limit whichever server runs us (gunicorn enforces it itself, waitress has
    # only a limit on the whole request head), measured as sent: percent-encoded.
    if len(request.full_path) > MAX_REQUEST_LINE:
        abort(414, f"the URL is longer than {MAX_REQUEST_LINE} characters")


def _register_assets(app: Flask, folder: Path) -> None:
    versions = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in folder.iterdir()
        if path.is_file()
    }

    @app.template_global()
    def asset_url(name: str) -> str:
        """The URL of a static file, versioned by its content."""
        return url_for("static", filename=name, v=versions[name])

    app.extensions["searcher.asset_versions"] = versions


def _add_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint == "static" and response.status_code == 200:
        versions = current_app.extensions["searcher.asset_versions"]
        name = (request.view_args or {}).get("filename")
        if request.args.get("v") == versions.get(name):
            response.cache_control.no_cache = None  # Flask's default for static files
            response.cache_control.public = True
            response.cache_control.max_age = STATIC_MAX_AGE
            response.cache_control.immutable = True
    current_app.extensions["searcher.compress"](
        response, request.headers.get("Accept-Encoding"), static=request.endpoint == "static"
    )
    return response


def _wants_json() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _error_response(
    status: int,
    message: str,
    *,
    position: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The one error answer: the JSON error body under /api, the error page elsewhere."""
    if _wants_json():
        error: dict[str, Any] = {"status": status, "message": message}
        if position is not None:
            error["position"] = position
        response = jsonify({"error": error})
    else:
        response = current_app.make_response(
            render_template("error.html", status=status, message=message)
        )
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _register_errors(app: Flask) -> None:
    # One handler for every error: Flask passes HTTPExceptions (404, 405, 414...) to a
    # handler of Exception too.
    @app.errorhandler(Exception)
    def error(exc: Exception) -> Response:
        if isinstance(exc, SearcherError):
            return _error_response(exc.status, exc.message, position=exc.position)
        if isinstance(exc, HTTPException):
            headers: dict[str, str] = {}
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                # The Allow header is what a client needs to correct its request.
                headers["Allow"] = ", ".join(exc.valid_methods)
            return _error_response(exc.code or 500, exc.description or exc.name, headers=headers)
        # A bug, not a user mistake: log the traceback, answer with a short message.
        log.exception("unhandled error on %s", request.full_path[:300])
        return _error_response(500, "internal error; it has been logged")

    @app.teardown_request
    def _release(_exc: BaseException | None) -> None:
        snapshot = g.pop("searcher_snapshot", None)
        if snapshot is not None:
            current_app.extensions["searcher.index"].release(snapshot)
