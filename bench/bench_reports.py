"""Benchmark: stats, package timelines, compare and exports (issue 11's views).

    ./dev bench reports --index DIR     # an existing index (e.g. bench_mirrors' --workdir)
    ./dev bench reports --specs 100000  # generate mirrors, index them, then measure

Each class runs through the Flask test client (whole requests, JSON and HTML), median
and p95 of --repeat runs, against a baseline in the same process that answers the same
question through the public API as a script would without these endpoints:

- stats: /api/search once per tag (its total) plus once with every facet counted;
- package: /api/search?package=&tag= once per tag (the grid, row by row);
- compare: two /api/spec answers (a script diffs them itself);
- runs_on and target ranges: every runnable target named as a target= facet value;
- export: 100,000 rows written from Spec objects (the path before Snapshot.export_rows),
  against the streamed /api/search.csv and .ndjson; with tracemalloc's peak for 10,000,
  100,000 and 300,000 rows once the label caches are warm (flat memory: the same peak
  whatever the row count).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlencode

from common import ROOT, percentile, timed

from searcher.app import create_app
from searcher.bitmaps import ids
from searcher.export import EXPORT_FIELDS
from searcher.query import parse
from searcher.search import SearchRequest, _filtered


def line(name: str, samples: list[float], baseline: list[float] | None = None) -> str:
    med, p95 = statistics.median(samples), percentile(samples, 0.95)
    text = f"{name:44} {med:>8.2f} {p95:>8.2f}"
    if baseline:
        base = statistics.median(baseline)
        text += f" {base:>10.2f} {base / med:>7.1f}x"
    return text


def bench_reports(index: Path, repeat: int = 40) -> None:
    app = create_app({"INDEX_DIR": str(index)})
    client = app.test_client()

    def get(url: str):
        response = client.get(url)
        assert response.status_code == 200, (url, response.get_data(as_text=True)[:300])
        return response

    stats = get("/api/stats").get_json()
    tags = [row["tag"] for row in stats["tags"]]
    package = stats["largest"][0]["package"]  # the package with the most builds
    grid = get(f"/api/package/{package}").get_json()
    newest, older = grid["tags"][0]["tag"], grid["tags"][1]["tag"]
    diff = get("/api/compare?" + urlencode({"package": package, "a": older, "b": newest}))
    diff = diff.get_json()
    a, b = diff["only_a"][0]["id"], diff["only_b"][0]["id"]
    print(
        f"\n# views: {len(tags)} tags; {package}: {grid['specs']:,} builds in "
        f"{len(grid['tags'])} tags; diff {older} -> {newest}"
    )
    print(f"{'class (ms)':44} {'median':>8} {'p95':>8} {'baseline':>10} {'ratio':>8}")

    def stats_baseline(tag: str | None) -> None:
        for t in tags:
            get("/api/search?" + urlencode({"tag": t, "per_page": 1}))
        get("/api/search?" + urlencode({"facet_size": 1000, **({"tag": tag} if tag else {})}))

    few = max(3, repeat // 8)  # the baselines are slower: fewer runs
    for tag in (None, newest):
        query = "?" + urlencode({"tag": tag}) if tag else ""
        ours = timed(lambda q=query: get("/api/stats" + q), repeat)
        base = timed(lambda t=tag: stats_baseline(t), few)
        print(line(f"/api/stats{query}", ours, base))
        print(line(f"/stats{query} (page)", timed(lambda q=query: get("/stats" + q), repeat)))

    def grid_baseline() -> None:
        for t in tags:
            get("/api/search?" + urlencode({"package": package, "tag": t, "facet_size": 1000}))

    ours = timed(lambda: get(f"/api/package/{package}"), repeat)
    print(line(f"/api/package/{package}", ours, timed(grid_baseline, few)))
    print(line(f"/package/{package} (page)", timed(lambda: get(f"/package/{package}"), repeat)))

    pair = urlencode({"a": a, "b": b})
    ours = timed(lambda: get(f"/api/compare?{pair}"), repeat)
    base = timed(lambda: (get(f"/api/spec/{a}"), get(f"/api/spec/{b}")), repeat)
    print(line("/api/compare?a=&b=", ours, base))
    print(line("/compare?a=&b= (page)", timed(lambda: get(f"/compare?{pair}"), repeat)))
    print(line("/compare?a= (pick a second build)", timed(lambda: get(f"/compare?a={a}"), repeat)))
    tag_pair = urlencode({"package": package, "a": older, "b": newest})
    print(line(f"/api/compare?package= ({older} -> {newest})", timed(
        lambda: get(f"/api/compare?{tag_pair}"), max(5, repeat // 4))))  # fmt: skip
    bench_targets(client, repeat)
    bench_export(app, client)
    app.extensions["searcher.index"].close()


def bench_targets(client, repeat: int) -> None:
    """runs_on and target ranges, against the same set asked as target= facet values
    (every runnable target named, OR within the facet: what a client without ranges
    would send; the same hits)."""
    from searcher import targets

    held = [row["value"] for row in client.get("/api/search?facet_size=1000").get_json()[
        "facets"]["target"]]  # fmt: skip
    print(f"\n# targets: {len(held)} held ({', '.join(held)})")
    print(f"{'class (ms)':44} {'median':>8} {'p95':>8} {'baseline':>10} {'ratio':>8}")
    classes = [
        ("runs_on=zen4", [("runs_on", "zen4")], targets.runs_on("zen4")),
        ("runs_on=neoverse_v2&tag=develop", [("runs_on", "neoverse_v2"), ("tag", "develop")],
         targets.runs_on("neoverse_v2")),
        ("q=target=:zen4", [("q", "target=:zen4")], targets.runs_on("zen4")),
        ("q=target=x86_64_v3:", [("q", "target=x86_64_v3:")],
         {t for t in held if targets.at_most("x86_64_v3", t)}),
        ("q=py-torch target=aarch64:", [("q", "py-torch target=aarch64:")],
         {t for t in held if targets.at_most("aarch64", t)}),
    ]  # fmt: skip
    for name, params, runnable in classes:
        url = "/api/search?" + urlencode(params)
        rest = [(k, v) for k, v in params if k not in ("runs_on", "q")]
        q = [("q", "py-torch")] if "py-torch" in name else []
        named = [("target", t) for t in held if t in runnable]
        base_url = "/api/search?" + urlencode([*q, *rest, *named])
        ours_total = client.get(url).get_json()["total"]
        base_total = client.get(base_url).get_json()["total"]
        assert ours_total == base_total, (name, ours_total, base_total)
        ours = timed(lambda u=url: client.get(u), repeat)
        base = timed(lambda u=base_url: client.get(u), repeat)
        print(line(f"{name} ({ours_total:,} hits)", ours, base))


def bench_export(app, client, rows: int = 100_000) -> None:
    """The first `rows` rows of the biggest tags, streamed; and the Spec-object path."""
    stats = client.get("/api/stats").get_json()
    chosen, held = [], 0
    for row in sorted(stats["tags"], key=lambda r: -r["specs"]):
        chosen.append(row["tag"])
        held += row["specs"]
        if held >= 3 * rows:
            break
    params = [("tag", t) for t in chosen]

    def stream(kind: str, limit: int) -> int:
        response = client.get(f"/api/search.{kind}?" + urlencode(params))
        written = 0
        for piece in response.response:
            written += piece.count(b"\n")
            if written > limit:
                break
        response.close()
        return min(written, limit + 1)

    def spec_path(limit: int) -> int:
        """Rows from Spec objects and their Dependency objects (the old export)."""
        handle = app.extensions["searcher.index"]
        with handle.snapshot() as snap:
            request = SearchRequest.from_params({"tag": chosen})
            ranks = ids(_filtered(snap, parse(request.q, snap.is_package), request.filters))
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for start in range(0, limit, 2000):
                for spec in snap.specs(int(r) for r in ranks[start : min(limit, start + 2000)]):
                    record = spec.to_record()
                    record["dependencies"] = [
                        f"{d.name}@{d.version}/{d.hash}" for d in spec.dependencies
                    ]
                    writer.writerow([record[f] for f in EXPORT_FIELDS])
                buffer.seek(0)
                buffer.truncate()
        return limit

    print(f"\n# export: the first {rows:,} of {held:,} hits of tag={'|'.join(chosen)}")
    print(f"{'export (s)':44} {'median':>8} {'rows/s':>10} {'peak MB':>8}")
    for name, run in (
        ("/api/search.csv", lambda n: stream("csv", n)),
        ("/api/search.ndjson", lambda n: stream("ndjson", n)),
        ("baseline: Spec objects -> csv", spec_path),
    ):
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            run(rows)
            samples.append(time.perf_counter() - start)
        # Memory: the caches of dependency labels fill on a first export (to a bound,
        # snapshot.MAX_CACHED_IDENTITIES); warm them, then trace what the stream holds.
        run(3 * rows)
        peaks = []
        for limit in (10_000, rows, 3 * rows):
            tracemalloc.start()
            run(limit)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        med = statistics.median(samples)
        print(
            f"{name:44} {med:>8.2f} {rows / med:>10,.0f} {peaks[1]:>8.1f}"
            f"   (peak at 10,000 rows: {peaks[0]:.1f} MB; at {3 * rows:,}: {peaks[2]:.1f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an existing index directory")
    parser.add_argument("--specs", type=int, default=100_000, help="else: generate this many")
    parser.add_argument("--tags", type=int, default=0, help="default: ~1 per 16,667 specs")
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    index = args.index
    if index is None:
        from searcher.generate import generate
        from searcher.indexer import reindex

        workdir = Path(tempfile.mkdtemp(prefix="searcher-bench-reports-"))
        tags = args.tags or max(4, round(args.specs / 16_667))
        generate(workdir / "mirrors", specs=args.specs, tags=tags, layout="mirror")
        index = workdir / "index"
        reindex(workdir / "mirrors", index)
    print(f"# searcher views benchmark on {index}; python {sys.version.split()[0]}; {ROOT.name}")
    bench_reports(index, args.repeat)


if __name__ == "__main__":
    main()
