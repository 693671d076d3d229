"""Benchmark: `searcher serve` under load over HTTP, one process against pre-forked workers.

    ./dev bench serve                       # 100,000 generated specs
    ./dev bench serve --specs 1000000       # the design scale
    ./dev bench serve --index DIR           # an index you already have

Real `searcher serve` processes on loopback, one per configuration (the baseline is
`--workers 1`: waitress in one process), all started up front and loaded in turn, in
interleaved rounds, by the same closed-loop client: C connections (keep-alive), each
sending the next request as soon as its answer is read, cycling through the query mix of
bench/common.py as /api/search calls, three of them as /search pages, and two
/api/suggest calls. Figures are medians over rounds, ratios are against the baseline of
the same run (this machine is noisy). The client runs in this process on the same cores:
its CPU is printed too, as what the servers could not use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from common import percentile, query_mix, searcher_command

TICKS = os.sysconf("SC_CLK_TCK")


def request_paths(base: str) -> list[str]:
    """The requests one client cycles through: the API mix, pages, and autocomplete."""

    def get_json(url: str) -> dict:
        with urllib.request.urlopen(base + url, timeout=60) as response:
            return json.load(response)

    mix = query_mix(get_json)
    paths = ["/api/search?" + urlencode(params) for _, params in mix]
    by_name = dict(mix)
    for name in ("1 facet value", "package term", "spec syntax"):  # the front page, two more
        paths.append("/search?" + urlencode(by_name[name]))
    paths += ["/api/suggest?q=py-t", "/api/suggest?q=torch"]
    return paths


# -- a server under test --------------------------------------------------------------------


@dataclass
class Server:
    """One `searcher serve` configuration, running on its own port."""

    workers: int
    threads: int
    index: Path
    port: int = 0
    process: subprocess.Popen | None = None
    stderr: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        kind = "waitress" if self.workers == 1 else "gunicorn"
        return f"--workers {self.workers} --threads {self.threads} ({kind})"

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = searcher_command(
            "serve", "--index", str(self.index), "--port", str(self.port),
            "--workers", str(self.workers), "--threads", str(self.threads),
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        ready = 0
        for line in self.process.stderr:
            self.stderr.append(line)
            if re.match(r"searcher: process \d+ ready", line):
                ready += 1
                if ready == self.workers:
                    break
        else:
            raise RuntimeError(f"{self.label} did not start:\n{''.join(self.stderr)}")
        # Keep draining stderr, so a chatty server never blocks on a full pipe.
        threading.Thread(
            target=self.stderr.extend, args=(self.process.stderr,), daemon=True
        ).start()

    def pids(self) -> list[int]:
        """The server's processes: the master and its workers."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, children)]

    def cpu_seconds(self) -> dict[int, float]:
        """CPU time (user + system) of each process of the server."""
        used = {}
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / TICKS
        return used

    def memory_mb(self) -> tuple[float, float]:
        """(RSS, PSS) summed over the processes: RSS counts shared pages once per
        process, PSS splits them between the processes that share them."""
        rss = pss = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "Rss":
                    rss += int(value.split()[0])
                elif key == "Pss":
                    pss += int(value.split()[0])
        return rss / 1024, pss / 1024

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


# -- the client -------------------------------------------------------------------------------


async def one_client(
    port: int, paths: list[str], offset: int, until: float, keepalive: bool, out: dict
) -> None:
    """Send requests back to back until `until`, on one kept-alive connection (opened
    again when the server closes it), or on a new connection each (keepalive False)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    close = "" if keepalive else "Connection: close\r\n"
    i = offset
    try:
        while time.perf_counter() < until:
            path = paths[i % len(paths)]
            request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{close}\r\n".encode()
            i += 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lowered = head.lower()
            length = int(re.search(rb"\r\ncontent-length: *(\d+)", lowered)[1])
            await reader.readexactly(length)
            out["latencies"].append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                out["errors"] += 1
            if not keepalive or b"\r\nconnection: close" in lowered:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def load(
    server: Server, paths: list[str], clients: int, seconds: float, keepalive: bool = True
) -> dict:
    """C clients for `seconds`: throughput, latencies, the server's and client's CPU."""
    out: dict = {"latencies": [], "errors": 0}

    async def run() -> None:
        until = time.perf_counter() + seconds
        step = max(1, len(paths) // clients)
        await asyncio.gather(
            *(
                one_client(server.port, paths, c * step, until, keepalive, out)
                for c in range(clients)
            )
        )

    cpu_before, client_before = server.cpu_seconds(), time.process_time()
    start = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - start
    latencies = [x * 1000 for x in out["latencies"]]
    requests = len(latencies)
    cpu_after = server.cpu_seconds()
    per_process = {pid: cpu_after[pid] - cpu_before.get(pid, 0) for pid in cpu_after}
    server_cpu = sum(per_process.values())
    workers = [per_process[pid] for pid in server.pids()[1:]] or [server_cpu]
    return {
        "rps": requests / wall,
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "cpu_ms": server_cpu / requests * 1000,
        "cores": server_cpu / wall,
        "client_cores": (time.process_time() - client_before) / wall,
        # The busiest worker's share of the workers' CPU: 1/N when they share evenly.
        "busiest": max(workers) / (sum(workers) or 1),
        "errors": out["errors"],
        "requests": requests,
    }


# -- main -------------------------------------------------------------------------------------


def build_index(specs: int, workdir: Path) -> Path:
    source, index = workdir / "source", workdir / "index"
    tags = max(4, round(specs / 16_667))
    for command in (
        ["generate", str(source), "--specs", str(specs), "--tags", str(tags)],
        ["reindex", "-q", "--source", str(source), "--index", str(index)],
    ):
        start = time.perf_counter()
        searcher_command(*command, stdout=subprocess.DEVNULL).wait()
        print(f"{command[0]}: {time.perf_counter() - start:.1f} s", flush=True)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an index to serve (default: generate one)")
    parser.add_argument("--specs", type=int, default=100_000, help="specs to generate")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2], help="worker counts to compare with 1"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per server process")
    parser.add_argument(
        "--no-keepalive", action="store_true", help="a new connection for every request"
    )
    args = parser.parse_args()

    workdir = None
    index = args.index
    if index is None:
        workdir = Path(tempfile.mkdtemp(prefix="searcher-bench-serve-"))
        index = build_index(args.specs, workdir)
    servers = [Server(1, 8, index)] + [Server(w, args.threads, index) for w in args.workers]
    try:
        for server in servers:
            server.start()
        paths = request_paths(f"http://127.0.0.1:{servers[0].port}")
        mode = "a connection per request" if args.no_keepalive else "keep-alive"
        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{servers[0].port}/api/health"))
        print(
            f"# serve benchmark: {health['documents']:,} specs, {len(os.sched_getaffinity(0))} "
            f"cores, {args.clients} clients ({mode}), {len(paths)} requests in the mix, "
            f"{args.rounds} rounds of {args.seconds:g} s, python {sys.version.split()[0]}",
            flush=True,
        )
        for server in servers:  # warm every process of every server
            load(server, paths, args.clients, 2)
        rounds: dict[str, list[dict]] = {s.label: [] for s in servers}
        for number in range(args.rounds):
            for server in servers:
                result = load(server, paths, args.clients, args.seconds, not args.no_keepalive)
                rounds[server.label].append(result)
                print(
                    f"round {number + 1}: {server.label}: {result['rps']:.0f} req/s, "
                    f"p99 {result['p99']:.1f} ms, {result['cores']:.2f} cores, busiest worker "
                    f"{result['busiest']:.0%} of the work, {result['errors']} errors",
                    flush=True,
                )
        report(servers, rounds)
    finally:
        for server in servers:
            server.stop()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def report(servers: list[Server], rounds: dict[str, list[dict]]) -> None:
    print()
    print(
        f"{'configuration':38} {'req/s':>7} {'ratio':>6} {'p50':>7} {'p95':>7} {'p99':>7} "
        f"{'CPU/req':>8} {'cores':>6} {'client':>7} {'RSS':>7} {'PSS':>7}"
    )
    baseline = statistics.median(r["rps"] for r in rounds[servers[0].label])
    for server in servers:
        results = rounds[server.label]

        def med(key: str, results=results) -> float:
            return statistics.median(r[key] for r in results)

        rss, pss = server.memory_mb()
        print(
            f"{server.label:38} {med('rps'):>7.0f} {med('rps') / baseline:>5.2f}x "
            f"{med('p50'):>7.1f} {med('p95'):>7.1f} {med('p99'):>7.1f} {med('cpu_ms'):>6.2f}ms "
            f"{med('cores'):>6.2f} {med('client_cores'):>7.2f} {rss:>5.0f}MB {pss:>5.0f}MB"
        )
    errors = sum(r["errors"] for results in rounds.values() for r in results)
    print(
        "\n(medians over rounds; latencies in ms; CPU/req = the server processes' CPU per "
        "answer; cores = the CPU they used per second; client = this process's; RSS/PSS: "
        f"all processes of the server after the runs; {errors} non-200 answers)"
    )


if __name__ == "__main__":
    main()
