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
import json
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from searcher.app import create_app  # noqa: E402
from searcher.generate import generate  # noqa: E402
from searcher.index import TextTerm  # noqa: E402
from searcher.schema import FACETS  # noqa: E402
from searcher.sources import find_pages, iter_pages  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn, repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- build ------------------------------------------------------------------------------


def bench_parse(pages: list[Path], sample: int) -> dict:
    """Front-matter parsing with libyaml's loader vs the pure-Python one."""
    texts = [p.read_text() for p in pages[:sample]]
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


def bench_reindex(source: Path, index: Path) -> dict:
    """`searcher reindex` in a child process: wall time, peak RSS, index size."""
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
    seconds = time.perf_counter() - start
    summary = run.stdout.strip().splitlines()[-1]
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


def query_mix(client) -> list[tuple[str, list[tuple[str, str]]]]:
    """The query classes of the benchmark, as /api/search parameters."""
    some = client.get("/api/search?q=py-torch&per_page=1").get_json()["hits"][0]
    return [
        ("match-all", []),
        ("1 facet value", [("tag", "develop")]),
        (
            "4 facet values (2 of os)",
            [("tag", "develop"), ("os", "ubuntu22.04"), ("os", "ubuntu24.04"), ("stack", "root")],
        ),
        ("package term", [("q", "py-torch")]),
        ("prefix", [("q", "py-t*")]),
        ("hash prefix", [("q", some["hash"][:7])]),
        ("broad term (linux)", [("q", "linux")]),
        ("text + filters", [("q", "cuda"), ("os", "ubuntu22.04"), ("target", "x86_64_v3")]),
        ("page 50 of broad", [("q", "root"), ("page", "50")]),
    ]


def bench_ours(index: Path, repeat: int) -> tuple[dict, dict]:
    app = create_app({"INDEX_DIR": str(index)})
    client = app.test_client()
    rows, totals = {}, {}
    for name, params in query_mix(client):
        url = "/api/search?" + urlencode(params)

        def run(url=url):
            response = client.get(url)
            assert response.status_code == 200, response.get_data(as_text=True)
            return response

        totals[name] = run().get_json()["total"]
        rows[name] = timed(run, repeat)
    app.extensions["searcher.index"].close()
    return rows, totals


# -- baseline: Whoosh with the facets as fields, counted by groupedby -------------------------


def build_baseline(source: Path, directory: Path) -> dict:
    from whoosh import fields, index

    from searcher.schema import make_schema

    schema = make_schema()
    for facet in FACETS:
        schema.add(facet.name, fields.KEYWORD(lowercase=False, commas=False))
    directory.mkdir(parents=True)
    ix = index.create_in(str(directory), schema)
    writer = ix.writer(limitmb=256)
    count = 0
    start = time.perf_counter()
    for page in iter_pages(find_pages(source)):
        for spec in getattr(page, "specs", []):
            values = spec.facet_values()
            writer.add_document(
                id=spec.id,
                hash=spec.hash,
                name=" ".join(spec.name_terms()),
                text=" ".join(spec.text_terms()),
                doc=spec.to_record(),
                **{k: " ".join(v) for k, v in values.items()},
            )
            count += 1
    writer.commit()
    seconds = time.perf_counter() - start
    return {"ix": ix, "specs_per_s": count / seconds, "index_mb": dir_size(directory) / 2**20}


def baseline_query(params: list[tuple[str, str]]):
    from whoosh import query as wq

    parts = []
    filters: dict[str, list[str]] = {}
    page = 1
    for key, value in params:
        if key == "q":
            word = value.lower()
            prefix = word.endswith("*")
            hash_like = len(word) >= 7 and word.isalnum()
            parts.append(
                TextTerm(word.rstrip("*"), prefix=prefix, hash_prefix=hash_like).whoosh_query()
            )
        elif key == "page":
            page = int(value)
        else:
            filters.setdefault(key, []).append(value)
    for facet, values in filters.items():
        parts.append(wq.Or([wq.Term(facet, v) for v in values]))
    return (wq.And(parts) if parts else wq.Every()), page


def bench_baseline(ix, mix, repeat: int) -> tuple[dict, dict]:
    from whoosh import sorting

    groupedby = {
        f.name: sorting.FieldFacet(f.name, allow_overlap=f.multi, maptype=sorting.Count)
        for f in FACETS
    }
    rows, totals = {}, {}
    with ix.searcher() as searcher:
        for name, params in mix:
            q, page = baseline_query(params)

            def run(q=q, page=page):
                results = searcher.search_page(q, page, pagelen=20, groupedby=groupedby)
                body = {
                    "total": results.total,
                    "hits": [hit["doc"] for hit in results],
                    "facets": {f: results.results.groups(f) for f in groupedby},
                }
                json.dumps(body)
                return results.total

            totals[name] = run()
            rows[name] = timed(run, repeat, warmup=1)
    return rows, totals


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=100_000, help="specs to generate")
    parser.add_argument("--tags", type=int, default=0, help="tags (default: ~1 per 16,667 specs)")
    parser.add_argument("--repeat", type=int, default=40, help="timed runs per query class")
    parser.add_argument("--baseline-repeat", type=int, default=7, help="runs per baseline class")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Whoosh baseline")
    parser.add_argument("--workdir", type=Path, help="keep the generated data and indexes here")
    args = parser.parse_args()
    tags = args.tags or max(4, round(args.specs / 16_667))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="searcher-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# searcher benchmark: {args.specs:,} specs over {tags} tags, in {workdir}")
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} cores")

    try:
        source = workdir / "source"
        start = time.perf_counter()
        report = generate(source, specs=args.specs, tags=tags)
        print(
            f"generate: {report.specs:,} specs in {report.files:,} pages, "
            f"{time.perf_counter() - start:.1f} s"
        )

        parse = bench_parse(find_pages(source), sample=300)
        line = ", ".join(f"{k} {v:,.0f} specs/s" for k, v in parse.items())
        if len(parse) == 2:
            line += f" (C/pure: {parse['CSafeLoader'] / parse['SafeLoader']:.1f}x)"
        print(f"parse: {line}")

        built = bench_reindex(source, workdir / "index")
        print(f"reindex: {built['summary']}")
        print(
            f"reindex: {built['specs_per_s']:,.0f} specs/s end to end (child process), "
            f"peak RSS {built['peak_rss_mb']:,.0f} MB, index {built['index_mb']:,.1f} MB"
        )

        ours, our_totals = bench_ours(workdir / "index", args.repeat)
        base = base_totals = None
        if not args.no_baseline:
            baseline = build_baseline(source, workdir / "baseline")
            print(
                f"baseline build (Whoosh, facets as fields, one process): "
                f"{baseline['specs_per_s']:,.0f} specs/s, index {baseline['index_mb']:,.1f} MB; "
                f"ours is {built['specs_per_s'] / baseline['specs_per_s']:.2f}x"
            )
            app = create_app({"INDEX_DIR": str(workdir / "index")})
            mix = query_mix(app.test_client())
            app.extensions["searcher.index"].close()
            base, base_totals = bench_baseline(baseline["ix"], mix, args.baseline_repeat)
            baseline["ix"].close()

        print()
        header = f"{'query class':28} {'hits':>9} {'median ms':>10} {'p95 ms':>8}"
        if base:
            header += f" {'groupedby median':>17} {'p95':>8} {'speed-up':>9}"
        print(header)
        for name, samples in ours.items():
            med, p95 = statistics.median(samples), percentile(samples, 0.95)
            line = f"{name:28} {our_totals[name]:>9,} {med:>10.2f} {p95:>8.2f}"
            if base:
                bmed, bp95 = statistics.median(base[name]), percentile(base[name], 0.95)
                flag = "" if base_totals[name] == our_totals[name] else " (hits differ)"
                line += f" {bmed:>17.2f} {bp95:>8.2f} {bmed / med:>8.1f}x{flag}"
            print(line)
        print(
            f"\n(ours: {args.repeat} runs per class; groupedby: {args.baseline_repeat} runs; "
            "speed-up = groupedby median / our median)"
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
