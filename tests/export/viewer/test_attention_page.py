"""export.viewer.attention_page: the attention document and the self-contained page. The page
in a real browser is tests/browser/test_viewer.py."""

import json
import re

import numpy as np
import pytest

from export.viewer.attention_page import attention_document, explorer_html, render_html

TOKENS = ["the", "dog", "loved", "the", "toy", ",", "it", "was", "excited", "."]


def softmax_maps(blocks: int, heads: int, m: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(blocks):
        weights = np.exp(rng.normal(size=(heads, m, m)))
        maps.append(weights / weights.sum(-1, keepdims=True))
    return maps


def page_data(page: str) -> dict:
    found = re.search(r'<script id="attention-data" type="application/json">(.*?)</script>',
                      page, re.DOTALL)
    return json.loads(found.group(1))


def test_the_document_keeps_the_real_tokens_only():
    maps = softmax_maps(2, 3, 16)  # a batch padded to 16: the 10 tokens come first
    document = attention_document(TOKENS, maps, "demo", 2, "the dog loved the toy")
    assert document["tokens"] == TOKENS and document["model_version"] == "2"
    assert np.asarray(document["attentions"]).shape == (2, 3, 10, 10)
    np.testing.assert_allclose(document["attentions"][1][2], maps[1][2, :10, :10], atol=5e-5)


@pytest.mark.parametrize("maps, message", [
    ([], "at least one token and one block"),
    ([np.ones((2, 4, 4))], r"m >= the 10 tokens. Received: block 0 of shape \(2, 4, 4\)"),
    ([np.ones((2, 12, 11))], r"\[heads, m, m\]"),
    ([np.ones((2, 10, 10)), np.ones((3, 10, 10))], "every block to have 2 heads"),
    ([np.full((1, 10, 10), np.nan)], "finite"),
])
def test_the_document_refuses_weights_that_do_not_fit(maps, message):
    with pytest.raises(ValueError, match=message):
        attention_document(TOKENS, maps, "demo")


def test_the_page_is_one_file_that_names_no_url():
    page = render_html(attention_document(TOKENS, softmax_maps(1, 2, 10), "demo"))
    assert not re.search(r"https?://|//cdn|<script[^>]+src=|<link[^>]+href=|@import", page)
    assert "default-src 'none'" in page  # the browser itself refuses anything from outside
    assert page_data(page)["tokens"] == TOKENS


def test_the_page_runs_its_own_script_only():
    """script-src is the hash of the page's one executable script, never 'unsafe-inline'."""
    import base64
    import hashlib

    page = render_html(attention_document(TOKENS, softmax_maps(1, 2, 10), "demo"))
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'content="(default-src[^"]*)"', page).group(1)
    assert f"script-src 'sha256-{digest}';" in csp and "script-src 'unsafe-inline'" not in csp


def test_text_cannot_end_the_script_or_inject_markup():
    tokens = ["</script><script>alert(1)</script>", "<!--", "a&b", "\u2028", "\ud800"]
    page = render_html(attention_document(tokens, softmax_maps(1, 1, 5), "m</script>"))
    data = page.split('type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and data.isascii()
    assert page_data(page)["tokens"] == tokens and page_data(page)["model_name"] == "m</script>"


def test_the_served_page_posts_to_its_own_server():
    page = explorer_html("tiny", "/v2/models/tiny/attention", "the dog")
    assert page_data(page) == {"model_name": "tiny", "attention_url":
                               "/v2/models/tiny/attention", "text": "the dog"}
    assert not re.search(r"https?://", page)
