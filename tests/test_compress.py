"""gzip of text answers, over both real WSGI servers (waitress: 1 worker; gunicorn: 2)."""

from __future__ import annotations

import gzip
import http.client
import json
import re

import pytest


def fetch(server, path: str, method: str = "GET", **headers: str):
    """(status, headers, raw body) exactly as sent: http.client does not decompress."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def asset_paths(server) -> list[str]:
    _, _, page = fetch(server, "/search")
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', page.decode())


@pytest.fixture(scope="module", params=[1, 2], ids=["waitress", "gunicorn"])
def server(request, corpus_index):
    from tests.conftest import LiveServer

    live = LiveServer(corpus_index, workers=request.param)
    yield live
    live.stop()


def test_static_files_and_json_are_gzipped_for_clients_that_accept_it(server):
    paths = asset_paths(server)
    assert len(paths) >= 3  # the favicon, the stylesheet, the scripts
    spec_path = None
    _, _, body = fetch(server, "/api/search?per_page=1")
    hit = json.loads(body)["hits"][0]
    spec_path = f"/api/spec/{hit['tag']}/{hit['hash']}"
    for path in [*paths, spec_path]:
        status, plain_headers, plain = fetch(server, path)
        assert status == 200
        assert "Content-Encoding" not in plain_headers
        status, headers, packed = fetch(server, path, **{"Accept-Encoding": "gzip, deflate"})
        assert status == 200
        assert "Accept-Encoding" in headers["Vary"]
        if len(plain) < 500:  # too small to be worth it: sent as is
            assert "Content-Encoding" not in headers and packed == plain
            continue
        assert headers["Content-Encoding"] == "gzip", path
        assert int(headers["Content-Length"]) == len(packed) < len(plain)
        assert gzip.decompress(packed) == plain
        if plain_headers.get("ETag"):
            assert headers["ETag"] != plain_headers["ETag"]


def test_the_result_page_shrinks_and_refused_gzip_is_honoured(server):
    status, headers, packed = fetch(server, "/search?q=py", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    page = gzip.decompress(packed)
    assert b"<!doctype html>" in page and len(packed) < len(page) / 3
    for refusal in ("gzip;q=0", "identity", "br;q=1, gzip;q=0.0", "*;q=0"):
        status, headers, body = fetch(server, "/search?q=py", **{"Accept-Encoding": refusal})
        assert status == 200 and "Content-Encoding" not in headers, refusal
        assert body.startswith(b"<!doctype html>")
    status, headers, _ = fetch(server, "/search?q=py", **{"Accept-Encoding": "*"})
    assert headers["Content-Encoding"] == "gzip"


def test_head_and_errors(server):
    status, headers, body = fetch(server, "/search?q=py", "HEAD", **{"Accept-Encoding": "gzip"})
    assert status == 200 and body == b"" and headers["Content-Encoding"] == "gzip"
    # A bad query's 400 page is compressed like any page, and still says what is wrong.
    status, headers, body = fetch(server, "/search?q=%40%40", **{"Accept-Encoding": "gzip"})
    assert status == 400 and headers["Content-Encoding"] == "gzip"
    assert b"Cannot read this query" in gzip.decompress(body)


def test_a_range_request_for_a_static_file_is_not_compressed(server):
    path = next(p for p in asset_paths(server) if "style.css" in p)
    status, headers, body = fetch(server, path, Range="bytes=0-9", **{"Accept-Encoding": "gzip"})
    assert status == 206 and "Content-Encoding" not in headers and len(body) == 10
