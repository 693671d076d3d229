"""Spack spec syntax in q: a table of queries against a reference matcher over the corpus."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searcher.errors import QueryError
from searcher.query import parse
from tests import reference


def between(v: str, lo: str | None, hi: str | None) -> bool:
    """Whether v lies in Spack's range lo:hi (tests/reference.py, from Spack's rules)."""
    return reference.in_spack_range(v, lo, hi)


def version(s):
    return s["versions"][0]


def compiler(s):
    return s["compiler"].replace("@=", "@")


def has(s, variant):
    return variant in s["variants"]


def valued(s, key):
    """The value set of a valued variant (key=... or key:=...), or None."""
    for v in s["variants"]:
        k, sep, value = v.partition("=")
        if sep and k.rstrip(":") == key:
            return set(value.split(","))
    return None


CASES = [
    # names and words
    ("py-keras", lambda s: s["package"] == "py-keras"),
    ("acl", lambda s: s["package"] == "acl"),
    ("keras", lambda s: "keras" in s["package"]),
    ("py-ker*", lambda s: s["package"].startswith("py-ker")),
    ("py-*", lambda s: s["package"].startswith("py-")),
    ("acl attr", lambda s: s["package"] in ("acl", "attr")),
    ("acl attr tmux", lambda s: s["package"] in ("acl", "attr", "tmux")),
    ("PY-KERAS", lambda s: s["package"] == "py-keras"),
    # versions
    (
        "py-keras@3.9.2",
        lambda s: s["package"] == "py-keras" and between(version(s), "3.9.2", "3.9.2"),
    ),
    ("py-keras@=3.9.2", lambda s: s["package"] == "py-keras" and version(s) == "3.9.2"),
    ("py-keras@3.9", lambda s: s["package"] == "py-keras" and between(version(s), "3.9", "3.9")),
    ("py-keras@3", lambda s: s["package"] == "py-keras" and between(version(s), "3", "3")),
    ("py-jax@:0.4.31", lambda s: s["package"] == "py-jax" and between(version(s), None, "0.4.31")),
    ("py-keras@3.8:", lambda s: s["package"] == "py-keras" and between(version(s), "3.8", None)),
    (
        "py-jax@0.4.28:0.4.31",
        lambda s: s["package"] == "py-jax" and between(version(s), "0.4.28", "0.4.31"),
    ),
    (
        "py-jax@0.4.28,0.4.38:",
        lambda s: (
            s["package"] == "py-jax"
            and (between(version(s), "0.4.28", "0.4.28") or between(version(s), "0.4.38", None))
        ),
    ),
    ("py-jax@:", lambda s: s["package"] == "py-jax"),
    ("@2:", lambda s: between(version(s), "2", None)),
    ("@:1", lambda s: between(version(s), None, "1")),
    ("@=2.2.53", lambda s: version(s) == "2.2.53"),
    ("tmux@3.5a", lambda s: s["package"] == "tmux" and between(version(s), "3.5a", "3.5a")),
    ("tmux@3.4:", lambda s: s["package"] == "tmux" and between(version(s), "3.4", None)),
    ("@2.0:2.3", lambda s: between(version(s), "2.0", "2.3")),
    ("lhapdf@6.5", lambda s: s["package"] == "lhapdf" and between(version(s), "6.5", "6.5")),
    # compilers
    ("%gcc", lambda s: compiler(s).startswith("gcc@")),
    ("%gcc@11.4.0", lambda s: compiler(s) == "gcc@11.4.0"),
    ("%gcc@=11.4.0", lambda s: compiler(s) == "gcc@11.4.0"),
    (
        "%gcc@11:",
        lambda s: compiler(s).startswith("gcc@") and between(compiler(s).split("@")[1], "11", None),
    ),
    (
        "%gcc@:10",
        lambda s: compiler(s).startswith("gcc@") and between(compiler(s).split("@")[1], None, "10"),
    ),
    ("%none", lambda s: s["compiler"] == "none"),
    ("%apple-clang", lambda s: s["compiler"].startswith("apple-clang@")),
    (
        "%oneapi@2024:",
        lambda s: (
            compiler(s).startswith("oneapi@") and between(compiler(s).split("@")[1], "2024", None)
        ),
    ),
    (
        "acl%gcc@7",
        lambda s: (
            s["package"] == "acl"
            and compiler(s).startswith("gcc@")
            and between(compiler(s).split("@")[1], "7", "7")
        ),
    ),
    # variants
    ("+mpi", lambda s: has(s, "+mpi")),
    ("~ipo", lambda s: has(s, "~ipo")),
    ("-python", lambda s: has(s, "~python")),
    ("+python ~examples", lambda s: has(s, "+python") and has(s, "~examples")),
    ("python=true", lambda s: has(s, "+python")),
    ("python=false", lambda s: has(s, "~python")),
    ("build_system=cmake", lambda s: valued(s, "build_system") == {"cmake"}),
    ("backend=torch", lambda s: valued(s, "backend") == {"torch"}),
    ("libs=shared", lambda s: "shared" in (valued(s, "libs") or set())),
    ("libs=shared,static", lambda s: {"shared", "static"} <= (valued(s, "libs") or set())),
    ("libs:=shared", lambda s: valued(s, "libs") == {"shared"}),
    ("libs:=static,shared", lambda s: valued(s, "libs") == {"shared", "static"}),
    ("processes=eett,tbw", lambda s: {"eett", "tbw"} <= (valued(s, "processes") or set())),
    ("patches=5c7a3c0", lambda s: "5c7a3c0" in (valued(s, "patches") or set())),
    (
        "py-keras backend=jax",
        lambda s: s["package"] == "py-keras" and valued(s, "backend") == {"jax"},
    ),
    (
        "sherpa+mpi~rivet",
        lambda s: s["package"] == "sherpa" and has(s, "+mpi") and has(s, "~rivet"),
    ),
    # architecture
    (
        "arch=linux-ubuntu24.04-aarch64",
        lambda s: (s["platform"], s["os"], s["target"]) == ("linux", "ubuntu24.04", "aarch64"),
    ),
    ("arch=aarch64", lambda s: s["target"] == "aarch64"),
    ("platform=darwin", lambda s: s["platform"] == "darwin"),
    ("os=ubuntu22.04", lambda s: s["os"] == "ubuntu22.04"),
    ("target=x86_64_v3", lambda s: s["target"] == "x86_64_v3"),
    (
        "py-jax arch=linux-ubuntu24.04-aarch64",
        lambda s: s["package"] == "py-jax" and (s["os"], s["target"]) == ("ubuntu24.04", "aarch64"),
    ),
    ("arch=darwin-sequoia-aarch64", lambda s: s["os"] == "sequoia"),
    # hashes
    ("/nb6m2sm", lambda s: s["hash"].startswith("nb6m2sm")),
    ("/n", lambda s: s["hash"].startswith("n")),
    ("acl/nb6m", lambda s: s["package"] == "acl" and s["hash"].startswith("nb6m")),
    ("hash:7xbg5z5", lambda s: s["hash"].startswith("7xbg5z5")),
    # searcher keys, mixed, and several specs
    ("tag:develop acl", lambda s: s["tag"] == "develop" and s["package"] == "acl"),
    ("stack:e4s", lambda s: "e4s" in s["stacks"]),
    (
        # (It was +cuda, which no spec of the corpus has: the case passed on nothing.)
        "stack:ml-* backend=jax",
        lambda s: any(x.startswith("ml-") for x in s["stacks"]) and has(s, "backend=jax"),
    ),
    (
        "os:ubuntu24.04 py-keras backend=torch",
        lambda s: (
            s["os"] == "ubuntu24.04"
            and s["package"] == "py-keras"
            and valued(s, "backend") == {"torch"}
        ),
    ),
    (
        "py-keras@3.9: py-jax@0.4.38",
        lambda s: (
            (s["package"] == "py-keras" and between(version(s), "3.9", None))
            or (s["package"] == "py-jax" and between(version(s), "0.4.38", "0.4.38"))
        ),
    ),
    ("acl attr tag:v0.22.0", lambda s: s["package"] in ("acl", "attr") and s["tag"] == "v0.22.0"),
    ("py-keras linux", lambda s: s["package"] == "py-keras" and s["platform"] == "linux"),
    ("hep stack:root", lambda s: "hep" in s["stacks"] and "root" in s["stacks"]),
    ("py-keras@3.9.2%none+nothing", lambda s: False),
    ("nosuchpackage", lambda s: False),
]


def every_id(client, q: str) -> list[str]:
    ids, page = [], 1
    while True:
        body = client.get("/api/search?" + urlencode({"q": q, "per_page": 100, "page": page}))
        assert body.status_code == 200, body.get_json()
        body = body.get_json()
        ids += [h["id"] for h in body["hits"]]
        if len(ids) >= body["total"]:
            return ids
        page += 1


# The cases meant to find nothing; every other one must find something in the corpus, or
# its test would pass on two empty lists.
FIND_NOTHING = {"py-keras@3.9.2%none+nothing", "nosuchpackage"}


@pytest.mark.parametrize(("query", "match"), CASES, ids=[q for q, _ in CASES])
def test_the_case_is_not_vacuous(corpus_specs, query, match):
    assert any(match(s) for s in corpus_specs) == (query not in FIND_NOTHING)


@pytest.mark.parametrize(("query", "match"), CASES, ids=[q for q, _ in CASES])
def test_query_finds_exactly_what_the_reference_matcher_finds(client, corpus_specs, query, match):
    expected = sorted(f"{s['tag']}/{s['hash']}" for s in corpus_specs if match(s))
    assert sorted(every_id(client, query)) == expected


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("py-keras@", 9, "missing value after '@'"),
        ("py-keras@3.9:4:5", 14, "a range has one ':'"),
        ("py-keras@3.9,", 13, "empty version"),
        ("acl%", 4, "'%' must be followed by a compiler name"),
        ("acl%gcc@", 8, "missing value after '@'"),
        ("acl +", 5, "'+' must be followed by a variant name"),
        ("acl ~", 5, "'~' must be followed by a variant name"),
        ("build_system=", 13, "missing value after 'build_system='"),
        ("arch=linux-aarch64", 5, "arch= takes platform-os-target"),
        ("acl /", 5, "'/' must be followed by the start of a hash"),
        ("colour:red", 0, "unknown field 'colour'"),
        ("py*keras", 2, "'*' may only end a word"),
        ('acl "open', 4, "unterminated quote"),
    ],
)
def test_unparsable_spec_syntax_is_a_400_with_the_position(client, query, position, message):
    response = client.get("/api/search?" + urlencode({"q": query}))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["position"] == position and message in error["message"], error


def test_did_you_mean_offers_near_package_names_and_facet_values(client):
    body = client.get("/api/search?" + urlencode({"q": "py-kears os=ubuntu2404"})).get_json()
    assert body["total"] == 0
    assert body["suggestions"] == [
        {"text": "py-kears", "suggestion": "py-keras", "q": "py-keras os=ubuntu2404"},
        {"text": "ubuntu2404", "suggestion": "ubuntu24.04", "q": "py-kears os=ubuntu24.04"},
    ]


def test_suggest_completes_package_names_by_prefix(client, corpus_specs):
    body = client.get("/api/suggest?q=py-").get_json()
    counts: dict[str, int] = {}
    for s in corpus_specs:
        if s["package"].startswith("py-"):
            counts[s["package"]] = counts.get(s["package"], 0) + 1
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert body == {"q": "py-", "suggestions": [{"value": v, "count": n} for v, n in expected]}
    parts = client.get("/api/suggest?q=ker").get_json()["suggestions"]
    assert [s["value"] for s in parts] == ["py-keras"]
    assert client.get("/api/suggest?q=py&limit=0").status_code == 400
    assert client.get("/api/suggest?q=py&colour=red").status_code == 400


@pytest.mark.parametrize("sort", ["version", "tag", "package"])
def test_sort_orders_results(client, corpus_specs, sort):
    body = client.get(f"/api/search?q=&sort={sort}&per_page=100").get_json()
    hits = body["hits"]
    if sort == "version":
        keys = [reference.version_key(h["version"]) for h in hits]
        assert keys == sorted(keys, reverse=True)
    elif sort == "tag":
        keys = [(h["tag"] != "develop", [-ord(c) for c in h["tag"]]) for h in hits]
        assert keys == sorted(keys)
    else:
        assert [h["package"] for h in hits] == sorted(h["package"] for h in hits)
    assert body["query"]["sort"] == sort
    assert client.get("/api/search?sort=size").status_code == 400


def test_matches_are_highlighted_where_they_matched_and_escaped(client):
    query = "keras backend=torch arch=linux-ubuntu24.04-x86_64_v3"
    html = client.get("/search?" + urlencode({"q": query})).get_data(as_text=True)
    assert "<strong>py-<mark>keras</mark></strong>" in html
    # A valued variant is marked whole, not just its name (issue 10).
    assert "<mark>backend=torch</mark>" in html and "<mark>backend</mark>=" not in html
    assert "><mark>ubuntu24.04</mark> / <mark>x86_64_v3</mark></td>" in html
    # linux matched the platform, not the stack names that contain it.
    assert "ml-<mark>linux" not in html and "ml-linux-x86_64-cuda" in html
    evil = client.get("/search?" + urlencode({"q": "<b>x"})).get_data(as_text=True)
    assert "<b>x" not in evil


# -- properties -------------------------------------------------------------------------------

SPEC_PIECES = [
    *'@%+~-/=:,*" .',
    "py-keras",
    "gcc",
    "1.2",
    "3",
    "develop",
    "arch",
    "os",
    "tag",
    "mpi",
    "x86_64",
    "rc1",
    "\u00e9",
    "\x00",
]


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(st.sampled_from(SPEC_PIECES), max_size=20).map("".join),
    packages=st.sets(st.sampled_from(["py-keras", "gcc", "develop", "mpi"])),
)
def test_the_parser_raises_nothing_but_query_errors(text, packages):
    try:
        parse(text, packages.__contains__)
    except QueryError as exc:
        assert exc.position is not None and 0 <= exc.position <= len(text)
