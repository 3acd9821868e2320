"""keras_attn/cli/quiet.py: TensorFlow's start-up log lines are dropped, every other line is
kept."""

import os

import pytest

from keras_attn.cli import quiet

# Written by `import tensorflow` 2.21 on a CPU machine, twice (two copies of absl).
STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796017496.586640    5133 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796017496.586959    5133 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1796017846.124899   11603 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]
REAL = [
    "E0000 00:00:1796017846.124899   11603 op_kernel.cc:1830] OP_REQUIRES failed: out of memory",
    "F0000 00:00:1796017846.124899   11603 check.cc:12] Check failed: x == y",
    "Traceback (most recent call last):",
    "WARNING: something else",
    "",
]


@pytest.mark.parametrize("line", STARTUP)
def test_startup_lines_are_noise(line):
    assert quiet.is_noise(line)


@pytest.mark.parametrize("line", REAL)
def test_other_lines_are_not_noise(line):
    assert not quiet.is_noise(line)


def test_native_stderr_is_held_and_written_back_without_the_noise(capfd):
    with quiet.native_stderr_filtered():
        os.write(2, "\n".join(STARTUP[:2] + ["a real native error"] + STARTUP[2:]).encode()
                 + b"\n")
        assert capfd.readouterr().err == ""  # held back until the block ends
    assert capfd.readouterr().err == "a real native error\n"


def test_an_error_inside_the_block_still_writes_back_and_restores_stderr(capfd):
    with pytest.raises(ValueError, match="boom"), quiet.native_stderr_filtered():
        os.write(2, f"{STARTUP[0]}\nbefore the error\n".encode())
        raise ValueError("boom")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before the error\nafter\n"


def test_a_line_ends_at_newline_only(capfd):
    """A line is what ends at "\\n": str.splitlines also breaks at "\\r", form feed and U+2028,
    and dropped the start-up text behind a "\\r" in the middle of a program's own line."""
    own = f"progress 10%\r{STARTUP[0]}\rdone\x0cstill\u2028one line"
    with quiet.native_stderr_filtered():
        os.write(2, f"{STARTUP[1]}\n{own}\n".encode())
    assert capfd.readouterr().err == own + "\n"
