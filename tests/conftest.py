"""Fixtures: the real corpus, indexes built through the CLI, the app, a live server."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from searcher.app import create_app
from searcher.cli import main
from tests import reference

# The browser fixtures (browser, new_page, page) live in tests/browser.py.
pytest_plugins = ["tests.browser"]

ROOT = Path(__file__).resolve().parent.parent
# Real listing pages committed with the tests (tests/data/corpus/README.md says whence).
CORPUS = Path(os.environ.get("SEARCHER_CORPUS", ROOT / "tests" / "data" / "corpus"))


def cli(*args: str, env: dict | None = None):
    """Run the searcher command in-process; returns click's Result."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def searcher_process(*args: str, **kwargs) -> subprocess.Popen:
    """Start the real `searcher` command in a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "searcher", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real listing pages in tests/data/corpus (or $SEARCHER_CORPUS)."""
    if not (CORPUS / "develop").is_dir():
        pytest.fail(f"the real corpus is missing at {CORPUS}; set SEARCHER_CORPUS to its path")
    return CORPUS


@pytest.fixture(scope="session")
def corpus_specs(corpus) -> list[dict]:
    """Every spec of the corpus, read independently of searcher."""
    return reference.read_listing(corpus)


def build_index(source: Path, index: Path) -> Path:
    """Index a listing with `searcher reindex`."""
    result = cli("reindex", "--source", source, "--index", index)
    assert result.exit_code == 0, result.output
    return index


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory, corpus) -> Path:
    """An index of the real corpus."""
    return build_index(corpus, tmp_path_factory.mktemp("corpus-index"))


@pytest.fixture(scope="session")
def generated_source(tmp_path_factory) -> Path:
    """A generated listing of about 3,000 specs over 4 tags."""
    source = tmp_path_factory.mktemp("generated")
    result = cli("generate", source, "--specs", "3000", "--tags", "4")
    assert result.exit_code == 0, result.output
    return source


@pytest.fixture(scope="session")
def generated_index(tmp_path_factory, generated_source) -> Path:
    """An index of the generated listing."""
    return build_index(generated_source, tmp_path_factory.mktemp("generated-index"))


@pytest.fixture()
def client(corpus_index):
    """A test client of the app over the corpus index."""
    app = create_app({"INDEX_DIR": str(corpus_index), "TESTING": True})
    yield app.test_client()
    app.extensions["searcher.index"].close()


@pytest.fixture()
def client_for():
    """Test clients of apps over given index directories; all closed after the test."""
    apps = []

    def make(index: Path):
        apps.append(create_app({"INDEX_DIR": str(index), "TESTING": True}))
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["searcher.index"].close()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`searcher serve` in a child process (its own session), on a loopback port: waitress
    with one worker, gunicorn's pre-forked workers with more (2, CI's number of cores, by
    default). Ready when every process has said it is (`process PID ready, ...`)."""

    def __init__(self, index: Path, workers: int = 2):
        self.index = index
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = searcher_process(
            "serve", "--index", index, "--port", self.port, "--threads", "4",
            "--workers", workers, start_new_session=True,
        )  # fmt: skip
        self.stderr: list[str] = []
        self._ready: queue.Queue[int | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.pids = []
        deadline = time.monotonic() + 60
        while len(self.pids) < workers:
            try:
                pid = self._ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pid = None
            if pid is None:
                self.stop()
                raise RuntimeError("server did not start: " + "".join(self.stderr))
            self.pids.append(pid)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            ready = re.match(r"searcher: process (\d+) ready", line)
            if ready:
                self._ready.put(int(ready[1]))
        self._ready.put(None)  # the server closed its stderr: it is gone

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path; returns (status, body) for any status."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_for_generation(self, name: str, timeout: float = 30) -> None:
        """Wait until every process of the server answers from generation `name`.

        Each process opens a new generation on its own, in the background, while it keeps
        answering from the one it has; once one answers from `name` it never goes back.
        """
        pending, deadline = set(self.pids), time.monotonic() + timeout
        while pending:
            status, body = self.get("/api/health")
            health = json.loads(body)
            if status == 200 and health["generation"] == name:
                pending.discard(health["process"])
            assert time.monotonic() < deadline, f"{sorted(pending)} never switched to {name}"
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server and reap it; kill what is left of its processes after 30 s."""
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers included
        self.process.wait()
        self._reader.join(timeout=30)  # ends when the last process holding stderr is gone
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture()
def live_server_for():
    """Start live servers on given indexes; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(index: Path, workers: int = 2) -> LiveServer:
        servers.append(LiveServer(index, workers))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
