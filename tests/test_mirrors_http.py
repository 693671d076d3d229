"""Mirrors, trees and catalogs over HTTP, from a real HTTP server on loopback, with
injected failures: 404, 500 (once, and always), a slow answer, a corrupt blob, a proxy."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.test_mirrors import (
    GCC,
    LIBDWARF_CORE2,
    LIBDWARF_M1,
    LIBELF_CORE2,
    LIBELF_M1,
    RUNTIME,
    V7,
    V8,
    WRAPPER,
    api,
    found,
    subset,
    write_v2,
    write_v3,
)

FAST = {"SEARCHER_HTTP_RETRIES": "2", "SEARCHER_HTTP_BACKOFF": "0.01", "SEARCHER_HTTP_TIMEOUT": "1"}


class Server:
    """A static file server over a folder, counting requests, with failures by path."""

    def __init__(self, root: Path):
        self.root = root
        self.hits: Counter[str] = Counter()
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer, in turn (then 200)
        self.always: dict[str, int] = {}  # path -> status, every time
        self.slow: dict[str, float] = {}  # path -> seconds to wait before answering
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self):
                path = self.path.split("?")[0]
                server.hits[path] += 1
                if path in server.slow:
                    time.sleep(server.slow[path])
                status = server.always.get(path)
                if status is None and server.fail.get(path):
                    status = server.fail[path].pop(0)
                if status:
                    self.send_error(status)
                    return
                super().do_GET()

            def copyfile(self, source, outputfile):
                # The client may stop reading (a probe, a size limit).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().copyfile(source, outputfile)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def bucket(tmp_path):
    """develop: a v2 root mirror (all of v8), stacks e4s (v3) and ml (v2); v1.0: v7."""
    root = tmp_path / "bucket"
    index = V8 / "build_cache" / "index.json"
    write_v2(root / "develop", index.read_bytes())
    write_v3(root / "develop" / "e4s", subset(index, {LIBELF_M1}))
    write_v2(root / "develop" / "ml", subset(index, {LIBELF_M1, WRAPPER}))
    write_v3(root / "v1.0", (V7 / "build_cache" / "index.json").read_bytes())
    server = Server(root)
    yield server
    server.close()


def reindex(source, index, *args, env=FAST):
    return cli("reindex", "--source", source, "--index", index, *args, env=env)


def stacks(index) -> dict[str, list[str]]:
    return {hit["id"]: hit["stacks"] for hit in api(index)[1]["hits"]}


def test_a_tree_of_mirrors_over_http(bucket, tmp_path):
    result = reindex(bucket.url, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "4 files read, 8 specs indexed, 0 files skipped" in result.stdout
    got = stacks(tmp_path / "ix")
    assert got[f"develop/{LIBELF_M1}"] == ["e4s", "ml", "root"]
    assert got[f"develop/{WRAPPER}"] == ["ml", "root"]
    assert got[f"v1.0/{LIBDWARF_CORE2}"] == ["root"]
    assert found(tmp_path / "ix", "^gcc-runtime", tag="develop") == {LIBELF_M1, LIBDWARF_M1}
    assert "downloaded 4/4 mirror indexes" in result.stderr


def test_one_mirror_by_url_takes_its_tag_from_the_path(bucket, tmp_path):
    result = reindex(f"{bucket.url}develop/e4s", tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert {h: s for h, s in stacks(tmp_path / "ix").items()} == {f"e4s/{LIBELF_M1}": ["root"]}
    result = reindex(f"{bucket.url}develop/e4s/", tmp_path / "ix2", "--tag", "mine")
    assert result.exit_code == 0, result.output
    assert set(stacks(tmp_path / "ix2")) == {f"mine/{LIBELF_M1}"}


def test_an_unchanged_mirror_is_not_downloaded_again_and_incremental_equals_full(bucket, tmp_path):
    assert reindex(bucket.url, tmp_path / "ix").exit_code == 0
    root_index = "/develop/build_cache/index.json"
    e4s_blobs = [p for p in bucket.hits if p.startswith("/develop/e4s/blobs/")]
    assert bucket.hits[root_index] == 1 and len(e4s_blobs) == 1
    # Nothing changed: only the small files that say so are fetched.
    result = reindex(bucket.url, tmp_path / "ix")
    assert "index is up to date" in result.stdout
    assert bucket.hits[root_index] == 1
    # The ml stack changes: develop is rebuilt, but its other mirrors are not fetched.
    write_new = subset(V8 / "build_cache" / "index.json", {LIBELF_M1, WRAPPER, RUNTIME})
    ml = bucket.root / "develop" / "ml"
    for child in (ml / "build_cache").iterdir():
        child.unlink()
    (ml / "build_cache").rmdir()
    write_v2(ml, write_new)
    result = reindex(bucket.url, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert bucket.hits[root_index] == 1 and bucket.hits[e4s_blobs[0]] == 1
    assert bucket.hits["/develop/ml/build_cache/index.json"] == 2
    assert stacks(tmp_path / "ix")[f"develop/{RUNTIME}"] == ["ml", "root"]
    # The same as a full build from scratch.
    assert reindex(bucket.url, tmp_path / "fresh").exit_code == 0
    assert api(tmp_path / "ix")[1]["hits"] == api(tmp_path / "fresh")[1]["hits"]


def test_failures_are_named_and_retried_and_the_rest_is_indexed(bucket, tmp_path):
    manifest = "/develop/e4s/v3/manifests/index/index.manifest.json"
    bucket.fail[manifest] = [503, 500]  # retried: the third try answers
    bucket.always["/develop/ml/build_cache/index.json"] = 500
    bucket.slow["/v1.0/v3/manifests/index/index.manifest.json"] = 3
    result = reindex(bucket.url, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert f"{bucket.url}develop/ml/build_cache/index.json: HTTP 500 Internal Server Error" in lines
    assert f"{bucket.url}v1.0/v3/manifests/index/index.manifest.json: timed out" in lines
    # Three tries when the tree is listed (503, 500, then 200), one when it is resolved.
    assert bucket.hits[manifest] == 4
    got = stacks(tmp_path / "ix")
    assert got[f"develop/{LIBELF_M1}"] == ["e4s", "root"]
    assert not any(doc.startswith("v1.0/") for doc in got)
    # v1.0 had no previous documents to keep; develop's are all there.
    assert {doc.partition("/")[2] for doc in got} == {
        LIBELF_CORE2,
        WRAPPER,
        RUNTIME,
        LIBELF_M1,
        LIBDWARF_M1,
        LIBDWARF_CORE2,
    }
    assert reindex(bucket.url, tmp_path / "ix2", "--strict").exit_code == 1


def test_a_corrupt_blob_and_a_missing_one_are_named(bucket, tmp_path):
    blob = next(p for p in (bucket.root / "develop" / "e4s" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes().replace(b"generic", b"Generic", 1))
    v1_blob = next(p for p in (bucket.root / "v1.0" / "blobs").rglob("*") if p.is_file())
    v1_blob.unlink()
    result = reindex(bucket.url, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    url = bucket.url + str(blob.relative_to(bucket.root))
    assert any(
        line.startswith(f"{url}: sha256 ") and "does not match its name" in line
        for line in result.stderr.splitlines()
    ), result.stderr
    assert (
        f"{bucket.url}{v1_blob.relative_to(bucket.root)}: HTTP 404 File not found" in result.stderr
    )


def test_a_tag_whose_mirrors_all_fail_keeps_its_documents_over_http(bucket, tmp_path):
    assert reindex(bucket.url, tmp_path / "ix").exit_code == 0
    (bucket.root / "v1.0" / "blobs").rename(bucket.root / "v1.0" / "gone")
    # A new manifest checksum makes the tag change; its blob then cannot be fetched.
    manifest = bucket.root / "v1.0" / "v3" / "manifests" / "index" / "index.manifest.json"
    data = json.loads(manifest.read_text())
    data["data"][0]["checksum"] = "a" * 64
    manifest.write_text(json.dumps(data))
    result = reindex(bucket.url, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "tag v1.0: none of its 1 mirrors could be read; kept its 2 specs" in result.stderr
    assert {LIBELF_CORE2, LIBDWARF_CORE2} <= set(found(tmp_path / "ix", tag="v1.0"))


def test_a_catalog_with_s3_urls(bucket, tmp_path):
    catalog = {
        "develop": [
            {"label": "root", "url": "s3://spack-binaries/develop/build_cache/index.json"},
            {
                "label": "e4s",
                "url": "s3://spack-binaries/develop/e4s/v3/manifests/index/index.manifest.json",
            },
            {"label": "ml", "url": f"{bucket.url}develop/ml/build_cache/index.json"},
            {"label": "bad", "url": "/etc/passwd"},
        ],
        "v1.0": [
            {
                "label": "root",
                "url": "s3://spack-binaries/v1.0/"
                + next(
                    str(p.relative_to(bucket.root / "v1.0"))
                    for p in (bucket.root / "v1.0" / "blobs").rglob("*")
                    if p.is_file()
                ),
            }
        ],
    }
    (bucket.root / "cache_spack_io_index.json").write_text(json.dumps(catalog))
    base = f"s3://spack-binaries/={bucket.url}"
    result = reindex(f"{bucket.url}cache_spack_io_index.json", tmp_path / "ix", "--s3-base", base)
    assert result.exit_code == 0, result.output
    assert "'/etc/passwd' is not http(s) or s3://" in result.stderr
    got = stacks(tmp_path / "ix")
    assert got[f"develop/{LIBELF_M1}"] == ["e4s", "ml", "root"]
    assert got[f"v1.0/{LIBELF_CORE2}"] == ["root"]
    # A local catalog file, and the setting from the environment.
    local = tmp_path / "catalog.json"
    local.write_text(json.dumps({"develop": catalog["develop"][:2]}))
    result = reindex(local, tmp_path / "ix2", env={**FAST, "SEARCHER_S3_BASE": base})
    assert result.exit_code == 0, result.output
    assert GCC not in found(tmp_path / "ix2")
    assert found(tmp_path / "ix2", "^libelf") == {LIBDWARF_M1, LIBDWARF_CORE2}


def test_a_proxy_from_the_environment_is_used(bucket, tmp_path):
    proxied: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            proxied.append(self.path)  # an absolute URL: this is a proxy request
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with direct.open(self.path) as upstream:
                body = upstream.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        env = {**FAST, "HTTP_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}", "NO_PROXY": ""}
        result = reindex(f"{bucket.url}develop/e4s/", tmp_path / "ix", env=env)
        assert result.exit_code == 0, result.output
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert any(p.startswith(bucket.url + "develop/e4s/blobs/") for p in proxied)
