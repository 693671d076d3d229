"""Spack's version order and ranges: literal tables written from Spack's rules, checked
through the API (sort=version and @ranges) and against the reference model."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searcher.app import create_app
from searcher.versions import parse_version_list
from tests import reference
from tests.conftest import cli

SHA = "c0ffee" * 6 + "c0ff"  # a 40-hex git commit

# Ascending, as Spack orders them: numbers as numbers, words below numbers, alpha < beta <
# rc < the release, the infinity words above every number, a git version right after the
# version it is assigned (then by ref), one with no version assigned above all.
ORDER = [
    "0.9",
    "1.0alpha",
    "1.0alpha2",
    "1.0beta1",
    "1.0rc1",
    "1.0rc2",
    "1.0",
    f"{SHA}=1.0",
    "git.v1.0-fix=1.0",
    "1.0.1",
    "1.2",
    "1.2a",
    "1.2.0",
    "1.2.10",
    "1.3rc1",
    "1.3",
    "1.10",
    "2",
    "2.0",
    "10",
    "stable",
    "trunk",
    "head",
    "master",
    "main",
    "develop",
    f"git.{SHA}=develop",
    "git.feature",
]

# What each @ query holds (Spack: lo:hi is [lo, the version after hi); @=v is v alone, and
# never a git version assigned v), written out by hand.
RANGES = {
    "@1.0": ["1.0", f"{SHA}=1.0", "git.v1.0-fix=1.0", "1.0.1"],
    "@=1.0": ["1.0"],
    "@:1.0": ORDER[: ORDER.index("1.0.1") + 1],
    "@1.2": ["1.2", "1.2a", "1.2.0", "1.2.10", "1.3rc1"],
    "@1.2:1.3": ["1.2", "1.2a", "1.2.0", "1.2.10", "1.3rc1", "1.3"],
    "@1.0rc1:1.0rc2": ["1.0rc1", "1.0rc2"],
    "@2:": ORDER[ORDER.index("2") : ORDER.index("git.feature")],
    "@10:": ORDER[ORDER.index("10") : ORDER.index("git.feature")],
    "@develop": ["develop", f"git.{SHA}=develop"],
    "@=develop": ["develop"],
    "@:": ORDER,
    "@0.9, 2": ["0.9", "2", "2.0"],
    "@0.9 ,1.2a": ["0.9", "1.2a"],
    "@=1.0, 2": ["1.0", "2", "2.0"],
    "@1.2a": ["1.2a"],
    # A git version asked for holds that ref (and its assigned version, when given).
    "@git.v1.0-fix": ["git.v1.0-fix=1.0"],
    f"@{SHA}=1.0": [f"{SHA}=1.0"],
    "@git.feature": ["git.feature"],
    "@git.feature=1.0": [],
}


@pytest.fixture(scope="module")
def versions_client(tmp_path_factory):
    """An index of one package built at every version of ORDER (listed shuffled)."""
    root = tmp_path_factory.mktemp("versions")
    listed = ORDER[1::2] + ORDER[::2]
    details = [
        {
            "hash": f"{i:08d}".replace("0", "q") + "a" * 24,
            "compiler": "none",
            "versions": [v],
            "os": "ubuntu24.04",
            "platform": "linux",
            "target": "x86_64",
            "variants": [],
            "stacks": ["root"],
            "size": "-",
        }
        for i, v in enumerate(listed)
    ]
    page = root / "src" / "t" / "pkg" / "specs.md"
    page.parent.mkdir(parents=True)
    page.write_text(
        '---\ntitle: "pkg"\nlayout: cache\ncategories: [package, t]\nmeta: {}\n'
        f"spec_details: {json.dumps(details)}\n---\n"
    )
    result = cli("reindex", "--source", root / "src", "--index", root / "ix")
    assert result.exit_code == 0, result.output
    app = create_app({"INDEX_DIR": str(root / "ix"), "TESTING": True})
    yield app.test_client()
    app.extensions["searcher.index"].close()


def versions_of(client, **params) -> list[str]:
    body = client.get("/api/search?" + urlencode({**params, "per_page": 100}))
    assert body.status_code == 200, body.get_json()
    return [hit["version"] for hit in body.get_json()["hits"]]


def test_sort_version_lists_newest_first_in_spacks_order(versions_client):
    assert versions_of(versions_client, q="pkg", sort="version") == ORDER[::-1]


@pytest.mark.parametrize(("query", "expected"), RANGES.items(), ids=list(RANGES))
def test_a_version_query_holds_what_spack_says(versions_client, query, expected):
    assert sorted(versions_of(versions_client, q="pkg" + query)) == sorted(expected)


def test_the_reference_orders_the_table_as_written():
    for i, a in enumerate(ORDER):
        for j, b in enumerate(ORDER):
            assert reference.compare_versions(a, b) == (i > j) - (i < j), (a, b)


@pytest.mark.parametrize(("query", "expected"), RANGES.items(), ids=list(RANGES))
def test_the_reference_ranges_hold_what_the_table_says(query, expected):
    held = []
    for part in query[1:].split(","):
        part = part.strip()
        if part.startswith("git.") or part.startswith(SHA):
            held += [v for v in ORDER if reference.git_holds(v, part)]
            continue
        if part.startswith("="):
            held += [v for v in ORDER if v == part[1:]]
            continue
        lo, sep, hi = part.partition(":")
        lo, hi = lo or None, (hi or None) if sep else lo
        held += [v for v in ORDER if reference.in_spack_range(v, lo, hi)]
    assert sorted(set(held)) == sorted(expected)


VERSION = st.lists(
    st.one_of(
        st.integers(0, 12).map(str),
        st.sampled_from(
            ["a", "b", "rc", "beta", "alpha", "final", "x", "z", "Z", "Ab", "develop", "main"]
        ),
    ),
    min_size=1,
    max_size=4,
).map(".".join)
LISTED = st.one_of(
    VERSION,
    VERSION.map(lambda v: f"git.{SHA}={v}"),
    st.just("git.feature"),
)


@settings(max_examples=1000, deadline=None)
@given(lo=VERSION, hi=VERSION, v=LISTED)
def test_a_range_holds_exactly_what_the_reference_says(lo, hi, v):
    assert parse_version_list(f"{lo}:{hi}").matches(v) == reference.in_spack_range(v, lo, hi)
    assert parse_version_list(f":{hi}").matches(v) == reference.in_spack_range(v, None, hi)
    assert parse_version_list(f"{lo}:").matches(v) == reference.in_spack_range(v, lo, None)
    if not v.startswith("git."):  # @= takes a standard version; it holds just that one
        assert parse_version_list(f"={v}").matches(v)
        assert not parse_version_list(f"={v}").matches(f"git.{SHA}={v}")


@settings(max_examples=300, deadline=None)
@given(v=LISTED, assigned=st.one_of(st.none(), VERSION))
def test_a_git_version_asked_for_holds_exactly_what_the_reference_says(v, assigned):
    for ref in (f"git.{SHA}", SHA):
        query = ref if assigned is None else f"{ref}={assigned}"
        assert parse_version_list(query).matches(v) == reference.git_holds(v, query), query


def test_a_trailing_final_is_the_release_itself():
    assert reference.compare_versions("1.0final", "1.0") == 0
    assert parse_version_list("=1.0").matches("1.0final")
    assert parse_version_list("=1.0final").matches("1.0")
