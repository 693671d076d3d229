"""What the app answers hostile or odd requests and pages with: security headers on every
response, JSON errors everywhere under /api, no script from a listing's URLs, and a
page whose cost is bounded by a cap on what one request may select."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from tests.conftest import build_index
from tests.pages import page, spec, write

# The headers README promises on every response (written out here, not imported).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

PATHS = [
    "/",
    "/search?q=keras",
    "/search?q=os:",  # a 400 page
    "/spec/develop/zzzzzzzz",  # a 404 page
    "/nowhere",
    "/api/search?q=keras",
    "/api/search?page=x",
    "/api/suggest?q=py",
    "/api/nowhere",
    "/api/health",
]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (path, name)


def test_a_missing_index_503_carries_them_too(client_for, tmp_path):
    response = client_for(tmp_path / "none").get("/api/search")
    assert response.status_code == 503
    assert {name: response.headers.get(name) for name in HEADERS} == HEADERS


class Inline(HTMLParser):
    """Finds what a strict CSP would block: inline scripts, styles and handlers."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[str] = []
        self.assets: list[str] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "style":
            self.found.append("<style>")
        if tag == "script":
            if "src" in a:
                self.assets.append(a["src"])
            else:
                self._in = "script"
        if tag == "link" and a.get("rel") in ("stylesheet", "icon"):
            self.assets.append(a["href"])
        for name in a:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{tag} {name}=")

    def handle_data(self, data):
        if self._in == "script" and data.strip():
            self.found.append("<script> with code")

    def handle_endtag(self, tag):
        self._in = None


@pytest.mark.parametrize("path", ["/search?q=keras", "/search?q=os:", "/spec/develop/zzzzzzzz"])
def test_pages_hold_no_inline_code_and_their_assets_are_cached_for_good(client, path):
    parsed = Inline(client.get(path).get_data(as_text=True))
    assert parsed.found == []
    assert sorted(re.sub(r"\?v=[0-9a-f]{12}$", "", a) for a in parsed.assets) == [
        "/static/favicon.svg",
        "/static/page.js",
        "/static/style.css",
        "/static/suggest.js",
    ]
    for asset in parsed.assets:
        with client.get(asset) as response:
            assert response.status_code == 200
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        # Without the current version in the URL, nothing may be cached for long.
        with client.get(asset.split("?")[0]) as unversioned:
            assert "max-age=31536000" not in unversioned.headers.get("Cache-Control", "")


HOSTILE_TARBALLS = [
    "javascript:alert(document.domain)",
    "  JaVaScRiPt:alert(document.domain)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x.tar.gz",
    "https:alert(1)",
    "/relative/path",
]
SAFE_TARBALLS = [
    "https://binaries.spack.io/v0.22.0/build_cache/x.spack",
    'http://mirror.example/a"onmouseover="alert(1)',
]


@pytest.fixture(scope="module")
def tarball_client(tmp_path_factory):
    from searcher.app import create_app

    root = tmp_path_factory.mktemp("tarballs")
    specs = [
        spec(f"{i:032d}", tarball=url) for i, url in enumerate(HOSTILE_TARBALLS + SAFE_TARBALLS)
    ]
    write(root / "src", "t/pkg/specs.md", page("t", "pkg", specs))
    index = build_index(root / "src", root / "ix")
    app = create_app({"INDEX_DIR": str(index), "TESTING": True})
    yield app.test_client()
    app.extensions["searcher.index"].close()


class Links(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.hrefs: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href", ""))


@pytest.mark.parametrize("number", range(len(HOSTILE_TARBALLS)))
def test_a_tarball_that_is_not_an_http_url_is_shown_as_text_never_linked(tarball_client, number):
    url = HOSTILE_TARBALLS[number]
    response = tarball_client.get(f"/spec/t/{number:032d}")
    html = response.get_data(as_text=True)
    hrefs = Links(html).hrefs
    assert all(url.strip().lower() not in href.lower() for href in hrefs), hrefs
    assert not any(href.lower().lstrip().startswith(("javascript", "data", "vb")) for href in hrefs)
    assert "(not an http(s) link)" in html
    # The API still reports what the listing says: data for scripts, not markup.
    api = tarball_client.get(f"/api/spec/t/{number:032d}").get_json()
    assert api["spec"]["tarball"] == url.strip() or api["spec"]["tarball"] == url


@pytest.mark.parametrize("number", range(len(SAFE_TARBALLS)))
def test_an_http_tarball_is_a_link_escaped_in_its_attribute(tarball_client, number):
    url = SAFE_TARBALLS[number]
    html = tarball_client.get(f"/spec/t/{number + len(HOSTILE_TARBALLS):032d}").get_data(
        as_text=True
    )
    assert url in Links(html).hrefs
    assert 'onmouseover="' not in html


API_ERRORS = [
    ("GET", "/api//search", 404),
    ("GET", "/api", 404),
    ("GET", "/api/", 404),
    ("GET", "/api/nowhere", 404),
    ("OPTIONS", "/api/search", 405),
    ("POST", "/api/search", 405),
    ("DELETE", "/api/health", 405),
    ("GET", "/api/suggest?q=x&limit=%C2%B2", 400),  # superscript two: isdigit() but not int()
    ("GET", "/api/suggest?q=x&limit=%E2%91%A0", 400),  # circled one
    ("GET", "/api/suggest?q=x&limit=" + "9" * 5000, 400),  # past int()'s digit limit
    ("GET", "/api/suggest?q=x&limit=5&limit=6", 400),
    ("GET", "/api/search?page=%D9%A1%D9%A2", 400),  # Arabic-Indic 12: int() takes it
    ("GET", "/api/search?per_page=1_0", 400),
    ("GET", "/api/search?os=" + "x" * 1001, 400),
]


def test_options_on_a_static_file_is_a_405_naming_get_and_head(client):
    response = client.open("/static/style.css", method="OPTIONS")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    with client.get("/static/style.css") as served:  # a file answer: close it
        assert served.status_code == 200


@pytest.mark.parametrize(("method", "path", "status"), API_ERRORS)
def test_every_api_error_is_the_json_error_body(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.content_type == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "message"}
    assert body["error"]["status"] == status and body["error"]["message"]
    if status == 405:
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}


def test_head_is_answered_like_get(client):
    assert client.head("/api/search?q=keras").status_code == 200


def test_selecting_more_than_50_values_is_a_400_naming_the_cap(client):
    fifty = [("os", f"v{i}") for i in range(50)]
    assert client.get("/api/search?" + urlencode(fifty)).status_code == 200
    assert client.get("/search?" + urlencode(fifty)).status_code == 200
    more = [*fifty, ("target", "x")]
    for path in ("/api/search?", "/search?"):
        response = client.get(path + urlencode(more))
        assert response.status_code == 400
        assert "too many facet values selected (51); at most 50 per request" in (
            response.get_data(as_text=True)
        )


def test_a_repeated_expand_costs_what_one_does(client):
    once = client.get("/search?q=keras&expand=os").get_data(as_text=True)
    many = client.get("/search?q=keras&" + "expand=os&" * 700).get_data(as_text=True)

    def without_timing(html: str) -> str:
        return re.sub(r"[\d.]+ ms", "", html)

    assert without_timing(many) == without_timing(once)


def test_a_url_longer_than_the_servers_accept_is_a_414_whichever_server(client):
    """gunicorn refuses request lines over 8,190 bytes itself; waitress lets them through,
    so the app refuses them too, with the same status."""
    response = client.get("/api/search?q=" + "a" * 8200)
    assert response.status_code == 414
    assert response.get_json()["error"]["message"] == "the URL is longer than 8190 characters"
