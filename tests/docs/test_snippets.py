"""Every `python` and `bash` code block of the README and of docs/ runs, as a user would type it.

The blocks of one page run in order, in one fresh temporary folder: the `python` blocks as one
program, the `bash` blocks as one `bash -euo pipefail` script (a page reads as one session).
Blocks are found by `mktestdocs.grab_code_blocks`. A block tagged `text` is output, or a command
that needs what the suite cannot have (Docker, a second machine, a dataset download, a full
benchmark, the suite itself); docs/development.md says so.

Before a page runs, the folder gets what the page takes for granted: `tests/fixtures/` (the
committed fortune samples the README trains on) and, for the pages that say
`saved_models/demo/1`, a tiny classifier trained and exported there by the CLI. The serving page
talks to a `keras-attn serve` of that export on a free loopback port, which stands in for the
page's 8501 (as the README's own `serve` example, started by the page itself, does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mktestdocs import grab_code_blocks

from tests.export_cases import REPO_ROOT
from tests.serving_cases import ServerProcess, free_port

ALL_PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO_ROOT / "docs").glob("*.md"))]
NEEDS_DEMO_EXPORT = {"docs/export.md", "docs/serving.md"}
NEEDS_SERVER = {"docs/serving.md"}
DOCS_PORT = "8501"  # the port every page writes; replaced by a free one
DOCS_GRPC_PORT = "8500"  # the gRPC port the pages write (serve's default); likewise
TINY = ["--epochs", "1", "--layers", "1", "--d-model", "32", "--heads", "2", "--ff-dim", "64",
        "--max-len", "64", "--vocab-size", "1000", "--no-jit"]


def _blocks(page: str, port: int, grpc_port: int = 0) -> dict[str, list[str]]:
    text = (REPO_ROOT / page).read_text(encoding="utf-8").replace(DOCS_PORT, str(port))
    text = text.replace(DOCS_GRPC_PORT, str(grpc_port))
    return {lang: grab_code_blocks(text, lang=lang) for lang in ("python", "bash")}


# The pages with at least one block to run (the others show output or commands only).
PAGES = [page for page in ALL_PAGES if any(_blocks(page, 0).values())]


def _env() -> dict[str, str]:
    """The venv's scripts (keras-attn) first on PATH, TensorFlow's start-up noise off."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)}


def _run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _ok(result: subprocess.CompletedProcess, what: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{what} exited with {result.returncode}:\n{output[-6000:]}"
    assert "Traceback (most recent call last)" not in output, f"{what}:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    """saved_models/demo/1: a tiny classifier on the fortune topics, trained and exported by the
    CLI, as `keras-attn demo` would leave one (of another task) for the pages to use."""
    root = tmp_path_factory.mktemp("demo")
    _ok(_run([sys.executable, "-m", "keras_attn.cli", "train", "--data",
              str(REPO_ROOT / "tests/fixtures/fortune_topics.jsonl"), "--out", "runs/demo",
              *TINY, "--export", "saved_models/demo"], cwd=root), "the demo export")
    assert (root / "saved_models/demo/1/model.onnx").is_file()
    return root / "saved_models"


def _workdir(tmp_path: Path, demo: Path | None) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/fixtures").symlink_to(REPO_ROOT / "tests/fixtures")
    if demo is not None:
        shutil.copytree(demo, tmp_path / "saved_models")
    return tmp_path


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path, request):
    demo = request.getfixturevalue("demo_export") if page in NEEDS_DEMO_EXPORT else None
    cwd = _workdir(tmp_path, demo)
    server = ServerProcess(cwd / "saved_models/demo") if page in NEEDS_SERVER else None
    try:  # the page's 8501 (8500) becomes the server's HTTP (gRPC) port, or a free one for a
        # server it starts; a page that starts one names --grpc-port 8500
        blocks = (_blocks(page, server.port, server.grpc_port) if server is not None
                  else _blocks(page, free_port(), free_port()))
        if blocks["bash"]:
            script = cwd / "page.sh"
            script.write_text("\n".join(blocks["bash"]), encoding="utf-8")
            _ok(_run(["bash", "-euo", "pipefail", str(script)], cwd=cwd), f"{page}'s bash blocks")
        if blocks["python"]:
            program = cwd / "page.py"
            program.write_text("\n".join(blocks["python"]), encoding="utf-8")
            _ok(_run([sys.executable, str(program)], cwd=cwd), f"{page}'s python blocks")
    finally:
        if server is not None:
            _, log = server.stop()
    if server is not None:  # a request a page shows may be refused (4xx), never fail the server
        assert " 500 " not in log and "Traceback" not in log, log[-6000:]


def test_a_failing_block_fails_the_page(tmp_path):
    """The runner itself can fail: a bash block whose command fails is reported."""
    with pytest.raises(AssertionError, match="exited with"):
        _ok(_run(["bash", "-euo", "pipefail", "-c", "true\nfalse\ntrue"], cwd=tmp_path), "x")


def test_the_site_builds_strictly(tmp_path):
    """docs/ builds with mkdocs --strict: a broken link or anchor, or a page missing from the
    navigation, fails (CI builds it too, .ci/run). Not --quiet: mkdocs then drops the warnings
    that --strict counts."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
         str(REPO_ROOT / "docs/mkdocs/mkdocs.yml"), "-d", str(tmp_path / "site")],
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
