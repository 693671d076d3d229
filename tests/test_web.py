"""The search page and spec pages, through the app's HTTP surface."""

from __future__ import annotations

import html as html_lib
import re
import shutil
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from searcher.app import create_app
from tests import reference


class Page(HTMLParser):
    """Collects what a test needs from a rendered page: facet links, chips, hits, text."""

    def __init__(self, html: str):
        super().__init__()
        self.facets: dict[str, list[dict]] = {}
        self.chips: list[dict] = []
        self.hits: list[str] = []
        self.links: list[str] = []
        self.ids: dict[str, str] = {}
        self._facet = None
        self._open: dict | None = None
        self._span: str | None = None
        self._capturing: list[list] = []  # [id, depth] of elements whose text we collect
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "section" and "data-facet" in a:
            self._facet = a["data-facet"]
            self.facets[self._facet] = []
        if tag == "a" and self._facet and "data-value" in a:
            self._open = {
                "value": a["data-value"],
                "href": a["href"],
                "selected": a.get("aria-current") == "true",
                "count": "",
            }
            self.facets[self._facet].append(self._open)
        if tag == "span" and self._open is not None:
            self._span = a.get("class")
        if tag == "a" and "chip" in a.get("class", "") and "data-facet" in a:
            self.chips.append(
                {"facet": a["data-facet"], "value": a["data-value"], "href": a["href"]}
            )
        if tag == "a" and "clear-all" in a.get("class", ""):
            self.chips.append({"clear": a["href"]})
        if tag == "tr" and "data-id" in a:
            self.hits.append(a["data-id"])
        for capture in self._capturing:
            capture[1] += 1
        if "id" in a and tag not in ("input", "br", "img", "meta"):
            self._capturing.append([a["id"], 1])
            self.ids.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        if tag == "section":
            self._facet = None
        if tag == "a":
            self._open = None
        if tag == "span":
            self._span = None
        for capture in self._capturing:
            capture[1] -= 1
        self._capturing = [c for c in self._capturing if c[1] > 0]

    def handle_data(self, data):
        if self._open is not None and self._span == "count":
            self._open["count"] += data
        for element_id, _ in self._capturing:
            self.ids[element_id] += data


def page(client, url: str, status: int = 200) -> Page:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return Page(response.get_data(as_text=True))


def counts(parsed: Page, facet: str) -> dict[str, int]:
    # A facet no hit has a value of (dependency, for listing pages) is not shown.
    rows = parsed.facets.get(facet, [])
    return {row["value"]: int(row["count"].replace(",", "")) for row in rows}


def test_front_page_opens_on_develop_explicitly_in_the_url(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.location == "/search?tag=develop"


def test_front_page_without_a_develop_tag_shows_everything(tmp_path, corpus):
    from tests.conftest import cli

    source = tmp_path / "src"
    shutil.copytree(corpus / "v0.22.0", source / "v0.22.0")
    assert cli("reindex", "--source", source, "--index", tmp_path / "ix").exit_code == 0
    app = create_app({"INDEX_DIR": str(tmp_path / "ix")})
    assert app.test_client().get("/").location == "/search"
    app.extensions["searcher.index"].close()


def test_facet_sidebar_shows_the_top_values_with_counts(client, corpus_specs):
    parsed = page(client, "/search?tag=develop")
    expected = reference.facet_rows(corpus_specs, {"tag": ["develop"]}, size=8)
    for facet in reference.FACETS:
        assert counts(parsed, facet) == {r["value"]: r["count"] for r in expected[facet]}, facet
    assert parsed.ids["total"] == f"{sum(s['tag'] == 'develop' for s in corpus_specs):,}"


def test_clicking_values_ors_within_a_facet_and_chips_remove_them(client, corpus_specs):
    parsed = page(client, "/search?tag=develop")
    link = next(r["href"] for r in parsed.facets["os"] if r["value"] == "ubuntu24.04")
    parsed = page(client, link)
    link = next(r["href"] for r in parsed.facets["os"] if r["value"] == "sequoia")
    assert dict(parse_qsl(urlsplit(link).query)) == {"tag": "develop", "os": "sequoia"}
    assert parse_qsl(urlsplit(link).query) == [
        ("tag", "develop"),
        ("os", "ubuntu24.04"),
        ("os", "sequoia"),
    ]
    parsed = page(client, link)
    filters = {"tag": ["develop"], "os": ["ubuntu24.04", "sequoia"]}
    total = sum(reference.matches(s, filters) for s in corpus_specs)
    assert parsed.ids["total"] == f"{total:,}"
    assert [(c.get("facet"), c.get("value")) for c in parsed.chips] == [
        ("tag", "develop"),
        ("os", "ubuntu24.04"),
        ("os", "sequoia"),
        (None, None),
    ]
    removed = page(client, parsed.chips[1]["href"])
    assert [(c.get("facet"), c.get("value")) for c in removed.chips[:-1]] == [
        ("tag", "develop"),
        ("os", "sequoia"),
    ]
    cleared = page(client, parsed.chips[-1]["clear"])
    assert cleared.chips == [] and cleared.ids["total"] == f"{len(corpus_specs):,}"


def test_hits_are_listed_in_display_order_and_paged(client, corpus_specs):
    develop = reference.display_order([s for s in corpus_specs if s["tag"] == "develop"])
    first = page(client, "/search?tag=develop")
    assert first.hits == [f"develop/{s['hash']}" for s in develop[:20]]
    assert "/search?tag=develop&page=2" in first.links
    second = page(client, "/search?tag=develop&page=2")
    assert second.hits == [f"develop/{s['hash']}" for s in develop[20:40]]


def test_search_box_keeps_selected_filters(client):
    html = client.get("/search?q=keras&os=sequoia").get_data(as_text=True)
    assert '<input type="hidden" name="os" value="sequoia">' in html
    assert 'name="q" value="keras"' in html


def test_no_results_suggests_removing_each_filter(client):
    parsed = page(client, "/search?q=keras&os=sequoia&target=ppc64le")
    assert "No specs match “keras” with these filters." in parsed.ids["no-results"]
    assert "/search?q=keras&os=sequoia" in parsed.links
    assert "/search?q=keras&target=ppc64le" in parsed.links


def test_query_error_is_shown_with_a_caret_and_the_text_kept(client):
    response = client.get("/search?" + urlencode({"q": "py-keras colour:red"}))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'name="q" value="py-keras colour:red"' in html
    assert ">py-keras colour:red\n         ^</pre>" in html
    assert "unknown field &#39;colour&#39;" in html


def test_user_text_is_escaped(client):
    html = client.get("/search?" + urlencode({"q": "<script>x</script>"})).get_data(as_text=True)
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_more_link_lists_every_value_of_a_facet(client, corpus_specs):
    parsed = page(client, "/search")
    assert len(parsed.facets["package"]) == 8
    more = next(link for link in parsed.links if "expand=package" in link)
    expanded = page(client, more)
    packages = {s["package"] for s in corpus_specs}
    assert {r["value"] for r in expanded.facets["package"]} == packages


def test_bad_page_parameter_is_a_400_page(client):
    response = client.get("/search?page=0")
    assert response.status_code == 400
    assert "parameter &#39;page&#39; must be between 1 and" in response.get_data(as_text=True)


@pytest.fixture()
def generated_client(generated_index):
    app = create_app({"INDEX_DIR": str(generated_index)})
    yield app.test_client()
    app.extensions["searcher.index"].close()


def test_spec_page_shows_every_field_install_commands_and_other_tags(
    generated_client, generated_source
):
    """Weekly snapshots copy develop's builds, so one hash is listed in several tags."""
    client = generated_client
    specs = reference.read_listing(generated_source)
    by_hash: dict[str, list[dict]] = {}
    for s in specs:
        by_hash.setdefault(s["hash"], []).append(s)
    spec = next(s for s in specs if len(by_hash[s["hash"]]) > 2 and s.get("tarball") is None)
    parsed = page(client, f"/spec/{spec['tag']}/{spec['hash']}")
    assert parsed.ids["full-hash"] == spec["hash"]
    assert parsed.ids["mirror-setup"].splitlines() == [
        f"spack mirror add {spec['tag']} https://binaries.spack.io/{spec['tag']}",
        "spack buildcache keys --install --trust",
    ]
    assert parsed.ids["install-command"] == (
        f"spack install --cache-only {spec['package']}@{spec['versions'][0]} /{spec['hash']}"
    )
    others = sorted(s["tag"] for s in by_hash[spec["hash"]] if s is not spec)
    assert [link for link in parsed.links if link.startswith("/spec/")] == [
        f"/spec/{tag}/{spec['hash']}" for tag in others
    ]
    html = client.get(f"/spec/{spec['tag']}/{spec['hash']}").get_data(as_text=True)
    for field in ("os", "platform", "target", "compiler"):
        assert f"<dd>{spec[field]}</dd>" in html
    for variant in spec["variants"]:
        assert f"<code>{variant}</code>" in html


def test_unknown_spec_page_is_a_404_page(client):
    response = client.get("/spec/develop/zzzzzzzz")
    assert response.status_code == 404
    assert "no spec develop/zzzzzzzz in the index" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/search", "/api/search"])
def test_missing_index_is_a_503_with_what_to_do(tmp_path, path):
    app = create_app({"INDEX_DIR": str(tmp_path / "nothing")})
    response = app.test_client().get(path)
    assert response.status_code == 503
    assert "build one with `searcher reindex --source DIR`" in response.get_data(as_text=True)


def no_results_links(client, params: dict) -> dict[str, str]:
    """The zero-result help of a page: link text -> the text after it (its count)."""
    html = client.get("/search?" + urlencode(params)).get_data(as_text=True)
    help_ = html[html.index('id="no-results"') : html.index("</div>", html.index("no-results"))]
    found = {}
    for text, after in re.findall(r"<a [^>]*>(.*?)</a>\s*(?:\(|→)\s*([\d,]+)", help_):
        found[html_lib.unescape(re.sub(r"<[^>]+>", "", text))] = int(after.replace(",", ""))
    return found


def test_zero_results_say_what_each_removal_would_find(client, corpus_specs):
    jax = [s for s in corpus_specs if s["package"] == "py-jax" and s["tag"] == "develop"]
    newer = [s for s in jax if reference.in_spack_range(s["versions"][0], "0.4.31", None)]
    assert 0 < len(newer) < len(jax)
    found = no_results_links(client, {"q": "py-jax >=0.4.31", "tag": "develop"})
    # The comparison in Spack's syntax, and the search without the word that emptied it.
    assert found["py-jax @0.4.31:"] == len(newer)
    assert found["without “>=0.4.31”"] == len(jax)

    abyss = [s for s in corpus_specs if s["package"] == "abyss"]
    on_sequoia = [s for s in abyss if s["os"] == "sequoia"]
    found = no_results_links(client, {"q": "abyss", "os": "sequoia", "tag": "develop"})
    assert found["without os: sequoia"] == sum(1 for s in abyss if s["tag"] == "develop")
    if on_sequoia:
        assert found["without tag: develop"] == len(on_sequoia)
    else:  # a removal that finds nothing either is not offered
        assert "without tag: develop" not in found


def test_zero_results_hint_a_valued_variant_for_a_boolean_spelling(client, corpus_specs):
    keras = [s for s in corpus_specs if s["package"] == "py-keras"]
    assert not any("+jax" in s["variants"] for s in corpus_specs)
    found = no_results_links(client, {"q": "py-keras +jax"})
    assert found["py-keras backend=jax"] == sum(1 for s in keras if "backend=jax" in s["variants"])
    assert found["without “+jax”"] == len(keras)


def test_the_query_shows_back_as_chips_each_removing_its_part(client, corpus_specs):
    q = "py-keras@3.9: backend=jax os=ubuntu24.04 tag:develop"
    html = client.get("/search?" + urlencode({"q": q, "stack": "root"})).get_data(as_text=True)
    chips = re.findall(
        r'<a class="chip query" href="([^"]+)" data-kind="(\w+)" data-text="([^"]+)"', html
    )
    removed = [
        (kind, html_lib.unescape(text), dict(parse_qsl(urlsplit(html_lib.unescape(href)).query)))
        for href, kind, text in chips
    ]
    # Written out by hand: each chip's link is the query without that part, filters kept.
    assert [(kind, text, link["q"]) for kind, text, link in removed] == [
        ("package", "py-keras", "@3.9: backend=jax os=ubuntu24.04 tag:develop"),
        ("version", "@3.9:", "py-keras backend=jax os=ubuntu24.04 tag:develop"),
        ("variant", "backend=jax", "py-keras@3.9: os=ubuntu24.04 tag:develop"),
        ("arch", "os=ubuntu24.04", "py-keras@3.9: backend=jax tag:develop"),
        ("field", "tag:develop", "py-keras@3.9: backend=jax os=ubuntu24.04"),
    ]
    assert all(link["stack"] == "root" for _, _, link in removed)
    # Following one: the search without backend=jax.
    link = next(link for kind, _, link in removed if kind == "variant")
    body = client.get("/api/search?" + urlencode(link)).get_json()
    assert body["total"] == sum(
        1
        for s in corpus_specs
        if s["package"] == "py-keras"
        and reference.in_spack_range(s["versions"][0], "3.9", None)
        and s["os"] == "ubuntu24.04"
        and s["tag"] == "develop"
        and "root" in s["stacks"]
    )


def test_a_boolean_variant_no_hit_has_offers_the_word(client, corpus_specs):
    """py-jax has no cuda variant; its CUDA builds are in the *-cuda stacks."""

    def parts(value: str) -> set[str]:
        return set(re.split(r"[^a-z0-9._]+", value.lower()))

    jax = [s for s in corpus_specs if s["package"] == "py-jax" and s["tag"] == "develop"]
    assert not any(v in ("+cuda", "~cuda") for s in jax for v in s["variants"])
    with_word = [s for s in jax if any("cuda" in parts(v) for v in [*s["stacks"], *s["variants"]])]
    assert with_word
    found = no_results_links(client, {"q": "py-jax +cuda", "tag": "develop"})
    assert found["py-jax cuda"] == len(with_word)


@pytest.mark.parametrize(
    ("q", "position", "code"),
    [("py-keras\u202e x", 8, "U+202E"), ("a\x00b", 1, "U+0000"), ("zlib\x1b[31m", 4, "U+001B")],
)
def test_control_characters_are_refused_where_they_are(client, q, position, code):
    body = client.get("/api/search?" + urlencode({"q": q})).get_json()
    assert body["error"]["position"] == position and code in body["error"]["message"]
    html = client.get("/search?" + urlencode({"q": q, "os": "ubuntu24.04"}))
    assert html.status_code == 400
    text = html.get_data(as_text=True)
    assert q[position] not in text  # not echoed: shown as U+FFFD
    assert '<input type="hidden" name="os" value="ubuntu24.04">' in text
    response = client.get("/api/search?" + urlencode({"os": "ubuntu\u202e24.04"}))
    assert response.status_code == 400


def test_the_caret_sits_under_the_problem_in_wide_text(client):
    q = "日本語😀 é @@1"
    html = client.get("/search?" + urlencode({"q": q})).get_data(as_text=True)
    shown, caret = re.search(r"<pre [^>]*>(.*)\n( *)\^</pre>", html).groups()
    assert html_lib.unescape(shown) == q
    # Three CJK characters and an emoji take two columns each; "é" one; then " @".
    assert len(caret) == 2 * 4 + 1 + 1 + 1 + 1


def test_a_hash_prefix_of_one_spec_redirects_to_its_page(client, corpus_specs):
    develop = [s for s in corpus_specs if s["tag"] == "develop"]
    spec = next(
        s for s in develop if sum(t["hash"].startswith(s["hash"][:7]) for t in develop) == 1
    )
    response = client.get(f"/spec/develop/{spec['hash'][:7]}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/spec/develop/{spec['hash']}")
    assert client.get("/spec/develop/zzzzzzz").status_code == 404
