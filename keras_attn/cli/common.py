"""What the `keras-attn` subcommands share: the exit codes, `UsageError`, `_print`, and the
check that a command given a folder got an export version folder (`predict`, `verify`).

The subcommands themselves: `training_commands` (demo, train, export, verify),
`evaluate_command` (evaluate), `serving_commands` (predict, serve, triton-repo, attend) and
`lm_commands` (train-lm, generate); `keras_attn.cli.main` maps each name to its function.
Heavy imports happen inside each command: `predict` runs on onnxruntime and never imports
TensorFlow. Bad input raises
`UsageError` (or another ValueError); `keras_attn.cli.main.main` turns it into one line on stderr
and exit code 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit code 2."""


def _print(line: str = "") -> None:
    print(line, flush=True)


def flags_named(message: str, flag_of: Mapping[str, str], bare: bool = False) -> str:
    """An error message of the Python API with its parameters named as the command's flags:
    each `name=` becomes `--flag ` ("Received: --seed -1"), and with `bare` each name standing
    alone becomes `--flag` too ("--seed must be ..."). A name inside a longer one ("dropout" in
    "attention_dropout") or inside a flag already written is left alone.

    Args:
        message: the message.
        flag_of: parameter name -> flag, e.g. {"num_layers": "--layers"}.
        bare: also rename the names that stand without "=".
    """
    for name, flag in flag_of.items():
        message = re.sub(rf"(?<![\w-]){re.escape(name)}=", f"{flag} ", message)
        if bare:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w=])", flag, message)
    return message


def dashed(names: Iterable[str]) -> dict[str, str]:
    """{name: --name-with-dashes}, for parameters whose flag is their name."""
    return {name: f"--{name.replace('_', '-')}" for name in names}


def check_version_folder(path: Path, command: str, expected: str) -> None:
    """Refuses a model folder (numbered versions inside) or a training run folder where
    `command` takes one export version folder (`expected` says what it takes).

    Raises:
        UsageError: naming `path`, what it is, and the folder to give instead.
    """
    from export.artifact.versions import existing_versions
    from keras_attn.training.run_folder import RUN_FILE

    versions = existing_versions(path)
    if versions:
        raise UsageError(f"{path} is a model folder holding versions {versions}; {command} "
                         f"takes {expected}, such as {path / str(versions[-1])} (the latest). "
                         f"Received: {path}")
    if (path / RUN_FILE).is_file():
        raise UsageError(f"{path} is a training run folder; {command} takes {expected}. "
                         f"Export the finished run first (keras-attn export {path}) and "
                         f"give the version folder it writes. "
                         f"Received: {path}")
