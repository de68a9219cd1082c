"""The training report as a person sees it: headless Chromium opens the HTML page
from the work area, every chart decodes at a readable size, the page asks for
nothing beyond itself, and a full-page screenshot is taken."""

from __future__ import annotations

import pytest

from pipespec.tasklib import report
from tests.tasklib.test_report import CLASSES, ctx, png_size, register_trained
from tests.tasklib.test_rollout import full_rollout, mlflow_registry, scores_for  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.airflow]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHARTS = {"metrics", "confusion-challenger", "confusion-champion", "training-curves", "drift"}


def test_report_opens_in_chromium_with_every_chart_drawn(mlflow_registry, tmp_path):
    from playwright.sync_api import sync_playwright

    v1 = register_trained("shop")
    full_rollout("shop", scores_for(v1, 0.8, None), run_id="r1")
    v2 = register_trained("shop")
    scores = {**scores_for(v2, 0.86, 0.8, v1), "classes": {"challenger": CLASSES, "champion": CLASSES}}
    full_rollout("shop", scores, run_id="r2")
    written = report.write(ctx(), pipeline="shop", metric="f1_macro", scores=scores)

    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(written["report_uri"])
            page.wait_for_load_state("load")
            drawn = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight,"
                       " i.getBoundingClientRect().width])")
            title = page.title()
            headings = page.locator("h2").all_inner_texts()
            screenshot = page.screenshot(full_page=True, path=str(tmp_path / "report.png"))
        finally:
            browser.close()

    assert title == "Training report: shop"
    assert headings == ["Decision", "Champion vs challenger", "Per class", "Training", "Data"]
    assert {name for name, *_ in drawn} == CHARTS
    for name, complete, width, height, shown_width in drawn:
        assert complete and width > 300 and height > 150, name  # decoded by the browser, not a broken icon
        assert shown_width > 200, name  # and laid out at a readable size
    assert all(url == written["report_uri"] or url.startswith("data:image/png") for url in requested)
    width, height = png_size(screenshot)
    assert width == 1100 and height > 2000  # the whole page: tables and five charts
