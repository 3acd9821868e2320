"""The language-model subcommands: `keras-attn train-lm` and `keras-attn generate`.

`generate` on an export version folder runs on onnxruntime and never imports TensorFlow or
Keras; on a run folder it loads the Keras model. Bad input raises `UsageError` (or another
ValueError): exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from export.artifact.manifest import KERAS_FILENAME, MANIFEST_FILENAME, TOKENIZER_FILENAME
from keras_attn.cli.common import EXIT_OK, UsageError, _print, dashed, flags_named
from keras_attn.cli.training_commands import (
    _export,
    _settings_from_flags,
    check_output_folders,
    data_errors_name_flags,
)


def cmd_train_lm(args: argparse.Namespace) -> int:
    from keras_attn.data.lm_windows import load_lm_texts, split_texts
    from keras_attn.training.timing import phase

    # Flags and data are checked before Keras is imported: bad input is answered at once.
    check_output_folders(args)
    settings = _settings_from_flags(args)
    if not 0 < args.validation_split < 1:
        raise UsageError(f"--validation-split must lie strictly between 0 and 1. "
                         f"Received: {args.validation_split}")
    seconds: dict[str, float] = {}
    with phase("data", seconds, _print), data_errors_name_flags():
        texts = load_lm_texts(args.data, text_column=args.text_column)
        train, validation = split_texts(texts, args.validation_split, seed=args.seed)
        _print(f"{len(train)} train / {len(validation)} validation texts")

    import keras

    from keras_attn.evaluation import plots
    from keras_attn.training.language_model import train_language_model
    from keras_attn.training.run_folder import CURVES_FILE, record_results

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            _print(f"epoch {epoch + 1}/{settings.epochs}: loss {logs['loss']:.4f} "
                   f"(perplexity {math.exp(min(logs['loss'], 700)):.2f}), validation loss "
                   f"{logs['val_loss']:.4f} (perplexity "
                   f"{math.exp(min(logs['val_loss'], 700)):.2f})")

    with phase("train", seconds, _print):
        run = train_language_model(train, validation, settings, args.out,
                                   overwrite=args.overwrite,
                                   data_description=str(Path(args.data).resolve()),
                                   callbacks=[EpochLine()], log=_print, verbose=0)
        _print(f"{run.train_windows} train / {run.validation_windows} validation windows of "
               f"{settings.max_len} tokens; model, tokenizer and config in {run.run_dir}")
        if plots.available():
            path = plots.plot_training_curves(run.history, run.run_dir / CURVES_FILE,
                                              metrics=("loss", "perplexity"))
            _print(f"curves: {path}")
        else:
            _print(f"curves skipped: drawing needs matplotlib ({plots.INSTALL_HINT})")
    from keras_attn.evaluation.language_model_scores import compare_with_kneser_ney

    with phase("evaluate", seconds, _print):
        scores = compare_with_kneser_ney(run.model, run.tokenizer, train, validation,
                                         settings.max_len)
        model, ngram = scores["model"], scores["kneser_ney"]
        _print(f"every validation token ({scores['tokens']} tokens, {scores['bytes']} bytes): "
               f"keras-attn perplexity {model['perplexity']:.2f}, "
               f"{model['bits_per_byte']:.3f} bits per byte | Kneser-Ney {ngram['order']}-gram "
               f"baseline on the same tokens: perplexity {ngram['perplexity']:.2f}, "
               f"{ngram['bits_per_byte']:.3f} bits per byte")
        gap = ngram["bits_per_byte"] - model["bits_per_byte"]
        _print(f"the model beats its n-gram baseline by {gap:.3f} bits per byte" if gap > 0
               else f"the model does NOT beat its n-gram baseline: {-gap:.3f} bits per byte "
                    f"worse; a {ngram['order']}-gram model does better on this data")
    record_results(run.run_dir, {"validation_loss": run.validation_loss,
                                 "validation_perplexity": run.validation_perplexity,
                                 "unigram_perplexity": run.unigram_perplexity,
                                 "every_validation_token": scores})
    code = EXIT_OK
    if args.export:
        from export.artifact.manifest import read_manifest
        from export.artifact.versions import existing_versions
        from export.verification.decoder_parity import decoder_summary

        code = _export(run.run_dir, Path(args.export))
        version = Path(args.export) / str(existing_versions(args.export)[-1])
        _print(decoder_summary(read_manifest(version)["decoder"]["parity"]))
    _print(f"validation perplexity: {run.validation_perplexity:.2f} (unigram baseline: "
           f"{run.unigram_perplexity:.2f})")
    return code


# export.runtime.sampling.check_sampling's parameters, each `generate`'s flag of that name
SAMPLING_FLAGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed",
                  "repetition_penalty", "no_repeat_ngram_size")


def cmd_generate(args: argparse.Namespace) -> int:
    from export.runtime.sampling import check_sampling

    try:
        check_sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed,
                       args.repetition_penalty, args.no_repeat_ngram_size)
    except ValueError as error:
        raise UsageError(flags_named(str(error), dashed(SAMPLING_FLAGS), bare=True)) from None
    folder = Path(args.model)
    sampling = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed,
                "repetition_penalty": args.repetition_penalty,
                "no_repeat_ngram_size": args.no_repeat_ngram_size}
    if (folder / MANIFEST_FILENAME).is_file():  # an export: onnxruntime, no TensorFlow
        from export.runtime.generation import generate_from_export

        result = generate_from_export(folder, args.prompt, **sampling)
        engine = "onnxruntime"
    elif (folder / KERAS_FILENAME).is_file() and (folder / TOKENIZER_FILENAME).is_file():
        import keras_attn
        from export.artifact.tokenizer import load_tokenizer
        from keras_attn.models.builders import LANGUAGE_MODEL, load_model, model_task
        from keras_attn.models.cached_decoder import generate

        keras_attn.register_layers()
        model = load_model(folder / KERAS_FILENAME)
        if model_task(model) != LANGUAGE_MODEL:
            raise UsageError(f"generate needs a language model, and {folder} holds a "
                             f"classifier. Expected a run of `keras-attn train-lm`. "
                             f"Received: {folder}")
        result = generate(model, load_tokenizer(folder / TOKENIZER_FILENAME), args.prompt,
                          **sampling)
        engine = "keras"
    else:
        raise UsageError(f"Expected a train-lm run folder (with {KERAS_FILENAME} and "
                         f"{TOKENIZER_FILENAME}) or an export version folder (with "
                         f"{MANIFEST_FILENAME}). Received: {folder}")
    if args.json:
        _print(json.dumps({**result.to_dict(), "engine": engine}, ensure_ascii=False, indent=2))
    else:
        _print(result.text)
        if result.stop_reason != "max_new_tokens":
            _print(f"note: {result.message}")
    return EXIT_OK
