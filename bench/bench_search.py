"""Benchmark: reindex throughput and query + facet latency, against Whoosh's groupedby.

    ./dev bench                      # 100,000 generated specs (a few minutes)
    ./dev bench --specs 1000000      # the design scale
    ./dev bench --no-baseline        # ours only

Everything is measured in one process run, on the same generated documents, so the ratios
hold even on a noisy machine; quote medians and ratios, not single numbers. Queries go
through the real /api/search handler (parameter validation, search, JSON encoding) with
Flask's test client, i.e. without the socket.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import yaml
from baselines import bench_sqlite, bench_whoosh, build_sqlite, build_whoosh_baseline
from common import OURS_ONLY, ROOT, dir_size, percentile, query_mix, searcher_command, timed

from searcher.app import create_app
from searcher.generate import generate
from searcher.sources import PageFile, find_pages

# -- build ------------------------------------------------------------------------------


def bench_parse(pages: list[PageFile], sample: int) -> dict:
    """Front-matter parsing with libyaml's loader vs the pure-Python one."""
    texts = [Path(p.path).read_text() for p in pages[:sample]]
    fronts = [t.split("\n---", 1)[0].lstrip("-\n") for t in texts]
    result = {}
    loaders = [("CSafeLoader", getattr(yaml, "CSafeLoader", None)), ("SafeLoader", yaml.SafeLoader)]
    for name, loader in loaders:
        if loader is None:
            continue
        start = time.perf_counter()
        specs = sum(len(yaml.load(f, Loader=loader)["spec_details"]) for f in fronts)
        result[name] = specs / (time.perf_counter() - start)
    return result


def run_reindex(source: Path, index: Path) -> tuple[float, str]:
    """`searcher reindex -q` in a child process: (wall seconds, its summary output)."""
    start = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "searcher",
            "reindex",
            "-q",
            "--source",
            str(source),
            "--index",
            str(index),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - start, run.stdout


def bench_reindex(source: Path, index: Path) -> dict:
    """A full build: wall time, peak RSS of the child, index size."""
    seconds, output = run_reindex(source, index)
    summary = output.strip().splitlines()[0]
    specs = int(summary.split(" specs indexed")[0].split(", ")[-1])
    generation = index / (index / "CURRENT").read_text().strip()
    return {
        "seconds": seconds,
        "specs": specs,
        "specs_per_s": specs / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "index_mb": dir_size(generation) / 2**20,
        "summary": summary,
    }


# -- query mix ----------------------------------------------------------------------------


def bench_ours(index: Path, repeat: int) -> tuple[dict, dict]:
    app = create_app({"INDEX_DIR": str(index)})
    client = app.test_client()
    rows, totals = {}, {}
    for name, params in query_mix(lambda url: client.get(url).get_json()):
        url = "/api/search?" + urlencode(params)

        def run(url=url):
            response = client.get(url)
            assert response.status_code == 200, response.get_data(as_text=True)
            return response

        totals[name] = run().get_json()["total"]
        rows[name] = timed(run, repeat)
    for prefix in ("py-t", "p", "torch"):
        url = f"/api/suggest?q={prefix}"
        totals[f"/api/suggest?q={prefix}"] = len(client.get(url).get_json()["suggestions"])
        rows[f"/api/suggest?q={prefix}"] = timed(lambda url=url: client.get(url), repeat)
    app.extensions["searcher.index"].close()
    return rows, totals


# -- incremental reindex and the serving process ----------------------------------------------


def reindex_seconds(source: Path, index: Path) -> float:
    return run_reindex(source, index)[0]


def bench_incremental(source: Path, index: Path, new_specs: int) -> None:
    """A run with no change, then a new weekly tag of `new_specs` specs, then its removal."""
    print(f"incremental: no-change reindex {reindex_seconds(source, index):.1f} s", flush=True)
    new_tag = "develop-2099-01-01"
    extra = source.parent / "new-tag"
    generate(extra, specs=new_specs, tags=1, seed=7)
    added = 0
    for page in sorted((extra / "develop").glob("*/specs.md")):
        text = page.read_text().replace(
            "categories: [package, develop]", f"categories: [package, {new_tag}]", 1
        )
        target = source / new_tag / page.parent.name / "specs.md"
        target.parent.mkdir(parents=True)
        target.write_text(text)
        added += text.count('"hash"')
    shutil.rmtree(extra)
    seconds = reindex_seconds(source, index)
    print(f"incremental: a new tag of {added:,} specs {seconds:.1f} s", flush=True)
    shutil.rmtree(source / new_tag)
    print(f"incremental: removing it again {reindex_seconds(source, index):.1f} s", flush=True)


def bench_server(index: Path, mix) -> dict:
    """RSS of a real `searcher serve --workers 1` after answering the query mix over HTTP."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # One process (waitress): its RSS is the whole server's. bench_serve.py measures
    # pre-forked workers, their total RSS and PSS.
    server = searcher_command(
        "serve", "--index", str(index), "--port", str(port), "--workers", "1",
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/api/health", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    stderr = server.stderr.read()
                    raise RuntimeError(f"searcher serve did not start: {stderr}") from None
                time.sleep(0.1)
        latencies = []
        for _ in range(3):
            for _, params in mix:
                start = time.perf_counter()
                urllib.request.urlopen(url + "/api/search?" + urlencode(params), timeout=60).read()
                latencies.append((time.perf_counter() - start) * 1000)
        status = Path(f"/proc/{server.pid}/status").read_text()
        memory = {
            key: int(value.split()[0]) / 1024
            for key, value in (line.split(":", 1) for line in status.splitlines())
            if key in ("VmRSS", "VmHWM")
        }
        return {
            "rss_mb": memory["VmRSS"],
            "peak_rss_mb": memory["VmHWM"],
            "http_median_ms": statistics.median(latencies),
        }
    finally:
        server.terminate()
        server.wait()


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=100_000, help="specs to generate")
    parser.add_argument("--tags", type=int, default=0, help="tags (default: ~1 per 16,667 specs)")
    parser.add_argument("--repeat", type=int, default=40, help="timed runs per query class")
    parser.add_argument("--baseline-repeat", type=int, default=5, help="runs per baseline class")
    parser.add_argument(
        "--new-tag-specs",
        type=int,
        default=60_000,
        help="size of the tag added for the incremental timing",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip both baselines")
    parser.add_argument("--workdir", type=Path, help="keep the generated data and indexes here")
    args = parser.parse_args()
    tags = args.tags or max(4, round(args.specs / 16_667))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="searcher-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# searcher benchmark: {args.specs:,} specs over {tags} tags, in {workdir}")
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} cores")
    try:
        run(args, tags, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args, tags: int, workdir: Path) -> None:
    source = workdir / "source"
    start = time.perf_counter()
    report = generate(source, specs=args.specs, tags=tags)
    print(
        f"generate: {report.specs:,} specs in {report.files:,} pages, "
        f"{time.perf_counter() - start:.1f} s"
    )

    parse = bench_parse(find_pages(source), sample=300)
    print("parse: " + ", ".join(f"{k} {v:,.0f} specs/s" for k, v in parse.items()))

    built = bench_reindex(source, workdir / "index")
    print(f"reindex: {built['summary']}")
    print(
        f"reindex: {built['specs_per_s']:,.0f} specs/s end to end (child process), "
        f"peak RSS {built['peak_rss_mb']:,.0f} MB, index {built['index_mb']:,.1f} MB"
    )

    ours, our_totals = bench_ours(workdir / "index", args.repeat)
    app = create_app({"INDEX_DIR": str(workdir / "index")})
    client = app.test_client()
    mix = query_mix(lambda url: client.get(url).get_json())
    app.extensions["searcher.index"].close()
    served = bench_server(workdir / "index", mix)
    print(
        f"serve (one process): RSS {served['rss_mb']:,.0f} MB "
        f"(peak {served['peak_rss_mb']:,.0f} MB) after the query mix over HTTP; "
        f"HTTP median {served['http_median_ms']:.1f} ms"
    )

    bench_incremental(source, workdir / "index", args.new_tag_specs)

    baselines: list[tuple[str, dict, dict]] = []
    if not args.no_baseline:
        whoosh = build_whoosh_baseline(source, workdir / "baseline-whoosh")
        print(
            f"baseline Whoosh (facets + text as fields, one process): "
            f"{whoosh['specs_per_s']:,.0f} specs/s, {whoosh['index_mb']:,.1f} MB; our build "
            f"is {built['specs_per_s'] / whoosh['specs_per_s']:.1f}x"
        )
        comparable = [(name, params) for name, params in mix if name not in OURS_ONLY]
        rows, totals = bench_whoosh(whoosh["ix"], comparable, args.baseline_repeat)
        whoosh["ix"].close()
        baselines.append(("groupedby", rows, totals))
        sqlite = build_sqlite(source, workdir / "baseline.sqlite")
        print(
            f"baseline SQLite FTS5: {sqlite['specs_per_s']:,.0f} specs/s, "
            f"{sqlite['index_mb']:,.1f} MB; our build is "
            f"{built['specs_per_s'] / sqlite['specs_per_s']:.1f}x"
        )
        rows, totals = bench_sqlite(sqlite["db"], comparable, args.baseline_repeat)
        sqlite["db"].close()
        baselines.append(("fts5", rows, totals))

    print()
    header = f"{'query class':26} {'hits':>9} {'median':>8} {'p95':>8}"
    for label, _, _ in baselines:
        header += f" {label + ' median':>17} {'ratio':>6}"
    print(header + "   (ms; ratio = baseline median / ours)")
    for name, samples in ours.items():
        med, p95 = statistics.median(samples), percentile(samples, 0.95)
        line = f"{name:26} {our_totals[name]:>9,} {med:>8.2f} {p95:>8.2f}"
        for _, rows, totals in baselines:
            if name not in rows:  # spec syntax, did-you-mean, suggest: ours only
                continue
            bmed = statistics.median(rows[name])
            flag = " " if totals[name] == our_totals[name] else "*"
            line += f" {bmed:>16.1f}{flag} {bmed / med:>5.0f}x"
        print(line)
    print(
        f"\n(ours: {args.repeat} runs per class; baselines: {args.baseline_repeat} runs; "
        "* = that baseline found a different number of hits)"
    )


if __name__ == "__main__":
    main()
