"""The `searcher` command: search, serve, version, and how reindex talks to a terminal."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys

import pytest

from searcher import __version__
from tests import reference
from tests.conftest import cli


def test_search_json_is_the_api_answer(client, corpus_index):
    result = cli(
        "search",
        "keras",
        "--index",
        corpus_index,
        "-f",
        "os=ubuntu24.04",
        "-f",
        "stack=e4s",
        "-f",
        "stack=root",
        "--per-page",
        "5",
        "--json",
    )
    assert result.exit_code == 0
    api = client.get("/api/search?q=keras&os=ubuntu24.04&stack=e4s&stack=root&per_page=5")
    mine, theirs = json.loads(result.stdout), api.get_json()
    for body in (mine, theirs):
        assert isinstance(body.pop("took_ms"), float)
    assert mine == theirs


def test_search_prints_one_line_per_hit(corpus_index, corpus_specs):
    result = cli("search", "--index", corpus_index, "-f", "package=acl")
    assert result.exit_code == 0
    acl = reference.display_order([s for s in corpus_specs if s["package"] == "acl"])
    assert result.stdout.splitlines() == [f"1-{len(acl)} of {len(acl)} specs"] + [
        f"acl@{s['versions'][0]}  {s['tag']}  {s['platform']}-{s['os']}-{s['target']}  "
        f"%{s['compiler']}  /{s['hash'][:7]}"
        for s in acl
    ]


def test_search_with_a_bad_query_exits_5_with_a_caret(corpus_index):
    result = cli("search", "keras os:", "--index", corpus_index)
    assert result.exit_code == 5
    assert result.stderr == "error: missing value after 'os:'\n  keras os:\n           ^\n"


def test_search_with_a_bad_filter_is_a_usage_error(corpus_index):
    result = cli("search", "--index", corpus_index, "-f", "ubuntu")
    assert result.exit_code == 2
    assert "'ubuntu' is not FACET=VALUE" in result.output


def test_search_with_an_unknown_facet_exits_5(corpus_index):
    result = cli("search", "--index", corpus_index, "-f", "colour=red")
    assert result.exit_code == 5
    assert result.stderr.startswith("error: unknown parameter 'colour'")


def test_search_and_serve_without_an_index_exit_4(tmp_path):
    for command in (["search", "x"], ["serve"]):
        result = cli(*command, "--index", tmp_path / "none")
        assert result.exit_code == 4
        assert result.stderr == (
            f"error: no index in {tmp_path / 'none'}: "
            "build one with `searcher reindex --source DIR`\n"
        )


def test_serve_refuses_an_index_it_cannot_open(tmp_path, corpus_index):
    index = tmp_path / "ix"
    shutil.copytree(corpus_index, index)
    generation = index / (index / "CURRENT").read_text().strip()
    meta = json.loads((generation / "meta.json").read_text())
    (generation / "meta.json").write_text(json.dumps({**meta, "schema_version": 1}))
    result = cli("serve", "--index", index)
    assert result.exit_code == 4
    assert "built by another version of searcher; run searcher reindex" in result.stderr


def test_version():
    assert cli("--version").stdout == f"searcher, version {__version__}\n"


def test_reindex_on_a_terminal_draws_a_bar_and_prints_problems_after_it(tmp_path, corpus):
    """On a terminal: a progress bar, then the held-back problems, then the summary."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "searcher",
            "reindex",
            "--source",
            str(corpus),
            "--index",
            str(tmp_path / "ix"),
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout, _ = process.communicate(timeout=60)
    os.close(leader)
    terminal = b"".join(chunks).decode()
    assert process.returncode == 0
    assert "indexing" in terminal and "100%" in terminal
    assert "indexed 1/" not in terminal  # the plain log lines are for non-terminals
    legacy = terminal.index("_legacy/byacc/specs.md: old untagged format")
    assert legacy > terminal.rindex("100%")
    assert "specs indexed" in stdout


def test_search_json_with_a_bad_query_prints_the_api_error_body(client, corpus_index):
    result = cli("search", "py-keras@", "--index", corpus_index, "--json")
    assert result.exit_code == 5
    api = client.get("/api/search?q=py-keras%40")
    assert json.loads(result.stdout) == api.get_json()
    assert result.stderr.startswith("error: ")


def test_search_json_without_an_index_prints_the_503_body(tmp_path, client_for):
    result = cli("search", "x", "--index", tmp_path / "none", "--json")
    assert result.exit_code == 4
    expected = client_for(tmp_path / "none").get("/api/search?q=x").get_json()
    assert json.loads(result.stdout) == expected


@pytest.mark.parametrize(
    "args",
    [["--per-page", "500"], ["--per-page", "0"], ["--page", "0"], ["--page", "10001"]],
)
def test_out_of_range_paging_options_are_usage_errors(corpus_index, args):
    result = cli("search", "keras", "--index", corpus_index, *args)
    assert result.exit_code == 2
    assert "Invalid value for" in result.stderr


def test_search_offers_did_you_mean_on_the_command_line(client, corpus_index):
    result = cli("search", "py-kears os=ubuntu24.04", "--index", corpus_index)
    assert result.exit_code == 0
    api = client.get("/api/search?q=py-kears+os%3Dubuntu24.04").get_json()
    assert api["total"] == 0 and api["suggestions"]
    assert result.stdout.splitlines() == ["0 specs"] + [
        f"did you mean: {s['q']}" for s in api["suggestions"]
    ]
