"""The attention viewer's head view at up to max_len tokens, in headless Chromium: how long one
redraw takes, the canvas the viewer draws against the one-SVG-element-per-line page bertviz
builds (the reference, drawn in the same browser, same page, same rounds).

Each redraw is timed in the page from the call until two animation frames later, so the
browser has rasterized and painted it: all heads of one block (what the page draws first, and
on every head toggled) and one token hovered (on every mouse move). The weights are softmax
rows of normal logits with scale 2, `blocks` x `heads` x n x n; lines under 1% are not drawn
by the viewer, and the SVG reference gets the same lines.

    python -m benchmarks.attention_viewer [--lengths 16 64 128 256 512] [--heads 8]

Needs Debian's chromium and chromium-driver (as the browser tests do).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

# Timed in the page: the work, then two frames, so that painting is included.
TIMED = """
const done = arguments[arguments.length - 1];
const work = new Function(arguments[0]);
const start = performance.now();
work();
requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - start)));
"""
FULL = ("const v = window.attentionViewer; v.state.hover = null; "
        "v.state.heads = v.state.doc.attentions[0].map((_, h) => h); v.draw();")
HOVER = ("const v = window.attentionViewer; "
         "v.state.hover = {side: 'queries', index: v.state.doc.tokens.length >> 1}; v.draw();")
# bertviz's way: one <line> per weight, stroke-opacity the weight, in one <svg>.
SVG = """
const v = window.attentionViewer, doc = v.state.doc, n = doc.tokens.length, row = 22;
const old = document.getElementById('svg-reference'); if (old) old.remove();
const ns = 'http' + '://www.w3.org/2000/svg';
const svg = document.createElementNS(ns, 'svg');
svg.id = 'svg-reference'; svg.setAttribute('width', 260); svg.setAttribute('height', n * row);
svg.style.cssText = 'position: absolute; left: 0; top: 0; background: #fff';  // on screen
doc.attentions[0].forEach((weights, head) => {
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    if (Math.round(weights[i][j] * 50) < 1) continue;
    const line = document.createElementNS(ns, 'line');
    line.setAttribute('x1', 0); line.setAttribute('y1', (i + 0.5) * row);
    line.setAttribute('x2', 260); line.setAttribute('y2', (j + 0.5) * row);
    line.setAttribute('stroke', '#1f77b4'); line.setAttribute('stroke-opacity', weights[i][j]);
    line.dataset.i = i;
    svg.appendChild(line);
  }
});
document.body.appendChild(svg);
"""
# bertviz's hover: every line not from the hovered token made invisible.
SVG_HOVER = """
const k = String(window.attentionViewer.state.doc.tokens.length >> 1);
for (const line of document.querySelectorAll('#svg-reference line'))
  line.style.opacity = line.dataset.i === k ? 1 : 0;
"""


def document(n: int, heads: int, blocks: int, seed: int = 0) -> dict:
    import numpy as np

    from export.viewer.attention_page import attention_document

    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(blocks):
        weights = np.exp(2 * rng.normal(size=(heads, n, n)))
        maps.append(weights / weights.sum(-1, keepdims=True))
    return attention_document([f"w{i}" for i in range(n)], maps, "benchmark")


def measure(lengths=(16, 64, 128, 256, 512), heads: int = 8, blocks: int = 2,
            rounds: int = 5) -> list[dict]:
    import time

    from export.viewer.attention_page import render_html
    from tests.browser.chromium import headless_chromium, wait_drawn

    rows = []
    with tempfile.TemporaryDirectory(prefix="keras-attn-viewer-") as tmp, \
            headless_chromium() as driver:
        driver.set_script_timeout(600)
        for n in lengths:
            page = Path(tmp) / f"n{n}.html"
            page.write_text(render_html(document(n, heads, blocks)), encoding="utf-8")
            start = time.perf_counter()
            driver.get(page.as_uri())
            wait_drawn(driver, timeout=600)
            load_s = time.perf_counter() - start
            best = dict.fromkeys(("canvas, all heads", "canvas, one token hovered",
                                  "SVG reference, all heads", "SVG reference, one token hovered"),
                                 float("inf"))
            for _ in range(rounds):
                for name, work in zip(best, (FULL, HOVER, SVG, SVG_HOVER), strict=True):
                    best[name] = min(best[name], driver.execute_async_script(TIMED, work))
            lines = driver.execute_script(
                "return document.querySelectorAll('#svg-reference line').length")
            rows.append({"tokens": n, "heads": heads, "lines": lines,
                         "page_mib": page.stat().st_size / 2**20, "load_s": load_s,
                         **{f"{name} ms": ms for name, ms in best.items()},
                         "canvas vs SVG, all heads": best["canvas, all heads"]
                         / best["SVG reference, all heads"],
                         "canvas vs SVG, hovered": best["canvas, one token hovered"]
                         / best["SVG reference, one token hovered"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 256, 512])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'tokens':>6} {'lines':>7} {'MiB':>5} {'load s':>6} | {'all heads ms':>12} "
          f"{'SVG ms':>7} {'ratio':>5} | {'hover ms':>8} {'SVG ms':>7} {'ratio':>5}")
    for row in measure(args.lengths, args.heads, rounds=args.rounds):
        print(f"{row['tokens']:>6} {row['lines']:>7} {row['page_mib']:>5.2f} "
              f"{row['load_s']:>6.2f} | {row['canvas, all heads ms']:>12.1f} "
              f"{row['SVG reference, all heads ms']:>7.1f} {row['canvas vs SVG, all heads']:>5.2f}"
              f" | {row['canvas, one token hovered ms']:>8.1f} "
              f"{row['SVG reference, one token hovered ms']:>7.1f} "
              f"{row['canvas vs SVG, hovered']:>5.2f}")


if __name__ == "__main__":
    main()
