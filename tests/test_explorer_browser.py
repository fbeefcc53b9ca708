"""End to end: the explorer served on 127.0.0.1, driven by Debian's Chromium through Playwright (headless).

Never `playwright install`: the browser is /usr/bin/chromium (scripts/test.sh installs Debian's package on CI).
"""

import os

import numpy as np
import pytest
import torch
from datasets import Dataset

from browser_helpers import chromium_page, free_port, wait_text
from builders import build_model

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture(scope="module")
def served():
    from cedar_hf.analysis.explorer import build_explorer, launch_explorer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 40
    x = rng.standard_normal((2 * n, 12)).astype(np.float32)
    x[:n, 0] += 3.0
    dataset = Dataset.from_dict({
        "embedding": x.tolist(), "text": [f"sentence number {i}" for i in range(2 * n)],
        "modality": ["image"] * n + ["text"] * n, "pair_id": list(range(n)) * 2, "id": [str(i) for i in range(2 * n)],
    })
    model = build_model("topk_sae", d_in=12, expansion_factor=4, k=3)
    model.concept_names = {"format": "cedar-hf-concept-names/1",
                           "names": [{"latent": 5, "name": "horse", "score": 0.9, "alternatives": [["stallion", 0.8]]}]}
    app = build_explorer(model, dataset, progress=False)
    port = free_port()
    launch_explorer(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    yield app.explorer, f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture()
def page(tmp_path):
    with chromium_page(tmp_path / "chromium-profile", 1400, 1100) as page:
        yield page


def _card(page) -> str:
    return page.inner_text("#concept-card")


def _wait_card(page, text: str):
    wait_text(page, "#concept-card", text)


def test_page_loads_plot_shows_and_selection_shows_examples(served, page, tmp_path):
    explorer, url = served
    page.goto(url, timeout=60000)
    # the page loads with the most energetic concept selected
    top = explorer.initial_concept()
    _wait_card(page, f"#{top} ")
    # the interactive map is there (plotly), one point per concept
    page.wait_for_selector("#concept-plot .js-plotly-plot .scatterlayer .point", timeout=30000)
    assert page.locator("#concept-plot .js-plotly-plot .scatterlayer .trace").first.locator(".point").count() == \
        explorer.data.n_latents
    # the static map (PNG) is one tab away
    page.get_by_role("tab", name="Static map (PNG)").click()
    image = page.wait_for_selector("#concept-map img", timeout=30000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image, timeout=30000)
    assert image.evaluate("img => img.naturalWidth") == explorer.render_map().shape[1]
    assert "Strongest bridge partners" in page.inner_text("body")

    # search a concept by name: its card and its top-activating examples appear
    page.fill("#concept-search textarea", "horse")
    page.keyboard.press("Enter")
    _wait_card(page, "horse")
    assert "stallion" in _card(page)
    best_row = int(explorer.data.top_rows[5][0])
    wait_text(page, "#concept-examples", f"sentence number {best_row}")

    # click a point on the map: that concept gets selected
    target = next(i for i in np.argsort(-explorer.data.energy) if i != 5 and i != top)
    # selecting "horse" redraws the map (a new <img>): wait for the image now on the page to have loaded, or its
    # natural size is 0 under load (a CI run clicked at x = inf)
    image = page.wait_for_selector("#concept-map img", timeout=30000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image, timeout=30000)
    box = image.bounding_box()
    natural_w, natural_h = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural_w > 0 and natural_h > 0 and box is not None
    px, py = explorer._pixels[target]
    page.mouse.click(box["x"] + px * box["width"] / natural_w, box["y"] + py * box["height"] / natural_h)
    _wait_card(page, f"#{target} ")
    row = int(explorer.data.top_rows[target][0])
    wait_text(page, "#concept-examples", f"sentence number {row}")
    # every selection is in the URL: a shareable link
    page.wait_for_function(f"() => window.location.search.includes('concept={target}')", timeout=30000)
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)


def _plot_point(page, concept: int) -> tuple[float, float]:
    """Page coordinates of a concept's point on the plotly map (plotly's own axis transforms)."""
    return page.evaluate("""(i) => {
        const gd = document.querySelector('#concept-plot .js-plotly-plot');
        const point = gd.calcdata[0][i], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.querySelector('.main-svg').getBoundingClientRect();
        return [box.left + xa._offset + xa.c2p(point.x), box.top + ya._offset + ya.c2p(point.y)];
    }""", concept)


def test_interactive_map_hover_click_and_shareable_url(served, page, tmp_path):
    explorer, url = served
    # a shared link opens on its concept
    page.goto(url + "?concept=5", timeout=60000)
    _wait_card(page, "#5 · horse")
    page.wait_for_selector("#concept-plot .js-plotly-plot .scatterlayer .point", timeout=30000)
    # the click handler is on as soon as the map is drawn (a click right after drawing was once lost)
    assert page.locator("#concept-plot .js-plotly-plot").get_attribute("data-cedar-bound") == "1"
    target = next(i for i in np.argsort(-explorer.data.energy) if i != 5)
    x, y = _plot_point(page, int(target))
    # hovering a point shows its name (plotly's hover label)
    page.mouse.move(x, y)
    page.wait_for_selector(".hoverlayer .hovertext", timeout=15000)
    assert f"#{target} " in page.locator(".hoverlayer").text_content()
    # clicking it selects that concept: card, examples and URL follow
    page.mouse.click(x, y)
    _wait_card(page, f"#{target} ")
    wait_text(page, "#concept-examples", f"sentence number {int(explorer.data.top_rows[target][0])}")
    page.wait_for_function(f"() => window.location.search.includes('concept={target}')", timeout=30000)
    page.screenshot(path=str(tmp_path / "explorer-plotly.png"), full_page=True)
    shots = os.environ.get("CEDAR_HF_SCREENSHOTS")
    if shots:  # for a person to look at
        page.screenshot(path=os.path.join(shots, "explorer-plotly.png"), full_page=True)
