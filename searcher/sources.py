"""Finding build-cache listing pages on disk and parsing them into Spec records.

A source tree is laid out like the cache.spack.io site: ``<source>/<tag>/<package>/specs.md``
(or the same under ``<source>/_cache/``). Each page is a Jekyll front-matter block whose
``spec_details`` is a list of spec objects. Nothing here knows about the index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from searcher.documents import Spec

# libyaml's loader is several times faster than the pure-Python one on these pages
# (bench/bench_parse.py measures both); fall back when PyYAML was built without it.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_HASH = re.compile(r"^[a-z0-9]{8,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_REQUIRED_STR = ("hash", "compiler", "os", "platform", "target")
_REQUIRED_LIST = ("variants", "stacks")


class SourceError(Exception):
    """A listing page that cannot be indexed, with the reason."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class LegacyPageError(SourceError):
    """A page in the old untagged format (``spec_names`` strings, no hashes)."""


class SourceTreeError(Exception):
    """The source tree as a whole is unusable (missing, or holds no pages)."""


@dataclass
class Page:
    """One parsed listing page: its specs and the problems with single entries."""

    path: str
    tag: str
    package: str
    specs: list[Spec]
    problems: list[str] = field(default_factory=list)


def find_pages(source: Path) -> list[Path]:
    """Every ``<tag>/<package>/specs.md`` under a source tree, sorted by tag, then package."""
    source = Path(source)
    if not source.is_dir():
        raise SourceTreeError(f"source directory {source} does not exist")
    if (source / "_cache").is_dir():
        source = source / "_cache"
    pages = sorted(source.glob("*/*/specs.md"))
    if not pages:
        raise SourceTreeError(
            f"no listing pages under {source} (expected <tag>/<package>/specs.md files)"
        )
    return pages


def read_page(path: Path) -> Page:
    """Parse one listing page; raises SourceError when the page as a whole is unusable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(path, f"cannot read file: {exc.strerror}") from None
    if not raw.strip():
        raise SourceError(path, "empty file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not UTF-8 (invalid byte at offset {exc.start})") from None
    data = _load_front_matter(path, text)
    page = _page_from_front_matter(path, data)
    folder = Path(path).parent.parent.name
    if page.tag != folder:
        raise SourceError(
            path, f"tag {page.tag!r} in 'categories' does not match its folder {folder!r}"
        )
    return page


def _load_front_matter(path: Path, text: str) -> dict:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise SourceError(path, "no front matter (the file must start with a '---' line)")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        raise SourceError(path, "front matter is not closed by a '---' line") from None
    header, values = _json_fast_path(lines[1:end])
    try:
        data = yaml.load("\n".join(header), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SourceError(path, f"invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SourceError(path, "front matter is not a mapping of keys to values")
    data.update(values)
    return data


def _json_fast_path(lines: list[str]) -> tuple[list[str], dict]:
    """Take the one-line JSON values (spec_details, meta) out of the YAML.

    The listing writes them as single-line JSON, which is also YAML; json reads them
    ~50x faster than libyaml (bench/bench_search.py, "parse"). A line json cannot read
    stays in the YAML, which then parses it or reports the error at its line. Taken lines
    become comments so YAML's line numbers stay right.
    """
    header, values = [], {}
    for line in lines:
        key, sep, rest = line.partition(": ")
        if sep and key in ("spec_details", "meta") and rest[:1] in "[{" and rest:
            try:
                values[key] = json.loads(rest)
            except ValueError:
                pass
            else:
                header.append("#")
                continue
        header.append(line)
    return header, values


def _page_from_front_matter(path: Path, data: dict) -> Page:
    if "spec_details" not in data and ("spec_names" in data or data.get("category")):
        raise LegacyPageError(
            path, "old untagged format (spec_names without hashes), skipped: it has no tag"
        )
    for key in ("title", "categories", "spec_details"):
        if key not in data:
            raise SourceError(path, f"missing key '{key}'")
    package = data["title"]
    if not isinstance(package, str) or not _NAME.match(package):
        raise SourceError(path, f"'title' must be a package name, got {package!r}")
    categories = data["categories"]
    if (
        not isinstance(categories, list)
        or len(categories) != 2
        or not all(isinstance(c, str) for c in categories)
    ):
        raise SourceError(path, f"'categories' must be [package, <tag>], got {categories!r}")
    tag = categories[1]
    if not _NAME.match(tag):
        raise SourceError(path, f"build-cache tag {tag!r} is not a valid tag name")
    details = data["spec_details"]
    if not isinstance(details, list):
        raise SourceError(path, f"'spec_details' must be a list, got {type(details).__name__}")

    page = Page(path=str(path), tag=tag, package=package, specs=[])
    seen: set[str] = set()
    for i, entry in enumerate(details):
        try:
            spec = _spec(entry, tag, package)
        except ValueError as exc:
            page.problems.append(f"spec_details[{i}]: {exc}")
            continue
        if spec.hash in seen:
            page.problems.append(f"spec_details[{i}]: hash {spec.hash} listed twice, kept first")
            continue
        seen.add(spec.hash)
        page.specs.append(spec)
    return page


def _spec(entry: object, tag: str, package: str) -> Spec:
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    for key in (*_REQUIRED_STR, "versions", *_REQUIRED_LIST):
        if key not in entry:
            raise ValueError(f"missing key '{key}'")
    for key in _REQUIRED_STR:
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise ValueError(f"'{key}' must be a non-empty string, got {entry[key]!r}")
    if not _HASH.match(entry["hash"]):
        raise ValueError(f"'hash' {entry['hash']!r} is not a Spack DAG hash")
    versions = entry["versions"]
    if isinstance(versions, str):
        versions = [versions]
    if not isinstance(versions, list) or not versions or not isinstance(versions[0], str):
        raise ValueError(f"'versions' must be a list of strings, got {entry['versions']!r}")
    for key in _REQUIRED_LIST:
        value = entry[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"'{key}' must be a list of strings, got {value!r}")
    tarball = entry.get("tarball")
    if tarball is not None and not isinstance(tarball, str):
        raise ValueError(f"'tarball' must be a URL string, got {tarball!r}")
    return Spec(
        tag=tag,
        package=package,
        hash=entry["hash"],
        version=versions[0],
        compiler=entry["compiler"].strip(),
        os=entry["os"].strip(),
        platform=entry["platform"].strip(),
        target=entry["target"].strip(),
        variants=tuple(v for v in entry["variants"] if v.strip()),
        stacks=tuple(s for s in entry["stacks"] if s.strip()),
        size=_size(entry.get("size")),
        tarball=tarball or None,
    )


def _size(value: object) -> int | None:
    # The listing prints "-" for an unknown size today; keep real byte counts if they appear.
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def iter_pages(pages: list[Path]) -> Iterator[Page | SourceError]:
    """Read pages one by one, yielding a Page or the SourceError that replaced it."""
    for path in pages:
        try:
            yield read_page(path)
        except SourceError as exc:
            yield exc
