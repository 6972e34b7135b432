"""The pages in a real browser: Playwright driving Debian's chromium over scenario runs replayed
through the real pipeline (the session's `scenario_api`), with axe-core for accessibility.

`make test` installs chromium (`make browser`); without it these tests are skipped, saying so.
Screenshots of the runs list and the run page go to .cache/screenshots/ (git-ignored); the
README's come from the demo's data (test_demo.py, SENTINEL_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.sentinel.conftest import (
    FLAKY_RUN,
    FLAKY_TEST,
    OOM_RUN,
    STAGED_RUN,
    ScenarioApi,
)
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("SENTINEL_CHROMIUM", "/usr/bin/chromium"))
# The README's screenshots come from the demo (test_demo.py); these stay in the cache.
SHOTS = REPO / ".cache" / "screenshots"

if not CHROMIUM.exists() and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the browser tests: no chromium at {CHROMIUM} (make browser)")
if not CHROMIUM.exists():
    pytest.skip(
        f"no chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)",
        allow_module_level=True,
    )

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


def run_url(api: ScenarioApi, run_id: str, query: str = "") -> str:
    return f"{api.url}/runs/{quote(run_id, safe=':/')}" + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=["light", "dark"])
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=request.param
    )
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def serious_violations(page: Page) -> list[dict[str, Any]]:
    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in violations
    )


def test_runs_list_shows_status_in_words_and_is_accessible(
    page: Page, scenario_api: ScenarioApi
) -> None:
    page.goto(f"{scenario_api.url}/runs")
    rows = page.locator("tr.run-row")
    assert rows.count() == 16
    failed = page.locator("tr.run-row[data-status='failed']")
    assert failed.count() == 1
    # Status is text as well as colour; the anomaly count links to the run.
    assert "failed" in failed.locator(".status").inner_text()
    assert failed.locator("td").last.inner_text().strip() == "2"
    # The exact UTC time is on hover.
    title = rows.first.locator("time").get_attribute("title") or ""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} UTC", title)
    assert serious_violations(page) == [], describe(serious_violations(page))
    scheme = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    shot(page, f"runs-list-{'dark' if scheme else 'light'}.png")


def test_run_page_timeline_has_pods_oom_tick_and_markers(
    page: Page, scenario_api: ScenarioApi
) -> None:
    page.goto(run_url(scenario_api, OOM_RUN))
    pods = page.locator("g.lane-pod")
    assert pods.count() == 1
    assert "orders-api-tests-29501700-qdtmx" in (pods.first.text_content() or "")
    phases = pods.first.locator("rect.seg")
    classes = [phases.nth(i).get_attribute("class") or "" for i in range(phases.count())]
    assert any("ph-running" in c for c in classes) and any("ph-terminated" in c for c in classes)
    oom = page.locator("g.lane-pod g.tick-oom")
    assert oom.count() == 1
    assert "OOMKilled" in (oom.locator("title").text_content() or "")
    markers = page.locator("svg#timeline a.marker")
    assert markers.count() == 2  # oom_killed on the pod, job_backoff_limit on the run
    labels = [markers.nth(i).get_attribute("aria-label") or "" for i in range(2)]
    assert any("OOMKilled" in label for label in labels)
    assert any("backoff limit" in label for label in labels)
    # The marker's summary is on hover and it leads to the anomaly with its evidence.
    oom_marker = page.locator("g.lane-pod a.marker")
    href = oom_marker.get_attribute("href") or ""
    oom_marker.click()
    assert page.evaluate("location.hash") == href
    assert page.locator(f"li{href} details").count() == 1
    assert serious_violations(page) == [], describe(serious_violations(page))
    scheme = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    shot(page, f"run-page-{'dark' if scheme else 'light'}.png")


def test_stages_are_rows_of_the_timeline(page: Page, scenario_api: ScenarioApi) -> None:
    page.goto(run_url(scenario_api, STAGED_RUN))
    stages = page.locator("g.lane-stage")
    names = [stages.nth(i).get_attribute("data-name") for i in range(stages.count())]
    assert names == ["lint", "test"]
    assert all(
        "st-succeeded" in (s.get_attribute("class") or "") for s in stages.locator("rect.seg").all()
    )
    assert page.locator("g.lane-pod").count() == 2  # the two ARC runner pods


def test_compare_names_the_tests_that_changed(page: Page, scenario_api: ScenarioApi) -> None:
    page.goto(run_url(scenario_api, FLAKY_RUN, "tab=compare"))
    changed = page.locator("tr.changed-test")
    assert changed.count() == 1
    assert FLAKY_TEST in changed.inner_text()
    assert "flaky" in changed.inner_text()
    # The OOMKilled run lost every test after the kill: all 15 are named as missing.
    page.goto(run_url(scenario_api, OOM_RUN, "tab=compare"))
    missing = page.locator("tr.changed-test")
    assert missing.count() == 15
    assert "missing" in missing.first.inner_text()
    assert "orders-api-tests-29501700-qdtmx/pytest" in page.locator("main").inner_text()
    assert serious_violations(page) == [], describe(serious_violations(page))


def test_tests_tab_marks_the_flaky_test(page: Page, scenario_api: ScenarioApi) -> None:
    page.goto(run_url(scenario_api, FLAKY_RUN, "tab=tests"))
    row = page.locator(f"tr.test[data-key='{FLAKY_TEST}']")
    assert row.locator(".flag.flaky").count() == 1
    assert row.locator(".attempt").count() == 2  # failed, then passed on retry
    assert page.locator("tr.test").first.get_attribute("data-key") == FLAKY_TEST  # flaky first
    assert serious_violations(page) == [], describe(serious_violations(page))


def test_a_line_link_highlights_its_line(page: Page, scenario_api: ScenarioApi) -> None:
    page.goto(run_url(scenario_api, FLAKY_RUN, "tab=logs&level=all"))
    link = page.locator("li#L7 a.n")
    link.click()
    page.wait_for_url(re.compile(r"line=7#L7$"))
    target = page.locator("li#L7")
    assert page.evaluate("document.querySelector(':target').id") == "L7"
    assert "target" in (target.get_attribute("class") or "")
    outline = target.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"
    # A #L link to a line beyond the page: the script reloads the page around that line.
    page.goto(run_url(scenario_api, FLAKY_RUN, "tab=logs") + "#L9")
    page.wait_for_url(re.compile(r"line=9"))
    assert page.evaluate("document.querySelector(':target').id") == "L9"
    assert serious_violations(page) == [], describe(serious_violations(page))


def test_pages_work_without_javascript_and_in_another_time_zone(
    browser: Browser, scenario_api: ScenarioApi
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(run_url(scenario_api, OOM_RUN, "tz=Europe/Berlin"))
        assert page.locator("svg#timeline g.tick-oom").count() == 1
        assert "CET" in page.locator(".facts").inner_text()  # 07:00 UTC is 08:00 CET
        assert "08:00:00" in page.locator(".facts").inner_text()
        # Links keep the viewer's time zone.
        assert "tz=Europe%2FBerlin" in (page.locator("#tab-tests").get_attribute("href") or "")
        # The scenarios ran months ago: look back far enough.
        for path in ("/pipelines", "/pipelines/orders-api-tests", "/tests/flaky"):
            response = page.goto(f"{scenario_api.url}{path}?days=3650")
            assert response is not None and response.status == 200, path
        assert FLAKY_TEST in page.locator("table.flaky").inner_text()
        page.goto(f"{scenario_api.url}/pipelines/orders-api-tests?days=3650")
        assert page.locator("svg.chart").count() == 2  # failure rate, duration p50/p95
        assert FLAKY_TEST in page.locator("main").inner_text()  # among its flakiest tests
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
