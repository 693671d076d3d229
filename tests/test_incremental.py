"""Incremental reindex gives exactly what a full rebuild gives; fast counts equal slow ones."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest

from searcher.app import create_app
from tests import reference
from tests.conftest import cli

QUERIES = [
    "",
    "q=py-torch",
    "q=cuda&os=ubuntu22.04&os=ubuntu24.04",
    "tag=develop&stack=root&variant=%2Bmpi",
    "q=linux&target=aarch64",
    "q=py-t*&platform=darwin",
    "q=root&page=3",
]


def api(index: Path, query: str) -> dict:
    app = create_app({"INDEX_DIR": str(index)})
    try:
        body = app.test_client().get(f"/api/search?{query}").get_json()
    finally:
        app.extensions["searcher.index"].close()
    body.pop("took_ms")
    return body


def every_hit(index: Path, query: str = "") -> list[dict]:
    """All hits of a query, page by page, in the order the API lists them."""
    hits, page = [], 1
    while True:
        body = api(index, f"{query}&per_page=100&page={page}")
        hits += body["hits"]
        if len(hits) >= body["total"]:
            return hits
        page += 1


def reindex(source: Path, index: Path, *extra: str):
    result = cli("reindex", "--source", source, "--index", index, *extra)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture()
def source(tmp_path, generated_source) -> Path:
    """A private copy of the generated listing that a test may change."""
    copy = tmp_path / "src"
    shutil.copytree(generated_source, copy)
    return copy


def change_listing(source: Path) -> dict[str, object]:
    """One page rewritten (a spec dropped, one changed), one deleted, a new tag added."""
    pages = sorted(source.glob("develop/*/specs.md"), key=lambda p: -p.stat().st_size)
    changed, deleted = pages[0], pages[1]
    text = changed.read_text()
    details = json.loads(re.search(r"^spec_details: (.*)$", text, re.M).group(1))
    details = details[1:]
    details[0] = {**details[0], "variants": [*details[0]["variants"], "+incremental"]}
    changed.write_text(
        re.sub(
            r"^spec_details: .*$",
            lambda _: "spec_details: " + json.dumps(details),
            text,
            flags=re.M,
        )
    )
    deleted.unlink()
    for page in source.glob("develop-2025-11-16/*/specs.md"):
        target = source / "develop-2099-01-01" / page.parent.name / "specs.md"
        target.parent.mkdir(parents=True)
        target.write_text(
            page.read_text().replace(
                "categories: [package, develop-2025-11-16]",
                "categories: [package, develop-2099-01-01]",
            )
        )
    return {"changed": changed.parent.name, "deleted": deleted.parent.name}


def test_incremental_reindex_equals_a_full_rebuild(tmp_path, source):
    incremental, full = tmp_path / "incremental", tmp_path / "full"
    reindex(source, incremental)
    change_listing(source)
    result = reindex(source, incremental)
    assert re.search(
        r"^kept 3 unchanged tags \(\d+ specs\); the index holds \d+ specs in 5 tags$",
        result.stdout,
        re.M,
    ), result.stdout
    reindex(source, full, "--full")

    assert every_hit(incremental) == every_hit(full)
    for query in QUERIES:
        assert api(incremental, query + "&facet_size=1000") == api(full, query + "&facet_size=1000")


def test_removing_a_whole_tag_equals_a_full_rebuild(tmp_path, source):
    incremental, full = tmp_path / "incremental", tmp_path / "full"
    reindex(source, incremental)
    shutil.rmtree(source / "develop-2025-11-09")
    result = reindex(source, incremental)
    assert "kept 3 unchanged tags" in result.stdout
    reindex(source, full, "--full")
    assert every_hit(incremental) == every_hit(full)
    assert "develop-2025-11-09" not in {h["tag"] for h in every_hit(incremental)}


def test_changed_and_deleted_pages_replace_and_remove_exactly_their_specs(tmp_path, source):
    index = tmp_path / "ix"
    reindex(source, index)
    names = change_listing(source)
    reindex(source, index)
    expected = reference.read_listing(source)
    for package in names.values():
        in_index = every_hit(index, f"package={package}")
        assert sorted(h["id"] for h in in_index) == sorted(
            f"{s['tag']}/{s['hash']}" for s in expected if s["package"] == package
        )
    assert every_hit(index, "variant=%2Bincremental") == [
        reference.hit(s) for s in expected if "+incremental" in s["variants"]
    ]
    assert sorted(h["id"] for h in every_hit(index)) == sorted(
        f"{s['tag']}/{s['hash']}" for s in expected
    )


def test_a_run_with_no_change_keeps_the_served_generation(tmp_path, source):
    index = tmp_path / "ix"
    reindex(source, index)
    before = (index / "CURRENT").read_text()
    result = reindex(source, index)
    assert re.search(
        r"^0 files read, 0 specs indexed, .*\nindex is up to date: no tag changed "
        r"\(\d+ specs in 4 tags\)$",
        result.stdout,
        re.M,
    ), result.stdout
    assert (index / "CURRENT").read_text() == before
    full = reindex(source, index, "--full")
    assert "kept" not in full.stdout and (index / "CURRENT").read_text() != before


def test_problems_of_unchanged_tags_are_still_reported(tmp_path, corpus):
    index = tmp_path / "ix"
    assert reindex(corpus, index).stderr.count("old untagged format") == 3
    again = cli("reindex", "--source", corpus, "--index", index, "--strict")
    assert again.stderr.count("old untagged format") == 3
    assert again.exit_code == 1
    # _legacy holds no specs, so it is not counted among the tags.
    assert "specs in 3 tags)" in again.stdout


def test_one_worker_and_many_give_the_same_index(tmp_path, generated_source):
    reindex(generated_source, tmp_path / "one", "--jobs", "1")
    reindex(generated_source, tmp_path / "four", "--jobs", "4")
    assert every_hit(tmp_path / "one") == every_hit(tmp_path / "four")


@pytest.mark.parametrize("query", [*QUERIES, "q=py-keras", "os=sequoia&q=build_system"])
def test_fast_facet_counts_equal_a_tally_of_every_hit(generated_index, query):
    """The top-k and bincount paths against counting the values of every hit, one by one."""
    body = api(generated_index, f"{query}&facet_size=1000")
    small = api(generated_index, f"{query}&facet_size=3")
    q, filters = body["query"]["q"], body["query"]["filters"]
    tallies: dict[str, list[dict]] = {}
    for facet in reference.FACETS:
        # A facet's counts ignore its own selection (tally the hits without it), except
        # an AND facet's (variants), which count over the hits.
        own = facet in reference.AND_FACETS
        pairs = [("q", q)] + [(f, v) for f, vs in filters.items() if f != facet or own for v in vs]
        base_query = urlencode(pairs)
        if base_query not in tallies:
            tallies[base_query] = every_hit(generated_index, base_query)
        tally = Counter(
            v
            for hit in tallies[base_query]
            for v in reference.values({**hit, "versions": [hit["version"]]}, facet)
        )
        rows = {r["value"]: r["count"] for r in body["facets"][facet] if r["count"]}
        assert rows == dict(tally), facet
        # The top three, where the fast path stops early: count desc, then value (selected
        # values outside the top follow them).
        top = sorted(tally.items(), key=lambda vc: (-vc[1], vc[0]))[:3]
        shown = [(r["value"], r["count"]) for r in small["facets"][facet]]
        assert shown[: len(top)] == top, facet


@pytest.mark.parametrize("others", [pytest.param(0, id="walk"), pytest.param(500, id="column")])
def test_top_values_break_ties_by_name_even_when_the_walk_could_stop(tmp_path, others):
    """aos (5 specs, all +x) ties yos (8 specs, 5 of them +x) at 5: aos must win by name.

    Values are visited biggest first, and the walk may stop only at a value held by fewer
    documents than the current last place: stopping at an equal one would lose aos. With
    500 other specs (~y) the 20 hits are under a twentieth of the index: they are counted
    from the value columns instead, and the tie must break the same way.
    """
    specs = [("big", "+x")] * 10 + [("yos", "+x")] * 5 + [("yos", "~x")] * 3 + [("aos", "+x")] * 5
    specs += [("zos", "~y")] * others
    details = [
        {
            "hash": f"{i:032d}".replace("0", "a"),
            "compiler": "none",
            "versions": ["1.0"],
            "os": os_,
            "platform": "linux",
            "target": "x86_64",
            "variants": [variant],
            "stacks": ["root"],
            "size": "-",
        }
        for i, (os_, variant) in enumerate(specs)
    ]
    page = tmp_path / "src" / "t" / "pkg" / "specs.md"
    page.parent.mkdir(parents=True)
    page.write_text(
        '---\ntitle: "pkg"\nlayout: cache\ncategories: [package, t]\nmeta: {}\n'
        f"spec_details: {json.dumps(details)}\n---\n"
    )
    reindex(tmp_path / "src", tmp_path / "ix")
    body = api(tmp_path / "ix", "variant=%2Bx&facet_size=2")
    assert body["facets"]["os"] == [
        {"value": "big", "count": 10, "selected": False},
        {"value": "aos", "count": 5, "selected": False},
    ]
