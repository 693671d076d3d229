"""`searcher reindex`: reading every real page, reporting bad ones, and never losing the index."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests import reference
from tests.conftest import cli, searcher_process
from tests.pages import page, spec, summary, write

# -- the real corpus ------------------------------------------------------------------


def test_every_real_page_is_indexed_and_legacy_pages_are_reported(tmp_path, corpus, corpus_specs):
    result = cli("reindex", "--source", corpus, "--index", tmp_path / "ix")
    assert result.exit_code == 0, result.output
    tagged = [p for p in corpus.glob("*/*/specs.md") if p.parent.parent.name != "_legacy"]
    legacy = sorted(corpus.glob("_legacy/*/specs.md"))
    assert summary(result.stdout) == (len(tagged) + len(legacy), len(corpus_specs), len(legacy), 0)
    warnings = result.stderr.splitlines()
    for path in legacy:
        assert (
            f"{path}: old untagged format (spec_names without hashes), skipped: it has no tag"
            in warnings
        )


def test_every_real_spec_is_found_by_its_hash(client, corpus_specs):
    for entry in corpus_specs:
        body = client.get(f"/api/search?q={entry['hash'][:7]}&per_page=100").get_json()
        ids = [h["id"] for h in body["hits"]]
        assert f"{entry['tag']}/{entry['hash']}" in ids, entry["hash"]
        full = client.get(f"/api/search?q=hash:{entry['hash']}&per_page=100").get_json()
        assert reference.hit(entry) in full["hits"]


def test_strict_fails_on_the_legacy_pages(tmp_path, corpus):
    result = cli("reindex", "--source", corpus, "--index", tmp_path / "ix", "--strict")
    assert result.exit_code == 1
    assert "error: --strict: 3 problem(s) above" in result.stderr
    # The index was still built and switched to: --strict only changes the exit code.
    assert (tmp_path / "ix" / "CURRENT").exists()


# -- malformed input ----------------------------------------------------------------


BAD_PAGES = {
    "bad-yaml": (
        '---\ntitle: "x"\ncategories: [package, t\nspec_details: []\n---\n',
        "invalid YAML at line",
    ),
    "bad-json": (
        '---\ntitle: "x"\nlayout: cache\ncategories: [package, t]\n'
        'spec_details: [{"hash": "abcdefgh", \n---\n',
        "invalid YAML at line",
    ),
    "empty": ("", "empty file"),
    "not-utf8": (b'---\ntitle: "caf\xe9"\n---\n', "not UTF-8 (invalid byte at offset 15)"),
    "no-front-matter": ("# just markdown\n", "no front matter"),
    "unclosed": ('---\ntitle: "x"\ncategories: [package, t]\n', "front matter is not closed"),
    "no-details": (
        '---\ntitle: "x"\ncategories: [package, t]\n---\n',
        "missing key 'spec_details'",
    ),
    "details-not-list": (
        '---\ntitle: "x"\ncategories: [package, t]\nspec_details: 7\n---\n',
        "'spec_details' must be a list, got int",
    ),
    "bad-categories": (
        '---\ntitle: "x"\ncategories: package\nspec_details: []\n---\n',
        "'categories' must be [package, <tag>]",
    ),
    "scalar": ("---\njust a string\n---\n", "front matter is not a mapping"),
}


def test_malformed_pages_are_reported_with_path_and_reason_and_the_rest_indexed(tmp_path):
    source = tmp_path / "src"
    write(source, "t/good/specs.md", page("t", "good", [spec("a" * 32), spec("b" * 32)]))
    paths = {}
    for name, (content, _) in BAD_PAGES.items():
        paths[name] = write(source, f"t/{name}/specs.md", content)
    result = cli("reindex", "--source", source, "--index", tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (len(BAD_PAGES) + 1, 2, len(BAD_PAGES), 0)
    for name, (_, reason) in BAD_PAGES.items():
        lines = [line for line in result.stderr.splitlines() if line.startswith(f"{paths[name]}: ")]
        assert len(lines) == 1 and reason in lines[0], (name, result.stderr)
    found = cli("search", "good", "--index", tmp_path / "ix", "--json")
    assert json.loads(found.stdout)["total"] == 2


BAD_SPECS = [
    ({"hash": 5}, "spec_details[1]: 'hash' must be a non-empty string, got 5"),
    ({"hash": "NOT A HASH"}, "spec_details[1]: 'hash' 'NOT A HASH' is not a Spack DAG hash"),
    ({"versions": []}, "spec_details[1]: 'versions' must be a list of strings, got []"),
    ({"variants": "+mpi"}, "spec_details[1]: 'variants' must be a list of strings, got '+mpi'"),
    ({"stacks": [1]}, "spec_details[1]: 'stacks' must be a list of strings, got [1]"),
    ({"os": ""}, "spec_details[1]: 'os' must be a non-empty string, got ''"),
    ({"tarball": 3}, "spec_details[1]: 'tarball' must be a URL string, got 3"),
    ({"hash": "c" * 32, "_drop": "target"}, "spec_details[1]: missing key 'target'"),
    ({"hash": "a" * 32}, "spec_details[1]: hash " + "a" * 32 + " listed twice, kept first"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_a_bad_spec_entry_is_reported_and_its_page_mates_indexed(tmp_path, change, message):
    bad = spec("c" * 32, **{k: v for k, v in change.items() if k != "_drop"})
    bad.pop(change.get("_drop", "_none"), None)
    path = write(
        tmp_path / "src", "t/pkg/specs.md", page("t", "pkg", [spec("a" * 32), bad, spec("b" * 32)])
    )
    result = cli("reindex", "--source", tmp_path / "src", "--index", tmp_path / "ix")
    assert result.exit_code == 0
    assert f"{path}: {message}" in result.stderr.splitlines()
    assert summary(result.stdout) == (1, 2, 0, 1)


def test_the_same_spec_in_two_pages_of_one_tag_is_indexed_once(tmp_path):
    source = tmp_path / "src"
    write(source, "t/one/specs.md", page("t", "one", [spec("a" * 32)]))
    second = write(source, "t/two/specs.md", page("t", "two", [spec("a" * 32)]))
    result = cli("reindex", "--source", source, "--index", tmp_path / "ix")
    assert summary(result.stdout) == (2, 1, 0, 1)
    assert f"{second}: t/{'a' * 32} is also listed in" in result.stderr


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "source directory {src} does not exist"),
        (lambda root: (root / "src").mkdir(), "no listing pages under {src}"),
    ],
    ids=["missing", "empty"],
)
def test_unusable_source_exits_4_and_keeps_the_old_index(tmp_path, corpus, setup, message):
    index = tmp_path / "ix"
    assert cli("reindex", "--source", corpus, "--index", index).exit_code == 0
    before = (index / "CURRENT").read_text()
    setup(tmp_path)
    result = cli("reindex", "--source", tmp_path / "src", "--index", index)
    assert result.exit_code == 4
    assert f"error: {message.format(src=tmp_path / 'src')}" in result.stderr
    assert (index / "CURRENT").read_text() == before
    assert json.loads(cli("search", "", "--index", index, "--json").stdout)["total"] > 0


def test_a_source_where_nothing_indexes_keeps_the_old_index(tmp_path, corpus):
    index = tmp_path / "ix"
    assert cli("reindex", "--source", corpus, "--index", index).exit_code == 0
    before = (index / "CURRENT").read_text()
    write(tmp_path / "src", "t/bad/specs.md", "")
    result = cli("reindex", "--source", tmp_path / "src", "--index", index)
    assert result.exit_code == 4
    assert "no spec in" in result.stderr and "the previous index stays in place" in result.stderr
    assert (index / "CURRENT").read_text() == before
    assert sorted(p.name for p in index.iterdir() if p.name.startswith(".build-")) == []


def test_source_and_index_come_from_the_environment(tmp_path, corpus, corpus_specs):
    env = {"SEARCHER_SOURCE": str(corpus), "SEARCHER_INDEX": str(tmp_path / "env-ix")}
    result = cli("reindex", env=env)
    assert result.exit_code == 0
    assert summary(result.stdout)[1] == len(corpus_specs)
    assert (tmp_path / "env-ix" / "CURRENT").exists()


def test_reindex_without_a_source_is_a_usage_error(tmp_path):
    result = cli("reindex", "--index", tmp_path / "ix")
    assert result.exit_code == 2
    assert "Missing option '--source'" in result.output


# -- interruption, concurrency, switch-over ---------------------------------------------


def wait_for_build(index: Path, process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(index.glob(".build-*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "reindex never started building"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    """A listing large enough that its reindex runs for a few seconds."""
    source = tmp_path_factory.mktemp("big")
    assert cli("generate", source, "--specs", "20000", "--tags", "2").exit_code == 0
    return source


def workers_of(pid: int) -> list[int]:
    """Live worker processes started by the reindex with this pid (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"searcher.workers" in cmdline and str(pid).encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_killed_reindex_leaves_the_old_index_serving_and_is_cleaned_up(
    tmp_path, corpus, big_source, live_server_for
):
    index = tmp_path / "ix"
    assert cli("reindex", "--source", corpus, "--index", index).exit_code == 0
    server = live_server_for(index)
    _, before = server.get("/api/search?q=keras")

    process = searcher_process("reindex", "--source", big_source, "--index", index, "-j", "2")
    wait_for_build(index, process)
    deadline = time.monotonic() + 30
    while len(workers_of(process.pid)) < 2:  # kill it while its workers are building
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    # Its workers notice and go, and nothing complains about leaked resources.
    while workers_of(process.pid):
        assert time.monotonic() < deadline, "workers outlived their killed reindex"
        time.sleep(0.05)
    assert "leaked" not in stderr and "Traceback" not in stderr, stderr

    status, after = server.get("/api/search?q=keras")
    assert status == 200
    assert json.loads(after)["hits"] == json.loads(before)["hits"]
    assert list(index.glob(".build-*")), "the killed build should have left its directory"

    result = cli("reindex", "--source", corpus, "--index", index)
    assert result.exit_code == 0
    assert not list(index.glob(".build-*"))


def test_a_second_reindex_is_refused_while_one_runs(tmp_path, big_source):
    index = tmp_path / "ix"
    first = searcher_process("reindex", "--source", big_source, "--index", index)
    try:
        wait_for_build(index, first)
        second = cli("reindex", "--source", big_source, "--index", index)
        assert second.exit_code == 3
        assert re.search(
            rf"error: another reindex is running on {re.escape(str(index))} \(pid {first.pid}, "
            r"started \d\d:\d\d:\d\d\); wait for it to finish, then run this one again",
            second.stderr,
        ), second.stderr
    finally:
        first.terminate()
        first.communicate()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_interrupted_reindex_cleans_up_and_keeps_the_old_index(tmp_path, corpus, big_source, jobs):
    """Ctrl-C while building: exit 130, one line, the old index served, nothing left over.

    The reindex is stopped (SIGSTOP) as soon as it starts building, so the interrupt
    surely lands mid-build however fast the machine is; it is handled when it resumes.
    """
    index = tmp_path / "ix"
    assert cli("reindex", "--source", corpus, "--index", index).exit_code == 0
    before = (index / "CURRENT").read_text()
    process = searcher_process("reindex", "--source", big_source, "--index", index, "-j", jobs)
    wait_for_build(index, process)
    process.send_signal(signal.SIGSTOP)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.splitlines()[-1] == "error: interrupted; the previous index stays in place"
    assert "Traceback" not in stderr
    assert (index / "CURRENT").read_text() == before
    assert not list(index.glob(".build-*"))
    assert workers_of(process.pid) == []


def test_a_running_server_switches_to_a_new_index_without_restarting(
    tmp_path, corpus, live_server_for
):
    index = tmp_path / "ix"
    source = tmp_path / "src"
    shutil.copytree(corpus / "v0.22.0", source / "v0.22.0")
    assert cli("reindex", "--source", source, "--index", index).exit_code == 0
    server = live_server_for(index)
    assert json.loads(server.get("/api/search")[1])["total"] == 8

    shutil.copytree(corpus / "develop", source / "develop")
    assert cli("reindex", "--source", source, "--index", index).exit_code == 0
    server.wait_for_generation((index / "CURRENT").read_text().strip())
    body = json.loads(server.get("/api/search?tag=develop")[1])
    assert body["total"] == sum(1 for s in reference.read_listing(corpus) if s["tag"] == "develop")
    # Generations are kept to the served one and the one before it.
    assert len(list(index.glob("gen-*"))) == 2


def test_non_terminal_output_is_plain_progress_lines(tmp_path, corpus):
    result = cli("reindex", "--source", corpus, "--index", tmp_path / "ix")
    pages = len(list(corpus.glob("*/*/specs.md")))
    progress = [line for line in result.stderr.splitlines() if line.startswith("indexed ")]
    assert progress[-1] == f"indexed {pages}/{pages} files"
    assert all(re.fullmatch(rf"indexed \d+/{pages} files", line) for line in progress)
    assert "\r" not in result.stderr  # no progress-bar redraws when not on a terminal


def test_server_keeps_its_generation_when_current_names_one_it_cannot_open(
    tmp_path, corpus, live_server_for
):
    index = tmp_path / "ix"
    assert cli("reindex", "--source", corpus, "--index", index).exit_code == 0
    server = live_server_for(index)
    _, before = server.get("/api/health")
    broken = index / "gen-29990101T000000000000000"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    (index / "CURRENT").write_text(broken.name + "\n")
    status, after = server.get("/api/health")
    assert status == 200
    assert json.loads(after)["generation"] == json.loads(before)["generation"]
    # The next good reindex is picked up as usual, and cleans the broken one away.
    assert cli("reindex", "--source", corpus, "--index", index).exit_code == 0
    generation = (index / "CURRENT").read_text().strip()
    assert generation != json.loads(before)["generation"]
    server.wait_for_generation(generation)
    assert not broken.exists()
