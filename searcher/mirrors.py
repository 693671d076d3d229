"""Spack binary mirrors as a source: finding them, where their index is, reading it.

A mirror's index is a Spack database (database.py), in one of two layouts:

- v2: ``build_cache/index.json``, with ``build_cache/index.json.hash`` (the sha256 hex of
  index.json) beside it;
- v3: ``v3/manifests/index/index.manifest.json`` names the database as a blob,
  ``blobs/<algorithm>/<checksum[:2]>/<checksum>``, checked against its checksum.

Mirrors come from a local directory (one mirror, or a tree ``<tag>/`` = the tag's root
mirror and ``<tag>/<stack>/`` its stacks), from an http(s) URL laid out the same way, or
from a catalog: ``{"<tag>": [{"label": "<stack>" or "root", "url": "<index url>"}]}``,
the shape of the public ``cache_spack_io_index.json``, where a url names an index.json,
a manifest or a blob, and ``s3://<bucket>/`` maps to an https base (``S3Base``).

A reindex first *resolves* every mirror (finds its database and the checksum it should
have: small reads), which is its fingerprint; only the tags whose fingerprints changed
are read. A remote database is downloaded into the index's mirror cache, named by its
checksum; a database once parsed is kept there as compact records, so an unchanged
mirror is neither downloaded nor parsed again.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from searcher.database import (
    MAX_INDEX_BYTES,
    MAX_PROBLEMS,
    ROOT,
    Database,
    MirrorError,
    Record,
    parse_database,
)
from searcher.fetch import Fetcher, FetchError, is_url
from searcher.sources import printable, show

V2_INDEX = "build_cache/index.json"
V2_HASH = "build_cache/index.json.hash"
V3_MANIFEST = "v3/manifests/index/index.manifest.json"
MAX_MANIFEST_BYTES = 2**20
MAX_CATALOG_BYTES = 16 * 2**20
MAX_LISTING_BYTES = 16 * 2**20
DEFAULT_S3_BASE = "s3://spack-binaries/=https://binaries.spack.io/"
CACHE_DIR = ".mirrors"  # in the index directory
# Folders of a mirror that are its layout, not stacks below a tag.
_LAYOUT_DIRS = frozenset(("build_cache", "v3", "blobs", "manifests"))
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_HREF = re.compile(r"""href\s*=\s*["']([^"'?#]+)["']""", re.I)

# Called with (mirrors done, mirrors total) while databases are downloaded.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Mirror:
    """One mirror of a tag: its label (a stack, or root), where it is, and once resolved
    where its database is and the checksum it must have."""

    tag: str
    label: str
    location: str  # the mirror's directory or URL, or a catalog's index URL
    problem: str | None = None  # unusable, and why (reported by the shard build)
    index: str | None = None  # the database's path or URL (resolve())
    checksum: str | None = None  # its sha256 hex, when the mirror says
    compression: str = "none"
    local: str | None = None  # the database on disk (a remote one, once downloaded)

    @property
    def where(self) -> str:
        """What messages name: the database's path or URL (else the mirror's)."""
        return self.index or self.location

    def failed(self, error: MirrorError | FetchError) -> Mirror:
        """This mirror, marked unusable with the error's reason."""
        where = error.path if isinstance(error, MirrorError) else error.url
        return replace(self, problem=f"{where}\0{error.reason}")

    def error(self) -> MirrorError:
        """The problem as the error reported for it."""
        where, _, reason = (self.problem or "").partition("\0")
        return MirrorError(where if reason else self.location, reason or where)


@dataclass(frozen=True)
class S3Base:
    """How s3://<bucket>/ URLs of a catalog become https ones: ``BASE`` for every bucket,
    or ``s3://<bucket>/=BASE`` for one (several, comma-separated)."""

    rules: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, setting: str) -> S3Base:
        rules = []
        for part in filter(None, (p.strip() for p in setting.split(","))):
            prefix, sep, base = part.rpartition("=") if part.startswith("s3://") else ("", "", part)
            if not is_url(base) or (sep and not prefix.startswith("s3://")):
                raise ValueError(f"--s3-base: {part!r} is not BASE or s3://BUCKET/=BASE (http(s))")
            rules.append((prefix.rstrip("/") + "/" if prefix else "s3://", base.rstrip("/") + "/"))
        return cls(tuple(rules))

    def map(self, url: str) -> str:
        """The https URL of an s3:// URL (other URLs unchanged); ValueError if none fits."""
        if not url.startswith("s3://"):
            return url
        for prefix, base in self.rules:
            if prefix != "s3://" and url.startswith(prefix):
                return base + url[len(prefix) :]
        for prefix, base in self.rules:
            if prefix == "s3://":
                return base + url[len("s3://") :].partition("/")[2]
        raise ValueError(f"no --s3-base maps {url}")


# -- local directories --------------------------------------------------------------------


def layout_of(directory: Path) -> str | None:
    """'v3' or 'v2' when directory is a mirror (v3 preferred when it has both), else None."""
    if (directory / V3_MANIFEST).is_file():
        return "v3"
    if (directory / V2_INDEX).is_file():
        return "v2"
    return None


def find_mirrors(source: Path, tag: str | None = None, *, as_tree: bool = False) -> list[Mirror]:
    """The mirrors of a source directory: one mirror (its tag: tag, else the folder's name),
    or a tree ``<tag>/`` (the tag's root mirror) and ``<tag>/<stack>/`` (its stacks).

    Links are followed only while they stay inside the source; one leaving it is listed
    with its problem and never read. Raises MirrorError when no mirror is found.
    """
    source = Path(source)
    real_root = os.path.realpath(source)
    if layout_of(source) and not as_tree:
        return [Mirror(_tag_name(source, tag or source.resolve().name), ROOT, str(source))]
    mirrors = []
    for tag_dir in _folders(source, real_root):
        if isinstance(tag_dir, Mirror):
            mirrors.append(tag_dir)
            continue
        if layout_of(tag_dir):
            mirrors.append(Mirror(tag_dir.name, ROOT, str(tag_dir)))
        for stack_dir in _folders(tag_dir, real_root, tag_dir.name):
            if isinstance(stack_dir, Mirror):
                mirrors.append(stack_dir)
            elif stack_dir.name not in _LAYOUT_DIRS and layout_of(stack_dir):
                mirrors.append(Mirror(tag_dir.name, stack_dir.name, str(stack_dir)))
    return _found(source, mirrors)


def _tag_name(source: object, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise MirrorError(
            str(source), f"{show(name)} is not a build-cache tag name: name one with --tag"
        )
    return name


def _found(source: object, mirrors: list[Mirror]) -> list[Mirror]:
    if not any(m.problem is None for m in mirrors):
        raise MirrorError(
            str(source),
            f"no mirror found (expected {V2_INDEX} or {V3_MANIFEST}, in it or in "
            "<tag>/ and <tag>/<stack>/ folders)",
        )
    return sorted(mirrors, key=lambda m: (m.tag, m.label != ROOT, m.label))


def _folders(parent: Path, real_root: str, tag: str | None = None) -> Iterable[Path | Mirror]:
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError as exc:
        yield Mirror(tag or parent.name, ROOT, str(parent), f"cannot list: {exc.strerror}")
        return
    for entry in entries:
        if entry.name.startswith(".") or not _NAME.fullmatch(entry.name):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                label = entry.name if tag else ROOT
                yield Mirror(
                    tag or entry.name,
                    label,
                    str(path),
                    f"symbolic link to {target} leaves the source tree, not followed",
                )
                continue
        try:
            if entry.is_dir():
                yield path
        except OSError:
            continue


# -- remote mirrors, trees and catalogs ----------------------------------------------------


def find_remote(
    url: str, fetcher: Fetcher, tag: str | None = None, *, as_tree: bool | None = None
) -> list[Mirror]:
    """The mirrors at an http(s) URL: one mirror (as_tree False, or None and the URL is one),
    or a tree whose folders are listed by the server's index pages (an autoindex)."""
    base = url.rstrip("/") + "/"
    layout = _remote_layout(base, fetcher) if as_tree is not True else None
    if layout:
        name = tag or urlsplit(base).path.rstrip("/").rpartition("/")[2]
        return [Mirror(_tag_name(url, name), ROOT, _index_url(base, layout))]
    if as_tree is False:
        raise MirrorError(url, f"not a mirror: no {V3_MANIFEST} or {V2_INDEX}")
    mirrors = []
    try:
        tags = _listing(base, fetcher)
    except FetchError as exc:
        raise MirrorError(exc.url, f"cannot list the tree: {exc.reason}") from None
    for tag_name in tags:
        tag_url = f"{base}{tag_name}/"
        mirrors += _probe(tag_name, ROOT, tag_url, fetcher)
        try:
            stacks = [s for s in _listing(tag_url, fetcher) if s not in _LAYOUT_DIRS]
        except FetchError as exc:
            mirrors.append(Mirror(tag_name, ROOT, tag_url, f"cannot list: {exc.reason}"))
            stacks = []
        for stack in stacks:
            mirrors += _probe(tag_name, stack, f"{tag_url}{stack}/", fetcher)
    return _found(url, mirrors)


def _probe(tag: str, label: str, url: str, fetcher: Fetcher) -> list[Mirror]:
    """[the mirror at url] if there is one there ([] if not; with its problem if the
    server would not say)."""
    try:
        layout = _remote_layout(url, fetcher)
    except MirrorError as exc:
        return [Mirror(tag, label, url).failed(exc)]
    return [Mirror(tag, label, _index_url(url, layout))] if layout else []


def _index_url(base: str, layout: str) -> str:
    """Where a mirror's index is named: resolving it then fetches only that."""
    return base + (V3_MANIFEST if layout == "v3" else V2_INDEX)


def _remote_layout(base: str, fetcher: Fetcher) -> str | None:
    """'v3' or 'v2' when base is a mirror (the first of its index files that answers)."""
    for layout, path in (("v3", V3_MANIFEST), ("v2", V2_HASH), ("v2", V2_INDEX)):
        try:
            if fetcher.exists(base + path):
                return layout
        except FetchError as exc:
            raise MirrorError(exc.url, exc.reason) from None
    return None


def _listing(url: str, fetcher: Fetcher) -> list[str]:
    """The sub-folders an index page links to (relative links ending in '/')."""
    page = fetcher.get(url, MAX_LISTING_BYTES).decode("utf-8", "replace")
    names = []
    for href in _HREF.findall(page):
        name = href.rstrip("/")
        if href.endswith("/") and "/" not in name and _NAME.fullmatch(name):
            names.append(name)
    return sorted(dict.fromkeys(names))


def read_catalog(location: str, fetcher: Fetcher, s3: S3Base) -> list[Mirror]:
    """The mirrors a catalog names (a local JSON file or a URL). Its URLs must be http(s)
    or s3:// (mapped by s3): a catalog cannot make us read local files."""
    try:
        if is_url(location):
            data = fetcher.get(location, MAX_CATALOG_BYTES)
        else:
            with open(location, "rb") as file:
                data = file.read(MAX_CATALOG_BYTES + 1)
            if len(data) > MAX_CATALOG_BYTES:
                raise MirrorError(location, f"larger than {MAX_CATALOG_BYTES} bytes, not read")
        catalog = msgspec.json.decode(data, type=dict[str, list[dict[str, Any]]])
    except FetchError as exc:
        raise MirrorError(exc.url, exc.reason) from None
    except OSError as exc:
        raise MirrorError(location, f"cannot read: {exc.strerror or exc}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise MirrorError(
            location, f'not a catalog ({{"<tag>": [{{"label", "url"}}]}}): {exc}'
        ) from None
    mirrors = []
    for tag, entries in catalog.items():
        for i, entry in enumerate(entries):
            label, url = entry.get("label"), entry.get("url")
            where = f"{location}: {tag}[{i}]"
            if not _NAME.fullmatch(tag) or not isinstance(label, str) or not _NAME.fullmatch(label):
                mirrors.append(
                    Mirror(str(tag)[:60], str(label)[:60], where, f"bad tag or label {show(label)}")
                )
                continue
            try:
                mapped = s3.map(url) if isinstance(url, str) else ""
            except ValueError as exc:
                mirrors.append(Mirror(tag, label, where, str(exc)))
                continue
            if not is_url(mapped):
                mirrors.append(
                    Mirror(tag, label, where, f"url {show(url)} is not http(s) or s3://")
                )
                continue
            mirrors.append(Mirror(tag, label, mapped))
    if not mirrors:
        raise MirrorError(location, "the catalog names no mirror")
    return sorted(mirrors, key=lambda m: (m.tag, m.label != ROOT, m.label))


# -- resolving: where the database is, and its checksum ------------------------------------


def resolve_all(
    mirrors: Sequence[Mirror], fetcher: Fetcher | None, threads: int = 16
) -> list[Mirror]:
    """resolve() every mirror, the remote ones in parallel; order kept."""
    if fetcher is None or not any(is_url(m.location) for m in mirrors):
        return [resolve(m, fetcher) for m in mirrors]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda m: resolve(m, fetcher), mirrors))


def resolve(mirror: Mirror, fetcher: Fetcher | None) -> Mirror:
    """The mirror with its database's location and checksum (problem set if it has none)."""
    if mirror.problem:
        return mirror
    try:
        if is_url(mirror.location):
            if fetcher is None:
                raise MirrorError(mirror.location, "a URL, and no fetcher")
            return _resolve_remote(mirror, fetcher)
        return _resolve_local(mirror)
    except MirrorError as exc:
        return mirror.failed(exc)
    except FetchError as exc:
        return mirror.failed(exc)


def _resolve_local(mirror: Mirror) -> Mirror:
    root = Path(mirror.location)
    layout = layout_of(root)
    if layout == "v3":
        path = root / V3_MANIFEST
        entry = _manifest_entry(str(path), _read(path, MAX_MANIFEST_BYTES))
        blob = root / "blobs" / "sha256" / entry["checksum"][:2] / entry["checksum"]
        return replace(
            mirror,
            index=str(blob),
            checksum=entry["checksum"],
            compression=entry["compression"],
            local=str(blob),
        )
    if layout == "v2":
        index, hash_file = root / V2_INDEX, root / V2_HASH
        checksum = None
        if hash_file.is_file():
            checksum = _read(hash_file, 1024).decode("ascii", "replace").strip()
        return replace(mirror, index=str(index), checksum=checksum, local=str(index))
    raise MirrorError(mirror.location, f"not a mirror: no {V2_INDEX} or {V3_MANIFEST}")


def _resolve_remote(mirror: Mirror, fetcher: Fetcher) -> Mirror:
    url = mirror.location
    path = urlsplit(url).path
    if "/blobs/sha256/" in path:  # a catalog naming the blob: its name is its checksum
        checksum = path.rpartition("/")[2]
        if not _HEX64.fullmatch(checksum):
            raise MirrorError(url, "a blob URL must end in its sha256 checksum")
        return replace(mirror, index=url, checksum=checksum)
    if path.endswith("index.manifest.json"):
        manifest = url
        base = url[: url.index("/v3/manifests/")] + "/" if "/v3/manifests/" in url else None
    elif path.endswith("index.json"):
        return _remote_v2(mirror, url, fetcher)
    else:
        base = url.rstrip("/") + "/"
        manifest = base + V3_MANIFEST
        if _remote_layout(base, fetcher) == "v2":
            return _remote_v2(mirror, base + V2_INDEX, fetcher)
    entry = _manifest_entry(manifest, fetcher.get(manifest, MAX_MANIFEST_BYTES))
    if base is None:
        raise MirrorError(manifest, "a manifest URL must be .../v3/manifests/index/...")
    blob = f"{base}blobs/sha256/{entry['checksum'][:2]}/{entry['checksum']}"
    return replace(mirror, index=blob, checksum=entry["checksum"], compression=entry["compression"])


def _remote_v2(mirror: Mirror, index: str, fetcher: Fetcher) -> Mirror:
    try:
        text = fetcher.get(index + ".hash", 1024).decode("ascii", "replace").strip()
    except FetchError as exc:
        if exc.status != 404:
            raise
        text = None  # no hash file: read every time
    return replace(mirror, index=index, checksum=text)


def _manifest_entry(where: str, data: bytes) -> dict[str, Any]:
    try:
        manifest = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MirrorError(where, f"not a manifest: {exc}") from None
    entries = manifest.get("data") if isinstance(manifest, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and str(entry.get("mediaType", "")).startswith(
            "application/vnd.spack.db"
        ):
            algorithm, checksum = entry.get("checksumAlgorithm"), entry.get("checksum")
            if (
                algorithm != "sha256"
                or not isinstance(checksum, str)
                or not _HEX64.fullmatch(checksum)
            ):
                raise MirrorError(
                    where, f"the index blob's checksum is not sha256 hex: {show(checksum)}"
                )
            compression = entry.get("compression") or "none"
            if compression not in ("none", "gzip"):
                raise MirrorError(where, f"unknown compression {show(compression)}")
            return {"checksum": checksum, "compression": compression}
    raise MirrorError(where, "no data entry with an application/vnd.spack.db media type")


def fingerprint(mirror: Mirror) -> str:
    """What identifies a resolved mirror's database without reading it: its checksum (v2's
    index.json.hash, v3's manifest); else a local index's size and time. A remote index
    without a hash file has none: it is read every time."""
    if mirror.problem:
        return f"problem:{mirror.problem}"
    if mirror.checksum and _HEX64.fullmatch(mirror.checksum):
        return f"sha256:{mirror.checksum}:{mirror.compression}"
    if mirror.local:
        try:
            info = os.stat(mirror.local)
        except OSError as exc:
            return f"unreadable:{exc}"
        return f"stat:{info.st_size}:{info.st_mtime_ns}"
    return f"unhashed:{os.urandom(8).hex()}"


# -- downloading and reading ---------------------------------------------------------------


def download_all(
    mirrors: Sequence[Mirror],
    fetcher: Fetcher,
    cache: Path,
    progress: Progress | None = None,
    threads: int = 8,
) -> list[Mirror]:
    """Download the remote databases that neither the cache's records nor its files hold;
    the mirrors come back with ``local`` set (or a problem)."""
    todo = [i for i, m in enumerate(mirrors) if m.local is None and m.problem is None]
    out = list(mirrors)
    done = 0
    with ThreadPoolExecutor(threads) as pool:
        for i, mirror in zip(
            todo, pool.map(lambda i: download(out[i], fetcher, cache), todo), strict=True
        ):
            out[i] = mirror
            done += 1
            if progress:
                progress(done, len(todo))
    return out


def download(mirror: Mirror, fetcher: Fetcher, cache: Path) -> Mirror:
    """A remote mirror's database into the cache (named by its checksum; not fetched again
    while there), checked against the checksum the mirror gave."""
    assert mirror.index is not None
    if mirror.checksum and _HEX64.fullmatch(mirror.checksum):
        if _records_path(cache, mirror).exists():
            return replace(mirror, local="")  # its records are cached: nothing to fetch
        kept = cache / f"{mirror.checksum}.db"
        if kept.exists():
            return replace(mirror, local=str(kept))
    try:
        path, actual = fetcher.download(mirror.index, cache, MAX_INDEX_BYTES)
    except FetchError as exc:
        return mirror.failed(exc)
    if mirror.checksum and actual != mirror.checksum:
        path.unlink(missing_ok=True)
        return mirror.failed(MirrorError(mirror.index, _mismatch(mirror, actual)))
    final = cache / f"{actual}.db"
    os.replace(path, final)
    return replace(mirror, local=str(final), checksum=mirror.checksum or actual)


def _mismatch(mirror: Mirror, actual: str) -> str:
    said = "its name" if "/blobs/" in (mirror.index or "") else "index.json.hash"
    return (
        f"sha256 {actual[:12]}... does not match {said} ({show(mirror.checksum)}): damaged, "
        "or changed while it was read"
    )


class _Cached(msgspec.Struct):
    records: list[Record]
    problems: list[str]
    skipped: int


def _records_path(cache: Path, mirror: Mirror) -> Path:
    return cache / f"{mirror.checksum}-{mirror.compression}.records"


def read_database(
    mirror: Mirror, cache: Path | None = None, known: dict[str, Record] | None = None
) -> Database:
    """A resolved mirror's records: from the cache when its checksum's records are there,
    else read (checked against its checksum), parsed, and kept in the cache. MirrorError
    when the database as a whole is unusable."""
    if mirror.problem:
        raise mirror.error()
    hashed = bool(mirror.checksum and _HEX64.fullmatch(mirror.checksum))
    if cache is not None and hashed:
        try:
            cached = msgspec.msgpack.decode(_records_path(cache, mirror).read_bytes(), type=_Cached)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            db = Database(mirror.label, problems=cached.problems, skipped=cached.skipped)
            for record in cached.records:
                record.where = mirror.where
                db.records[record.hash] = record
            return db
    if not mirror.local:
        raise MirrorError(mirror.where, "not downloaded")
    data = _read(Path(mirror.local), MAX_INDEX_BYTES)
    if mirror.checksum is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != mirror.checksum:
            raise MirrorError(mirror.where, _mismatch(mirror, actual))
    if mirror.compression == "gzip":
        data = _gunzip(mirror.where, data)
    db = parse_database(data, printable(mirror.where), mirror.label, known)
    if cache is not None and hashed:
        _keep(cache, mirror, db)
    return db


def _keep(cache: Path, mirror: Mirror, db: Database) -> None:
    """Write a database's records into the cache (atomically: a reader never sees half)."""
    blob = msgspec.msgpack.encode(
        _Cached(list(db.records.values()), db.problems[: MAX_PROBLEMS + 1], db.skipped)
    )
    path = _records_path(cache, mirror)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    except OSError:  # a cache is an optimization: never a reason to fail
        tmp.unlink(missing_ok=True)


def prune_cache(cache: Path, mirrors: Iterable[Mirror]) -> None:
    """Remove what no mirror of the source needs any more (after a reindex)."""
    if not cache.is_dir():
        return
    wanted = set()
    for mirror in mirrors:
        if mirror.checksum:
            wanted.add(f"{mirror.checksum}.db")
            wanted.add(_records_path(cache, mirror).name)
    for path in cache.iterdir():
        if path.name not in wanted:
            path.unlink(missing_ok=True)


def _gunzip(where: str, data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(MAX_INDEX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise MirrorError(where, f"not gzip data: {exc}") from None
    if len(out) > MAX_INDEX_BYTES:
        raise MirrorError(where, f"decompresses to more than {MAX_INDEX_BYTES} bytes")
    return out


def _read(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise MirrorError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise MirrorError(path, f"larger than {limit} bytes, not read")
    return data
