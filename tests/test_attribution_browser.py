"""The explorer's "Explain this match" panel in Debian's Chromium (Playwright, headless, offline): two rows in,
their similarity split over the concepts out, adding up to the cosine computed here."""

import os

import numpy as np
import pytest
import torch
from datasets import Dataset
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from builders import build_model
from browser_helpers import chromium_page, free_port, wait_text

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_explorer_explains_a_match_in_the_page(tmp_path):
    from cedar_hf.analysis.explorer import build_explorer, launch_explorer
    from cedar_hf.interpret.attribution import match_explainer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 12)).astype(np.float32)
    data = Dataset.from_dict({"embedding": x.tolist(), "text": [f"sentence {i}" for i in range(40)]})
    model = build_model("cedar", d_in=12, k=3, init_std=0.3)
    model.set_mean(torch.tensor(x.mean(0)))
    app = build_explorer(model, data, progress=False, backbone=None, explain_match=match_explainer(model, data, k=3),
                         umap_neighbors=5)
    port = free_port()
    launch_explorer(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        with chromium_page(tmp_path / "chromium-profile", 1400, 1600) as page:
            page.goto(f"http://127.0.0.1:{port}/", timeout=60000)
            page.get_by_text("Explain this match").click()
            # leave the field as a user does (Tab): Gradio commits a Number's value on change; a click right after
            # fill() once sent the old value (row 1) under load. Typed before the page's load events have run,
            # the value can be reset to its default (a CI pass-2 run): type again until it holds.
            for attempt in range(5):
                page.locator("#match-row-b input").fill("7")
                page.locator("#match-row-b input").press("Tab")
                try:
                    page.wait_for_function("() => document.querySelector('#match-row-b input').value === '7'",
                                           timeout=6000)
                    break
                except PlaywrightTimeoutError:
                    assert attempt < 4, "row B never kept the typed value 7"
            page.click("#match-explain")
            wait_text(page, "#match-explanation", "'7: sentence 7'")
            wait_text(page, "#match-explanation", "sum of the terms")
            text = page.inner_text("#match-explanation")
    finally:
        app.close()
    a, c = torch.tensor(x[0]).double(), torch.tensor(x[7]).double()
    cosine = float(torch.nn.functional.cosine_similarity(a, c, dim=0))
    assert "'0: sentence 0' · '7: sentence 7'" in text
    assert f"cosine {cosine:+.4f}" in text and "orthogonal: exact over axes" in text
