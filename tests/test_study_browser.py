"""End to end: a small study served on 127.0.0.1 and filled by a participant in Debian's Chromium (Playwright,
headless, offline), then analysed: the analysis must give back the answers the participant was told to give.

Never `playwright install`: the browser is /usr/bin/chromium (scripts/test.sh installs Debian's package on CI).
"""

import json
import os
import re

import pytest

from browser_helpers import chromium_page, free_port, wait_text
from test_study import _known_study

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = [pytest.mark.browser]

@pytest.fixture()
def served(tmp_path):
    from cedar_hf.study.serve import serve_study

    out, tasks, key = _known_study(tmp_path, n_images=2)  # 2 tasks per study: 6 pages
    port = free_port()
    app = serve_study(out / "public", host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    yield out, tasks, key, f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture()
def page(tmp_path):
    with chromium_page(tmp_path / "chromium-profile", 1200, 1400) as page:
        yield page


def _start(page, url, participant):
    page.goto(url, timeout=60000)
    page.wait_for_selector("#start", timeout=60000)
    box = page.locator("#participant textarea, #participant input").first
    box.fill(participant)
    page.wait_for_function("(v) => [...document.querySelectorAll('#participant textarea, #participant input')]"
                           ".some(e => e.value === v)", arg=participant, timeout=30000)
    page.click("#start")


def _label(page, container: str, text: str):
    return page.locator(f"{container} label").filter(has_text=re.compile(f"^\\s*{re.escape(text)}\\s*$"))


def _answer(page, task, entry):
    """Answer as a CEDAR fan would (the key tells the test, never the page): strong preference for CEDAR's list,
    exactly CEDAR's concepts selected, dense and CEDAR captions rated 3, the no-rotation caption 1."""
    if task["study"] == 1:
        wait_text(page, "#list-a", task["options"][0][0])
        wait_text(page, "#list-b", task["options"][1][0])
        _label(page, "#choice", "Strongly prefer A" if entry["options"][0] == ["cedar"] else "Strongly prefer B").click()
    elif task["study"] == 2:
        for option, methods in zip(task["options"], entry["options"]):
            if "cedar" in methods:
                _label(page, "#selected", option).click()
    else:
        for i, (caption, methods) in enumerate(zip(task["options"], entry["options"])):
            wait_text(page, f"#rating-{i}", caption)
            rating = "3 – Describes the image" if methods[0] in ("dense", "cedar") else "1 – Does not describe the image"
            _label(page, f"#rating-{i}", rating).click()


def test_a_participant_fills_the_study_and_the_analysis_gives_back_the_answers(served, page, tmp_path):
    from cedar_hf.study import analyze_study

    out, tasks, key, url = served
    answers = out / "answers"
    _start(page, url, "bad id!")
    wait_text(page, "#intro-status", "participant id 'bad id!'")  # refused, with the value named
    _start(page, url, "p01")
    wait_text(page, "#progress", f"Task 1 of {len(tasks)}")
    page.click("#next")  # nothing chosen yet: refused, nothing stored
    wait_text(page, "#status", "Please answer")
    assert not answers.exists() or not list(answers.iterdir())
    for i, task in enumerate(tasks):
        if i == 3:  # the browser "crashes": a fresh page with the same id resumes at the first open task
            _start(page, url, "p01")
        wait_text(page, "#progress", f"Task {i + 1} of {len(tasks)}")
        image = page.wait_for_selector("#task-image img", timeout=30000)
        assert f"{task['task']}.png" in image.get_attribute("src")  # the file name is the task id, nothing more
        _answer(page, task, key[task["task"]])
        page.click("#next")
        # the next page is there (or the thank-you page, which hides the task column and its progress line)
        page.wait_for_function("(n) => { const p = document.querySelector('#progress');"
                               " return !p || !p.innerText.includes('Task ' + n + ' of'); }", arg=i + 1, timeout=30000)
        stored = json.loads((answers / f"p01__{task['task']}.json").read_text())  # stored as soon as it was given
        assert stored["study"] == task["study"]
    wait_text(page, "#done", "Thank you")
    # the key sits beside public/, outside what the server may hand out
    for path in (out / "key.json", out / "public" / "tasks.json"):
        response = page.request.get(f"{url}gradio_api/file={path}")
        assert (response.status == 200) == (path.name == "tasks.json"), (path, response.status)
    page.screenshot(path=str(tmp_path / "study-done.png"), full_page=True)

    result = analyze_study(out)
    assert result["study1"]["cedar vs msae"]["counts"] == [2, 0, 0, 0, 0]
    assert result["study2"]["cedar vs msae"]["distribution"] == {"cedar": [0, 0, 0, 2], "msae": [2, 0, 0, 0]}
    assert result["study3"]["distribution"] == {"cedar": [0, 0, 2], "dense": [0, 0, 2], "no-rotation": [2, 0, 0]}
    assert (out / "analysis" / "figure5_cedar-vs-msae.png").exists()
