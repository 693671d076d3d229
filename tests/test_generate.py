"""`searcher generate`: deterministic, realistic listing trees."""

from __future__ import annotations

import re
from collections import Counter

from tests import reference
from tests.conftest import cli


def tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("specs.md"))}


def test_same_seed_gives_byte_identical_files(tmp_path):
    for name in ("a", "b"):
        assert cli("generate", tmp_path / name, "--specs", "800", "--tags", "3").exit_code == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert (
        cli("generate", tmp_path / "c", "--specs", "800", "--tags", "3", "--seed", "1").exit_code
        == 0
    )
    assert tree(tmp_path / "c") != tree(tmp_path / "a")


def test_report_line_matches_what_was_written(tmp_path):
    result = cli("generate", tmp_path / "g", "--specs", "1200", "--tags", "3")
    match = re.fullmatch(r"wrote (\d+) specs in (\d+) pages over tags (.+)\n", result.stdout)
    assert match, result.stdout
    specs = reference.read_listing(tmp_path / "g")
    assert int(match.group(1)) == len(specs)
    assert int(match.group(2)) == len(tree(tmp_path / "g"))
    assert match.group(3) == "develop, develop-2025-11-16, develop-2025-11-09"
    assert len(specs) >= 1200 * 0.95


def test_snapshots_share_most_of_develop_and_releases_use_the_old_layout(tmp_path):
    assert cli("generate", tmp_path / "g", "--specs", "4000", "--tags", "8").exit_code == 0
    specs = reference.read_listing(tmp_path / "g")
    by_tag: dict[str, set[str]] = {}
    for spec in specs:
        by_tag.setdefault(spec["tag"], set()).add(spec["hash"])
    snapshots = [f"develop-2025-{day}" for day in ("10-19", "10-26", "11-02", "11-09", "11-16")]
    assert sorted(by_tag) == ["develop", "develop-2025-10-12", *snapshots, "v0.23.0"]
    develop = by_tag["develop"]
    for tag in snapshots:
        assert len(by_tag[tag] & develop) / len(develop) > 0.75
    assert not by_tag["v0.23.0"] & develop
    for spec in specs:
        keys = [k for k in spec if k not in ("tag", "package")]
        if spec["tag"].startswith("develop"):
            assert keys == sorted(keys) and "tarball" not in spec
        else:
            assert keys[0] == "hash" and spec["tarball"].endswith(f"-{spec['hash']}.spack")


def test_distributions_look_like_the_real_listing(generated_source):
    specs = reference.read_listing(generated_source)
    platforms = Counter(s["platform"] for s in specs)
    assert platforms["linux"] > platforms["darwin"] > 0 and platforms["windows"] > 0
    compilers = Counter(s["compiler"] for s in specs)
    assert {"none", "gcc@11.4.0", "gcc@=11.4.0"} <= set(compilers)
    assert sum(s["stacks"] == [] for s in specs) > 0
    assert sum("root" not in s["stacks"] for s in specs) > 0
    assert any(v.startswith("patches=") for s in specs for v in s["variants"])
    assert len({s["package"] for s in specs}) >= 50


def test_generated_listing_indexes_without_problems(tmp_path, generated_source):
    result = cli("reindex", "--source", generated_source, "--index", tmp_path / "ix", "--strict")
    assert result.exit_code == 0, result.stderr
    indexed = int(re.search(r"(\d+) specs indexed", result.stdout).group(1))
    assert indexed == len(reference.read_listing(generated_source))


def all_hits(index) -> dict[str, dict]:
    """Every document of an index, through the JSON API, page by page."""
    from searcher.app import create_app

    app = create_app({"INDEX_DIR": str(index)})
    client = app.test_client()
    hits: dict[str, dict] = {}
    page = 1
    while True:
        body = client.get(f"/api/search?per_page=100&page={page}").get_json()
        hits.update((hit["id"], hit) for hit in body["hits"])
        if page * 100 >= body["total"]:
            break
        page += 1
    app.extensions["searcher.index"].close()
    return hits


def test_mirrors_and_pages_of_one_listing_give_the_same_documents(tmp_path, generated_source):
    args = ("--specs", "3000", "--tags", "4")
    result = cli("generate", tmp_path / "mirrors", *args, "--format", "mirror")
    assert result.exit_code == 0, result.output
    # 4 tags, each a root mirror and one per stack, alternating layouts.
    assert (tmp_path / "mirrors" / "develop" / "v3" / "manifests").is_dir()
    assert (tmp_path / "mirrors" / "develop-2025-11-16" / "build_cache" / "index.json").is_file()
    result = cli(
        "reindex", "--source", tmp_path / "mirrors", "--index", tmp_path / "ix", "--strict"
    )
    assert result.exit_code == 0, result.stderr
    pages = cli("reindex", "--source", generated_source, "--index", tmp_path / "ixp")
    assert pages.exit_code == 0
    from_mirrors, from_pages = all_hits(tmp_path / "ix"), all_hits(tmp_path / "ixp")
    # A spec listed in no stack is in no mirror; every other one is in both.
    listed = reference.read_listing(generated_source)
    unplaced = {f"{s['tag']}/{s['hash']}" for s in listed if not s["stacks"]}
    assert unplaced and set(from_mirrors) == set(from_pages) - unplaced

    def comparable(hit):
        return {k: v for k, v in hit.items() if k != "dependencies"}

    for doc_id, hit in from_mirrors.items():
        assert comparable(hit) == comparable(from_pages[doc_id]), doc_id
    # Dependencies are there, resolved: direct ones name specs of the same tag, or the
    # external compiler.
    with_deps = [h for h in from_mirrors.values() if h["dependencies"]]
    assert len(with_deps) > len(from_mirrors) / 2
    for hit in with_deps[:200]:
        for dep in hit["dependencies"]:
            if "c" in dep["virtuals"]:
                assert hit["compiler"] == f"{dep['name']}@{dep['version']}"
            else:
                assert from_mirrors[f"{hit['tag']}/{dep['hash']}"]["package"] == dep["name"]
