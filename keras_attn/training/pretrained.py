"""A classifier that starts from a language model: `keras-attn train --init-from LM_RUN`.

LM_RUN is a finished run folder of `keras-attn train-lm`. The classifier takes from it:

- the tokenizer: the run's `tokenizer.json`, so token ids mean the same in both models;
- the token and position embeddings (layer "embedding"; the language model's last token row,
  its end-of-text id, is left out: no text encodes to it), every transformer block
  ("block_0", ...) and a pre-norm model's "final_norm";
- its widths: max_len, d_model, num_heads, ff_dim, num_layers (and the tokenizer's kind and
  vocabulary size) come from the language model's config.json. A flag left out takes the
  language model's value; a flag given with another value is an error naming both.

The classifier head ("logits", masked mean pooling then one Dense layer) is new. The
classifier's attention is causal, as the language model's, or bidirectional
(`--init-attention`); README "Pre-training a classifier" measures both. `run.json` records
"init_from": the folder and the sha256 of the model.keras and tokenizer.json it loaded.

This module imports Keras only to copy the weights: its checks run before the CLI imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from export.artifact.manifest import sha256_of
from keras_attn.training.run_folder import CONFIG_FILE, MODEL_FILE, RUN_FILE, TOKENIZER_FILE

# As keras_attn.models.builders names it (which imports Keras).
LANGUAGE_MODEL = "language_model"
ATTENTIONS = ("causal", "bidirectional")
DEFAULT_ATTENTION = "bidirectional"  # measured: README "Pre-training a classifier"
HEAD = "logits"  # the one layer with weights that the classifier does not take over
# argparse dest, flag, and where a train-lm run's config.json holds the value
MODEL_FLAGS = (("max_len", "--max-len", "model", "max_len"),
               ("d_model", "--d-model", "model", "d_model"),
               ("heads", "--heads", "model", "num_heads"),
               ("ff_dim", "--ff-dim", "model", "ff_dim"),
               ("layers", "--layers", "model", "num_layers"),
               ("tokenizer", "--tokenizer", "settings", "tokenizer"),
               ("vocab_size", "--vocab-size", "settings", "vocab_size"))


class InitFromError(ValueError):
    """--init-from names no finished language-model run, or one that does not fit the flags."""


@dataclasses.dataclass(frozen=True)
class LanguageModelRun:
    """A finished `train-lm` run folder, checked; the model itself is loaded when copied.

    Attributes:
        path: the folder, resolved.
        config: its config.json ("model": the `ModelConfig` dict, "settings", ...).
        record: what run.json records as "init_from": the path and the sha256 of the
            model.keras and tokenizer.json read.
    """

    path: Path
    config: dict[str, Any]
    record: dict[str, str]

    def tokenizer(self):
        """The run's tokenizer (`export.artifact.tokenizer.Tokenizer`)."""
        from export.artifact.tokenizer import load_tokenizer

        return load_tokenizer(self.path / TOKENIZER_FILE)


def read_language_model_run(path: str | Path) -> LanguageModelRun:
    """Checks that `path` is a finished `train-lm` run folder and fingerprints it.

    Raises:
        InitFromError: no such folder, a folder that is no keras-attn run, an unfinished
            (interrupted or still running) run, a classifier run, or a missing model or
            tokenizer file; the message says which.
    """
    folder = Path(path)
    expected = f"Expected a finished `keras-attn train-lm` run folder. Received: --init-from {path}"
    if not folder.is_dir():
        raise InitFromError(f"--init-from names no folder. {expected}")
    if not (folder / RUN_FILE).is_file():
        raise InitFromError(f"{folder} is not a keras-attn run folder (no {RUN_FILE}). "
                            f"{expected}")
    if not (folder / CONFIG_FILE).is_file():
        raise InitFromError(f"{folder} holds a run that has not finished (no {CONFIG_FILE} "
                            f"yet): rerun its train-lm command to finish it. {expected}")
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("task") != LANGUAGE_MODEL:
        raise InitFromError(f"{folder} holds a classifier run, not a language model. "
                            f"{expected}")
    missing = [name for name in (MODEL_FILE, TOKENIZER_FILE)
               if not (folder / name).is_file()]
    if missing:
        raise InitFromError(f"{folder} lacks {', '.join(missing)}. {expected}")
    return LanguageModelRun(folder.resolve(), config, {
        "path": str(folder.resolve()),
        "model_sha256": sha256_of(folder / MODEL_FILE),
        "tokenizer_sha256": sha256_of(folder / TOKENIZER_FILE)})


def resolve_model_flags(args: argparse.Namespace) -> LanguageModelRun | None:
    """Reads --init-from and fills `train`'s model flags that were left out (None).

    Without --init-from they take `TrainSettings`'s defaults; with it, the language model's
    values. Call it before building `TrainSettings` from `args`.

    Returns:
        The language-model run, or None without --init-from.

    Raises:
        InitFromError: a given flag disagrees with the language model (the message names
            the flag and both values), --init-attention without --init-from, or a bad
            --init-from folder (`read_language_model_run`).
    """
    from keras_attn.config import TrainSettings

    if args.init_from is None:
        if args.init_attention is not None:
            raise InitFromError(f"--init-attention chooses the attention of a classifier "
                                f"started from a language model; give --init-from LM_RUN too. "
                                f"Received: --init-attention {args.init_attention}")
        defaults = TrainSettings()
        for dest, _, _, field in MODEL_FLAGS:
            if getattr(args, dest) is None:
                setattr(args, dest, getattr(defaults, field))
        return None
    run = read_language_model_run(args.init_from)
    for dest, flag, section, field in MODEL_FLAGS:
        given, pretrained = getattr(args, dest), run.config.get(section, {}).get(field)
        if pretrained is None:
            raise InitFromError(f"{run.path / CONFIG_FILE} does not give the language model's "
                                f"{field} (under {section!r}). Expected a config.json written "
                                f"by `keras-attn train-lm`. Received: --init-from {args.init_from}")
        if given is not None and given != pretrained:
            raise InitFromError(
                f"{flag} {given} disagrees with the language model in {run.path}, which has "
                f"{field}={pretrained}. A classifier started from it keeps its width and "
                f"tokenizer: leave {flag} out, or give {flag} {pretrained}.")
        setattr(args, dest, pretrained)
    return run


def pretrained_settings(settings, run: LanguageModelRun, attention: str | None):
    """`settings` (a `TrainSettings`) with the language model's activation and norm placement
    and the classifier's attention: causal or bidirectional (default `DEFAULT_ATTENTION`)."""
    model = run.config["model"]
    return dataclasses.replace(settings, activation=model["activation"],
                               norm_first=model["norm_first"],
                               use_causal_mask=(attention or DEFAULT_ATTENTION) == "causal")


def copy_pretrained_weights(classifier, run: LanguageModelRun) -> list[str]:
    """Copies the language model's embeddings and blocks into `classifier`, in place.

    Every layer of `classifier` with weights, except its head "logits", takes the weights of
    the language model's layer of the same name; the token-embedding table drops the language
    model's last row (the end-of-text id, `keras_attn.training.language_model`).

    Args:
        classifier: a model of `build_classifier` with the language model's widths and a
            vocabulary one id smaller (the tokenizer's).
        run: the language model's run.

    Returns:
        The names of the layers copied.

    Raises:
        InitFromError: a layer missing from the language model, or weights of another shape
            (the language model's files changed since `read_language_model_run`?).
    """
    from keras_attn.models.builders import load_model

    language_model = load_model(run.path / MODEL_FILE)
    copied = []
    for layer in classifier.layers:
        if layer.name == HEAD or not layer.weights:
            continue
        try:
            weights = language_model.get_layer(layer.name).get_weights()
        except ValueError:
            raise InitFromError(f"The language model in {run.path} has no layer {layer.name!r} "
                                f"to start the classifier's from. Received: layers "
                                f"{[each.name for each in language_model.layers]}") from None
        if layer.name == "embedding":  # [token_embeddings (vocab + 1, d), position_embeddings]
            vocab_size = layer.vocab_size
            if len(weights[0]) != vocab_size + 1:
                raise InitFromError(f"The language model in {run.path} has {len(weights[0])} "
                                    f"token ids; its tokenizer's {vocab_size} plus the "
                                    f"end-of-text id would be {vocab_size + 1}.")
            weights[0] = weights[0][:vocab_size]
        shapes = [tuple(weight.shape) for weight in layer.weights]
        if [weight.shape for weight in weights] != shapes:
            raise InitFromError(f"Layer {layer.name!r} of the language model in {run.path} has "
                                f"weights of shapes {[w.shape for w in weights]}; the classifier "
                                f"needs {shapes}.")
        layer.set_weights(weights)
        copied.append(layer.name)
    return copied
