"""A damaged index directory, an index that cannot be written, and the switch-over: the
served index keeps answering, the user gets one line saying what to do, and the next
reindex repairs what it can."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli, searcher_process


@pytest.fixture()
def index(tmp_path, corpus) -> Path:
    """A fresh index of the real corpus, for one test to damage."""
    path = tmp_path / "ix"
    assert cli("reindex", "--source", corpus, "--index", path).exit_code == 0
    return path


def damage_with_bad_bytes(index: Path) -> None:
    (index / "CURRENT").write_bytes(b"\xff\xfe gen-\x00\n")


def damage_with_a_folder(index: Path) -> None:
    (index / "CURRENT").unlink()
    (index / "CURRENT").mkdir()
    (index / "CURRENT" / "x").write_text("x")


def damage_with_garbage(index: Path) -> None:
    (index / "CURRENT").write_text("../../etc\n")


DAMAGE = [damage_with_bad_bytes, damage_with_a_folder, damage_with_garbage]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_current_keeps_a_running_server_on_its_index(index, damage, live_server_for):
    server = live_server_for(index)
    status, before = server.get("/api/health")
    assert status == 200
    damage(index)
    for path in ("/api/health", "/api/search?q=keras", "/search?q=keras"):
        status, _ = server.get(path)
        assert status == 200, path
    assert without_process(server.get("/api/health")[1]) == without_process(before)


def without_process(health: bytes) -> dict:
    """A health answer without the pid of the process that gave it (there are two)."""
    answer = json.loads(health)
    answer.pop("process")
    return answer


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_current_is_a_503_then_repaired_by_reindex(index, corpus, damage, client_for):
    damage(index)
    client = client_for(index)
    response = client.get("/api/health")
    assert response.status_code == 503
    message = response.get_json()["error"]["message"]
    assert message.startswith(f"{index / 'CURRENT'} is damaged (")
    assert message.endswith("); run `searcher reindex` to repair it")
    assert client.get("/search").status_code == 503

    serve = cli("serve", "--index", index, "--port", "1")
    assert serve.exit_code == 4
    assert serve.stderr == f"error: {message}\n"
    search = cli("search", "keras", "--index", index)
    assert (search.exit_code, search.stderr) == (4, f"error: {message}\n")

    repaired = cli("reindex", "--source", corpus, "--index", index)
    assert repaired.exit_code == 0, repaired.output
    assert client.get("/api/health").status_code == 200  # the same app: no restart


ARRAYS = ["hashes.npy", "hash_ranks.npy", "column-os.npy", "column-variant.npy"]
ARRAYS += ["column-variant-offsets.npy", "order.npy", "rank_of.npy"]


def wrong_values(path: Path) -> None:
    """The same shape and type, contents no generation could have: hashes out of order,
    numbers past any document or value."""
    array = np.load(path)
    wrong = np.sort(array)[::-1] if array.dtype.kind == "S" else np.full_like(array, 2**30)
    np.save(path, wrong)


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("damage", ["missing", "too short", "not an array", "wrong values"])
def test_a_damaged_array_of_a_generation_is_a_503_naming_it_and_reindex_full_repairs_it(
    index, corpus, client_for, name, damage
):
    generation = index / (index / "CURRENT").read_text().strip()
    path = generation / name
    if damage == "missing":
        path.unlink()
    elif damage == "too short":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "not an array":
        path.write_bytes(b"\x93NUMPY garbage")
    else:
        wrong_values(path)
    response = client_for(index).get("/api/search?q=keras")
    assert response.status_code == 503
    message = response.get_json()["error"]["message"]
    assert message.startswith(f"cannot open index generation {generation}: ")
    assert "Traceback" not in message
    search = cli("search", "keras", "--index", index)
    assert search.exit_code == 4 and search.stderr.startswith("error: cannot open index")

    assert cli("reindex", "--full", "--source", corpus, "--index", index).exit_code == 0
    assert client_for(index).get("/api/search?q=keras").get_json()["total"] > 0


def shard_file(generation: Path, name: str) -> Path:
    shards = json.loads((generation / "meta.json").read_text())["shards"]
    shard = next(s for s in shards if s["docs"])
    return generation / "shards" / shard["dir"] / name


@pytest.mark.parametrize("name", ["stats.json", "rows.bin", "rows-offsets.npy"])
@pytest.mark.parametrize("damage", ["missing", "too short", "garbage"])
def test_damaged_stats_or_export_rows_are_a_503_naming_the_generation(
    index, corpus, client_for, name, damage
):
    generation = index / (index / "CURRENT").read_text().strip()
    path = shard_file(generation, name) if name.startswith("rows") else generation / name
    if damage == "missing":
        path.unlink()
    elif damage == "too short":
        path.write_bytes(path.read_bytes()[:-7])
    else:
        path.write_bytes(b"\x93NUMPY garbage" if name.endswith(".npy") else b"\xc1garbage{")
    response = client_for(index).get("/api/stats")
    assert response.status_code == 503, response.get_json()
    message = response.get_json()["error"]["message"]
    assert message.startswith(f"cannot open index generation {generation}: ")
    assert cli("reindex", "--full", "--source", corpus, "--index", index).exit_code == 0
    assert client_for(index).get("/api/stats").status_code == 200


def test_a_reindex_that_indexes_nothing_never_deletes_a_generation(index, tmp_path, client_for):
    generations = sorted(p.name for p in index.glob("gen-*"))
    damage_with_garbage(index)
    write_bad = tmp_path / "bad" / "t" / "x" / "specs.md"
    write_bad.parent.mkdir(parents=True)
    write_bad.write_text("")
    result = cli("reindex", "--source", tmp_path / "bad", "--index", index)
    assert result.exit_code == 4
    assert sorted(p.name for p in index.glob("gen-*")) == generations
    # Pointing CURRENT back at the generation is all it takes to serve it again.
    (index / "CURRENT").write_text(generations[-1] + "\n")
    assert client_for(index).get("/api/search?q=keras").get_json()["total"] > 0


def test_an_index_that_cannot_be_locked_is_one_line_and_exit_4(tmp_path, corpus):
    index = tmp_path / "ix"
    (index / ".lock").mkdir(parents=True)  # something in the way of the lock file
    result = cli("reindex", "--source", corpus, "--index", index)
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: cannot write the index in {index}: Is a directory: {index / '.lock'}; "
        "the previous index stays in place\n"
    )


def test_an_index_on_a_full_disk_is_one_line_and_exit_4_and_keeps_the_old_one(index, corpus):
    """A file-size limit makes every large write fail as a full disk would (EFBIG)."""
    before = (index / "CURRENT").read_text()

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, do not kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    for jobs in ("1", "2"):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "searcher",
                "reindex",
                "--full",
                "-j",
                jobs,
                "--source",
                str(corpus),
                "--index",
                str(index),
            ],
            capture_output=True,
            text=True,
            preexec_fn=small_files,
            timeout=120,
        )
        assert run.returncode == 4, run.stderr
        (line,) = [x for x in run.stderr.splitlines() if x.startswith("error:")]
        assert line.startswith(f"error: cannot write the index in {index}")
        assert "File too large" in line and line.endswith("the previous index stays in place")
        assert "Traceback" not in run.stderr
        assert (index / "CURRENT").read_text() == before
        assert not list(index.glob(".build-*"))


def test_requests_keep_being_answered_while_a_new_generation_opens(index, live_server_for):
    """Opening a generation must not hold up a single request, not even the one that
    noticed the change.

    The new generation's meta.json is a named pipe: whoever opens the generation waits on
    it until the test writes to it, which makes "opening takes long" last as long as the
    test needs, deterministically. One process: each process opens a generation on its
    own, and the pipe's one write lets one reader through.
    """
    server = live_server_for(index, workers=1)
    _, before = server.get("/api/search?q=keras")
    slow = index / "gen-29990101T000000000000000"
    shutil.copytree(index / (index / "CURRENT").read_text().strip(), slow)
    (slow / "meta.json").unlink()
    os.mkfifo(slow / "meta.json")
    (index / "CURRENT").write_text(slow.name + "\n")

    assert server.get("/api/health")[0] == 200  # notices the change, starts opening
    pipe = wait_for_reader(slow / "meta.json")
    try:
        for _ in range(20):
            status, body = server.get("/api/search?q=keras")
            assert status == 200 and json.loads(body)["hits"] == json.loads(before)["hits"]
    finally:
        os.write(pipe, b"{")  # let the opening go on, with a meta.json it cannot read
        os.close(pipe)
    assert server.get("/api/health")[0] == 200


def wait_for_reader(fifo: Path, timeout: float = 30) -> int:
    """Open a named pipe for writing once something has it open for reading."""
    deadline = time.monotonic() + timeout
    while True:
        try:  # without a reader, a non-blocking open for writing fails with ENXIO
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def test_the_lock_holder_is_named_even_when_asked_right_after_it_locked(tmp_path, corpus):
    """A holder writes who it is right after locking; a reindex refused in between waits
    for the text rather than naming "(unknown)"."""
    import fcntl

    index = tmp_path / "ix"
    index.mkdir()
    fd = os.open(index / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    timer = threading.Timer(1.0, os.pwrite, (fd, b"pid 4242, started 12:00:00", 0))
    timer.start()
    try:
        process = searcher_process("reindex", "--source", corpus, "--index", index)
        _, stderr = process.communicate(timeout=60)
    finally:
        timer.join()
        os.close(fd)
    assert process.returncode == 3
    assert f"another reindex is running on {index} (pid 4242, started 12:00:00)" in stderr
