"""A reviewer's session in headless Chromium against a real api-server: from Airflow's login to the export.

Screenshots of the queue, the review page and the statistics (at 1440 and 900 px) land in
``test-artifacts/screenshots/``; with
``DAGNOSTICS_DOCS_SCREENSHOTS=1`` they also replace the ones in ``docs/images/`` that ``docs/review-ui.md`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.browser import chromium_page, screenshot
from tests.ui.conftest import REVIEWER, UI_PREFIX
from tests.ui.seed import CORPUS_LOGS, XSS_LINE, store_failure

pytest_plugins = ["tests.airflow_fixtures"]
pytestmark = pytest.mark.slow

CORRECTED_MESSAGE = "HttpResponseError: the managed identity lacks 'Storage Blob Data Contributor' on raw/crm"


@pytest.fixture(scope="module")
def browser_page(ui_server) -> Iterator:
    with chromium_page() as page:
        yield page


def _screenshot(page, name: str, *, publish: bool = True) -> None:
    screenshot(page, name, f"review-ui-{name}.png" if publish else None)


def test_review_an_item_from_the_airflow_navigation(ui_server, browser_page):
    page = browser_page
    failure_id = ui_server.seeded.failure_ids[1]  # the Azure blob permission failure
    page.goto(f"{ui_server.base_url}/auth/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ui_server.passwords["admin"])
    page.click("[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)

    page.get_by_role("link", name="DAGnostics Feedback").click()
    page.wait_for_url("**/plugin/dagnostics-feedback")
    frame = page.frame_locator("iframe[title='DAGnostics Feedback']")
    frame.locator("#queue").wait_for()
    _screenshot(page, "queue-1440")

    frame.locator(f'#queue tr[data-id="{failure_id}"] td.task a').first.click()
    form = frame.locator("#correction")
    form.wait_for()
    assert frame.locator("#log li.ai").count() >= 1  # the AI's error lines are highlighted in the log
    plain_line = frame.locator("#log li:not(.ai):not(.gap)").first
    plain_line.click()  # clicking a log line adds it to the correction's error lines...
    assert plain_line.locator("code").inner_text().strip() in frame.locator("#error_lines").input_value()
    assert "sel" in plain_line.get_attribute("class")
    assert frame.locator('[data-field="error_lines"] .edited').is_visible()
    plain_line.click()  # ...and clicking it again takes it out
    assert "sel" not in plain_line.get_attribute("class")
    frame.locator("#category").select_option("configuration_error")
    frame.locator("#error_message").fill(CORRECTED_MESSAGE)
    frame.locator("#error_message").press("Escape")  # leave the text field so single keys are shortcuts
    page.keyboard.press("4")
    assert frame.locator("#rating-4").is_checked()
    page.keyboard.press("?")
    assert frame.locator("#help").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")

    saved = frame.locator("#saved")
    saved.wait_for()
    assert "2 fields corrected" in saved.inner_text()
    inserted = frame.locator("#saved ins").all_inner_texts()
    assert "configuration_error" in inserted
    assert any("managed identity lacks" in text for text in inserted)  # the word-level diff of the message
    _screenshot(page, "review-1440")

    frame.get_by_role("link", name="Statistics").click()
    reviewed = frame.locator('tr[data-category="configuration_error"] [data-count="reviewer"]')
    reviewed.wait_for()
    assert int(reviewed.inner_text()) >= 1
    _screenshot(page, "statistics-1440")

    export = page.request.get(f"{ui_server.base_url}/pluginsv2/dagnostics/api/feedback/export?format=jsonl")
    assert export.ok
    rows = [json.loads(line) for line in export.text().splitlines()]
    (mine,) = [r for r in rows if r["failed_task_id"] == failure_id and r["reviewer"] == "admin"]
    assert (mine["rating"], mine["correction"]["category"], mine["correction"]["error_message"]) == (
        4,
        "configuration_error",
        CORRECTED_MESSAGE,
    )
    assert mine["ai"]["category"] == "permission_error"  # the AI's suggestion is kept next to the correction


def test_a_script_tag_in_a_log_renders_as_text(ui_server, browser_page):
    page = browser_page
    page.goto(f"{ui_server.base_url}/pluginsv2/dagnostics/review/{ui_server.seeded.xss_id}")
    log = page.locator("#log")
    log.wait_for()
    assert XSS_LINE in log.inner_text()
    assert page.evaluate("document.title") != "pwned"
    assert page.locator("#log script, #log img").count() == 0


def _logged_in_page(browser_page, ui_server, user: str, width: int):
    """A new browser context (its own cookies) of ``width`` px, logged in to Airflow as ``user``."""
    context = browser_page.context.browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{ui_server.base_url}/auth/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", ui_server.passwords[user])
    page.click("[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)
    return page


def test_the_reviewer_role_alone_gives_a_working_airflow_home(ui_server, browser_page):
    """Issue 14 item 9: a user with only "DAGnostics Reviewer" got an Airflow home full of 403 boxes."""
    reviewer = REVIEWER[0]
    page = _logged_in_page(browser_page, ui_server, reviewer, 1440)
    refused: list[str] = []
    page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status in (401, 403) else None)
    try:
        page.goto(f"{ui_server.base_url}/")
        page.get_by_role("link", name="DAGnostics Feedback").wait_for()
        page.wait_for_load_state("networkidle")
        page.goto(f"{ui_server.base_url}/dags")
        page.wait_for_load_state("networkidle")
        assert refused == []
        page.get_by_role("link", name="DAGnostics Feedback").click()
        frame = page.frame_locator("iframe[title='DAGnostics Feedback']")
        frame.locator("#queue").wait_for()
        assert frame.locator(".badge.ok", has_text="Reviewer").count() == 1
    finally:
        page.context.close()


def _no_sideways_scroll(frame) -> bool:
    return frame.locator("html").evaluate("e => e.scrollWidth <= e.clientWidth + 1")


def _right_edge(locator) -> float:
    box = locator.bounding_box()
    assert box is not None, "not rendered"
    return box["x"] + box["width"]


@pytest.mark.parametrize("width", [1440, 900])
def test_pages_fit_the_window(ui_server, browser_page, width):
    """Issue 14 item 10, inside Airflow's navigation as users see it: the queue at 900 px scrolled sideways and hid
    confidence and rating, the "apply to group" label wrapped into three columns, a chart's axis label was clipped.
    Screenshots of the queue, the review page after a submit and the statistics at both widths (into docs/images
    with DAGNOSTICS_DOCS_SCREENSHOTS=1)."""
    page = _logged_in_page(browser_page, ui_server, "admin", width)
    try:
        page.goto(f"{ui_server.base_url}/plugin/dagnostics-feedback")
        frame = page.frame_locator("iframe[title='DAGnostics Feedback']")
        frame.locator("#queue").wait_for()
        _screenshot(page, f"queue-{width}", publish=width == 900)
        assert _no_sideways_scroll(frame)
        header = frame.locator("#queue thead th")
        for name in ("Confidence", "Rating"):
            assert _right_edge(header.filter(has_text=name).first) <= width, f"{name} column is off screen"

        # Two new failures with one fingerprint, so the review page offers "apply to the group".
        log_text = (CORPUS_LOGS / "af3_json_k8s_pod_oomkilled.log").read_text()
        for index in (1, 2):
            failure_id = store_failure(ui_server.store_url, f"etl_layout_{width}", log_text, -1000 - index, llm=True)
        frame.locator("body").evaluate(f"() => location.assign('{UI_PREFIX}/review/{failure_id}')")
        frame.locator("#correction").wait_for()
        label = frame.locator("label.group-apply")
        # A flex label made each text run and the <strong> count a column of its own: one text block only.
        assert label.evaluate("e => [...e.children].map(c => c.tagName)") == ["INPUT", "SPAN"]
        assert label.bounding_box()["height"] < 3 * 24, "the apply-to-group label wraps over many lines"
        frame.locator("label[for=rating-3]").click()
        frame.locator("#submit").click()
        frame.locator("#saved").wait_for()
        assert _no_sideways_scroll(frame)
        _screenshot(page, f"review-{width}", publish=width == 900)

        frame.get_by_role("link", name="Statistics").click()
        frame.locator("svg").first.wait_for()
        _screenshot(page, f"statistics-{width}", publish=width == 900)
        assert _no_sideways_scroll(frame)
        clipped = frame.locator("body").evaluate(
            """() => [...document.querySelectorAll('svg text')].filter(t => {
                   const svg = t.ownerSVGElement.getBoundingClientRect(), box = t.getBoundingClientRect();
                   return box.left < svg.left - 1 || box.right > svg.right + 1 || box.top < svg.top - 1
                          || box.bottom > svg.bottom + 1;
               }).map(t => t.textContent)"""
        )
        assert clipped == [], f"axis labels outside their chart: {clipped}"
    finally:
        page.context.close()
