"""The command line: ``searcher reindex | serve | search | generate | demo``.

Exit codes scripts can rely on: 0 success; 1 reindex --strict found problems; 2 usage
error; 3 another reindex is running; 4 the source or the index cannot be used; 5 a bad
search query; 6 the server cannot listen on the address; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from searcher import __version__
from searcher.errors import IndexUnavailable, QueryError, ReindexRunning, SearcherError
from searcher.search import DEFAULT_PER_PAGE, MAX_EXPORT, MAX_PAGE, MAX_PER_PAGE, SORTS
from searcher.sources import SourceTreeError

if TYPE_CHECKING:  # imported when used: `searcher --help` stays quick
    from flask import Flask

    from searcher.indexer import ReindexReport
    from searcher.search import SearchRequest
    from searcher.snapshot import Snapshot

EXIT_PROBLEMS, EXIT_LOCKED, EXIT_UNUSABLE, EXIT_QUERY = 1, 3, 4, 5
EXIT_LISTEN = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEFAULT_INDEX = "index"
DEFAULT_DEMO_SOURCE = ".demo/mirrors"

index_option = click.option(
    "--index",
    "index_dir",
    envvar="SEARCHER_INDEX",
    default=DEFAULT_INDEX,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Index directory (env SEARCHER_INDEX).",
)
host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
port_option = click.option(
    "--port",
    envvar="SEARCHER_PORT",
    default=8000,
    show_default=True,
    help="Port (env SEARCHER_PORT).",
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Threads per server process.",
)


def _cores() -> int:
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


workers_option = click.option(
    "--workers",
    "-w",
    envvar="SEARCHER_WORKERS",
    type=click.IntRange(1, 64),
    default=_cores,
    show_default="the number of cores",
    help="Server processes (env SEARCHER_WORKERS): 1 is waitress in one process, more is "
    "gunicorn's pre-forked workers (Linux).",
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="searcher")
def main() -> None:
    """Search engine for the Spack build-cache listing."""


@main.command()
@click.option(
    "--source",
    envvar="SEARCHER_SOURCE",
    required=True,
    help="What to index (env SEARCHER_SOURCE), a directory or an http(s) URL: a tree of "
    "<tag>/<package>/specs.md listing pages, one Spack binary mirror, a tree of mirrors "
    "(<tag>/ and <tag>/<stack>/), or a catalog of mirrors by tag (JSON).",
)
@click.option(
    "--format",
    "source_format",
    type=click.Choice(["pages", "mirror", "tree", "catalog"]),
    default=None,
    help="What the source is [default: detected].",
)
@click.option(
    "--tag",
    default=None,
    help="The build-cache tag of a single mirror [default: its folder's name].",
)
@click.option(
    "--s3-base",
    envvar="SEARCHER_S3_BASE",
    default="s3://spack-binaries/=https://binaries.spack.io/",
    show_default=True,
    help="Where a catalog's s3:// URLs are fetched from (env SEARCHER_S3_BASE): BASE for "
    "every bucket, or s3://BUCKET/=BASE, comma-separated.",
)
@index_option
@click.option("--strict", is_flag=True, help="Exit 1 if any file or spec had to be skipped.")
@click.option("--full", is_flag=True, help="Rebuild every tag, not only the changed ones.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes building tags in parallel [default: cores, at most 4].",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only problems and the summary.")
def reindex(
    source: str,
    source_format: str | None,
    tag: str | None,
    s3_base: str,
    index_dir: Path,
    strict: bool,
    full: bool,
    jobs: int | None,
    quiet: bool,
) -> None:
    """Bring the index up to date with a source (only changed tags are rebuilt).

    The old index keeps serving until the new one is complete, then is switched over.
    """
    report = _reindex(
        source,
        index_dir,
        quiet=quiet,
        full=full,
        jobs=jobs,
        source_format=source_format,
        tag=tag,
        s3_base=s3_base,
    )
    click.echo(report.summary())
    if strict and report.problems:
        _fail(f"--strict: {len(report.problems)} problem(s) above", EXIT_PROBLEMS)


def _reindex(
    source: str | Path,
    index_dir: Path,
    *,
    quiet: bool = False,
    full: bool = False,
    jobs: int | None = None,
    source_format: str | None = None,
    tag: str | None = None,
    s3_base: str | None = None,
) -> ReindexReport:
    from searcher.indexer import reindex as run_reindex
    from searcher.mirrors import DEFAULT_S3_BASE

    on_terminal = sys.stderr.isatty() and not quiet
    held: list[str] = []

    def warn(line: str) -> None:
        # On a terminal, hold problems until the progress bar is done drawing.
        if on_terminal:
            held.append(line)
        else:
            click.echo(line, err=True)

    bars: dict[str, Any] = {}  # click's progress bars, drawn once their totals are known
    last_logged: dict[str, int] = {}

    def reporter(label: str, logged: str, unit: str) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            if on_terminal:
                if label not in bars:
                    for other in bars.values():  # one bar at a time: the last one ends
                        other.__exit__(None, None, None)
                    bars.clear()
                    bars[label] = click.progressbar(length=total, label=label, file=sys.stderr)
                    bars[label].__enter__()
                bars[label].update(done - bars[label].pos)
            elif not quiet:
                last = last_logged.get(label, 0)
                if done == total or done - last >= max(1, total // 10):
                    last_logged[label] = done
                    click.echo(f"{logged} {done}/{total} {unit}", err=True)

        return progress

    try:
        report = run_reindex(
            source,
            index_dir,
            full=full,
            jobs=jobs,
            progress=reporter("indexing", "indexed", "files"),
            warn=warn,
            source_format=source_format,
            tag=tag,
            s3_base=s3_base or DEFAULT_S3_BASE,
            downloading=reporter("downloading", "downloaded", "mirror indexes"),
        )
    except ReindexRunning as exc:
        _fail(exc.message, EXIT_LOCKED)
    except SourceTreeError as exc:
        _fail(str(exc), EXIT_UNUSABLE)
    except IndexUnavailable as exc:
        _fail(f"{exc.message}; the previous index stays in place", EXIT_UNUSABLE)
    except KeyboardInterrupt:
        _fail("interrupted; the previous index stays in place", EXIT_INTERRUPTED)
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
        for line in held:
            click.echo(line, err=True)
    return report


max_export_option = click.option(
    "--max-export",
    type=click.IntRange(1),
    default=MAX_EXPORT,
    show_default=True,
    envvar="SEARCHER_MAX_EXPORT",
    help="Hits an export (CSV, NDJSON) may hold; past it, an error (env SEARCHER_MAX_EXPORT).",
)


@main.command()
@index_option
@host_option
@port_option
@threads_option
@workers_option
@max_export_option
def serve(
    index_dir: Path, host: str, port: int, threads: int, workers: int, max_export: int
) -> None:
    """Serve the search page and the JSON API with a production WSGI server.

    Each process follows the index: a reindex is served without a restart.
    """
    os.environ["SEARCHER_MAX_EXPORT"] = str(max_export)  # read by every worker's app
    _serve(index_dir, host, port, threads, workers)


def _index_problem(index_dir: Path) -> str | None:
    """Why the index cannot be served (None when it can): opened once, up front."""
    from searcher.index import IndexDir
    from searcher.snapshot import Snapshot

    try:
        Snapshot(IndexDir(index_dir).current_path()).close()
    except IndexUnavailable as exc:
        return exc.message
    return None


def _serve(index_dir: Path, host: str, port: int, threads: int, workers: int) -> None:
    from searcher.server import ServeError, listen, serve

    problem = _index_problem(index_dir)
    if problem:
        _fail(problem, EXIT_UNUSABLE)
    try:
        sock = listen(host, port)
    except ServeError as exc:
        _fail(str(exc), EXIT_LISTEN)
    click.echo(
        f"searcher: serving {index_dir} on http://{host}:{port}/ "
        f"({workers} process{'es' if workers > 1 else ''} x {threads} threads)",
        err=True,
    )
    serve(functools.partial(_make_app, str(index_dir)), sock, workers=workers, threads=threads)


def _make_app(index_dir: str) -> Flask:
    """The app of one server process, its index opened before the first request."""
    from searcher.app import create_app

    app = create_app({"INDEX_DIR": index_dir})
    # Every worker opens the index as it starts: the first request does not pay for it,
    # and a worker keeps the generation it opened should CURRENT get damaged later.
    generation = app.extensions["searcher.index"].warm()
    serving = f"serving {generation}" if generation else "no index open yet"
    click.echo(f"searcher: process {os.getpid()} ready, {serving}", err=True)
    return app


@main.command()
@click.argument("query", default="")
@index_option
@click.option(
    "--filter",
    "-f",
    "filters",
    multiple=True,
    metavar="FACET=VALUE",
    help="Facet filter, repeatable (same facet ORs, different facets AND).",
)
@click.option(
    "--page", type=click.IntRange(1, MAX_PAGE), default=1, show_default=True, help="Page."
)
@click.option(
    "--per-page",
    type=click.IntRange(1, MAX_PER_PAGE),
    default=DEFAULT_PER_PAGE,
    show_default=True,
    help=f"Results per page (at most {MAX_PER_PAGE}).",
)
@click.option(
    "--sort",
    type=click.Choice(SORTS),
    default="relevance",
    show_default=True,
    help="Order of the results.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the /api/search JSON answer (or its JSON error body).",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "csv", "ndjson"]),
    default="text",
    show_default=True,
    help="text or json: one page; csv or ndjson: every hit (as /api/search.csv, .ndjson).",
)
@click.option(
    "--runs-on",
    metavar="CPU",
    default="",
    help="Only builds that run on this microarchitecture (zen4, neoverse_v2...).",
)
@click.option(
    "--runs-here",
    is_flag=True,
    help="Only builds that run on this machine's CPU, as archspec detects it (said on stderr).",
)
@max_export_option
def search(
    query: str,
    index_dir: Path,
    filters: tuple[str, ...],
    page: int,
    per_page: int,
    sort: str,
    as_json: bool,
    output: str,
    runs_on: str,
    runs_here: bool,
    max_export: int,
) -> None:
    """Search the index from the command line (spec syntax: py-torch@2.5:+cuda ...)."""
    from searcher.search import SearchRequest
    from searcher.search import search as run_search
    from searcher.snapshot import IndexHandle

    as_json = as_json or output == "json"

    params: dict[str, list[str]] = {
        "q": [query],
        "page": [str(page)],
        "per_page": [str(per_page)],
        "sort": [sort],
    }
    for item in filters:
        facet, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not FACET=VALUE", param_hint="--filter")
        params.setdefault(facet.strip(), []).append(value)
    if runs_here:
        if runs_on:
            raise click.UsageError("--runs-here and --runs-on: give one of them")
        from searcher import targets

        runs_on = targets.host()
        click.echo(f"searcher: this machine is {targets.label(runs_on)} (archspec)", err=True)
    if runs_on:
        params["runs_on"] = [runs_on]
    handle = IndexHandle(index_dir)
    try:
        request = SearchRequest.from_params(params)
        with handle.snapshot() as snap:
            if output in ("csv", "ndjson"):
                _export(snap, request, output, max_export)
                return
            result = run_search(snap, request)
    except SearcherError as exc:
        if as_json:  # scripts get the API's error body on stdout, as from /api/search
            click.echo(json.dumps(exc.to_dict(), indent=2))
        code = EXIT_UNUSABLE if isinstance(exc, IndexUnavailable) else EXIT_QUERY
        caret = ""
        if isinstance(exc, QueryError) and exc.position is not None:
            caret = f"\n  {query}\n  {' ' * exc.position}^"
        _fail(f"{exc.message}{caret}", code)
    finally:
        handle.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    first = (request.page - 1) * request.per_page
    shown = f"{first + 1}-{first + len(result.hits)} of " if result.hits else ""
    click.echo(f"{shown}{result.total} specs")
    for spec in result.hits:
        click.echo(
            f"{spec.package}@{spec.version}  {spec.tag}  {spec.platform}-{spec.os}-{spec.target}  "
            f"%{spec.compiler}  /{spec.hash[:7]}"
        )
    for suggestion in result.suggestions:
        click.echo(f"did you mean: {suggestion.q}")


def _export(snap: Snapshot, request: SearchRequest, kind: str, limit: int) -> None:
    """Every hit of the request on stdout, as the API's export writes it."""
    from searcher.export import lines
    from searcher.search import export_hits

    result = export_hits(snap, request, limit)
    for piece in lines(result, kind):
        sys.stdout.write(piece)
    sys.stdout.flush()


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--specs", default=20_000, show_default=True, help="About how many specs in all.")
@click.option("--tags", default=4, show_default=True, help="How many build-cache tags.")
@click.option("--seed", default=0, show_default=True, help="Seed: same seed, same files.")
@click.option(
    "--format",
    "layout",
    type=click.Choice(["pages", "mirror"]),
    default="pages",
    show_default=True,
    help="Listing pages, or the same specs as a tree of Spack binary mirrors.",
)
def generate(out: Path, specs: int, tags: int, seed: int, layout: str) -> None:
    """Write a synthetic listing tree shaped like the real one (deterministic)."""
    from searcher.generate import generate as run_generate

    report = run_generate(out, specs=specs, tags=tags, seed=seed, layout=layout)
    files = "mirrors" if layout == "mirror" else "pages"
    click.echo(
        f"wrote {report.specs} specs in {report.files} {files} over tags {', '.join(report.tags)}"
    )


@main.command()
@index_option
@click.option(
    "--source",
    default=DEFAULT_DEMO_SOURCE,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the generated demo mirrors.",
)
@click.option("--specs", default=20_000, show_default=True, help="Size of the demo listing.")
@click.option("--rebuild", is_flag=True, help="Regenerate and reindex even if an index exists.")
@host_option
@port_option
@threads_option
@workers_option
def demo(
    index_dir: Path,
    source: Path,
    specs: int,
    rebuild: bool,
    host: str,
    port: int,
    threads: int,
    workers: int,
) -> None:
    """Generate demo mirrors, index them (unless an index exists) and serve them."""
    from searcher.generate import generate as run_generate

    # Also rebuild an index this version cannot open (one built by an older searcher).
    if rebuild or _index_problem(index_dir):
        report = run_generate(source, specs=specs, tags=4, seed=0, layout="mirror")
        click.echo(f"generated {report.specs} demo specs in {source}", err=True)
        click.echo(_reindex(source, index_dir).summary(), err=True)
    _serve(index_dir, host, port, threads, workers)
