"""Exports: every hit of a query as CSV or NDJSON, over HTTP and from the CLI."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode

import pytest

from searcher.app import create_app
from tests.conftest import cli

QUERIES = [
    [("q", "py-keras")],
    [("tag", "develop"), ("os", "ubuntu22.04"), ("sort", "version")],
    [("q", "keras backend=jax"), ("sort", "tag")],
    [],
]


def every_page(client, params) -> list[dict]:
    """All hits of /api/search, page by page (the export must equal them in order)."""
    hits, page = [], 1
    while True:
        body = client.get(
            "/api/search?" + urlencode([*params, ("per_page", "100"), ("page", str(page))])
        ).get_json()
        hits += body["hits"]
        if page * 100 >= body["total"]:
            return hits
        page += 1


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: urlencode(p) or "all")
def test_exports_hold_every_hit_in_the_order_of_the_pages(client, params):
    expected = every_page(client, params)
    response = client.get("/api/search.csv?" + urlencode(params))
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="searcher-export.csv"'
    assert int(response.headers["X-Total-Count"]) == len(expected)
    rows = csv_rows(response.get_data(as_text=True))
    assert [r["id"] for r in rows] == [h["id"] for h in expected]
    for row, hit in zip(rows, expected, strict=True):
        assert row["variants"].split(";") == hit["variants"] or (
            row["variants"] == "" and hit["variants"] == []
        )
        assert row["stacks"] == ";".join(hit["stacks"])
        assert (row["package"], row["version"], row["hash"]) == (
            hit["package"],
            hit["version"],
            hit["hash"],
        )
        assert row["size"] == ("" if hit["size"] is None else str(hit["size"]))
    response = client.get("/api/search.ndjson?" + urlencode(params))
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [line["id"] for line in lines] == [h["id"] for h in expected]
    assert lines[0]["variants"] == expected[0]["variants"]


def test_an_export_of_the_corpus_equals_the_reference(client, corpus_specs):
    rows = csv_rows(client.get("/api/search.csv").get_data(as_text=True))
    assert len(rows) == len(corpus_specs)
    assert sorted(r["id"] for r in rows) == sorted(f"{s['tag']}/{s['hash']}" for s in corpus_specs)
    by_id = {f"{s['tag']}/{s['hash']}": s for s in corpus_specs}
    for row in rows:
        spec = by_id[row["id"]]
        assert row["tarball"] == (spec.get("tarball") or "")
        assert row["os"] == spec["os"] and row["target"] == spec["target"]


def test_past_the_cap_an_export_is_a_400(corpus_index):
    app = create_app({"INDEX_DIR": str(corpus_index), "MAX_EXPORT": 100})
    response = app.test_client().get("/api/search.csv?q=py-keras")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == (
        "the query has 130 hits, more than the 100 an export may hold: narrow it with filters"
    )
    assert app.test_client().get("/api/search.ndjson?q=abyss").status_code == 200
    app.extensions["searcher.index"].close()


def test_the_cli_writes_the_same_export(client, corpus_index):
    api = client.get("/api/search.csv?" + urlencode({"q": "py-jax", "tag": "develop"}))
    result = cli(
        "search", "py-jax", "-f", "tag=develop", "--index", corpus_index, "--format", "csv"
    )
    assert result.exit_code == 0
    assert result.stdout.replace("\r\n", "\n") == api.get_data(as_text=True).replace("\r\n", "\n")
    capped = cli("search", "", "--index", corpus_index, "--format", "ndjson", "--max-export", "5")
    assert capped.exit_code == 5
    assert "more than the 5 an export may hold" in capped.stderr


def test_a_formula_in_a_listing_value_is_not_a_spreadsheet_formula(tmp_path):
    page = tmp_path / "src" / "develop" / "evil" / "specs.md"
    page.parent.mkdir(parents=True)
    page.write_text(
        "---\ntitle: evil\ncategories: [package, develop]\nmeta: x\nspec_details:\n"
        "- hash: abcdefghabcdefghabcdefghabcdefgh\n  versions: ['1.0']\n  compiler: gcc@=11\n"
        "  os: ubuntu24.04\n  platform: linux\n  target: x86_64\n"
        "  variants: ['=HYPERLINK(\"http://x\")', '+cuda']\n  stacks: ['@evil']\n  size: 1\n---\n"
    )
    assert cli("reindex", "--source", tmp_path / "src", "--index", tmp_path / "ix").exit_code == 0
    app = create_app({"INDEX_DIR": str(tmp_path / "ix")})
    (row,) = csv_rows(app.test_client().get("/api/search.csv").get_data(as_text=True))
    # The joined cell starts with '=': written with an apostrophe before it.
    assert row["variants"] == '\'=HYPERLINK("http://x");+cuda'
    assert row["stacks"] == "'@evil"
    app.extensions["searcher.index"].close()


def test_a_real_server_streams_the_export(generated_index, live_server_for):
    import http.client

    server = live_server_for(generated_index, workers=2)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/api/search.ndjson?tag=develop", headers={"Accept-Encoding": "gzip"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"  # sent as it is made
    assert response.getheader("Content-Encoding") is None
    total = int(response.getheader("X-Total-Count"))
    lines = response.read().decode().splitlines()
    connection.close()
    assert len(lines) == total > 500
    assert all(json.loads(line)["tag"] == "develop" for line in lines)


def test_the_results_page_links_both_exports_of_its_query(client):
    import re

    params = {"q": "py-keras", "tag": "develop", "sort": "version"}
    html = client.get("/search?" + urlencode(params)).get_data(as_text=True)
    for kind in ("csv", "ndjson"):
        href = re.search(rf'href="([^"]+)" id="export-{kind}"', html)[1].replace("&amp;", "&")
        assert href == f"/api/search.{kind}?" + urlencode(params)
