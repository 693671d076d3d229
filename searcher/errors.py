"""Errors a user can cause, each with the HTTP status it is answered with."""

from __future__ import annotations

from typing import Any


class SearcherError(Exception):
    """A mistake or condition to report to the user in one line, never as a traceback."""

    status = 400

    def __init__(self, message: str, *, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.position = position

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: {"error": {"status", "message"[, "position"]}}."""
        error: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.position is not None:
            error["position"] = self.position
        return {"error": error}


class BadRequest(SearcherError):
    """A request parameter that cannot be used."""


class QueryError(BadRequest):
    """Query text that cannot be parsed; position is the offending character's index."""


class NotFound(SearcherError):
    """No such page or document."""

    status = 404


class IndexUnavailable(SearcherError):
    """There is no index to answer from (yet)."""

    status = 503


class IndexWriteError(IndexUnavailable):
    """The index directory cannot be written (permissions, disk full, a file in the way)."""


class ReindexRunning(SearcherError):
    """Another reindex holds the index lock."""

    status = 409
