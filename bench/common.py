"""What the benchmarks share: the query mix, percentiles, and a `searcher` child process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Classes only searcher understands (spec syntax): the baselines skip them.
OURS_ONLY = ("spec syntax", "did-you-mean (no hits)")


def query_mix(get_json: Callable[[str], dict]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The query classes of the benchmarks, as /api/search parameters.

    get_json(url) answers a GET of the API (it picks a real hash for the prefix class).
    """
    some = get_json("/api/search?q=py-torch&per_page=1")["hits"][0]
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
        # Words that are not package names (a package name is a spec: only that package).
        ("text + filters", [("q", "e4s"), ("os", "ubuntu22.04"), ("target", "x86_64_v3")]),
        ("page 50 of broad", [("q", "build_system"), ("page", "50")]),
        ("spec syntax", [("q", "py-torch@2.5:+cuda%gcc@11: arch=linux-ubuntu22.04-x86_64_v3")]),
        ("did-you-mean (no hits)", [("q", "py-trch")]),
    ]


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def searcher_command(*args: str, **kwargs) -> subprocess.Popen:
    """Start `python -m searcher ARGS` from the checkout, as a child process."""
    return subprocess.Popen([sys.executable, "-m", "searcher", *args], cwd=ROOT, **kwargs)


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
