"""The README's first command: `searcher demo` generates mirrors, indexes them and serves."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from urllib.parse import urlencode

from tests.conftest import free_port, searcher_process


def test_demo_generates_indexes_and_serves_a_search_page(tmp_path):
    port = free_port()
    index, source = tmp_path / "index", tmp_path / "mirrors"
    process = searcher_process(
        "demo", "--index", index, "--source", source, "--specs", "2000",
        "--port", port, "--workers", "1", start_new_session=True,
    )  # fmt: skip
    try:
        said = []
        deadline = time.monotonic() + 120
        while not any(re.match(r"searcher: process \d+ ready", line) for line in said):
            assert time.monotonic() < deadline and process.poll() is None, "".join(said)
            said.append(process.stderr.readline())
        text = "".join(said)
        generated = int(re.search(r"generated (\d+) demo specs", text)[1])
        assert generated > 1000
        assert f"{generated} specs indexed" in text
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/api/health", timeout=10) as response:
            assert json.load(response)["documents"] == generated
        # The demo's mirrors carry dependencies: a ^ query answers from them.
        query = urlencode({"q": "^openmpi"})
        with urllib.request.urlopen(f"{base}/api/search?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["total"] > 0
        with urllib.request.urlopen(base + "/", timeout=10) as response:
            page = response.read().decode()
        assert response.url.endswith("/search?tag=develop")
        assert 'id="total"' in page and '<table class="hits">' in page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        process.stderr.close()
