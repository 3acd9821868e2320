"""benchmarks.attention_viewer runs in headless Chromium and reports every contender."""

import pytest

from benchmarks import attention_viewer
from tests.browser.chromium import MISSING, binaries


@pytest.mark.skipif(binaries() is None, reason=MISSING)
def test_the_viewer_benchmark_times_canvas_and_svg():
    rows = attention_viewer.measure(lengths=(8, 24), heads=2, blocks=1, rounds=1)
    assert [row["tokens"] for row in rows] == [8, 24]
    for row in rows:
        assert row["lines"] > 0 and row["page_mib"] > 0
        for name in ("canvas, all heads", "canvas, one token hovered",
                     "SVG reference, all heads", "SVG reference, one token hovered"):
            assert row[f"{name} ms"] > 0, (name, row)
