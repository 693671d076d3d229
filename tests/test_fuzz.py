"""Fuzzing with Hypothesis, in every test run: whatever a user sends, the answer is a 200 or a
documented 4xx with the right error body and headers; whatever a page holds, the reindex
reports it by path and indexes everything else."""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import cli
from tests.pages import page, spec, summary, write
from tests.reference import FACETS


def fuzz(examples: int) -> settings:
    """Hypothesis settings for a fuzz test: SEARCHER_FUZZ_EXAMPLES runs more (or fewer)."""
    return settings(
        max_examples=int(os.environ.get("SEARCHER_FUZZ_EXAMPLES", examples)),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


FUZZ = fuzz(200)

# -- requests ---------------------------------------------------------------------------------

NAMES = st.sampled_from(
    ["q", "page", "per_page", "facet_size", "sort", *FACETS, "expand", "limit", "zzz"]
)
# Text that leans on the pieces the query syntax gives meaning to.
TOKENS = [*'abc:=+~-/*"@%., ', "py-keras", "os", "hash", "stack", "\x00", "\u00e9", "\ud7ff"]
QUERY_TEXT = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
NUMBERS = st.sampled_from(["0", "1", "-1", "²", "١٢", "1_0", " 3", "9" * 30, "1e3", "0x10"])
VALUES = st.one_of(QUERY_TEXT, st.integers(-5, 20_000).map(str), st.text(max_size=10), NUMBERS)


def check(response, api: bool) -> None:
    """A 200, or a 4xx with the documented error; security headers either way."""
    assert response.status_code in (200, 302, 400, 404), response.get_data(as_text=True)[:300]
    if response.status_code == 302:  # the front page opens on a search
        assert not api and response.headers["Location"].startswith("/search")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if api:
        assert response.content_type == "application/json"
    if api and response.status_code != 200:
        error = response.get_json()["error"]
        assert error["status"] == response.status_code and error["message"]
        assert set(error) <= {"status", "message", "position"}
        if "position" in error:
            assert isinstance(error["position"], int) and error["position"] >= 0


@FUZZ
@given(q=QUERY_TEXT)
def test_any_query_text_is_answered_or_rejected_cleanly(client, q):
    response = client.get("/api/search?" + urlencode({"q": q}))
    check(response, api=True)
    if response.status_code == 400 and "position" in response.get_json()["error"]:
        assert response.get_json()["error"]["position"] <= len(q)
    check(client.get("/search?" + urlencode({"q": q})), api=False)


@FUZZ
@given(params=st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_any_parameters_are_answered_or_rejected_cleanly(client, params):
    query = urlencode(params)
    check(client.get("/api/search?" + query), api=True)
    check(client.get("/api/suggest?" + query), api=True)
    check(client.get("/search?" + query), api=False)


@FUZZ
@given(segments=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
def test_any_path_is_answered_or_rejected_cleanly(client, segments):
    path = "/".join(quote(s, safe="") for s in segments)
    for prefix in ("/api/spec/", "/spec/", "/api/", "/"):
        check(client.get(prefix + path), api=prefix.startswith("/api"))


# -- pages ------------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["-", "", " ", "none", "linux", "x" * 5000, "a\nb", "\u202e"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ("hash", "versions", "compiler", "os", "platform", "target", "variants", "stacks")


@st.composite
def spec_entries(draw) -> object:
    """A spec entry: mostly a real-looking one with a few fields made hostile."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    entry = spec(draw(st.sampled_from(["a", "b", "c"])) * 32)
    for name in draw(st.lists(st.sampled_from((*FIELDS, "size", "tarball")), max_size=3)):
        if draw(st.booleans()):
            entry[name] = draw(JSON_VALUES)
        else:
            entry.pop(name, None)
    return entry


def deep(draw) -> str:
    depth = draw(st.integers(10, 3000))
    return draw(st.sampled_from(["[", "{a: ", '{"a": '])) * depth


@st.composite
def page_texts(draw) -> bytes:
    """A page: a real shape with hostile parts, or YAML and bytes of any shape."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return ("---\n" + draw(st.text(max_size=200)) + "\n---\n").encode("utf-8", "replace")
    if kind == 2:  # YAML features a page has no use for: aliases, tags, deep nesting
        piece = draw(
            st.sampled_from(
                [
                    "title: &a [x, x]\nlayout: *a\n",
                    "title: !!python/object/apply:os.system ['true']\n",
                    "title: !!binary aGVsbG8=\n",
                    f"title: {deep(draw)}\n",
                    "<<: {title: x}\n",
                    "title: x\ntitle: y\n",
                ]
            )
        )
        return f"---\n{piece}categories: [package, t]\nspec_details: []\n---\n".encode()
    details = draw(st.lists(spec_entries(), max_size=4))
    text = page("t", draw(st.sampled_from(["fz", "fz\n", "x y", "é"])), [])
    text = text.replace("spec_details: []", "spec_details: " + json.dumps(details))
    if kind == 4:
        text = text.replace("meta: {}", "meta: " + deep(draw))
    if kind == 5:
        text = text.replace("spec_details: ", "spec_details: " + deep(draw), 1)
    return text.encode("utf-8", "surrogatepass")


@fuzz(60)
@given(texts=st.lists(page_texts(), min_size=1, max_size=3))
def test_any_page_is_indexed_or_reported_and_the_good_page_always_indexed(tmp_path_factory, texts):
    root = tmp_path_factory.mktemp("fuzz")
    source = root / "src"
    write(source, "t/good/specs.md", page("t", "good", [spec("d" * 32), spec("e" * 32)]))
    paths = [write(source, f"t/p{i}/specs.md", text) for i, text in enumerate(texts)]

    result = cli("reindex", "--source", source, "--index", root / "ix")

    assert result.exit_code == 0, result.output
    files, indexed, files_skipped, specs_skipped = summary(result.stdout)
    assert files == len(texts) + 1 and indexed >= 2
    whole_page, one_spec = 0, 0
    for line in result.stderr.splitlines():
        if line.startswith("indexed "):
            continue
        assert any(line.startswith(f"{path}: ") for path in paths), line
        assert len(line) < 1000 and line.isprintable()
        if re.search(r": spec_details\[\d+\]: |: t/\w+ is also listed in ", line):
            one_spec += 1
        else:
            whole_page += 1
    # One line per skipped page, one per skipped spec (at most 4 entries a page here).
    assert (whole_page, one_spec) == (files_skipped, specs_skipped)
    found = json.loads(cli("search", "good", "--index", root / "ix", "--json").stdout)
    assert sorted(hit["hash"] for hit in found["hits"]) == ["d" * 32, "e" * 32]
    # Every spec indexed from the fuzzed pages renders, on the page and in the API.
    from searcher.app import create_app

    app = create_app({"INDEX_DIR": str(root / "ix"), "TESTING": True})
    try:
        client = app.test_client()
        listed = client.get("/api/search?per_page=100&tag=t").get_json()
        assert listed["total"] == indexed
        for hit in listed["hits"]:
            response = client.get(f"/spec/{hit['tag']}/{hit['hash']}")
            assert response.status_code == 200
            html = response.get_data(as_text=True)
            assert not re.search(r'href="\s*(javascript|data|vbscript):', html, re.I)
    finally:
        app.extensions["searcher.index"].close()


def test_the_page_fuzzer_reaches_every_kind_of_problem(tmp_path):
    """The strategies above are not vacuous: fixed draws of each kind are all reported."""
    source = tmp_path / "src"
    samples = {
        "alias": b"---\ntitle: &a [x]\nlayout: *a\ncategories: [package, t]\n---\n",
        "python-tag": b"---\ntitle: !!python/object/apply:os.system ['true']\n---\n",
        "deep": b"---\ntitle: " + b"[" * 3000 + b"\n---\n",
        "binary": b"\xff\xfe\x00",
    }
    paths = {name: write(source, f"t/{name}/specs.md", text) for name, text in samples.items()}
    result = cli("reindex", "--source", source, "--index", tmp_path / "ix")
    assert result.exit_code == 4  # nothing indexable at all
    reported = {
        name: [x for x in result.stderr.splitlines() if x.startswith(f"{path}: ")]
        for name, path in paths.items()
    }
    assert {name: len(lines) for name, lines in reported.items()} == dict.fromkeys(samples, 1)
    assert "aliases are not allowed" in reported["alias"][0]
    assert "could not determine a constructor" in reported["python-tag"][0]
    assert "nested deeper than 16 levels" in reported["deep"][0]
    assert "not UTF-8" in reported["binary"][0]


# -- the CSV export's own row joining against Python's csv module -------------------------

CELL = st.text(
    alphabet=st.sampled_from([*'ab=@,";+~-/ ', "\t", "\r", "\n", "\x00", "é"]), max_size=8
)


@FUZZ
@given(
    rows=st.lists(
        st.tuples(
            st.lists(CELL, min_size=8, max_size=8),
            st.lists(CELL, max_size=3),
            st.lists(CELL, max_size=3),
            st.one_of(st.none(), st.integers(0, 2**40)),
            st.one_of(st.none(), CELL),
            st.lists(CELL, max_size=3),
        ),
        max_size=20,
    )
)
def test_csv_rows_are_what_the_csv_module_writes_with_formulas_defused(rows):
    import csv
    import io

    from searcher.export import EXPORT_FIELDS, lines
    from searcher.search import Export

    exported = [((*s[:8], v, st_, size, tar), deps) for s, v, st_, size, tar, deps in rows]
    text = "".join(lines(Export(len(exported), iter([exported])), "csv"))
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for (tag, package, hash_, version, *arch), deps in exported:
        compiler, os_, platform, target, variants, stacks, size, tarball = arch
        cells = [f"{tag}/{hash_}", package, version, tag, hash_, compiler, os_, platform,
                 target, ";".join(variants), ";".join(stacks),
                 "" if size is None else str(size), tarball or "", ";".join(deps)]  # fmt: skip
        writer.writerow(["'" + c if c[:1] in ("=", "@", "\t", "\r") else c for c in cells])
    assert text == expected.getvalue()
