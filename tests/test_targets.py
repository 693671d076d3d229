"""Targets as Spack knows them: ranges, runs_on and --runs-here, checked against archspec
itself (its own comparison operators, not searcher's code) over the real pages and over
an index holding one build for each of many microarchitectures."""

from __future__ import annotations

import json

import archspec.cpu
import pytest

from tests.conftest import cli
from tests.pages import page, spec, write
from tests.test_mirrors import build

TARGETS = archspec.cpu.TARGETS
# Hosts people ask about, from each family (and generic levels).
HOSTS = (
    "zen4", "zen2", "icelake", "sapphirerapids", "haswell", "skylake_avx512", "x86_64",
    "x86_64_v3", "x86_64_v4", "neoverse_v2", "neoverse_v1", "neoverse_n1",
    "a64fx", "m1", "aarch64", "power9le", "ppc64le",
)  # fmt: skip
# Builds for these targets, one each, in the lattice index below.
BUILT = (
    "x86_64", "x86_64_v2", "x86_64_v3", "x86_64_v4", "haswell", "broadwell", "skylake",
    "icelake", "zen", "zen2", "zen3", "zen4", "aarch64", "armv8.2a", "neoverse_n1",
    "neoverse_v1", "neoverse_v2", "m1", "a64fx", "ppc64le", "power8le", "power9le",
    "mystery_cpu",
)  # fmt: skip


def runs(build_target: str, host: str) -> bool:
    """archspec's own answer: a build for build_target runs on host."""
    if build_target not in TARGETS or host not in TARGETS:
        return False
    return TARGETS[build_target] <= TARGETS[host]


@pytest.fixture(scope="module")
def lattice(tmp_path_factory):
    """An index with one build per target of BUILT (hash: a letter per target)."""
    root = tmp_path_factory.mktemp("lattice")
    specs = [spec(chr(ord("a") + i) * 32, target=t) for i, t in enumerate(BUILT)]
    write(root / "src", "develop/zlib/specs.md", page("develop", "zlib", specs))
    assert build(root / "src", root / "ix").exit_code == 0
    return root / "ix"


def targets_found(client, **params) -> list[str]:
    response = client.get("/api/search", query_string={"per_page": 100, **params})
    assert response.status_code == 200, response.get_json()
    return sorted(hit["target"] for hit in response.get_json()["hits"])


@pytest.mark.parametrize("host", HOSTS)
def test_runs_on_is_exactly_what_archspec_says_runs_there(client_for, lattice, host):
    client = client_for(lattice)
    expected = sorted(t for t in BUILT if runs(t, host))
    assert targets_found(client, runs_on=host) == expected
    assert targets_found(client, q=f"target=:{host}") == expected


def test_every_corpus_target_against_every_host(client, corpus_specs):
    corpus_targets = sorted({s["target"] for s in corpus_specs})
    assert len(corpus_targets) >= 8
    for host in (*HOSTS, *corpus_targets):
        expected = sum(1 for s in corpus_specs if runs(s["target"], host))
        body = client.get("/api/search", query_string={"runs_on": host}).get_json()
        assert body["total"] == expected, host
        # The target facet counts stay honest: each value's count under runs_on.
        counts = {row["value"]: row["count"] for row in body["facets"]["target"]}
        assert counts == {
            t: n
            for t in corpus_targets
            if (n := sum(1 for s in corpus_specs if s["target"] == t)) and runs(t, host)
        }, host


# Spack's ArchSpec semantics for target ranges (lib/spack/spack/spec.py: a list ORs its
# items; X: is X or newer in X's lineage, :X is X or older, A:B both; no colon: exactly).
RANGES = [
    ("x86_64_v3:", lambda t: runs("x86_64_v3", t)),
    # A list of a range and a name: the name is exact, as any item without a colon.
    (":zen4", lambda t: runs(t, "zen4")),
    (":broadwell,icelake", lambda t: runs(t, "broadwell") or t == "icelake"),
    (":broadwell,:icelake", lambda t: runs(t, "broadwell") or runs(t, "icelake")),
    ("x86_64_v2:x86_64_v4", lambda t: runs("x86_64_v2", t) and runs(t, "x86_64_v4")),
    ("neoverse_n1:", lambda t: runs("neoverse_n1", t)),
    ("aarch64:", lambda t: runs("aarch64", t)),
    ("zen2:zen4", lambda t: runs("zen2", t) and runs(t, "zen4")),
    ("zen4,ppc64le", lambda t: t in ("zen4", "ppc64le")),
    ("power8le:", lambda t: runs("power8le", t)),
]


@pytest.mark.parametrize(("text", "holds"), RANGES, ids=[r[0] for r in RANGES])
def test_target_ranges_mean_what_they_mean_in_spack(client_for, lattice, text, holds):
    client = client_for(lattice)
    expected = sorted(t for t in BUILT if holds(t))
    assert expected, text
    assert targets_found(client, q=f"target={text}") == expected
    # The same in arch=, with the platform and OS of every build.
    assert targets_found(client, q=f"arch=linux-ubuntu24.04-{text}") == expected
    assert targets_found(client, q=f"arch=linux-ubuntu22.04-{text}") == []


def test_a_plain_target_stays_exact_and_the_lattice_is_not_its_own(client_for, lattice):
    client = client_for(lattice)
    assert targets_found(client, q="target=x86_64_v3") == ["x86_64_v3"]
    assert targets_found(client, q="zlib target=zen3") == ["zen3"]


def test_a_target_archspec_does_not_know_is_matched_exactly_and_said(client_for, lattice):
    client = client_for(lattice)
    body = client.get("/api/search", query_string={"q": "target=mystery_cpu:"}).get_json()
    assert [h["target"] for h in body["hits"]] == ["mystery_cpu"]
    assert body["notes"] == [
        "target 'mystery_cpu' is not a microarchitecture archspec knows: matched exactly, "
        "not as a range"
    ]
    # A build for an unknown target runs on no known CPU.
    assert "mystery_cpu" not in targets_found(client, runs_on="zen4")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"runs_on": "zen44"}, "archspec knows no microarchitecture 'zen44'; did you mean zen4"),
        ({"q": "target=a:b:c"}, "'a:b:c' is not a target, X:, :X or X:Y"),
        ({"q": "target=zen4,"}, "'' is not a target"),
        ({"runs_on": ["zen4", "zen3"]}, "parameter 'runs_on' given more than once"),
    ],
)
def test_bad_targets_are_400s_that_say_why(client, params, message):
    response = client.get("/api/search", query_string=params)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


def test_runs_on_ands_with_everything(client, corpus_specs):
    body = client.get(
        "/api/search", query_string={"runs_on": "neoverse_v2", "tag": "develop", "q": "py-jax"}
    ).get_json()
    expected = [
        s
        for s in corpus_specs
        if s["tag"] == "develop" and s["package"] == "py-jax" and runs(s["target"], "neoverse_v2")
    ]
    assert body["total"] == len(expected) > 0
    assert body["query"]["runs_on"] == "neoverse_v2"
    exported = client.get("/api/search.ndjson", query_string={"runs_on": "neoverse_v2"})
    rows = [json.loads(line) for line in exported.get_data(as_text=True).splitlines()]
    assert len(rows) == sum(1 for s in corpus_specs if runs(s["target"], "neoverse_v2"))


def test_runs_here_answers_for_the_machine_it_runs_on(corpus_index, corpus_specs):
    here = archspec.cpu.host().name
    result = cli("search", "", "--index", corpus_index, "--runs-here", "--json")
    assert result.exit_code == 0, result.output
    assert f"this machine is {here}" in result.stderr
    body = json.loads(result.stdout)
    assert body["query"]["runs_on"] == here
    assert body["total"] == sum(1 for s in corpus_specs if runs(s["target"], here))
    both = cli("search", "", "--index", corpus_index, "--runs-here", "--runs-on", "zen4")
    assert both.exit_code != 0 and "give one of them" in both.output


def test_the_spec_page_names_cpus_the_build_runs_on(client, corpus_specs):
    for target in ("x86_64_v3", "neoverse_v1", "aarch64", "ppc64le"):
        s = next(s for s in corpus_specs if s["target"] == target)
        html = client.get(f"/spec/{s['tag']}/{s['hash']}").get_data(as_text=True)
        listed = html.split('id="runs-on">')[1].split(", and any")[0].split(" (")[0]
        cpus = [c.strip() for c in listed.split(",")]
        assert cpus and all(runs(target, cpu) for cpu in cpus), (target, cpus)


def test_the_target_facet_is_grouped_by_family_generic_first(client_for, lattice):
    html = client_for(lattice).get("/search?expand=target").get_data(as_text=True)
    facet = html.split('id="facet-target"')[1].split("</section>")[0]
    families = [part.split("</li>")[0] for part in facet.split('<li class="family">')[1:]]
    assert families[:3] == ["x86-64", "AArch64", "POWER (little endian)"]
    values = [part.split('"')[0] for part in facet.split('data-value="')[1:]]
    x86 = [v for v in values if v in TARGETS and TARGETS[v].family.name == "x86_64"]
    # Generic to specific: an ancestor always comes before its descendants.
    for i, a in enumerate(x86):
        assert not any(TARGETS[b] < TARGETS[a] for b in x86[i + 1 :]), (a, x86)
    assert "zen4 (x86_64_v4)" in facet


def test_the_page_helps_when_the_cpu_emptied_the_search(client, corpus_specs):
    import html as html_module

    abyss = [s for s in corpus_specs if s["package"] == "abyss"]
    assert abyss and not any(runs(s["target"], "ppc64le") for s in abyss)
    page = html_module.unescape(
        client.get("/search", query_string={"q": "abyss", "runs_on": "ppc64le"}).get_data(
            as_text=True
        )
    )
    assert f"without runs on: ppc64le</a> → {len(abyss)} specs" in page
    assert 'href="/search?q=abyss"' in page
    # Clearing the filters clears the CPU too; the notes are on the page.
    page = html_module.unescape(
        client.get(
            "/search", query_string={"q": "acl", "tag": "develop", "runs_on": "zen4"}
        ).get_data(as_text=True)
    )
    assert 'class="chip clear-all" href="/search?q=acl"' in page
    assert "runs_on=zen4: builds for x86_64" in page


def test_no_did_you_mean_rewrites_a_range(client_for, lattice):
    body = client_for(lattice).get("/api/search", query_string={"q": "target=zen5:"}).get_json()
    assert body["total"] == 0 and body["suggestions"] == []


def test_each_family_is_headed_once_with_a_selection_past_the_top(client):
    page = client.get("/search", query_string={"target": "x86_64_v4"}).get_data(as_text=True)
    facet = page.split('id="facet-target"')[1].split("</section>")[0]
    families = [part.split("</li>")[0] for part in facet.split('<li class="family">')[1:]]
    assert len(families) == len(set(families)), families


def test_a_range_that_holds_nothing_and_a_range_as_a_filter_are_said(client_for, lattice):
    client = client_for(lattice)
    body = client.get("/api/search", query_string={"q": "target=zen4:x86_64_v3"}).get_json()
    assert body["total"] == 0
    assert body["notes"] == [
        "target=zen4:x86_64_v3 holds no microarchitecture: zen4 is not x86_64_v3 or one of "
        "its ancestors"
    ]
    body = client.get("/api/search", query_string={"target": "x86_64_v3:"}).get_json()
    assert body["total"] == 0
    assert body["notes"] == [
        "the target filter takes one exact value ('x86_64_v3:' is matched as it is); for "
        "Spack's ranges, write q=target=x86_64_v3:"
    ]
