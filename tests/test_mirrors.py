"""Indexing Spack binary mirrors: Spack's own test-suite indexes, both layouts, trees of
mirrors, dependencies searched with ^, and bad mirrors.

The expected documents below were written by hand from the JSON of the two databases in
tests/data/mirrors/ (see its README), not produced by searcher.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from searcher.app import create_app
from tests.conftest import cli

DATA = Path(__file__).parent / "data" / "mirrors"
V7, V8 = DATA / "spack-test-db-v7", DATA / "spack-test-db-v8"

LIBELF_CORE2 = "rqh2vuf6fqwkmipzgi2wjx352mq7y7ez"
LIBDWARF_CORE2 = "sk2gqqz4n5njmvktycnd25wq25jxiqkr"
LIBELF_M1 = "jr3yipyxyjulcdvckwwwjrrumis7glpa"
LIBDWARF_M1 = "u5uz3dcch5if4eve4sef67o2rf2lbfgh"
WRAPPER = "qeehcxyvluwnihsc2qxstmpomtxo3lrc"
RUNTIME = "izgzpzeljwairalfjm3k6fntbb64nt6n"
GCC = "vd7v4ssgnoqdplgxyig3orum67n4vmhq"  # the external, not in the build cache


def dep(name, version, hash_, deptypes, virtuals=()):
    return {
        "name": name,
        "version": version,
        "hash": hash_,
        "deptypes": list(deptypes),
        "virtuals": list(virtuals),
    }


# (package, version, target, compiler, dependencies) of each in-cache record of v8.
V8_DOCS = {
    LIBELF_CORE2: ("libelf", "0.8.13", "core2", "gcc@=10.2.1", []),
    WRAPPER: ("compiler-wrapper", "1.0", "m1", "none", []),
    RUNTIME: ("gcc-runtime", "10.2.1", "m1", "none", [dep("gcc", "10.2.1", GCC, ["build"])]),
    LIBELF_M1: (
        "libelf",
        "0.8.13",
        "m1",
        "gcc@10.2.1",  # the build dependency providing c
        [
            dep("compiler-wrapper", "1.0", WRAPPER, ["build"]),
            dep("gcc", "10.2.1", GCC, ["build"], ["c"]),
            dep("gcc-runtime", "10.2.1", RUNTIME, ["link"]),
        ],
    ),
    LIBDWARF_M1: (
        "libdwarf",
        "20130729",
        "m1",
        "gcc@10.2.1",
        [
            dep("compiler-wrapper", "1.0", WRAPPER, ["build"]),
            dep("gcc", "10.2.1", GCC, ["build"], ["c", "cxx"]),
            dep("gcc-runtime", "10.2.1", RUNTIME, ["link"]),
            dep("libelf", "0.8.13", LIBELF_M1, ["build", "link"]),
        ],
    ),
    LIBDWARF_CORE2: (
        "libdwarf",
        "20130729",
        "core2",
        "gcc@=10.2.1",
        [dep("libelf", "0.8.13", LIBELF_CORE2, ["build", "link"])],
    ),
}


def expected_hit(tag, hash_, package, version, target, compiler, deps, stacks=("root",)):
    return {
        "id": f"{tag}/{hash_}",
        "package": package,
        "version": version,
        "tag": tag,
        "hash": hash_,
        "compiler": compiler,
        "os": "debian6",
        "platform": "test",
        "target": target,
        "variants": ["build_system=generic"],
        "stacks": list(stacks),
        "size": None,
        "tarball": None,
        "dependencies": deps,
    }


def build(source, index, *args):
    result = cli("reindex", "--source", source, "--index", index, *args)
    return result


def api(index, **params):
    app = create_app({"INDEX_DIR": str(index)})
    try:
        response = app.test_client().get("/api/search", query_string={"per_page": 100, **params})
        return response.status_code, response.get_json()
    finally:
        app.extensions["searcher.index"].close()


def found(index, q="", **params) -> set[str]:
    status, body = api(index, q=q, **params)
    assert status == 200, body
    return {hit["hash"] for hit in body["hits"]}


def write_v3(mirror: Path, database: bytes) -> None:
    """A v3-layout mirror holding database, laid out as Spack's url_buildcache writes it."""
    checksum = hashlib.sha256(database).hexdigest()
    blob = mirror / "blobs" / "sha256" / checksum[:2] / checksum
    blob.parent.mkdir(parents=True)
    blob.write_bytes(database)
    manifest = mirror / "v3" / "manifests" / "index" / "index.manifest.json"
    manifest.parent.mkdir(parents=True)
    entry = {
        "contentLength": len(database),
        "mediaType": "application/vnd.spack.db.v8+json",
        "compression": "none",
        "checksumAlgorithm": "sha256",
        "checksum": checksum,
    }
    manifest.write_text(json.dumps({"version": 3, "data": [entry]}))


def write_v2(mirror: Path, database: bytes, *, hash_file: bool = True) -> None:
    (mirror / "build_cache").mkdir(parents=True)
    (mirror / "build_cache" / "index.json").write_bytes(database)
    if hash_file:
        digest = hashlib.sha256(database).hexdigest()
        (mirror / "build_cache" / "index.json.hash").write_text(digest)


def subset(path: Path, hashes: set[str]) -> bytes:
    """A database holding only some in-cache records (and every other record)."""
    db = json.loads(path.read_text())
    installs = db["database"]["installs"]
    for key in list(installs):
        if installs[key]["in_buildcache"] and key not in hashes:
            del installs[key]
    return json.dumps(db).encode()


def test_v8_database_gives_exactly_the_in_cache_records(tmp_path):
    result = build(V8, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "6 specs indexed" in result.stdout
    status, body = api(tmp_path / "ix")
    assert status == 200
    tag = "spack-test-db-v8"
    got = {hit["hash"]: hit for hit in body["hits"]}
    assert got == {h: expected_hit(tag, h, *fields) for h, fields in V8_DOCS.items()}
    assert GCC not in got  # external: not a document, but resolved as a dependency


def test_v7_database_takes_the_compiler_from_its_record(tmp_path):
    assert build(V7, tmp_path / "ix", "--tag", "v7").exit_code == 0
    _, body = api(tmp_path / "ix")
    got = {hit["hash"]: hit for hit in body["hits"]}
    assert got == {
        LIBELF_CORE2: expected_hit(
            "v7", LIBELF_CORE2, "libelf", "0.8.13", "core2", "gcc@10.2.1", []
        ),
        LIBDWARF_CORE2: expected_hit(
            "v7",
            LIBDWARF_CORE2,
            "libdwarf",
            "20130729",
            "core2",
            "gcc@10.2.1",
            [dep("libelf", "0.8.13", LIBELF_CORE2, ["build", "link"])],
        ),
    }


@pytest.fixture(scope="module")
def v8_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("v8") / "ix"
    assert build(V8, index).exit_code == 0
    return index


@pytest.mark.parametrize(
    ("q", "hashes"),
    [
        ("^libelf", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("^libelf@0.8.13", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("^libelf@0.9:", set()),
        ("^libelf target=core2", {LIBDWARF_CORE2}),
        ("^builtin.mock.libelf", {LIBDWARF_CORE2, LIBDWARF_M1}),  # a namespace
        ("libdwarf ^libelf", {LIBDWARF_CORE2, LIBDWARF_M1}),
        ("libelf ^libelf", set()),  # a node is not its own dependency
        # The external gcc is a node of the graph: transitively under the m1 builds.
        ("^gcc", {RUNTIME, LIBELF_M1, LIBDWARF_M1}),
        ("^gcc@10.2.1", {RUNTIME, LIBELF_M1, LIBDWARF_M1}),
        ("^gcc@11:", set()),
        ("^gcc-runtime", {LIBELF_M1, LIBDWARF_M1}),
        ("^compiler-wrapper ^gcc-runtime", {LIBELF_M1, LIBDWARF_M1}),
        ("^gcc-runtime ^libelf", {LIBDWARF_M1}),
        # Virtuals: a DAG in which something depends on a C (C++) provider.
        ("^c", {LIBELF_M1, LIBDWARF_M1}),
        ("^cxx", {LIBDWARF_M1}),
        ("^nosuchpackage", set()),
        ("%gcc@10.2.1", {LIBELF_M1, LIBDWARF_M1, LIBELF_CORE2, LIBDWARF_CORE2}),
        ("libelf %gcc ^gcc-runtime", {LIBELF_M1}),
    ],
)
def test_dependency_queries_match_as_spack_would(v8_index, q, hashes):
    assert found(v8_index, q) == hashes


def test_dependency_facet_counts_direct_link_and_run_dependencies(v8_index):
    _, body = api(v8_index)
    # gcc and compiler-wrapper are build dependencies only: not counted.
    assert body["facets"]["dependency"] == [
        {"value": "gcc-runtime", "count": 2, "selected": False},
        {"value": "libelf", "count": 2, "selected": False},
    ]
    assert found(v8_index, dependency="gcc-runtime") == {LIBELF_M1, LIBDWARF_M1}
    assert found(v8_index, "dependency:libelf") == {LIBDWARF_CORE2, LIBDWARF_M1}


def test_a_tree_of_mirrors_in_both_layouts_gives_stacks(tmp_path):
    source = tmp_path / "bucket"
    v8 = (V8 / "build_cache" / "index.json").read_bytes()
    write_v2(source / "develop", v8)  # the tag's root mirror holds everything
    write_v3(source / "develop" / "e4s", subset(V8 / "build_cache" / "index.json", {LIBELF_M1}))
    write_v2(
        source / "develop" / "ml", subset(V8 / "build_cache" / "index.json", {LIBELF_M1, WRAPPER})
    )
    write_v3(source / "v1.0", (V7 / "build_cache" / "index.json").read_bytes())
    result = build(source, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "4 files read, 8 specs indexed" in result.stdout
    _, body = api(tmp_path / "ix")
    stacks = {hit["id"]: hit["stacks"] for hit in body["hits"]}
    assert stacks[f"develop/{LIBELF_M1}"] == ["e4s", "ml", "root"]
    assert stacks[f"develop/{WRAPPER}"] == ["ml", "root"]
    assert stacks[f"develop/{LIBDWARF_M1}"] == ["root"]
    assert stacks[f"v1.0/{LIBDWARF_CORE2}"] == ["root"]
    assert found(tmp_path / "ix", "^libelf", tag="v1.0") == {LIBDWARF_CORE2}
    assert found(tmp_path / "ix", "^libelf", stack="root", tag="develop") == {
        LIBDWARF_M1,
        LIBDWARF_CORE2,
    }


def test_bad_mirrors_are_named_and_the_rest_is_indexed(tmp_path):
    source = tmp_path / "bucket"
    v8 = (V8 / "build_cache" / "index.json").read_bytes()
    write_v2(source / "develop", v8)
    write_v2(source / "develop" / "truncated", v8[: len(v8) // 2], hash_file=False)
    write_v2(source / "develop" / "future", b'{"database": {"version": "99", "installs": {}}}')
    # (Its own content: a database is cached by checksum, and the root's is v8's.)
    write_v3(source / "develop" / "corrupt", subset(V8 / "build_cache" / "index.json", {WRAPPER}))
    blob = next(p for p in (source / "develop" / "corrupt" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes().replace(b"generic", b"Generic", 1))
    write_v2(source / "develop" / "wronghash", v8, hash_file=False)
    (source / "develop" / "wronghash" / "build_cache" / "index.json.hash").write_text("0" * 64)
    db = json.loads(v8)
    installs = db["database"]["installs"]
    # A record with a missing field. (Its own hash: a record another mirror of the tag
    # already gave is the same spec, and only its in-cache flag is read again.)
    broken = json.loads(json.dumps(installs[LIBELF_CORE2]))
    del broken["spec"]["arch"]
    installs["u" * 32] = broken
    tool = json.loads(json.dumps(installs[WRAPPER]))
    tool["spec"]["name"] = "my-tool"
    tool["spec"]["dependencies"] = [
        {"name": "zlib", "hash": "z" * 32, "parameters": {"deptypes": ["link"], "virtuals": []}}
    ]  # a dependency no mirror holds
    installs["t" * 32] = tool
    write_v2(source / "develop" / "odd", json.dumps(db).encode())

    result = build(source, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    folder = source / "develop"

    def line_for(text):
        return [line for line in lines if text in line]

    assert line_for(f"{folder / 'truncated' / 'build_cache' / 'index.json'}: not a Spack database")
    assert line_for(
        f"{folder / 'future' / 'build_cache' / 'index.json'}: unknown database version '99'"
    )
    assert line_for(f"{blob}: sha256") and line_for("does not match its name")
    assert line_for(f"{folder / 'wronghash' / 'build_cache' / 'index.json'}: sha256")
    odd = folder / "odd" / "build_cache" / "index.json"
    assert line_for(f"{odd}: installs['{'u' * 32}']: Object missing required field `arch`")
    assert line_for(
        f"{odd}: my-tool/ttttttt depends on zlib/zzzzzzz, which no mirror of tag develop holds"
    )
    # Every record of the good mirrors is there; the odd mirror's stack is on its good ones.
    _, body = api(tmp_path / "ix")
    stacks = {hit["hash"]: hit["stacks"] for hit in body["hits"]}
    assert set(stacks) == {*V8_DOCS, "t" * 32}
    assert stacks[LIBELF_CORE2] == ["odd", "root"]
    assert stacks[LIBELF_M1] == ["odd", "root"]
    # The unresolved dependency is still one: by name, without a version.
    assert found(tmp_path / "ix", "^zlib") == {"t" * 32}
    assert found(tmp_path / "ix", "^zlib@1:") == set()
    assert build(source, tmp_path / "ix2", "--strict").exit_code == 1


def test_a_tag_whose_mirrors_all_fail_keeps_its_documents(tmp_path):
    source = tmp_path / "bucket"
    v8 = (V8 / "build_cache" / "index.json").read_bytes()
    write_v2(source / "develop", v8)
    write_v2(source / "v1.0", (V7 / "build_cache" / "index.json").read_bytes())
    assert build(source, tmp_path / "ix").exit_code == 0
    (source / "develop" / "build_cache" / "index.json").write_bytes(v8[:100])
    (source / "develop" / "build_cache" / "index.json.hash").unlink()
    (source / "v1.0" / "build_cache" / "index.json").write_text(
        '{"database": {"version": "8", "installs": {}}}'
    )
    (source / "v1.0" / "build_cache" / "index.json.hash").unlink()
    result = build(source, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "tag develop: none of its 1 mirrors could be read; kept its 6 specs" in result.stderr
    _, body = api(tmp_path / "ix")
    tags = [hit["tag"] for hit in body["hits"]]
    # develop kept its documents; v1.0 was read (it is empty now).
    assert tags.count("develop") == 6 and "v1.0" not in tags
    # Once the mirror is back, the tag is read again.
    (source / "develop" / "build_cache" / "index.json").write_bytes(v8)
    assert build(source, tmp_path / "ix").exit_code == 0
    assert found(tmp_path / "ix", "^gcc-runtime") == {LIBELF_M1, LIBDWARF_M1}


def test_an_unchanged_mirror_is_not_read_again(tmp_path):
    source = tmp_path / "bucket"
    write_v2(source / "develop", (V8 / "build_cache" / "index.json").read_bytes())
    assert build(source, tmp_path / "ix").exit_code == 0
    # Its index.json.hash is unchanged: the damaged index.json must not even be opened.
    (source / "develop" / "build_cache" / "index.json").write_text("damaged")
    result = build(source, tmp_path / "ix")
    assert result.exit_code == 0 and "index is up to date" in result.stdout


def test_a_link_out_of_the_tree_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    write_v2(outside, (V8 / "build_cache" / "index.json").read_bytes())
    source = tmp_path / "bucket"
    write_v2(source / "develop", (V7 / "build_cache" / "index.json").read_bytes())
    (source / "develop" / "stolen").symlink_to(outside)
    result = build(source, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "leaves the source tree, not followed" in result.stderr
    assert found(tmp_path / "ix") == {LIBELF_CORE2, LIBDWARF_CORE2}


def test_forced_formats(tmp_path):
    single = tmp_path / "one"
    shutil.copytree(V8, single)
    assert build(single, tmp_path / "ix", "--format", "tree").exit_code == 4
    result = build(tmp_path, tmp_path / "ix2", "--format", "mirror")
    assert result.exit_code == 4 and "not a mirror" in result.stderr


def test_spec_page_shows_the_dependency_tree_and_users(v8_index):
    app = create_app({"INDEX_DIR": str(v8_index)})
    client = app.test_client()
    tag = "spack-test-db-v8"
    body = client.get(f"/api/spec/{tag}/{LIBDWARF_M1}").get_json()
    rows = [(r["depth"], r["name"], r["hash"], r["repeated"]) for r in body["tree"]]
    # Link/run only: gcc and compiler-wrapper (build) are folded away; gcc-runtime again
    # under libelf is not expanded twice.
    assert rows == [
        (0, "gcc-runtime", RUNTIME, False),
        (0, "libelf", LIBELF_M1, False),
        (1, "gcc-runtime", RUNTIME, True),
    ]
    users = client.get(f"/api/spec/{tag}/{RUNTIME}").get_json()
    assert {u["hash"] for u in users["used_by"]} == {LIBELF_M1, LIBDWARF_M1}
    assert users["used_by_total"] == 2
    html = client.get(f"/spec/{tag}/{LIBDWARF_M1}").get_data(as_text=True)
    assert f'href="/spec/{tag}/{LIBELF_M1}"' in html
    assert "2 build-only dependencies" in html
    html = client.get(f"/spec/{tag}/{LIBELF_M1}").get_data(as_text=True)
    assert f'href="/spec/{tag}/{LIBDWARF_M1}"' in html  # used by
    app.extensions["searcher.index"].close()


def test_a_single_mirror_needs_a_usable_tag_name(tmp_path):
    odd = tmp_path / "my mirror"
    shutil.copytree(V8, odd)
    result = build(odd, tmp_path / "ix")
    assert result.exit_code == 4
    assert "'my mirror' is not a build-cache tag name: name one with --tag" in result.stderr
    assert build(odd, tmp_path / "ix", "--tag", "site").exit_code == 0
    assert {hit["tag"] for hit in api(tmp_path / "ix")[1]["hits"]} == {"site"}
