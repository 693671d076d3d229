"""Full rebuild of the index from a source tree, with the lock and the atomic switch-over."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from searcher.index import GenerationWriter, IndexDir
from searcher.sources import SourceError, SourceTreeError, find_pages, iter_pages


@dataclass
class ReindexReport:
    """What a reindex did: counts for the summary line and every problem found."""

    files_read: int = 0
    files_skipped: int = 0
    specs_indexed: int = 0
    specs_skipped: int = 0
    seconds: float = 0.0
    generation: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def specs_per_second(self) -> float:
        """Indexing throughput over the whole run."""
        return self.specs_indexed / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """The one-line summary printed at the end of a reindex."""
        return (
            f"{self.files_read} files read, {self.specs_indexed} specs indexed, "
            f"{self.files_skipped} files skipped, {self.specs_skipped} specs skipped, "
            f"{self.seconds:.1f} s, {self.specs_per_second:,.0f} specs/s"
        )


# Called with (files done, files total); the CLI turns it into a bar or log lines.
Progress = Callable[[int, int], None]
# Called with one "path: reason" line per problem, as it is found.
Warn = Callable[[str], None]


def reindex(
    source: Path,
    index_root: Path,
    *,
    progress: Progress | None = None,
    warn: Warn | None = None,
) -> ReindexReport:
    """Rebuild the index from source into a new generation and switch to it atomically.

    Raises ReindexRunning if another reindex holds the lock, SourceTreeError if the source
    has no pages. Problems with single files or specs are reported and skipped.
    """
    started = time.perf_counter()
    index_dir = IndexDir(index_root)
    report = ReindexReport()

    def problem(line: str) -> None:
        report.problems.append(line)
        if warn:
            warn(line)

    with index_dir.lock():
        index_dir.clean()
        pages = find_pages(source)
        build_dir = index_dir.new_build_dir()
        writer = GenerationWriter(build_dir)
        try:
            seen: dict[str, str] = {}
            tags: set[str] = set()
            for done, page in enumerate(iter_pages(pages), 1):
                report.files_read += 1
                if isinstance(page, SourceError):
                    report.files_skipped += 1
                    problem(str(page))
                else:
                    for line in page.problems:
                        report.specs_skipped += 1
                        problem(f"{page.path}: {line}")
                    for spec in page.specs:
                        if spec.id in seen:
                            report.specs_skipped += 1
                            problem(
                                f"{page.path}: {spec.id} is also listed in {seen[spec.id]}, "
                                "kept the first"
                            )
                            continue
                        seen[spec.id] = page.path
                        tags.add(spec.tag)
                        writer.add(spec)
                if progress:
                    progress(done, len(pages))
            report.specs_indexed = writer.count
            if not writer.count:
                raise SourceTreeError(
                    f"no spec in {source} could be indexed; the previous index stays in place"
                )
            writer.finish(
                {
                    "source": str(Path(source).resolve()),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "files": report.files_read,
                    "files_skipped": report.files_skipped,
                    "tags": sorted(tags),
                }
            )
        except BaseException:
            # Whatever stopped us (an error, Ctrl-C), CURRENT still names the old
            # generation; drop the half-built one now rather than at the next run.
            writer.cancel()
            index_dir.clean()
            raise
        report.generation = index_dir.publish(build_dir)
        index_dir.clean()
    report.seconds = time.perf_counter() - started
    return report
