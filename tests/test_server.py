"""`searcher serve` as a real server on loopback: waitress in one process, gunicorn's
workers in several; the servers' own error answers, a busy port, every worker serving,
and a clean stop."""

from __future__ import annotations

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import LiveServer, cli

SERVERS = [pytest.param(1, id="waitress"), pytest.param(2, id="gunicorn-2-workers")]


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a new connection, read the answer to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer from a connection: (status, headers, body)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(1)  # byte by byte: nothing of a next answer is consumed
        assert chunk, f"connection closed before an answer: {received[:200]!r}"
        received += chunk
    head = received[:-4]
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    body = b""
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(int(headers["content-length"]) - len(body))
        assert chunk, "connection closed in the middle of the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


MALFORMED = [
    pytest.param(b"GARBAGE\r\n\r\n", (400,), id="bad-request-line"),
    pytest.param(
        b"GET /api/search HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 1000) for i in range(200))
        + b"\r\n",
        (431,),
        id="oversized-headers",
    ),
    pytest.param(
        b"GET /api/search?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        (414,),
        id="20KB-request-line",
    ),
    pytest.param(
        b"GET /api/search?q=" + b"a" * 6_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        (414, 431),
        id="6MB-request-line",
    ),
    pytest.param(
        b"POST /api/search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: bogus\r\n\r\n",
        (501,),
        id="bad-transfer-encoding",
    ),
    pytest.param(
        b"GET /api/search HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        (400,),
        id="bad-content-length",
    ),
]


@pytest.fixture(scope="module")
def servers(corpus_index):
    """One server of each kind over the corpus index, shared by this module's tests."""
    started = {workers: LiveServer(corpus_index, workers) for workers in (1, 2)}
    yield started
    for server in started.values():
        server.stop()


@pytest.mark.parametrize("workers", SERVERS)
@pytest.mark.parametrize(("request_bytes", "statuses"), MALFORMED)
def test_the_servers_own_errors_are_the_json_error_body(servers, workers, request_bytes, statuses):
    status, headers, body = exchange(servers[workers].port, request_bytes)
    assert status in statuses
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    error = json.loads(body)["error"]
    assert set(error) == {"status", "message"}
    assert error["status"] == status and error["message"]
    assert len(body) < 500  # never an echo of what was sent


@pytest.mark.parametrize("workers", SERVERS)
def test_gunicorn_closes_a_kept_alive_connection_after_20_answers(servers, workers):
    """Workers share the listening socket and a connection stays with the worker that
    accepted it: closing it after 20 answers lets it move to the less busy one (README,
    Serving). waitress, one process, has nothing to balance and keeps it open."""
    with socket.create_connection(("127.0.0.1", servers[workers].port), timeout=10) as sock:
        closing = []
        for _ in range(20 if workers > 1 else 30):
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = read_answer(sock)
            assert status == 200
            closing.append(headers.get("connection", "").lower() == "close")
        if workers > 1:
            assert closing == [False] * 19 + [True]
            assert sock.recv(1) == b""  # and it did close
        else:
            assert not any(closing)


def test_gunicorns_master_forks_its_workers_from_a_single_thread(servers):
    """Nothing but the master's own thread may be copied by the fork (no BLAS thread,
    no opener thread): Python 3.12+ warns, and a copied lock can deadlock a worker."""
    master = servers[2].process.pid
    status = Path(f"/proc/{master}/status").read_text()
    assert re.search(r"^Threads:\s+1$", status, re.M), status


@pytest.mark.parametrize("workers", SERVERS)
def test_clients_sending_their_headers_slowly_do_not_starve_the_others(servers, workers):
    """12 connections (more than gunicorn's 2 x 4 threads) dribble a request head, a header
    line every 0.2 s, for 3 s; meanwhile /api/health answers every time within 2 s.

    Starved, it waits for the slow heads to end (3 s and more). Most answers take
    milliseconds; on a loaded 2-core machine one in a few runs took 1.1 s (at 3d5effb as
    now; not yet explained, open in issue 9's note), hence 2 s rather than 1."""
    port = servers[workers].port
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(12)]
    try:
        for sock in slow:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        deadline, line, took = time.monotonic() + 3, 0, []
        while time.monotonic() < deadline:
            for sock in slow:
                sock.sendall(b"X-Slow-%d: y\r\n" % line)
            line += 1
            start = time.monotonic()
            assert exchange(port, b"GET /api/health HTTP/1.0\r\n\r\n")[0] == 200
            took.append(time.monotonic() - start)
            time.sleep(0.2)
        assert max(took) < 2.0, took
        for sock in slow:  # the slow ones are answered once their heads are whole
            sock.sendall(b"Connection: close\r\n\r\n")
            assert read_answer(sock)[0] == 200
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.parametrize("workers", SERVERS)
def test_a_busy_port_is_one_line_and_exit_6(servers, workers):
    port = servers[workers].port
    result = cli("serve", "--index", servers[workers].index, "--port", port, "--workers", workers)
    assert result.exit_code == 6
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use; "
        "pick another with --port or SEARCHER_PORT\n"
    )


def test_an_unknown_address_is_one_line_and_exit_6(corpus_index):
    result = cli("serve", "--index", corpus_index, "--host", "no.such.host.invalid")
    assert result.exit_code == 6
    assert result.stderr.startswith("error: cannot listen on no.such.host.invalid:8000: ")
    assert "Traceback" not in result.stderr


def workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.mark.parametrize("workers", SERVERS)
def test_concurrent_answers_match_one_at_a_time_and_every_worker_serves(
    generated_index, live_server_for, workers
):
    """8 client threads, 400 searches: each answer equals the sequential one; and every
    process of the server answered some of the /api/health requests sent among them."""
    server = live_server_for(generated_index, workers=workers)
    # The processes that said they are ready: the workers, or waitress's one process.
    workers = workers_of(server.process.pid) or [server.process.pid]
    assert sorted(workers) == sorted(server.pids)
    queries = [
        "q=py-torch%2Bcuda",
        "q=linux&os=ubuntu22.04",
        "q=py-t*",
        "q=%40%3A2",
        "q=%25gcc%4011%3A",
        "tag=develop&stack=root",
        "q=root&page=3",
        "q=cuda&sort=version",
        "q=keras",
        "q=+mpi",
    ]

    def answer(query: str) -> dict:
        status, body = server.get("/api/search?" + query)
        assert status == 200, body
        data = json.loads(body)
        data.pop("took_ms")
        return data

    def answered_by() -> int:
        status, body = server.get("/api/health")
        assert status == 200, body
        return int(json.loads(body)["process"])

    expected = {q: answer(q) for q in queries}
    work = [queries[i % len(queries)] for i in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(answer, work)
        processes = pool.map(lambda _: answered_by(), range(60))
        assert all(result == expected[q] for q, result in zip(work, results, strict=True))
        assert set(processes) == set(workers)


@pytest.mark.parametrize("workers", SERVERS)
def test_sigterm_stops_the_server_and_its_workers(corpus_index, workers):
    server = LiveServer(corpus_index, workers)
    try:
        children = workers_of(server.process.pid)
        # waitress answers in the process itself; gunicorn's master forks the workers.
        if workers == 1:
            assert server.pids == [server.process.pid] and children == []
        else:
            assert sorted(children) == sorted(server.pids) and len(children) == workers
        assert exchange(server.port, b"GET /api/health HTTP/1.0\r\n\r\n")[0] == 200
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0, "".join(server.stderr)
        assert "Traceback" not in "".join(server.stderr)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            assert time.monotonic() < deadline, "workers outlived their server"
            time.sleep(0.05)
    finally:
        server.stop()
