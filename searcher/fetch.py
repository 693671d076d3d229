"""Fetching mirror files over http(s): timeouts, retries with backoff, bounded sizes.

One ``Fetcher`` is shared by a reindex's download threads (requests' sessions pool
connections per host; GETs from several threads are safe). Proxies come from the
environment (``HTTPS_PROXY``, ``NO_PROXY``...), as requests reads them. A redirect is
followed only to the same scheme and host: a mirror cannot send us elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from searcher import __version__

CONNECT_SECONDS = 10
READ_SECONDS = 60  # between two bytes, not for the whole file
RETRIES = 3
BACKOFF_SECONDS = 0.5  # 0.5, 1, 2 s between tries
_CHUNK = 1 << 20


class FetchError(Exception):
    """A URL that could not be fetched, with the reason (one line)."""

    def __init__(self, url: str, reason: str, *, status: int | None = None):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.status = url, reason, status


def is_url(location: str) -> bool:
    """Whether a source location is an http(s) URL (else a local path)."""
    return urlsplit(location).scheme in ("http", "https")


class Fetcher:
    """GETs with timeouts, retries (connection errors, 429 and 5xx) and size limits."""

    def __init__(
        self,
        *,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        pool: int = 16,
    ):
        # Settings (README, Configuration): SEARCHER_HTTP_RETRIES, SEARCHER_HTTP_BACKOFF
        # (seconds before the first retry, doubling), SEARCHER_HTTP_TIMEOUT (seconds of
        # silence before a read gives up; connecting gets at most as long).
        retries = _setting("SEARCHER_HTTP_RETRIES", retries, RETRIES, int)
        backoff = _setting("SEARCHER_HTTP_BACKOFF", backoff, BACKOFF_SECONDS, float)
        read = _setting("SEARCHER_HTTP_TIMEOUT", timeout, READ_SECONDS, float)
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset(("GET",)),
            respect_retry_after_header=True,
            raise_on_status=False,
            redirect=0,  # redirects are checked below, one by one
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"searcher/{__version__}"
        self.timeout = (min(CONNECT_SECONDS, read), read)

    def close(self) -> None:
        """Release the pooled connections."""
        self.session.close()

    def get(self, url: str, limit: int) -> bytes:
        """The body at url, at most limit bytes; FetchError otherwise."""
        with self._open(url) as response:
            data = bytearray()
            try:
                for chunk in response.iter_content(_CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise FetchError(url, f"larger than {limit} bytes, not read")
            except requests.RequestException as exc:
                raise FetchError(url, _reason(exc)) from None
            return bytes(data)

    def exists(self, url: str) -> bool:
        """Whether url answers 200 (its body is not read); False for 403 and 404 (what S3
        and static servers say of a missing file); FetchError for anything else."""
        try:
            self._open(url).close()
        except FetchError as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True

    def download(self, url: str, directory: Path, limit: int) -> tuple[Path, str]:
        """Save the body at url in a new file of directory; (its path, its sha256 hex)."""
        directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=directory, prefix=".download-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, self._open(url) as response:
                try:
                    for chunk in response.iter_content(_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise FetchError(url, f"larger than {limit} bytes, not read")
                        digest.update(chunk)
                        out.write(chunk)
                except requests.RequestException as exc:
                    raise FetchError(url, _reason(exc)) from None
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name), digest.hexdigest()

    def _open(self, url: str) -> requests.Response:
        origin = urlsplit(url)[:2]
        for _ in range(5):
            try:
                response = self.session.get(
                    url, timeout=self.timeout, stream=True, allow_redirects=False
                )
            except requests.RequestException as exc:
                raise FetchError(url, _reason(exc)) from None
            if response.is_redirect:
                target = urljoin(url, response.headers.get("Location", ""))
                response.close()
                if urlsplit(target)[:2] != origin:
                    raise FetchError(url, f"redirected to {target}, another host: not followed")
                url = target
                continue
            if response.status_code != 200:
                response.close()
                raise FetchError(
                    url,
                    f"HTTP {response.status_code} {response.reason}",
                    status=response.status_code,
                )
            return response
        raise FetchError(url, "more than 5 redirects")


def _setting(name: str, given: Any, default: Any, kind: type) -> Any:
    if given is not None:
        return given
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}={text!r} must not be negative")
    return value


def _reason(exc: requests.RequestException) -> str:
    """One short line for a failed request (requests' own messages run to 300 characters
    of nested reprs)."""
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the last one
    if isinstance(exc, requests.Timeout) or isinstance(cause, (ReadTimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(cause, NewConnectionError):
        return "cannot connect (refused, or nothing listens there)"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({type(cause or exc).__name__})"
    return f"{type(exc).__name__}"
