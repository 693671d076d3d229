"""Writing listing pages for tests: a page, a spec entry, a file in a source tree, and
reading a reindex's summary line."""

from __future__ import annotations

import json
import re
from pathlib import Path

SUMMARY = re.compile(
    r"^(\d+) files read, (\d+) specs indexed, (\d+) files skipped, (\d+) specs skipped, "
    r"[\d.]+ s, [\d,]+ specs/s$",
    re.M,
)


def summary(output: str) -> tuple[int, int, int, int]:
    match = SUMMARY.search(output)
    assert match, output
    return tuple(int(g) for g in match.groups())


def page(tag: str, package: str, specs: list[dict]) -> str:
    return (
        f'---\ntitle: "{package}"\nlayout: cache\ncategories: [package, {tag}]\n'
        f"meta: {{}}\nspec_details: {json.dumps(specs)}\n---\n"
    )


def spec(hash_: str, **overrides) -> dict:
    return {
        "hash": hash_,
        "compiler": "none",
        "versions": ["1.0"],
        "os": "ubuntu24.04",
        "platform": "linux",
        "target": "x86_64_v3",
        "variants": ["+mpi"],
        "stacks": ["root"],
        "size": "-",
        **overrides,
    }


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path
