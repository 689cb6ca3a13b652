"""The annotator's path in a real browser, against the session's real Label Studio.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which ``make test`` installs)
logs in through the login form as a new user, opens the review project's label stream ("Label
All Tasks"), and checks what an annotator sees on the first task of the queue: the evidence
highlights of the prediction and the suggested class preselected. The highlights are the model's
evidence, read-only: a selected one is not deleted (Backspace, Delete), and a text selection
with an evidence label active draws no region. It then answers through the page (another class,
a comment, Submit) and ``pull`` must find that answer under that user, with the prediction's
regions unchanged.
Without the browser or selenium the test is skipped, except under CI, where that is a failure.
On a failure the page's screenshot and HTML are saved in the test's tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from relabeler.plugin.client import StudioClient
from relabeler.plugin.labeling import DROP, NOT_SURE, SUPPORTS_SUGGESTION
from relabeler.plugin.pull import CORRECTIONS, pull
from relabeler.plugin.push import FLAGGED, push, read_manifest
from tests.plugin.conftest import signup
from tests.plugin.synthetic import CLASSES, make_run

# the session's first test pays a cold `label-studio init` (up to 900 s) and a start (180 s)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ANNOTATOR = "dana@relabeler.local"
PASSWORD = "annotate-Pass-123"
COMMENT = "the highlighted word fits the given label"
# seconds for one page to load and render on a busy 2-core machine (about 3 s when idle)
WAIT = 90
CHROMIUM_ENV, CHROMEDRIVER_ENV = "RELABELER_CHROMIUM", "RELABELER_CHROMEDRIVER"

# each region of the text: its label, offsets, the text it covers and its background colour
_READ_HIGHLIGHTS = """
const regions = {};
for (const span of document.querySelectorAll('.lsf-richtext .htx-highlight[data-label]')) {
  const key = span.dataset.label;  // "<index>:<label>"; a region split by others has several
  regions[key] = regions[key] || {label: key.slice(key.indexOf(':') + 1),
                                  start: Number(span.dataset.start),
                                  end: Number(span.dataset.end), text: '',
                                  background: getComputedStyle(span).backgroundColor};
  regions[key].text += span.textContent;
}
return Object.values(regions);
"""

# selects the first occurrence of a word outside every highlight, as a mouse drag would
_SELECT_WORD = """
const [word] = arguments;
const root = [...document.querySelectorAll('.lsf-richtext')]
  .find(e => e.querySelector('.htx-highlight[data-label]'));
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
for (let node; (node = walker.nextNode());) {
  const at = node.data.indexOf(word);
  if (at >= 0 && !node.parentElement.closest('.htx-highlight')) {
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + word.length);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    node.parentElement.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));
    node.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    return true;
  }
}
return false;
"""


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _executable(env: str, name: str) -> str | None:
    path = os.environ.get(env) or shutil.which(name)
    return path if path and os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven through chromedriver (selenium), closed after the module."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed: pip install -e '.[dev]'")
    chromium = _executable(CHROMIUM_ENV, "chromium")
    driver_path = _executable(CHROMEDRIVER_ENV, "chromedriver")
    if chromium is None or driver_path is None:
        _missing(f"headless Chromium is not installed (chromium: {chromium}, chromedriver: "
                 f"{driver_path}): run `make browser` (apt-get install chromium "
                 f"chromium-driver), or set {CHROMIUM_ENV} and {CHROMEDRIVER_ENV}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # no sandbox: root and most containers cannot start Chromium's; the page is our own server
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    # both paths given, so selenium never runs Selenium Manager (no download, no network)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def _saved_on_failure(driver, folder: Path) -> Iterator[None]:
    """Keep the page (screenshot and HTML) when the block fails; its note names the files."""
    try:
        yield
    except BaseException as exc:
        shot, html = folder / "browser-failure.png", folder / "browser-failure.html"
        try:
            driver.save_screenshot(str(shot))
            html.write_text(driver.page_source)
            exc.add_note(f"the page at failure ({driver.current_url}): {shot}, {html}")
        except Exception as saving:  # a dead browser must not hide the failure itself
            exc.add_note(f"the page could not be saved: {saving}")
        raise


def _wait(driver, condition, message: str, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition, message)


def _log_in(driver, url: str, email: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/user/login/")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(driver, lambda d: "/user/login" not in d.current_url,
          f"the login form did not accept {email}")


def _radio(driver, value: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'.lsf-choices input[type=radio][name="{value}"]')


def _answers(http: httpx.Client, task_id: int) -> list[dict]:
    response = http.get(f"/api/tasks/{task_id}/annotations/")
    response.raise_for_status()
    return response.json()


def test_annotator_answers_the_first_task_through_the_page(studio, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    signup(studio.url, ANNOTATOR, PASSWORD)
    admin = StudioClient(studio.url, studio.token, retries=2, backoff=0.2)
    store = make_run(str(tmp_path / "run"), n_train=60, n_acquire=0)
    result = push(store, admin, project_title=f"browser {time.time_ns() % 10**9}", budget=10)
    manifest = read_manifest(store)
    queue = manifest[manifest["project_id"] == result.project_id].sort_values("priority")
    first = queue.iloc[0]
    assert (first["priority"], first["source"]) == (1000, FLAGGED)
    task_id = int(first["task_id"])
    with studio.http() as http:
        task = http.get(f"/api/tasks/{task_id}/").json()
    text, given = task["data"]["text"], task["data"]["given_label"]
    prediction = task["predictions"][0]["result"]
    suggested = next(r["value"]["choices"][0] for r in prediction if r["type"] == "choices")
    regions = sorted((r["value"]["labels"][0], r["value"]["start"], r["value"]["end"])
                     for r in prediction if r["type"] == "labels")
    # the synthetic run flips this sample's label and suggests the true one: they differ
    assert regions and suggested != given and {suggested, given} == set(CLASSES)

    with _saved_on_failure(browser, tmp_path):
        _log_in(browser, studio.url, ANNOTATOR, PASSWORD)
        browser.get(f"{studio.url}/projects/{result.project_id}/data?labeling=1")
        _wait(browser, lambda d: len(d.find_elements(
            By.CSS_SELECTOR, ".lsf-richtext .htx-highlight[data-label]")) >= len(regions),
            "the task's evidence highlights never rendered")

        # the first task of the queue, its highlights where the prediction puts them
        labeled = [e for e in browser.find_elements(By.CSS_SELECTOR, ".lsf-richtext")
                   if e.find_elements(By.CSS_SELECTOR, ".htx-highlight[data-label]")]
        assert len(labeled) == 1 and labeled[0].text == text
        shown = browser.execute_script(_READ_HIGHLIGHTS)
        assert sorted((h["label"], h["start"], h["end"]) for h in shown) == regions
        assert all(h["text"] == text[h["start"]:h["end"]] for h in shown)
        assert all(h["background"] not in ("", "transparent", "rgba(0, 0, 0, 0)")
                   for h in shown)
        # the suggestion preselected, nothing else
        choices = [*CLASSES, NOT_SURE, DROP]
        assert {c: _radio(browser, c).is_selected() for c in choices} == \
            {c: c == suggested for c in choices}

        # the highlights are read-only: a selected one survives Backspace and Delete, and
        # selecting a word with an evidence label active draws nothing
        body = browser.find_element(By.TAG_NAME, "body")
        browser.find_element(By.CSS_SELECTOR, ".lsf-richtext .htx-highlight[data-label]").click()
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                 ".lsf-richtext .htx-highlight.__active"),
              "clicking a highlight did not select its region")
        body.send_keys(Keys.BACKSPACE)
        body.send_keys(Keys.DELETE)
        body.send_keys(Keys.ESCAPE)
        next(e for e in browser.find_elements(By.CSS_SELECTOR, ".lsf-label")
             if SUPPORTS_SUGGESTION in e.text).click()
        covered = {i for _, start, end in regions for i in range(start, end)}
        free = next(w for w in sorted(set(text.split())) if len(w) > 2 and not any(
            covered & set(range(m.start(), m.end())) for m in re.finditer(re.escape(w), text)))
        assert browser.execute_script(_SELECT_WORD, free)
        time.sleep(1)  # what the page would do with the selection, it does in this time
        body.send_keys(Keys.ESCAPE)
        shown = browser.execute_script(_READ_HIGHLIGHTS)
        assert sorted((h["label"], h["start"], h["end"]) for h in shown) == regions

        # the annotator disagrees with the suggestion: keeps the given label, says why
        browser.find_element(By.XPATH, f'//div[contains(@class, "lsf-choices")]//input[@type='
                                       f'"radio" and @name="{given}"]/ancestor::label[1]').click()
        _wait(browser, lambda d: _radio(d, given).is_selected(), f"{given!r} was not selected")
        assert not _radio(browser, suggested).is_selected()
        comment = browser.find_element(By.CSS_SELECTOR, "textarea[name=comment]")
        comment.send_keys(COMMENT)
        comment.send_keys(Keys.SHIFT, Keys.ENTER)  # adds it; the config allows one comment
        _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "textarea[name=comment]"),
              "the comment was not added")
        browser.find_element(By.CSS_SELECTOR, "[data-testid=bottombar-submit-button]").click()
        with studio.http() as http:
            _wait(browser, lambda _: _answers(http, task_id),
                  f"Submit never reached task {task_id}")
            answers = _answers(http, task_id)

    assert len(answers) == 1 and not answers[0]["was_cancelled"]
    # the answer holds the prediction's regions as they were, read-only
    assert sorted((r["value"]["labels"][0], r["value"]["start"], r["value"]["end"],
                   r.get("readonly"), r.get("origin")) for r in answers[0]["result"]
                  if r["type"] == "labels") == \
        sorted((*region, True, "prediction") for region in regions)
    pulled = pull(store, admin)
    assert (pulled.corrections, pulled.unmapped) == (1, 0)
    rows = {r["id"]: r for r in store.read_table(CORRECTIONS).to_pylist()}
    assert list(rows) == [first["id"]]
    row = rows[first["id"]]
    assert (row["action"], row["old_label"], row["new_label"], row["source"]) == \
        ("keep", given, given, FLAGGED)
    assert (row["annotators"], row["comments"], row["task_id"], row["n_annotations"]) == \
        ([ANNOTATOR], [f"{ANNOTATOR}: {COMMENT}"], task_id, 1)
