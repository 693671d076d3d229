"""Every hit of a query as CSV or NDJSON text, a chunk of rows at a time (streamed).

Rows are written from the stored rows (documents.ROW_FIELDS) and the dependency labels
that Snapshot.export_rows reads, not from Spec objects, and most CSV rows are joined
without the csv module (only a row with a cell that needs quoting or defusing goes
through it): together 100,000 rows in about a third of the time the Spec path took
(bench/bench_reports.py prints both).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import msgspec

from searcher.documents import ROW_FIELDS
from searcher.search import Export, ExportRow

FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}

# The columns of an exported row, in order (a hit's fields; lists joined by ';' in CSV).
EXPORT_FIELDS = (
    "id", "package", "version", "tag", "hash", "compiler", "os", "platform", "target",
    "variants", "stacks", "size", "tarball", "dependencies",
)  # fmt: skip

# Rows are unpacked by position, in this order.
_ROW_ORDER = ("tag", "package", "hash", "version", "compiler", "os", "platform", "target",
              "variants", "stacks", "size", "tarball")  # fmt: skip
if ROW_FIELDS != _ROW_ORDER:
    raise ImportError("documents.ROW_FIELDS changed: update export._cells and export.record")

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection);
# such a value (from an outside listing) is written with a leading apostrophe. '+', '-'
# and '~' start ordinary variants (+cuda, ~mpi) and are left alone.
_FORMULA_START = ("=", "@", "\t", "\r")
# A chunk of JSON objects, one per line, by msgspec (already a dependency): 3x faster
# than json.dumps per object for the same text (UTF-8, no ASCII escapes).
_encode_lines = msgspec.json.Encoder().encode_lines


def lines(result: Export, kind: str) -> Iterator[str]:
    """The export as text pieces: CSV (a header, then a row per spec; lists joined by
    ';') or NDJSON (a JSON object per spec, one per line)."""
    if kind == "csv":
        yield from _csv(result)
    else:
        for chunk in result.chunks:
            yield _encode_lines([record(row) for row in chunk]).decode()


def _csv(result: Export) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield ",".join(EXPORT_FIELDS) + "\r\n"
    for chunk in result.chunks:
        written = []
        for row, dependencies in chunk:
            cells = _cells(row, dependencies)
            # The cells joined by NUL, searched for substrings (a regular expression took
            # 8 us a row): what starts a cell like a formula; what makes csv quote a cell.
            probe = "\x00".join(cells)
            if probe.startswith(_FORMULA_START) or (
                "\x00=" in probe or "\x00@" in probe or "\x00\t" in probe or "\x00\r" in probe
            ):
                cells = ["'" + c if c.startswith(_FORMULA_START) else c for c in cells]
            if (
                "," in probe
                or '"' in probe
                or "\r" in probe
                or "\n" in probe
                or probe.count("\x00") != len(cells) - 1
            ):
                writer.writerow(cells)  # csv quotes the cells that need it
                written.append(buffer.getvalue()[:-2])
                buffer.seek(0)
                buffer.truncate()
            else:
                written.append(",".join(cells))
        if written:
            yield "\r\n".join(written) + "\r\n"


def _cells(row: tuple[Any, ...], dependencies: list[str]) -> list[str]:
    """One CSV row's cells, in EXPORT_FIELDS order: lists joined by ';'."""
    tag, package, hash_, version, compiler, os, platform, target, variants, stacks = row[:10]
    size, tarball = row[10], row[11]
    return [
        f"{tag}/{hash_}", package, version, tag, hash_, compiler, os, platform, target,
        ";".join(variants), ";".join(stacks), "" if size is None else str(size),
        tarball or "", ";".join(dependencies),
    ]  # fmt: skip


def record(exported: ExportRow) -> dict[str, Any]:
    """An exported row as a JSON object, keys in EXPORT_FIELDS order (lists as arrays:
    rows.py decodes them as lists)."""
    row, dependencies = exported
    tag, package, hash_, version, compiler, os, platform, target, variants, stacks = row[:10]
    return {
        "id": f"{tag}/{hash_}", "package": package, "version": version, "tag": tag,
        "hash": hash_, "compiler": compiler, "os": os, "platform": platform,
        "target": target, "variants": variants, "stacks": stacks,
        "size": row[10], "tarball": row[11], "dependencies": dependencies,
    }  # fmt: skip
