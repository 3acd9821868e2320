"""The attention viewer in headless Chromium with the network off: the file that
`keras-attn attend --html` writes, and the page `keras-attn serve` serves at /explore/NAME.

Each test checks what a person sees, not only the page's state: the screenshot is not blank,
and after hovering "it" the canvas holds ink only where the lines of "it" start. Skipped, saying
why, only where Chromium is absent (.ci/run installs it)."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from keras_attn.cli.main import main
from tests.browser.chromium import (
    MISSING,
    binaries,
    console_errors,
    headless_chromium,
    hover_token,
    requested_urls,
    save_screenshot,
    screenshot_of_a_token,
    wait_drawn,
)
from tests.serving_cases import NAME, export_tiny_classifier, served

pytestmark = pytest.mark.skipif(binaries() is None, reason=MISSING)

TEXT = "the dog loved the toy it was very excited"

# Where the canvas has ink in its first pixel column: the rows its lines start from.
INK_ROWS = """
const canvas = document.getElementById('lines');
const image = canvas.getContext('2d').getImageData(1, 0, 1, canvas.height).data;
const rows = [];
for (let y = 0; y < canvas.height; y++) if (image[4 * y + 3] > 0) rows.push(y);
return {rows: rows, height: canvas.height, tokens: document.querySelectorAll('#queries li').length};
"""


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    return export_tiny_classifier(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def tokens(model_root):
    """The text as the export's tokenizer splits it (its 50 words: some are [UNK])."""
    from export.artifact.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_root / "1" / "tokenizer.json")
    return tokenizer.tokens(tokenizer.encode_batch([TEXT], 16)[0])


@pytest.fixture(scope="module")
def html_file(model_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "attention.html"
    assert main(["attend", str(model_root / "1"), TEXT, "--html", str(path), "--out",
                 str(path.parent / "png")]) == 0
    return path


@pytest.fixture(scope="module")
def driver():
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def server(model_root):
    yield from served(model_root)


def open_file(driver, path):
    requested_urls(driver)  # forget what earlier tests asked for
    driver.get(path.as_uri())
    wait_drawn(driver)


def draws(driver) -> int:
    return int(driver.execute_script("return document.body.dataset.draws"))


def assert_not_blank(driver, path):
    image = matplotlib.image.imread(save_screenshot(driver, path))[..., :3]
    ink = (image < 0.9).any(axis=-1).mean()  # share of pixels that are not (near) white
    assert image.std() > 0.05 and ink > 0.02, f"a blank page: {ink:.1%} ink"


def test_the_file_renders_offline_from_itself_alone(driver, html_file, tokens, tmp_path):
    open_file(driver, html_file)
    assert_not_blank(driver, tmp_path / "viewer.png")
    assert requested_urls(driver) == [html_file.as_uri()]
    assert console_errors(driver) == []
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('#queries li'), li => li.textContent)")
    assert shown == tokens and "[UNK]" in tokens  # as the tokenizer split it; no padding row


def test_hovering_it_leaves_only_its_lines(driver, html_file, tokens):
    open_file(driver, html_file)
    every = driver.execute_script(INK_ROWS)
    it = tokens.index("it")
    hover_token(driver, "queries", it)
    lines = driver.execute_script("return window.attentionViewer.drawnLines()")
    assert lines and {line[1] for line in lines} == {it}
    weights = np.asarray(driver.execute_script(
        "const s = window.attentionViewer.state; return s.doc.attentions[s.block]"))
    heads = driver.execute_script("return window.attentionViewer.state.heads")
    expected = {(h, it, j) for h in heads for j in range(weights.shape[-1])
                if round(weights[h, it, j] * 50) >= 1}
    assert {tuple(line) for line in lines} == expected
    ink = driver.execute_script(INK_ROWS)
    row = ink["height"] / ink["tokens"]
    assert ink["rows"] and all(abs(y + 0.5 - (it + 0.5) * row) <= 2 for y in ink["rows"]), ink
    assert len(every["rows"]) > 3 * len(ink["rows"])  # before hovering, every token had lines
    hover_token(driver, "keys", 1)  # onto a key: only the lines into it
    assert {line[2] for line in driver.execute_script(
        "return window.attentionViewer.drawnLines()")} == {1}


def test_the_screenshot_of_it_shows_its_lines(driver, html_file, tmp_path):
    """The harness that takes docs/viewer.png: head 1 of block 0 opened, "it" hovered."""
    path = screenshot_of_a_token(driver, html_file, "it", tmp_path / "it.png", 0, 1)
    image = matplotlib.image.imread(path)[..., :3]
    assert image.std() > 0.05
    assert driver.execute_script("const s = window.attentionViewer.state; "
                                 "return [s.block, s.heads, s.hover.index]")[:2] == [0, [1]]


def test_clicking_a_model_view_cell_opens_that_head(driver, html_file):
    from selenium.webdriver.common.by import By

    open_file(driver, html_file)
    before = draws(driver)
    driver.find_element(By.CSS_SELECTOR, '#grid .cell[data-block="0"][data-head="1"]').click()
    wait_drawn(driver, before + 1)
    state = driver.execute_script("const s = window.attentionViewer.state; "
                                  "return [s.block, s.heads]")
    assert state == [0, [1]]
    boxes = driver.execute_script(
        "return Array.from(document.querySelectorAll('#heads input'), b => b.checked)")
    assert boxes == [False, True]
    assert {line[0] for line in driver.execute_script(
        "return window.attentionViewer.drawnLines()")} == {1}


def test_the_served_page_attends_what_is_typed(driver, server, model_root, tokens):
    from selenium.webdriver.common.by import By

    from export.artifact.tokenizer import load_tokenizer
    from export.runtime.attention import load_attention

    requested_urls(driver)
    driver.get(f"{server.url}/explore/{NAME}")
    box = driver.find_element(By.ID, "text")
    box.send_keys(TEXT)
    driver.find_element(By.CSS_SELECTOR, "#query button").click()
    wait_drawn(driver)
    shown = driver.execute_script("return window.attentionViewer.state.doc")
    tokenizer = load_tokenizer(model_root / "1" / "tokenizer.json")
    ids = tokenizer.encode_batch([TEXT], 16)
    assert shown["tokens"] == tokens
    expected = load_attention(model_root / "1").maps(ids[:, :len(shown["tokens"])])
    for block, weights in enumerate(expected):  # what onnxruntime computes, to 4 decimals
        np.testing.assert_allclose(shown["attentions"][block], weights[0], atol=1e-4)
    assert_not_blank(driver, model_root.parent / "served.png")
    # A bad request gets the server's 400 message, on the page
    box.clear()
    box.send_keys("   ")
    driver.find_element(By.CSS_SELECTOR, "#query button").click()
    from selenium.webdriver.support.ui import WebDriverWait

    error = WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.ID, "error").text or None)
    assert error.startswith("HTTP 400: Every text needs at least one token"), error
    assert set(requested_urls(driver)) == {f"{server.url}/explore/{NAME}",
                                           f"{server.url}/v2/models/{NAME}/attention"}
