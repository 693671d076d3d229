"""Stats, the package timeline and compare, through /api and the pages, over the real
pages (tests/data/corpus) and Spack's v8 test mirror; expected values from tests/reference.py
(the pages read with plain json) or written out by hand."""

from __future__ import annotations

import html
from collections import Counter, defaultdict

import pytest

from tests import reference
from tests.test_mirrors import LIBDWARF_CORE2, LIBDWARF_M1, V8_DOCS, build

STAT_FACETS = ("os", "target", "stack", "compiler", "platform")
TAGS = ("develop", "develop-2025-03-23", "v0.22.0")


def counts_of(specs: list[dict], facet: str) -> dict[str, int]:
    return dict(Counter(v for s in specs for v in reference.values(s, facet)))


# -- /api/stats --------------------------------------------------------------------------


@pytest.mark.parametrize("tag", [None, *TAGS])
def test_stats_equal_the_listing_and_the_facet_counts(client, corpus_specs, tag):
    mine = [s for s in corpus_specs if tag is None or s["tag"] == tag]
    response = client.get("/api/stats", query_string={"tag": tag} if tag else {})
    assert response.status_code == 200
    stats = response.get_json()
    assert stats["tag"] == tag
    assert stats["specs"] == len(mine)
    assert stats["packages"] == len({s["package"] for s in mine})
    search = client.get(
        "/api/search", query_string={"facet_size": 1000, **({"tag": tag} if tag else {})}
    ).get_json()
    for facet in STAT_FACETS:
        assert stats[facet] == counts_of(mine, facet), facet
        # The same numbers as the search's facet, in the same order (most first).
        assert list(stats[facet].items()) == [
            (row["value"], row["count"]) for row in search["facets"][facet]
        ], facet
    # The real pages list no sizes ("-"): the largest packages are those with most specs.
    assert stats["bytes"] == 0 and stats["sized"] == 0
    by_package = Counter(s["package"] for s in mine)
    expected = sorted(by_package.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
    assert [(p["package"], p["specs"]) for p in stats["largest"]] == expected


def test_stats_list_every_tag_with_its_date(client, corpus_specs):
    rows = client.get("/api/stats").get_json()["tags"]
    assert {r["tag"] for r in rows} == set(TAGS)
    for row in rows:
        mine = [s for s in corpus_specs if s["tag"] == row["tag"]]
        assert row["specs"] == len(mine)
        assert row["packages"] == len({s["package"] for s in mine})
    dates = {r["tag"]: r["date"] for r in rows}
    assert dates == {"develop": None, "develop-2025-03-23": "2025-03-23", "v0.22.0": None}


def test_sizes_are_summed_where_the_pages_list_them(tmp_path, client_for):
    # Pages of the current format with sizes: two builds of one package, one without.
    page = tmp_path / "src" / "develop-2025-01-05" / "zlib" / "specs.md"
    page.parent.mkdir(parents=True)
    entry = (
        '{{"hash": "{h}", "compiler": "gcc@=11.4.0", "versions": ["1.3"], "os": "ubuntu22.04",'
        ' "platform": "linux", "target": "x86_64_v3", "variants": [], "stacks": ["root"],'
        ' "size": "{size}"}}'
    )
    details = ", ".join(
        entry.format(h=h * 32, size=size)
        for h, size in (("a", "1000"), ("b", "2500"), ("c", "-"), ("d", str(2**62)))
    )
    page.write_text(
        '---\ntitle: "zlib"\ncategories: [package, develop-2025-01-05]\nmeta: x\n'
        f"spec_details: [{details}]\n---\n"
    )
    index = tmp_path / "index"
    assert build(tmp_path / "src", index).exit_code == 0
    stats = client_for(index).get("/api/stats").get_json()
    # A size past 1 TiB is no package: counted as unknown, never summed into a wrap.
    assert (stats["bytes"], stats["sized"], stats["specs"]) == (3500, 2, 4)
    assert stats["largest"] == [{"package": "zlib", "specs": 4, "bytes": 3500}]
    assert stats["tags"][0]["date"] == "2025-01-05"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tag": "nosuchtag"}, "no tag 'nosuchtag'"),
        ({"tags": "develop"}, "unknown parameter 'tags'"),
        ("tag=develop&tag=v0.22.0", "given more than once"),
    ],
)
def test_bad_stats_parameters_are_400s(client, query, message):
    for path in ("/api/stats", "/stats"):
        response = client.get(path, query_string=query)
        assert response.status_code == 400, path
        assert message in html.unescape(response.get_data(as_text=True)), path


# -- /api/package/<name> ---------------------------------------------------------------------


def test_the_package_grid_equals_per_tag_searches(client, corpus_specs):
    for package in ("acl", "attr", "py-jax"):
        body = client.get(f"/api/package/{package}").get_json()
        mine = [s for s in corpus_specs if s["package"] == package]
        assert body["package"] == package and body["specs"] == len(mine)
        per_tag: dict[str, Counter] = defaultdict(Counter)
        for s in mine:
            per_tag[s["tag"]][s["versions"][0]] += 1
        assert {row["tag"]: row["versions"] for row in body["tags"]} == per_tag
        for row in body["tags"]:
            assert row["specs"] == sum(row["versions"].values())
            search = client.get(
                "/api/search", query_string={"package": package, "tag": row["tag"]}
            ).get_json()
            assert search["total"] == row["specs"]
            versions = {f["value"]: f["count"] for f in search["facets"]["version"]}
            assert versions == row["versions"]
        # Versions newest first (Spack's order), in the grid's columns and in each row.
        for older, newer in zip(body["versions"][1:], body["versions"], strict=False):
            assert reference.compare_versions(older, newer) < 0


def test_the_package_timeline_runs_over_every_snapshot_in_date_order(client, corpus_specs):
    body = client.get("/api/package/py-jax").get_json()
    held = Counter(s["tag"] for s in corpus_specs if s["package"] == "py-jax")
    # Snapshots by date, then develop (now); releases apart; zero where it is absent.
    assert body["timeline"] == [
        {"tag": "develop-2025-03-23", "date": "2025-03-23", "specs": held["develop-2025-03-23"]},
        {"tag": "develop", "date": None, "specs": held["develop"]},
    ]
    assert body["releases"] == [{"tag": "v0.22.0", "specs": held["v0.22.0"]}]
    assert held["develop-2025-03-23"] == 0 and held["develop"] > 0


def test_an_unknown_package_is_a_404_that_suggests_names(client):
    response = client.get("/api/package/py-jaxx")
    assert response.status_code == 404
    assert "did you mean py-jax" in response.get_json()["error"]["message"]
    assert client.get("/package/py-jaxx").status_code == 404
    assert client.get("/api/package/acl?x=1").status_code == 400


# -- /api/compare ----------------------------------------------------------------------------


def variant_names(spec: dict) -> dict[str, str]:
    """Each variant name a spec sets and its value(s): several values of one name
    (a listing may repeat a name) are shown together, sorted, comma-separated."""
    found: dict[str, list[str]] = {}
    for v in spec["variants"]:
        name = v[1:] if v[:1] in "+~" else v.split("=")[0]
        found.setdefault(name, []).append(v)
    return {name: ", ".join(sorted(values)) for name, values in found.items()}


def expected_differences(a: dict, b: dict, tags_of: dict[str, list[str]]) -> dict:
    """The fields that differ between two raw specs, worked out from the pages."""
    ha, hb = reference.hit(a), reference.hit(b)
    found = {}
    for field in ("package", "version", "tag", "hash", "compiler", "os", "platform", "target"):
        if ha[field] != hb[field]:
            found[field] = (ha[field], hb[field])
    va, vb = variant_names(a), variant_names(b)
    for name in va.keys() | vb.keys():
        if va.get(name) != vb.get(name):
            found[f"variant {name}"] = (va.get(name), vb.get(name))
    if sorted(a["stacks"]) != sorted(b["stacks"]):
        found["stacks"] = (sorted(a["stacks"]), sorted(b["stacks"]))
    if set(tags_of[a["hash"]]) != set(tags_of[b["hash"]]):
        found["tags"] = (tags_of[a["hash"]], tags_of[b["hash"]])
    if ha["size"] != hb["size"]:
        found["size"] = (ha["size"], hb["size"])
    return found


def test_compare_lists_exactly_the_differing_fields(client, corpus_specs):
    tags_of = defaultdict(list)
    for s in corpus_specs:
        tags_of[s["hash"]].append(s["tag"])
    acl = [s for s in corpus_specs if s["package"] == "acl"]
    jax = [s for s in corpus_specs if s["package"] == "py-jax"][:3]
    pairs = [(x, y) for x in acl + jax for y in acl + jax if x is not y][:40]
    assert len(pairs) == 40
    for a, b in pairs:
        ids = {"a": f"{a['tag']}/{a['hash']}", "b": f"{b['tag']}/{b['hash']}"}
        body = client.get("/api/compare", query_string=ids).get_json()
        got = {d["field"]: (d["a"], d["b"]) for d in body["differences"]}
        expected = expected_differences(a, b, tags_of)
        assert got.keys() == expected.keys(), ids
        for field, (left, right) in expected.items():
            if field == "tags":  # the same tags, in the tag facet's order
                assert (set(got[field][0]), set(got[field][1])) == (set(left), set(right))
            else:
                assert got[field] == (left, right), field
        assert body["a"]["id"] == ids["a"] and body["b"]["id"] == ids["b"]
        assert set(body["a"]["tags"]) == set(tags_of[a["hash"]])


def test_compare_a_spec_with_itself_finds_no_difference(client, corpus_specs):
    spec = corpus_specs[0]
    doc = f"{spec['tag']}/{spec['hash']}"
    body = client.get("/api/compare", query_string={"a": doc, "b": doc}).get_json()
    assert body["differences"] == []
    assert "version" in body["same"] and "hash" in body["same"]


def test_compare_tells_dependencies_apart(tmp_path_factory, client_for):
    from tests.test_mirrors import V8

    index = tmp_path_factory.mktemp("v8-compare") / "ix"
    assert build(V8, index).exit_code == 0
    tag = "spack-test-db-v8"
    body = (
        client_for(index)
        .get(
            "/api/compare",
            query_string={"a": f"{tag}/{LIBDWARF_M1}", "b": f"{tag}/{LIBDWARF_CORE2}"},
        )
        .get_json()
    )
    got = {d["field"]: (d["a"], d["b"]) for d in body["differences"]}

    def deps(hash_):
        return {d["name"]: f"{d['version']}/{d['hash']}" for d in V8_DOCS[hash_][4]}

    left, right = deps(LIBDWARF_M1), deps(LIBDWARF_CORE2)
    expected = {
        "hash": (LIBDWARF_M1, LIBDWARF_CORE2),
        "target": (V8_DOCS[LIBDWARF_M1][2], V8_DOCS[LIBDWARF_CORE2][2]),
        "compiler": (V8_DOCS[LIBDWARF_M1][3], V8_DOCS[LIBDWARF_CORE2][3]),
        **{
            f"dependency {name}": (left.get(name), right.get(name))
            for name in left.keys() | right.keys()
            if left.get(name) != right.get(name)
        },
    }
    assert got == expected
    # libelf differs by hash only; compiler-wrapper is only on the left.
    assert got["dependency compiler-wrapper"][1] is None


def test_what_changed_for_a_package_between_two_tags(client, corpus_specs):
    for package in ("acl", "attr", "py-jax"):
        for a, b in (("develop-2025-03-23", "develop"), ("develop", "v0.22.0")):
            hashes = {
                tag: {
                    s["hash"] for s in corpus_specs if s["package"] == package and s["tag"] == tag
                }
                for tag in (a, b)
            }
            query = {"package": package, "a": a, "b": b}
            body = client.get("/api/compare", query_string=query).get_json()
            assert {s["hash"] for s in body["only_a"]} == hashes[a] - hashes[b]
            assert {s["hash"] for s in body["only_b"]} == hashes[b] - hashes[a]
            assert body["only_a_total"] == len(hashes[a] - hashes[b])
            assert body["both"] == len(hashes[a] & hashes[b])
            assert all(s["tag"] == a for s in body["only_a"])


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({}, 400, "parameter 'a' is missing"),
        ({"a": "develop/x"}, 400, "parameter 'b' is missing"),
        ({"a": "develop", "b": "develop/x"}, 400, "must be <tag>/<hash>"),
        ({"a": "develop/nosuchhash", "b": "develop/x"}, 404, "parameter 'a': no spec"),
        ({"a": "develop/x", "b": "develop/y", "c": "1"}, 400, "unknown parameter 'c'"),
        ({"package": "acl", "a": "develop", "b": "nosuchtag"}, 400, "no tag 'nosuchtag'"),
        ({"package": "nosuch", "a": "develop", "b": "develop"}, 404, "no package 'nosuch'"),
    ],
)
def test_bad_compare_parameters_say_what_is_wrong(client, query, status, message):
    response = client.get("/api/compare", query_string=query)
    assert response.status_code == status
    assert message in response.get_json()["error"]["message"]


# -- the pages -----------------------------------------------------------------------------------


def test_the_pages_link_every_bar_and_cell_into_the_search(client, corpus_specs):
    page = html.unescape(client.get("/stats?tag=develop").get_data(as_text=True))
    mine = [s for s in corpus_specs if s["tag"] == "develop"]
    for os_name, n in counts_of(mine, "os").items():
        assert f'aria-label="{os_name}: {n:,} spec{"s" if n != 1 else ""}"' in page
        assert f"/search?tag=develop&os={os_name}" in page
    page = html.unescape(client.get("/package/acl").get_data(as_text=True))
    assert "/search?package=acl&tag=develop&version=2.2.53" in page
    results = client.get("/search", query_string={"q": "acl"}).get_data(as_text=True)
    assert 'href="/package/acl"' in results and "/compare?a=" in results


def test_compare_with_only_a_offers_the_other_builds(client, corpus_specs):
    acl = [s for s in corpus_specs if s["package"] == "acl"]
    first = acl[0]
    page = client.get("/compare", query_string={"a": f"{first['tag']}/{first['hash']}"}).get_data(
        as_text=True
    )
    page = html.unescape(page)
    for other in acl[1:]:
        assert f"/compare?a={first['tag']}/{first['hash']}&b={other['tag']}/{other['hash']}" in page


def test_compare_takes_the_hash_prefix_a_result_shows(client, corpus_specs):
    a, b = [s for s in corpus_specs if s["package"] == "acl"][:2]
    short = {"a": f"{a['tag']}/{a['hash'][:7].upper()}", "b": f"{b['tag']}/{b['hash'][:7]}"}
    body = client.get("/api/compare", query_string=short).get_json()
    assert (body["a"]["hash"], body["b"]["hash"]) == (a["hash"], b["hash"])
    page = client.get("/compare", query_string={"a": short["a"]})
    assert page.status_code == 200 and a["hash"][:7] in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/stats", {"tag": "dev\x00elop"}, "control character"),
        ("/api/stats", {"tag": "dev\x00elop"}, "control character"),
        ("/package/a%00b", {}, "control character"),
        ("/compare", {"a": "a\r\nb/c"}, "control character"),
        ("/compare", {"a": "develop"}, "must be <tag>/<hash>"),
        ("/compare", [("a", "develop/x"), ("a", "develop/y")], "given more than once"),
        ("/compare", {"a": "develop", "b": "v0.22.0", "package": " "}, "'package' is empty"),
    ],
)
def test_the_pages_refuse_what_the_api_refuses(client, path, query, message):
    response = client.get(path, query_string=query)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert message in html.unescape(response.get_data(as_text=True))
