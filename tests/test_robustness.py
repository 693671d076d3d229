"""Many requests at once get the same answers as one at a time (fuzzing: test_fuzz.py)."""

from __future__ import annotations


def test_concurrent_requests_get_the_same_answers_as_sequential_ones(
    generated_index, live_server_for
):
    """8 threads x 25 requests on loopback: every answer equals the one-at-a-time answer."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    server = live_server_for(generated_index)
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

    expected = {q: answer(q) for q in queries}
    work = [queries[i % len(queries)] for i in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(answer, work))
    assert all(result == expected[q] for q, result in zip(work, results, strict=True))
