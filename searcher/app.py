"""The Flask application factory: configuration, the open index, blueprints, errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from searcher.errors import SearcherError
from searcher.index import IndexHandle

log = logging.getLogger(__name__)


def templates_dir() -> Path:
    """Templates ship inside the wheel as searcher/templates; in a checkout they are top-level."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app; config INDEX_DIR defaults to $SEARCHER_INDEX or ./index."""
    app = Flask(__name__, template_folder=str(templates_dir()), static_folder=None)
    app.config.from_mapping(
        INDEX_DIR=os.environ.get("SEARCHER_INDEX", "index"),
        # The tag the front page opens on when the index has it (weekly snapshots copy
        # most of develop, so an unfiltered first page would repeat each spec per tag).
        DEFAULT_TAG="develop",
        # Facet values listed per facet before a "more" link.
        FACET_VALUES_SHOWN=8,
    )
    if test_config:
        app.config.update(test_config)
    app.json.sort_keys = False
    app.extensions["searcher.index"] = IndexHandle(app.config["INDEX_DIR"])

    from searcher import api, web

    app.register_blueprint(web.bp)
    app.register_blueprint(api.bp)
    _register_errors(app)
    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_errors(app: Flask) -> None:
    @app.errorhandler(SearcherError)
    def searcher_error(exc: SearcherError):
        if _wants_json():
            return jsonify(exc.to_dict()), exc.status
        return render_template("error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if _wants_json():
            return jsonify({"error": {"status": status, "message": message}}), status
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # A bug, not a user mistake: log the traceback, answer with a short message.
        log.exception("unhandled error on %s", request.full_path)
        message = "internal error; it has been logged"
        if _wants_json():
            return jsonify({"error": {"status": 500, "message": message}}), 500
        return render_template("error.html", status=500, message=message), 500

    @app.teardown_request
    def _release(_exc):
        snapshot_cm = g.pop("searcher_snapshot_cm", None)
        if snapshot_cm is not None:
            snapshot_cm.__exit__(None, None, None)
