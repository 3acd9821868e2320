"""What every `keras-attn` subcommand shares: the exit codes, `UsageError` and `_print`.

The subcommands themselves: `training_commands` (demo, train, export, verify),
`serving_commands` (predict, serve, triton-repo, attend) and `lm_commands` (train-lm,
generate); `keras_attn.cli` maps each name to its function. Heavy imports happen inside each
command: `predict` runs on onnxruntime and never imports TensorFlow. Bad input raises
`UsageError` (or another ValueError); `keras_attn.cli.main` turns it into one line on stderr
and exit code 2.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit code 2."""


def _print(line: str = "") -> None:
    print(line, flush=True)

