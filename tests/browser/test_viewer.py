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
from tests.serving_cases import NAME, served

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
def model_root(tiny_model_root):
    return tiny_model_root


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
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    requested_urls(driver)  # forget what earlier tests asked for
    driver.get(path.as_uri())
    wait_drawn(driver)
    # The pointer stays where the last test left it: park it on the title, away from tokens.
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
    driver.execute_script("window.attentionViewer.state.hover = null; "
                          "window.attentionViewer.draw()")


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


def test_the_screenshot_of_it_shows_its_lines(driver, html_file, tokens, tmp_path):
    """The harness that takes docs/viewer.png: head 1 of block 0 opened, "it" hovered, and
    the picture holds its lines only."""
    path = screenshot_of_a_token(driver, html_file, "it", tmp_path / "it.png", 0, 1)
    image = matplotlib.image.imread(path)[..., :3]
    assert image.std() > 0.05
    assert driver.execute_script("const s = window.attentionViewer.state; "
                                 "return [s.block, s.heads, s.hover.side, s.hover.index]") == [
        0, [1], "queries", tokens.index("it")]
    ink = driver.execute_script(INK_ROWS)
    row = ink["height"] / ink["tokens"]
    it = tokens.index("it")
    assert ink["rows"] and all(abs(y + 0.5 - (it + 0.5) * row) <= 2 for y in ink["rows"]), ink


def test_head_boxes_and_the_block_select_choose_what_is_drawn(driver, html_file):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_file(driver, html_file)
    assert {line[0] for line in driver.execute_script(
        "return window.attentionViewer.drawnLines()")} == {0, 1}
    before = draws(driver)
    driver.find_element(By.CSS_SELECTOR, '#heads input[data-head="0"]').click()
    wait_drawn(driver, before + 1)
    assert {line[0] for line in driver.execute_script(
        "return window.attentionViewer.drawnLines()")} == {1}
    blocks = Select(driver.find_element(By.ID, "block"))
    assert [option.text for option in blocks.options] == ["0"]  # the tiny model: one block
    driver.find_element(By.CSS_SELECTOR, '#heads input[data-head="1"]').click()
    wait_drawn(driver, before + 2)
    assert driver.execute_script("return window.attentionViewer.drawnLines().length") == 0
    assert driver.execute_script(INK_ROWS)["rows"] == []  # no head ticked: nothing drawn


def test_many_heads_and_long_texts_lose_nothing(driver, tmp_path):
    """12 heads get 12 colours; at 128 tokens the model view's 96-pixel squares still show a
    single sharp weight (each pixel is the largest weight it covers)."""
    from export.viewer.attention_page import attention_document, render_html

    n, heads = 128, 12
    weights = np.full((heads, n, n), 1.0 / n)
    weights[3, 100, :] = 0.0
    weights[3, 100, 57] = 1.0
    path = tmp_path / "wide.html"
    path.write_text(render_html(attention_document([f"t{i}" for i in range(n)], [weights],
                                                   "wide")), encoding="utf-8")
    open_file(driver, path)
    colours = driver.execute_script(
        "return Array.from(document.querySelectorAll('#heads .swatch'), s => s.style.background)")
    assert len(colours) == heads and len(set(colours)) == heads
    # Pixel p covers the cells floor(p n / size) <= i < floor((p + 1) n / size).
    size = 96
    row, column = (max(p for p in range(size) if p * n // size <= cell) for cell in (100, 57))
    alpha = driver.execute_script("""
        const canvas = document.querySelector('#grid .cell[data-block="0"][data-head="3"] canvas');
        return [canvas.width, canvas.getContext('2d').getImageData(
            arguments[1], arguments[0], 1, 1).data[3]];""", row, column)
    assert alpha == [size, 255]


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


def test_the_served_page_attends_what_is_typed(driver, server, model_root, tokens, tmp_path):
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
    assert_not_blank(driver, tmp_path / "served.png")
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
