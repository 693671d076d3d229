"""Benchmark: indexing Spack binary mirrors, and dependency queries, at scale.

    ./dev bench mirrors                       # 100,000 generated specs as mirrors
    ./dev bench mirrors --specs 1000000       # the design scale (60 tags, ~20 stacks each)
    ./dev bench mirrors --workdir DIR         # keep (and reuse) the generated mirrors

Prints, all measured in this one run (quote medians and ratios; the machines are noisy):

- JSON parsers on the biggest database of the tree: json.loads, orjson.loads and
  msgspec untyped against searcher's typed msgspec decode (with its record conversion);
- a full reindex in a child process: wall time, specs/s, the peak RSS of the largest
  process and of the whole process tree, the index's size; then a no-change reindex;
- query classes through /api/search (Flask's test client): the mix of bench_search.py
  plus ^dep, ^dep@range, ^virtual, ^[virtuals=...] x and the dependency facet, median and
  p95 of 40 runs, each ^ class against a baseline in the same process: walking the
  reversed dependency edges breadth first (what an index without the precomputed
  dependents would do), same documents, same answer;
- stats, package, compare and export requests (bench_reports.py);
- the RSS of a serving process after the mix over HTTP.
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
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import msgspec
import numpy as np
import orjson
from bench_reports import bench_reports
from bench_search import bench_server
from common import ROOT, dir_size, percentile, query_mix, timed
from pyroaring import BitMap

from searcher.app import create_app
from searcher.database import parse_database
from searcher.generate import generate

DEPENDENCY_CLASSES = [
    ("^dep (^openmpi)", [("q", "^openmpi")]),
    ("^dep@range (^openmpi@5:)", [("q", "^openmpi@5:")]),
    ("pkg ^dep@range", [("q", "py-torch ^cuda@12.6:")]),
    ("^virtual (^mpi)", [("q", "^mpi")]),
    ("^[virtuals=mpi] x", [("q", "^[virtuals=mpi] mpich")]),
    ("^dep+variant", [("q", "^hdf5+mpi")]),
    ("dependency facet", [("dependency", "openmpi"), ("tag", "develop")]),
]


def bench_parsers(source: Path, repeat: int = 5) -> None:
    """The JSON parser choice, measured on the biggest database of the tree."""
    biggest = max(
        (p for p in source.rglob("*") if p.is_file() and p.stat().st_size > 1000),
        key=lambda p: p.stat().st_size,
    )
    data = biggest.read_bytes()
    records = len(json.loads(data)["database"]["installs"])
    candidates = [
        ("json.loads", lambda: json.loads(data)),
        ("orjson.loads", lambda: orjson.loads(data)),
        ("msgspec untyped", lambda: msgspec.json.decode(data)),
        ("msgspec typed + records", lambda: parse_database(data, "bench", "root")),
    ]
    medians = {}
    for name, fn in candidates:
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        medians[name] = statistics.median(samples)
    where, size = biggest.relative_to(source), len(data) / 2**20
    print(f"parsers: {where}, {size:.0f} MB, {records:,} records; medians of {repeat}:")
    for name, seconds in medians.items():
        ratio = medians["json.loads"] / seconds
        print(f"  {name:26} {seconds:6.2f} s   {ratio:4.2f}x json.loads")


def tree_rss_kb(pid: int) -> int:
    """The summed RSS of a process and all its descendants (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def reindex(source: Path, index: Path) -> dict:
    """`searcher reindex -q` in a child: wall time, summary, peak RSS (largest, tree)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "searcher", "reindex", "-q",
         "--source", str(source), "--index", str(index)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak = [0]

    def watch() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], tree_rss_kb(child.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = child.communicate()
    watcher.join()
    if child.returncode:
        raise RuntimeError(f"reindex failed: {err[-2000:]}")
    return {
        "seconds": time.perf_counter() - start,
        "summary": out.strip().splitlines()[0],
        "output": out.strip(),
        "largest_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "tree_mb": peak[0] / 1024,
    }


class ReverseWalk:
    """The baseline: dependents found by walking reversed edges breadth first (numpy
    frontiers), from the graph's direct edges only, without the precomputed rows."""

    def __init__(self, generation: Path):
        ptr = np.load(generation / "dep_ptr.npy")
        child = np.load(generation / "dep_child.npy").astype(np.int64)
        parent = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        order = np.argsort(child, kind="stable")
        self.parents = parent[order]
        self.ptr = np.zeros(len(ptr), dtype=np.int64)
        np.cumsum(np.bincount(child, minlength=len(ptr) - 1), out=self.ptr[1:])
        self.rank_of = np.load(generation / "rank_of.npy")
        self.docs = len(self.rank_of)

    def dependents(self, nodes: np.ndarray) -> BitMap:
        seen = np.zeros(len(self.ptr) - 1, dtype=bool)
        frontier = np.unique(nodes)
        found = []
        while len(frontier):
            starts, stops = self.ptr[frontier], self.ptr[frontier + 1]
            lengths = stops - starts
            ends = np.cumsum(lengths)
            positions = np.repeat(starts - ends + lengths, lengths) + np.arange(int(lengths.sum()))
            up = np.unique(self.parents[positions])
            up = up[~seen[up]]
            seen[up] = True
            found.append(up)
            frontier = up
        everything = np.concatenate(found) if found else np.zeros(0, np.int64)
        return BitMap(self.rank_of[everything[everything < self.docs]].astype(np.uint32))


def bench_queries(index: Path, repeat: int) -> None:
    app = create_app({"INDEX_DIR": str(index)})
    client = app.test_client()
    handle = app.extensions["searcher.index"]
    generation = handle.dir.current_path()
    walk = ReverseWalk(generation)
    classes = query_mix(lambda url: client.get(url).get_json()) + DEPENDENCY_CLASSES
    header = f"{'query class':30} {'hits':>9} {'median':>8} {'p95':>8}"
    print(
        f"\n{header} {'set: ours':>10} {'walk':>9} {'ratio':>7}   (ms; whole /api/search "
        "requests, then the ^ document set alone; ratio = walk / ours)"
    )
    for name, params in classes:
        url = "/api/search?" + urlencode(params)

        def run(url=url):
            response = client.get(url)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            return response

        total = run().get_json()["total"]
        samples = timed(run, repeat)
        med, p95 = statistics.median(samples), percentile(samples, 0.95)
        line = f"{name:30} {total:>9,} {med:>8.2f} {p95:>8.2f}"
        q = dict(params).get("q", "")
        if q.startswith("^") and " " not in q and "[" not in q and "+" not in q:
            line += _walk_line(handle, walk, q, total, repeat)
        print(line)
    handle.close()


def _walk_line(handle, walk: ReverseWalk, q: str, total: int, repeat: int) -> str:
    """^clause both ways, the document set alone (no facets, no page): ours (the
    precomputed rows, search._dependents) and the baseline walk over the same nodes."""
    from searcher.query import parse
    from searcher.search import _dependents, _spec_docs

    with handle.snapshot() as snap:
        clause = parse(q, snap.is_package).specs[0].dependencies[0]
        options = (clause.versions, clause.compilers, clause.variants, clause.arch, clause.hashes)
        bare = clause.name and not snap.is_package(clause.name) and not any(options)
        if bare:  # a virtual: who depends on one of its providers
            parents, _ = snap.virtual_edges(clause.name)
            nodes, own = np.unique(parents), True
        else:
            nodes = snap.numbers(_spec_docs(snap, clause, BitMap(snap.all_docs)))
            own = False

        def baseline():
            found = walk.dependents(nodes)
            if own:
                found |= snap.ranks_of_nodes(nodes)
            return found

        ours = _dependents(snap, clause)
        assert ours == baseline(), (q, len(ours), len(baseline()))
        assert len(ours) == total, (q, len(ours), total)
        runs = max(5, repeat // 4)
        walked = statistics.median(timed(baseline, runs))
        own_set = statistics.median(timed(lambda: _dependents(snap, clause), runs))
    return f" {own_set:>9.2f} {walked:>9.2f} {walked / own_set:>6.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=0, help="default: ~1 per 16,667 specs")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) data and indexes here")
    parser.add_argument(
        "--reindex-runs", type=int, default=1, help="full cold reindexes to take the median of"
    )
    args = parser.parse_args()
    tags = args.tags or max(4, round(args.specs / 16_667))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="searcher-bench-mirrors-"))
    source, index = workdir / "mirrors", workdir / "index"
    print(f"# searcher mirror benchmark: {args.specs:,} specs over {tags} tags, in {workdir}")
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} cores")
    if not source.is_dir():
        start = time.perf_counter()
        report = generate(source, specs=args.specs, tags=tags, layout="mirror")
        took = time.perf_counter() - start
        print(f"generate: {report.specs:,} specs in {report.files:,} mirrors, {took:.0f} s")
    bench_parsers(source)
    runs = []
    for _ in range(max(1, args.reindex_runs)):
        if index.exists():  # cold: no index, no mirror cache
            shutil.rmtree(index)
        runs.append(reindex(source, index))
        print(f"reindex: {runs[-1]['summary']}")
    built = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]  # the median run
    generation = index / (index / "CURRENT").read_text().strip()
    specs = int(built["summary"].split(" specs indexed")[0].split(", ")[-1])
    if len(runs) > 1:
        seconds = ", ".join(f"{run['seconds']:.1f}" for run in runs)
        print(f"reindex: {len(runs)} cold runs, {seconds} s; the median run:")
    print(
        f"reindex: {specs / built['seconds']:,.0f} specs/s end to end, peak RSS "
        f"{built['largest_mb']:,.0f} MB (largest process), {built['tree_mb']:,.0f} MB (all "
        f"processes), index {dir_size(generation) / 2**20:,.0f} MB "
        f"(mirror cache {dir_size(index / '.mirrors') / 2**20:,.0f} MB beside it)"
    )
    again = reindex(source, index)
    said = again["output"].splitlines()[-1]
    print(f"reindex, nothing changed: {again['seconds']:.1f} s wall ({said})")
    bench_queries(index, args.repeat)
    bench_reports(index, args.repeat)
    app = create_app({"INDEX_DIR": str(index)})
    mix = query_mix(lambda url: app.test_client().get(url).get_json()) + DEPENDENCY_CLASSES
    app.extensions["searcher.index"].close()
    served = bench_server(index, mix)
    print(
        f"\nserve (one process): RSS {served['rss_mb']:,.0f} MB "
        f"(peak {served['peak_rss_mb']:,.0f} MB) after the mix over HTTP; "
        f"HTTP median {served['http_median_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
