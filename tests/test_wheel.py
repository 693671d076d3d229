"""An installed wheel carries the templates and static files and serves the page without the
checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

RENDER = """
import searcher, sys
from searcher.app import create_app, templates_dir
app = create_app({"INDEX_DIR": sys.argv[1]})
page = app.test_client().get("/search?q=keras")
link = page.get_data(as_text=True).split('href="/spec/')[1].split('"')[0]
spec = app.test_client().get('/spec/' + link)
css = page.get_data(as_text=True).split('<link rel="stylesheet" href="')[1].split('"')[0]
style = app.test_client().get(css)
print(searcher.__file__)
print(templates_dir())
print(page.status_code, spec.status_code, style.status_code, style.content_type)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("searcher-*.whl")
    return path


def test_wheel_contains_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = ("base.html", "search.html", "spec.html", "error.html")
    for name in (*shipped, "static/style.css", "static/suggest.js", "static/favicon.svg"):
        assert f"searcher/templates/{name}" in names


def test_installed_wheel_renders_the_search_and_spec_pages(tmp_path, wheel, corpus_index):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", RENDER, str(corpus_index)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    module, templates, statuses = result.stdout.splitlines()
    assert module.startswith(str(target))
    assert templates == str(target / "searcher" / "templates")
    assert statuses == "200 200 200 text/css; charset=utf-8"
