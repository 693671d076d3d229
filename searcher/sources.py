"""Finding build-cache listing pages on disk and parsing them into Spec records.

A source tree is laid out like the cache.spack.io site: ``<source>/<tag>/<package>/specs.md``
(or the same under ``<source>/_cache/``). Each page is a Jekyll front-matter block whose
``spec_details`` is a list of spec objects. Nothing here knows about the index.
"""

from __future__ import annotations

import json
import operator
import os
import re
import reprlib
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from searcher.documents import Spec

# libyaml's loader is several times faster than the pure-Python one on these pages
# (bench/bench_search.py, "parse", measures both); fall back when PyYAML lacks it.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Limits on what a page may hold: pages come from outside, and one page must never cost
# more than a bounded share of memory or time (README, "Bad input"). A real page is at
# most a few hundred KB (one package's specs in one tag).
MAX_PAGE_BYTES = 16 * 2**20
# The front matter outside its one-line JSON values (title, layout, categories) is a few
# lines; libyaml's Python objects cost ~50x the text, so YAML is kept small.
MAX_YAML_BYTES = 2**20
# A listing page nests four levels (spec_details -> spec -> variants -> value).
MAX_DEPTH = 16
# Problems reported per page before the rest are only counted.
MAX_PROBLEMS_PER_PAGE = 20
# One value (a variant, a version...) and the variants or stacks of one spec; real ones
# are under 200 characters and 40 items.
MAX_VALUE_CHARS = 4096
MAX_LIST_ITEMS = 1000

_HASH = re.compile(r"^[a-z0-9]{8,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_REQUIRED_STR = ("hash", "compiler", "os", "platform", "target")
_REQUIRED_LIST = ("variants", "stacks")
_REQUIRED = (*_REQUIRED_STR, "versions", *_REQUIRED_LIST)
_get_required = operator.itemgetter(*_REQUIRED)
PAGE_NAME = "specs.md"

# Values quoted in messages are cut short: a hostile page must not turn one reason into
# megabytes of log (or of meta.json, where problems are kept).
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 4
_short.maxlevel = 2


def show(value: object) -> str:
    """A short, one-line representation of a value from a page, for messages."""
    return _short.repr(value)


def printable(text: str) -> str:
    """text with control and other unprintable characters escaped, so that a name from
    outside (a folder called "a\nb") cannot forge or split a line of output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class SourceError(Exception):
    """A listing page that cannot be indexed, with the reason."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{printable(str(path))}: {printable(reason)}")
        self.path = str(path)
        self.reason = reason


class LegacyPageError(SourceError):
    """A page in the old untagged format (``spec_names`` strings, no hashes)."""


class SourceTreeError(Exception):
    """The source tree as a whole is unusable (missing, or holds no pages)."""


@dataclass(frozen=True)
class PageFile:
    """A page found in a source tree: where, its tag folder, and what stat said of it.

    ``problem`` is set when the listing already shows the page cannot be read (a symbolic
    link leaving the tree, not a regular file); such a page is reported, never opened.
    """

    path: str
    tag: str
    size: int = 0
    mtime_ns: int = 0
    problem: str | None = None


@dataclass
class Page:
    """One parsed listing page: its specs and the problems with single entries."""

    path: str
    tag: str
    package: str
    specs: list[Spec]
    problems: list[str] = field(default_factory=list)
    skipped: int = 0  # entries of spec_details not indexed (problems lists the first ones)

    def skip(self, problem: str) -> None:
        """Record one entry that cannot be indexed; only the first few are described."""
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_PER_PAGE:
            self.problems.append(problem)


def find_pages(source: Path) -> list[PageFile]:
    """Every ``<tag>/<package>/specs.md`` under a source tree, sorted by tag, then package.

    Symbolic links are followed only when they stay inside the tree; a link leading out
    of it, a broken link, or a page that is not a regular file is listed with its problem.
    Names starting with a dot are not listed (as a shell glob would not).
    """
    source = Path(source)
    if not source.is_dir():
        raise SourceTreeError(f"source directory {printable(str(source))} does not exist")
    if (source / "_cache").is_dir():
        source = source / "_cache"
    tree = _Tree(source)
    pages: list[PageFile] = []
    for tag_dir in tree.folders(source):
        if isinstance(tag_dir, PageFile):
            pages.append(tag_dir)
            continue
        for package_dir in tree.folders(tag_dir, tag_dir.name):
            if isinstance(package_dir, PageFile):
                pages.append(package_dir)
            else:
                found = tree.page(package_dir / PAGE_NAME, tag_dir.name)
                if found is not None:
                    pages.append(found)
    if not pages:
        raise SourceTreeError(
            f"no listing pages under {printable(str(source))} "
            "(expected <tag>/<package>/specs.md files; or a Spack mirror: "
            "build_cache/index.json or v3/manifests/index/index.manifest.json, in it or "
            "in <tag>/ and <tag>/<stack>/ folders)"
        )
    return pages


class _Tree:
    """Listing a source tree without leaving it."""

    def __init__(self, root: Path):
        self.root = root
        self.real_root = os.path.realpath(root)

    def _outside(self, path: Path) -> str | None:
        """Why a symbolic link at path cannot be followed, or None when it stays inside."""
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                return "broken symbolic link"
            return f"symbolic link cannot be followed: {exc.strerror}"
        if os.path.commonpath([self.real_root, target]) != self.real_root:
            return f"symbolic link to {target} leaves the source tree, not followed"
        return None

    def folders(self, parent: Path, tag: str | None = None) -> Iterator[Path | PageFile]:
        """Each sub-folder of parent, or a PageFile naming why it cannot be listed.

        tag: the build-cache tag the folders belong to (None: they are tag folders).
        """
        try:
            entries = sorted(os.scandir(parent), key=lambda e: e.name)
        except OSError as exc:
            yield PageFile(
                str(parent), tag or parent.name, problem=f"cannot list folder: {exc.strerror}"
            )
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                problem = self._outside(path)
                if problem:
                    yield PageFile(str(path), tag or entry.name, problem=problem)
                    continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                yield path

    def page(self, path: Path, tag: str) -> PageFile | None:
        """The page at path (None when there is none), with its problem if it cannot be read."""
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return PageFile(str(path), tag, problem=f"cannot read file: {exc.strerror}")
        if stat.S_ISLNK(info.st_mode):
            problem = self._outside(path)
            if problem:
                return PageFile(str(path), tag, problem=problem)
            info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return PageFile(str(path), tag, problem=f"not a regular file ({_kind(info.st_mode)})")
        return PageFile(str(path), tag, info.st_size, info.st_mtime_ns)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a file"


def read_page(path: Path | str) -> Page:
    """Parse one listing page; raises SourceError when the page as a whole is unusable."""
    raw = _read_bounded(path)
    if not raw.strip():
        raise SourceError(path, "empty file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not UTF-8 (invalid byte at offset {exc.start})") from None
    del raw
    data = _load_front_matter(path, text)
    page = _page_from_front_matter(path, data)
    folder = Path(path).parent.parent.name
    if page.tag != folder:
        raise SourceError(
            path, f"tag {page.tag!r} in 'categories' does not match its folder {folder!r}"
        )
    return page


def _read_bounded(path: Path | str) -> bytes:
    """The bytes of a regular file of at most MAX_PAGE_BYTES, read without blocking."""
    try:
        # O_NONBLOCK: a named pipe put where a page should be must not hang the reindex;
        # the file type is checked on the open descriptor, so a swap after listing the
        # tree changes nothing.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SourceError(path, f"cannot read file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(path, f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > MAX_PAGE_BYTES:
            raise SourceError(path, _too_large(info.st_size))
        try:
            # Sized by fstat (a buffer of the limit per page costs more than the read);
            # a file growing meanwhile is read on, up to one byte past the limit.
            raw = file.read(info.st_size + 1)
            if len(raw) > info.st_size:
                raw += file.read(MAX_PAGE_BYTES + 1 - len(raw))
        except OSError as exc:
            raise SourceError(path, f"cannot read file: {exc.strerror}") from None
    if len(raw) > MAX_PAGE_BYTES:  # it grew while we read it
        raise SourceError(path, _too_large(len(raw)))
    return raw


def _too_large(size: int) -> str:
    return (
        f"file is larger than the {MAX_PAGE_BYTES // 2**20} MB limit for a listing page "
        f"({size / 2**20:,.1f} MB)"
    )


def _load_front_matter(path: Path | str, text: str) -> dict[str, Any]:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise SourceError(path, "no front matter (the file must start with a '---' line)")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        raise SourceError(path, "front matter is not closed by a '---' line") from None
    header, values, json_errors = _json_fast_path(lines[1:end])
    yaml_text = "\n".join(header)
    if len(yaml_text) > MAX_YAML_BYTES:
        if json_errors:
            raise SourceError(path, json_errors[0])
        raise SourceError(
            path,
            f"front matter outside its one-line JSON values is larger than "
            f"{MAX_YAML_BYTES // 2**10} KB",
        )
    if not _plainly_shallow(yaml_text):
        _check_yaml_shape(path, yaml_text)
    try:
        data = yaml.load(yaml_text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise SourceError(path, f"invalid YAML{_where(exc)}: {_problem(exc)}") from None
    if not isinstance(data, dict):
        raise SourceError(path, "front matter is not a mapping of keys to values")
    data.update(values)
    return data


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    # +2: line 1 of the YAML is line 2 of the file (after the opening '---').
    return f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""


def _problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]


def _plainly_shallow(text: str) -> bool:
    """Whether the YAML plainly holds no alias and nests only a few levels, by counting:
    no '*' at all, fewer lines and fewer flow brackets than the limit (so at most twice
    the limit deep, harmless to libyaml). A real header (title, layout, categories)
    passes, and skips the event walk below."""
    return (
        "*" not in text
        and text.count("\n") < MAX_DEPTH
        and text.count("[") + text.count("{") < MAX_DEPTH
    )


_OPEN_EVENTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_yaml_shape(path: Path | str, text: str) -> None:
    """Refuse aliases and deep nesting before building any object from the YAML.

    An alias repeats a node without copying its text: nine aliases of nine aliases make an
    800-byte page expand to gigabytes (the "billion laughs"). A listing page has no use for
    them. Deep nesting crashes libyaml's recursive composer. libyaml's event stream is
    built iteratively, so walking it is safe at any depth, and we stop at the first excess.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                raise SourceError(
                    path,
                    f"YAML alias *{printable(event.anchor or '')}{_where_event(event)}: "
                    "aliases are not allowed in a listing page",
                )
            if isinstance(event, _OPEN_EVENTS):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SourceError(
                        path, f"nested deeper than {MAX_DEPTH} levels{_where_event(event)}"
                    )
            elif isinstance(event, _CLOSE_EVENTS):
                depth -= 1
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in _problem(exc):
            # The libyaml of newer PyYAML wheels (6.0.4) stops deep flow nesting as it scans
            # ahead, before the walk above sees the 17th level: the same problem, our words.
            raise SourceError(path, f"nested deeper than {MAX_DEPTH} levels{_where(exc)}") from None
        raise SourceError(path, f"invalid YAML{_where(exc)}: {_problem(exc)}") from None


def _where_event(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""


def _json_fast_path(lines: list[str]) -> tuple[list[str], dict[str, Any], list[str]]:
    """Take the one-line JSON value of spec_details (and the unused meta) out of the YAML.

    The listing writes them as single-line JSON, which is also YAML; json reads them
    ~50x faster than libyaml (bench/bench_search.py, "parse"). A line json cannot read
    stays in the YAML, which then parses it or reports the error at its line (the json
    error is kept for when that line is too large for YAML). Taken lines become comments
    so YAML's line numbers stay right. ``meta`` (the page's summary) is not used: its line
    is dropped unread.
    """
    header, values, errors = [], {}, []
    for number, line in enumerate(lines, 2):
        key, sep, rest = line.partition(": ")
        if sep and key == "meta" and rest[:1] == "{":
            header.append("#")
            continue
        if sep and key == "spec_details" and rest[:1] == "[":
            try:
                values[key] = json.loads(rest)
            except RecursionError:
                errors.append(f"'{key}' at line {number} is nested too deeply")
            except ValueError as exc:
                errors.append(f"'{key}' at line {number} is not valid JSON: {exc}")
            else:
                header.append("#")
                continue
        header.append(line)
    return header, values, errors


def _page_from_front_matter(path: Path | str, data: dict[str, Any]) -> Page:
    if "spec_details" not in data and ("spec_names" in data or data.get("category")):
        raise LegacyPageError(
            path, "old untagged format (spec_names without hashes), skipped: it has no tag"
        )
    for key in ("title", "categories", "spec_details"):
        if key not in data:
            raise SourceError(path, f"missing key '{key}'")
    package = data["title"]
    if not isinstance(package, str) or not _NAME.fullmatch(package):
        raise SourceError(path, f"'title' must be a package name, got {show(package)}")
    categories = data["categories"]
    if (
        not isinstance(categories, list)
        or len(categories) != 2
        or not all(isinstance(c, str) for c in categories)
    ):
        raise SourceError(path, f"'categories' must be [package, <tag>], got {show(categories)}")
    tag = categories[1]
    if not _NAME.fullmatch(tag):
        raise SourceError(path, f"build-cache tag {show(tag)} is not a valid tag name")
    details = data["spec_details"]
    if not isinstance(details, list):
        raise SourceError(path, f"'spec_details' must be a list, got {type(details).__name__}")

    page = Page(path=str(path), tag=tag, package=package, specs=[])
    seen: set[str] = set()
    for i, entry in enumerate(details):
        try:
            spec = _spec(entry, tag, package)
        except ValueError as exc:
            page.skip(f"spec_details[{i}]: {exc}")
            continue
        if spec.hash in seen:
            page.skip(f"spec_details[{i}]: hash {spec.hash} listed twice, kept first")
            continue
        seen.add(spec.hash)
        page.specs.append(spec)
    if page.skipped > len(page.problems):
        page.problems.append(
            f"... and {page.skipped - len(page.problems)} more specs skipped in this page"
        )
    return page


def _spec(entry: object, tag: str, package: str) -> Spec:
    # The hot loop of a reindex: one call per spec, so checks are written for speed.
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    try:
        values = _get_required(entry)
    except KeyError:
        missing = next(key for key in _REQUIRED if key not in entry)
        raise ValueError(f"missing key '{missing}'") from None
    hash_, compiler, os_, platform, target, versions, variants, stacks = values
    for key, value in zip(_REQUIRED_STR, values[:5], strict=True):
        if type(value) is not str or not value.strip():
            raise ValueError(f"'{key}' must be a non-empty string, got {show(value)}")
    if not _HASH.fullmatch(hash_):
        raise ValueError(f"'hash' {show(hash_)} is not a Spack DAG hash")
    if type(versions) is str:
        versions = [versions]
    if type(versions) is not list or not versions or type(versions[0]) is not str:
        raise ValueError(f"'versions' must be a list of strings, got {show(entry['versions'])}")
    for key, value in (("variants", variants), ("stacks", stacks)):
        if type(value) is not list or not all(type(v) is str for v in value):
            raise ValueError(f"'{key}' must be a list of strings, got {show(value)}")
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(f"'{key}' has {len(value)} items, more than {MAX_LIST_ITEMS}")
    tarball = entry.get("tarball")
    if tarball is not None and type(tarball) is not str:
        raise ValueError(f"'tarball' must be a URL string, got {show(tarball)}")
    version = versions[0]
    longest = max(
        len(compiler), len(os_), len(platform), len(target), len(version), len(tarball or "")
    )
    if longest > MAX_VALUE_CHARS or max(map(len, variants + stacks), default=0) > MAX_VALUE_CHARS:
        longer = [compiler, os_, platform, target, version, tarball or "", *variants, *stacks]
        value = next(v for v in longer if len(v) > MAX_VALUE_CHARS)
        raise ValueError(f"value {show(value)} is longer than {MAX_VALUE_CHARS} characters")
    every = [package, compiler, os_, platform, target, version, tarball or "", *variants, *stacks]
    if not "".join(every).isascii():  # the rare case: find a value that is not text
        for value in every:
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError(
                    f"value {show(value)} holds a lone surrogate: not text (YAML's \\ud800)"
                ) from None
    return Spec(
        tag=tag,
        package=package,
        hash=hash_,
        version=version,
        compiler=compiler.strip(),
        os=os_.strip(),
        platform=platform.strip(),
        target=target.strip(),
        variants=tuple(v for v in variants if v.strip()),
        stacks=tuple(v for v in stacks if v.strip()),
        size=_size(entry.get("size")),
        tarball=tarball or None,
    )


# A size past this (1 TiB) is no package archive: unknown. Stats sum sizes in int64.
MAX_SIZE = 2**40


def _size(value: object) -> int | None:
    # The listing prints "-" for an unknown size today; keep real byte counts if they appear.
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value <= MAX_SIZE:
        return value
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        number = int(value.strip()) if len(value) < 20 else None
        return number if number is not None and number <= MAX_SIZE else None
    return None


def iter_pages(pages: Iterable[PageFile]) -> Iterator[Page | SourceError]:
    """Read pages one by one, yielding a Page or the SourceError that replaced it."""
    for page in pages:
        if page.problem:
            yield SourceError(page.path, page.problem)
            continue
        try:
            yield read_page(page.path)
        except SourceError as exc:
            yield exc
