"""Whatever a user sends, the answer is a 200 or a 400 with the documented error body."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference import FACETS

NAMES = st.sampled_from(["q", "page", "per_page", "facet_size", *FACETS, "expand", "zzz"])
# Text that leans on the pieces the query syntax gives meaning to.
TOKENS = [*'abc:=+~-/*"@%., ', "py-keras", "os", "hash", "stack", "\x00", "\u00e9", "\ud7ff"]
QUERY_TEXT = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
VALUES = st.one_of(QUERY_TEXT, st.integers(-5, 20_000).map(str), st.text(max_size=10))


def check(response, api: bool) -> None:
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    if api and response.status_code == 400:
        error = response.get_json()["error"]
        assert error["status"] == 400 and error["message"]
        assert set(error) <= {"status", "message", "position"}
        if "position" in error:
            assert isinstance(error["position"], int) and error["position"] >= 0


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=QUERY_TEXT)
def test_any_query_text_is_answered_or_rejected_cleanly(client, q):
    response = client.get("/api/search?" + urlencode({"q": q}))
    check(response, api=True)
    if response.status_code == 400 and "position" in response.get_json()["error"]:
        assert response.get_json()["error"]["position"] <= len(q)
    check(client.get("/search?" + urlencode({"q": q})), api=False)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_any_parameters_are_answered_or_rejected_cleanly(client, params):
    check(client.get("/api/search?" + urlencode(params)), api=True)
    check(client.get("/search?" + urlencode(params)), api=False)


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
