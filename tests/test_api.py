"""The /api/search contract over the real corpus, whole bodies against the reference model."""

from __future__ import annotations

import os
from urllib.parse import urlencode

import pytest

from tests import reference


def get_json(client, params: list[tuple[str, str]]):
    response = client.get("/api/search?" + urlencode(params))
    return response.status_code, response.get_json()


def expected_body(specs, q: str, filters: dict, hits: list[dict], page=1, per_page=20, size=20):
    selected = [s for s in specs if reference.matches(s, filters)]
    return {
        "query": {
            "q": q,
            "filters": filters,
            "page": page,
            "per_page": per_page,
            "sort": "relevance",
            "runs_on": None,
        },
        "total": len(selected),
        "hits": [reference.hit(s) for s in hits],
        "facets": reference.facet_rows(specs, filters, size),
        "suggestions": [],
        "notes": [],
    }


def without_timing(body: dict) -> dict:
    assert isinstance(body["took_ms"], float) and body["took_ms"] >= 0
    return {k: v for k, v in body.items() if k != "took_ms"}


def test_match_all_returns_every_spec_with_all_facet_counts(client, corpus_specs):
    status, body = get_json(client, [("per_page", "100")])
    assert status == 200
    ordered = reference.display_order(corpus_specs)
    assert without_timing(body) == expected_body(corpus_specs, "", {}, ordered[:100], per_page=100)


@pytest.mark.parametrize(
    "filters",
    [
        {"package": ["acl"]},
        {"os": ["ubuntu24.04"], "stack": ["e4s", "root"]},
        {"tag": ["develop", "v0.22.0"], "compiler": ["gcc@7.5.0"]},
        {"platform": ["darwin"], "variant": ["backend=torch"]},
        {"variant": ["backend=jax", "build_system=python_pip"]},
        {"target": ["aarch64", "neoverse_v2"], "stack": ["ml-linux-aarch64-cuda"]},
        {"version": ["3.9.2"]},
    ],
    ids=lambda f: "&".join(f"{k}={','.join(v)}" for k, v in f.items()),
)
def test_filters_or_within_a_facet_and_across_facets_variants_and(client, corpus_specs, filters):
    params = [(facet, v) for facet, values in filters.items() for v in values]
    status, body = get_json(client, [*params, ("per_page", "100")])
    assert status == 200
    selected = reference.display_order([s for s in corpus_specs if reference.matches(s, filters)])
    assert body["total"] > 0
    assert without_timing(body) == expected_body(
        corpus_specs, "", filters, selected[:100], per_page=100
    )


def test_hash_prefix_finds_exactly_one_spec_whole_body(client, corpus_specs):
    spec = next(s for s in corpus_specs if s.get("tarball"))
    prefix = spec["hash"][:7]
    same_prefix = [s for s in corpus_specs if s["hash"].startswith(prefix)]
    status, body = get_json(client, [("q", prefix)])
    assert status == 200
    assert without_timing(body) == {
        "query": {
            "q": prefix,
            "filters": {},
            "page": 1,
            "per_page": 20,
            "sort": "relevance",
            "runs_on": None,
        },
        "total": len(same_prefix),
        "hits": [reference.hit(s) for s in same_prefix],
        "facets": {
            facet: [
                {"value": v, "count": 1, "selected": False}
                for v in sorted(reference.values(spec, facet))
            ]
            for facet in reference.FACETS
        },
        "suggestions": [],
        "notes": [],
    }


@pytest.mark.parametrize("query", ["keras", "py-keras", "py-ker*", "KERAS"])
def test_package_found_by_word_full_name_and_prefix(client, corpus_specs, query):
    expected = sorted(s["hash"] for s in corpus_specs if s["package"] == "py-keras")
    status, body = get_json(client, [("q", query), ("per_page", "100")])
    assert status == 200
    hashes = sorted(h["hash"] for h in body["hits"])
    assert body["total"] == len(expected) == 130
    # 130 hits over two pages: the second page holds the rest, with no overlap.
    _, second = get_json(client, [("q", query), ("per_page", "100"), ("page", "2")])
    assert sorted(hashes + [h["hash"] for h in second["hits"]]) == expected


def test_query_narrows_what_facets_count(client, corpus_specs):
    filters = {"os": ["ubuntu24.04"]}
    status, body = get_json(client, [("q", "keras"), ("os", "ubuntu24.04"), ("per_page", "5")])
    assert status == 200
    keras = [s for s in corpus_specs if s["package"] == "py-keras"]
    assert body["total"] == sum(reference.matches(s, filters) for s in keras)
    assert body["facets"] == reference.facet_rows(keras, filters)


def test_facet_counts_ignore_their_own_selection(client, corpus_specs):
    """Selecting one OS still shows every other OS with the count it would add."""
    _, body = get_json(client, [("os", "ubuntu24.04")])
    all_oses = {s["os"] for s in corpus_specs}
    assert {row["value"] for row in body["facets"]["os"]} == all_oses
    row = next(r for r in body["facets"]["os"] if r["value"] == "ubuntu24.04")
    assert row["selected"] is True and row["count"] == body["total"]


def test_selected_value_with_no_matches_is_still_listed(client):
    status, body = get_json(client, [("os", "no-such-os")])
    assert status == 200 and body["total"] == 0 and body["hits"] == []
    assert body["facets"]["os"][-1] == {"value": "no-such-os", "count": 0, "selected": True}


def test_pages_partition_the_results(client, corpus_specs):
    seen = []
    for page in range(1, 9):
        _, body = get_json(client, [("per_page", "100"), ("page", str(page))])
        seen += [h["id"] for h in body["hits"]]
    assert len(seen) == len(set(seen)) == len(corpus_specs)


def test_page_past_the_end_is_empty_not_an_error(client, corpus_specs):
    status, body = get_json(client, [("page", "500")])
    assert status == 200 and body["hits"] == [] and body["total"] == len(corpus_specs)


def test_facet_size_limits_values_per_facet(client, corpus_specs):
    _, body = get_json(client, [("facet_size", "3")])
    assert body["facets"] == reference.facet_rows(corpus_specs, {}, size=3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("colour", "red")], "unknown parameter 'colour'"),
        ([("page", "0")], "parameter 'page' must be between 1 and"),
        ([("page", "two")], "parameter 'page' must be a whole number, got 'two'"),
        ([("page", "+5")], "parameter 'page' must be a whole number, got '+5'"),
        ([("per_page", " 1")], "parameter 'per_page' must be a whole number, got ' 1'"),
        ([("facet_size", "1 ")], "parameter 'facet_size' must be a whole number, got '1 '"),
        ([("per_page", "101")], "parameter 'per_page' must be between 1 and 100, got 101"),
        ([("per_page", "0")], "parameter 'per_page' must be between 1 and 100, got 0"),
        ([("facet_size", "-1")], "parameter 'facet_size' must be between 1 and 1000"),
        ([("page", "1"), ("page", "2")], "parameter 'page' given more than once"),
        ([("q", 'py-keras "tensor')], "unterminated quote"),
        ([("q", "colour:red")], "unknown field 'colour'"),
        ([("q", "os:")], "missing value after 'os:'"),
        ([("q", "py*keras")], "'*' may only end a word"),
        ([("q", "+")], "'+' must be followed by a variant name"),
        ([("q", "x" * 1001)], "query is too long"),
    ],
)
def test_bad_parameters_get_400_with_a_message(client, params, message):
    status, body = get_json(client, params)
    assert status == 400
    assert body["error"]["status"] == 400
    assert message in body["error"]["message"]
    assert set(body["error"]) <= {"status", "message", "position"}


@pytest.mark.parametrize(
    ("q", "position"),
    [('keras "tens', 6), ("keras os:", 9), ("a colour:red", 2), ("py*k", 2)],
)
def test_query_errors_point_at_the_offending_character(client, q, position):
    status, body = get_json(client, [("q", q)])
    assert status == 400
    assert body["error"]["position"] == position


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404


def test_spec_endpoint_gives_the_spec_install_commands_and_other_tags(client, corpus_specs):
    by_hash: dict[str, list[dict]] = {}
    for spec in corpus_specs:
        by_hash.setdefault(spec["hash"], []).append(spec)
    spec = corpus_specs[0]
    response = client.get(f"/api/spec/{spec['tag']}/{spec['hash']}")
    assert response.status_code == 200
    assert response.get_json() == {
        "spec": reference.hit(spec),
        "other_tags": sorted(s["tag"] for s in by_hash[spec["hash"]] if s is not spec),
        "install": [
            f"spack mirror add {spec['tag']} https://binaries.spack.io/{spec['tag']}",
            "spack buildcache keys --install --trust",
            f"spack install --cache-only {spec['package']}@{spec['versions'][0]} /{spec['hash']}",
        ],
        # Listing pages record no dependencies (tests/test_mirrors.py covers mirrors).
        "tree": [],
        "used_by": [],
        "used_by_total": 0,
    }


def test_spec_endpoint_404s_for_an_unknown_spec(client):
    response = client.get("/api/spec/develop/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert response.status_code == 404
    assert response.get_json() == {
        "error": {
            "status": 404,
            "message": "no spec develop/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa in the index",
        }
    }


def test_health_reports_the_served_generation(client, corpus_specs):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok"
    assert body["documents"] == len(corpus_specs)
    assert body["tags"] == sorted({s["tag"] for s in corpus_specs})
    assert body["generation"].startswith("gen-")
    assert body["process"] == os.getpid()  # the test client answers in this process


def test_selected_variants_and_together(client, corpus_specs):
    """Two variants mean a build with both (issue 10), not either one."""
    wanted = {"backend=jax", "build_system=python_pip"}
    both = [s for s in corpus_specs if wanted <= set(s["variants"])]
    either = [s for s in corpus_specs if wanted & set(s["variants"])]
    assert 0 < len(both) < len(either)
    status, body = get_json(client, [("variant", v) for v in sorted(wanted)])
    assert status == 200
    assert body["total"] == len(both)
    rows = {row["value"]: row for row in body["facets"]["variant"]}
    # An AND facet counts over the hits: each selected value holds all of them.
    assert rows["backend=jax"] == {"value": "backend=jax", "count": len(both), "selected": True}
