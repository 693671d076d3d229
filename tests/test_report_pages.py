"""Stats, package and compare pages in a real Chromium, at a phone's and a desktop's width:
every bar and cell leads to the search it counts, and compare works from the results
(test_page.py loads each of these views at every width for overflow and axe)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests import reference
from tests.test_page import server, specs, total  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
WIDTHS = (390, 1366)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_stats_bar_opens_the_search_it_counts(new_page, server, specs, width):  # noqa: F811
    tab = new_page(width=width)
    tab.goto(server.url + "/stats")
    # The tag picker works without script: a form.
    tab.select_option("#stats-tag", "develop")
    tab.get_by_role("button", name="Show").click()
    tab.wait_for_url(re.compile(r"/stats\?tag=develop$"))
    mine = [s for s in specs if s["tag"] == "develop"]
    targets = Counter(s["target"] for s in mine)
    target, count = targets.most_common(1)[0]
    bar = tab.locator(f'#chart-target a[aria-label^="{target}:"]')
    assert bar.get_attribute("aria-label") == f"{target}: {count:,} specs"
    bar.click()
    tab.wait_for_url(re.compile(r"/search\?"))
    assert total(tab) == count
    selected = tab.locator("a.chip[data-facet]")
    assert sorted(selected.evaluate_all("els => els.map(e => e.dataset.facet)")) == [
        "tag",
        "target",
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_package_grid_leads_to_its_builds(new_page, server, specs, width):  # noqa: F811
    tab = new_page(width=width, javascript=width > 400)
    tab.goto(server.url + "/search?q=attr")
    tab.locator("tr.hit").first.get_by_role("link", name="attr across tags").click()
    tab.wait_for_url(re.compile(r"/package/attr$"))
    held = Counter((s["tag"], s["versions"][0]) for s in specs if s["package"] == "attr")
    rows = tab.locator("#package-grid tbody tr")
    assert {r.get_attribute("data-tag") for r in rows.all()} == {t for t, _ in held}
    (tag, version), count = held.most_common(1)[0]
    builds = "build" if count == 1 else "builds"
    cell = tab.get_by_role("link", name=f"{count} {builds} of attr@{version} in {tag}")
    cell.click()
    tab.wait_for_url(re.compile(r"/search\?"))
    assert total(tab) == count


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_from_the_results_marks_what_differs(new_page, server, specs, width):  # noqa: F811
    tab = new_page(width=width)
    tab.goto(server.url + "/search?q=acl&tag=develop")
    first = tab.locator("tr.hit").first
    doc_id = first.get_attribute("data-id")
    first.locator("a.compare").click()
    tab.wait_for_url(re.compile(r"/compare\?a="))
    # The other builds of acl, in acl's tag first; pick one from another tag.
    assert (
        tab.locator("#candidates a").count() == sum(1 for s in specs if s["package"] == "acl") - 1
    )
    tab.locator("#candidates li", has_text="develop-2025-03-23").first.locator("a").click()
    tab.wait_for_url(re.compile(r"/compare\?a=.+&b="))
    a = next(s for s in specs if f"{s['tag']}/{s['hash']}" == doc_id)
    b_id = tab.url.split("b=")[1].replace("%2F", "/")
    b = next(s for s in specs if f"{s['tag']}/{s['hash']}" == b_id)
    marked = tab.locator("#compare-table tr.differs").evaluate_all(
        "rows => rows.map(r => r.dataset.field)"
    )
    ha, hb = reference.hit(a), reference.hit(b)
    for field in ("tag", "hash", "compiler", "os", "target"):
        assert (field in marked) == (ha[field] != hb[field]), field
    # Marked in words too, not by colour alone.
    assert tab.locator("#compare-table tr.differs .mark").first.inner_text() == "differs"
    overflow = tab.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_what_changed_between_two_tags_from_the_package_page(new_page, server, specs):  # noqa: F811
    tab = new_page(width=390)
    tab.goto(server.url + "/package/acl")
    tab.select_option("#diff-a", "develop-2025-03-23")
    tab.select_option("#diff-b", "develop")
    tab.get_by_role("button", name="Compare").click()
    tab.wait_for_url(re.compile(r"/compare\?package=acl"))
    hashes = {
        tag: {s["hash"] for s in specs if s["package"] == "acl" and s["tag"] == tag}
        for tag in ("develop-2025-03-23", "develop")
    }
    only_b = tab.locator("#only-b a").evaluate_all("els => els.map(e => e.href)")
    assert {h.rsplit("/", 1)[1] for h in only_b} == hashes["develop"] - hashes["develop-2025-03-23"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_runs_on_selector_keeps_builds_that_run_on_the_cpu(new_page, server, specs, width):  # noqa: F811
    import archspec.cpu

    cpus = archspec.cpu.TARGETS
    tab = new_page(width=width, javascript=width > 400)
    tab.goto(server.url + "/search?tag=develop")
    if width < 768:
        tab.locator("details#filters > summary").click()
    groups = tab.locator("#runs-on optgroup").evaluate_all("els => els.map(e => e.label)")
    assert groups[:2] == ["x86-64", "AArch64"]
    tab.select_option("#runs-on", "neoverse_v2")
    tab.get_by_role("button", name="Apply").click()
    tab.wait_for_url(re.compile(r"runs_on=neoverse_v2"))
    expected = [
        s
        for s in specs
        if s["tag"] == "develop"
        and s["target"] in cpus
        and cpus[s["target"]] <= cpus["neoverse_v2"]
    ]
    assert total(tab) == len(expected) > 0
    # The tag stays, and a facet link keeps the CPU.
    assert "tag=develop" in tab.url
    link = tab.locator('section[data-facet="os"] a[data-value]').first.get_attribute("href")
    assert "runs_on=neoverse_v2" in link
    tab.locator("#runs-on-chip").click()
    tab.wait_for_url(lambda url: "runs_on" not in url)
    assert total(tab) == sum(1 for s in specs if s["tag"] == "develop")
