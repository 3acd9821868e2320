"""`keras-attn demo` at reduced size, end to end in a subprocess, like a user runs it."""

import re
import subprocess
import sys

import matplotlib.image
from export_cases import REPO_ROOT

from keras_attn.cli.main import main


def test_demo_end_to_end(tmp_path, capsys):
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn.cli", "demo", "--out", str(tmp_path),
         "--examples", "600", "--epochs", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for phase in ("data", "train", "evaluate", "export", "verify", "plots", "language model"):
        assert f"[{phase}] done in" in result.stdout
    # The tiny language model's greedy continuation, from Keras and from onnxruntime.
    greedy = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
              for line in result.stdout.splitlines() if line.startswith("greedy, ")}
    assert greedy.keys() == {"greedy, Keras", "greedy, onnxruntime"}
    assert greedy["greedy, Keras"] == greedy["greedy, onnxruntime"]
    assert greedy["greedy, Keras"].startswith("the cat was near the ")
    assert "held-out test accuracy :" in result.stdout and "verify                 : passed" \
        in result.stdout
    # The walkthrough's claim, measured on the held-out sentences (keras_attn.evaluation.referent)
    assert re.search(r'^"it" -> its referent    : block [01], head [01]: 0\.\d\d of "it"\'s '
                     r"attention on its referent on average \(uniform: 0\.0\d\), the referent "
                     r"ahead of the other noun in \d+% of 200 held-out sentences$",
                     result.stdout, re.MULTILINE), result.stdout[-2000:]
    run, version = tmp_path / "runs" / "demo" / "1", tmp_path / "saved_models" / "demo" / "1"
    for png in ("training_curves.png", "attention.png"):
        assert matplotlib.image.imread(run / png).shape[-1] in (3, 4)
    viewer = run / "attention.html"  # the seed sentence in the viewer (tests/browser)
    assert f"attention viewer       : {viewer}" in result.stdout
    page = viewer.read_text(encoding="utf-8")
    assert '"model_name":"demo"' in page and '"tokens":["' in page and '"it",' in page
    for name in ("model.onnx", "saved_model.pb", "manifest.json", "parity.json",
                 "tokenizer.json"):
        assert (version / name).is_file(), name
    assert main(["verify", str(version)]) == 0
    assert "OK" in capsys.readouterr().out
