"""The `keras-attn` command line: demo, train, train-lm, generate, export, verify, predict,
attend, serve.

Exit codes: 0 success, 2 bad usage or bad input (nothing written), 1 failure. Heavy imports
happen inside each command: `predict` runs on onnxruntime and never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from keras_attn.cli.common import EXIT_FAILURE, EXIT_USAGE
from keras_attn.cli.evaluate_command import DEFAULT_PLOT, cmd_evaluate
from keras_attn.cli.lm_commands import cmd_generate, cmd_train_lm
from keras_attn.cli.quiet import hide_tensorflow_startup_logs
from keras_attn.cli.serving_commands import cmd_attend, cmd_predict, cmd_serve, cmd_triton_repo
from keras_attn.cli.training_commands import cmd_demo, cmd_export, cmd_train, cmd_verify

# Errors that mean "your input is wrong": ValueError covers DataError, RunFolderError,
# config checks and id checks; a missing or existing path is the user's to fix too.
BAD_INPUT = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    from keras_attn.config import (
        CLASS_WEIGHTS,
        MONITORS,
        POOLINGS,
        TOKENIZER_MODELS,
        TrainSettings,
    )

    parser = argparse.ArgumentParser(
        prog="keras-attn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train, export, verify and serve the attention walkthrough's transformer.",
        epilog="Examples:\n  keras-attn demo\n  keras-attn train --data aclImdb/train "
               "--out runs/imdb --export saved_models/imdb\n  keras-attn predict "
               "saved_models/demo/1 \"the dog was near the ball, it was very excited.\"")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, handler, help_text, example):
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=f"Example:\n  {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    demo = command("demo", cmd_demo, "Train on the built-in reference task, export, verify "
                   "and draw; writes under --out.", "keras-attn demo --out /tmp/demo")
    demo.add_argument("--out", default=".", help="folder for runs/ and saved_models/")
    demo.add_argument("--examples", type=_positive, default=5000)
    demo.add_argument("--epochs", type=_positive, default=None)
    demo.add_argument("--seed", type=int, default=0)

    train = command("train", cmd_train, "Train a classifier on your labelled texts.",
                    "keras-attn train --data reviews.csv --text-column review "
                    "--label-column sentiment --out runs/reviews")
    train.add_argument("--data", required=True,
                       help="a folder of class sub-folders of .txt files, a .csv or a .jsonl")
    train.add_argument("--out", required=True, help="the run folder")
    train.add_argument("--text-column", default="text")
    train.add_argument("--label-column", default="label")
    train.add_argument("--classes", help="comma-separated class names to use, in this order "
                       "(e.g. neg,pos to skip aclImdb/train/unsup); default: all")
    train.add_argument("--validation-split", type=float, default=None,
                       help="the share of each class of --data held out for validation; "
                            "default 0.2")
    train.add_argument("--validation-data", metavar="PATH",
                       help="a validation set of its own (same columns and classes; every "
                            "label one of --data's classes) instead of a split: all of --data "
                            "trains, as Keras's fit(validation_data=...)")
    train.add_argument("--stream", action="store_true",
                       help="read the data record by record, never all at once (memory stays "
                            "flat as the data grows): a tf.data pipeline that tokenizes and "
                            "batches by length; the validation split is a seeded hash of each "
                            "record's position, the tokenizer learns from a seeded sample of "
                            "at most 100,000 training texts, no TF-IDF baseline; tensorflow "
                            "backend, one device, no --init-from")

    def training_flags(sub):  # the flags `train` and `train-lm` share
        defaults = TrainSettings()
        for flag, field in (("--layers", "num_layers"), ("--heads", "num_heads"),
                            ("--d-model", "d_model"), ("--ff-dim", "ff_dim"),
                            ("--max-len", "max_len"), ("--epochs", "epochs"),
                            ("--batch-size", "batch_size"), ("--patience", "patience"),
                            ("--vocab-size", "vocab_size")):
            sub.add_argument(flag, type=int, default=getattr(defaults, field),
                             help=f"default {getattr(defaults, field)}")
        sub.add_argument("--tokenizer", choices=TOKENIZER_MODELS, default=defaults.tokenizer,
                         help=f"the tokenizer's model, trained on the training split; "
                              f"default {defaults.tokenizer}")
        sub.add_argument("--dropout", type=float, default=defaults.dropout,
                         help="dropout on the embeddings and each sub-layer's output, in "
                              f"[0, 1); default {defaults.dropout}")
        sub.add_argument("--attention-dropout", type=float,
                         default=defaults.attention_dropout,
                         help="dropout on the attention weights [batch, heads, n, n], in "
                              f"[0, 1); default {defaults.attention_dropout}")
        sub.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        sub.add_argument("--seed", type=int, default=defaults.seed)
        sub.add_argument("--no-jit", action="store_true",
                         help="train without XLA (faster start for tiny runs)")
        sub.add_argument("--overwrite", action="store_true",
                         help="replace a different run already in --out")
        sub.add_argument("--export", metavar="DIR", help="export to DIR when training succeeds")

    training_flags(train)
    from keras_attn.training.pretrained import ATTENTIONS, DEFAULT_ATTENTION, MODEL_FLAGS

    # The model flags left out stay None until keras_attn.training.pretrained.resolve_model_flags
    # fills
    # them: with --init-from, the language model's values; else the defaults shown.
    train.set_defaults(**{dest: None for dest, *_ in MODEL_FLAGS})
    train.add_argument("--init-from", metavar="LM_RUN",
                       help="start from a `keras-attn train-lm` run: its tokenizer, embeddings "
                            "and blocks (a new head); the model flags default to its values, "
                            "and one given with another value is an error")
    train.add_argument("--init-attention", choices=ATTENTIONS, default=None,
                       help="with --init-from: the classifier's attention, causal as the "
                            f"language model's or bidirectional; default {DEFAULT_ATTENTION}")
    train.add_argument("--warmup-fraction", type=float, default=TrainSettings().warmup_fraction,
                       help="linear learning-rate warm-up over this share of the run's steps, "
                            "then cosine decay to 0 by the last epoch; 0: a constant learning "
                            f"rate; default {TrainSettings().warmup_fraction}")
    train.add_argument("--pooling", choices=POOLINGS, default=TrainSettings().pooling,
                       help="the classifier's readout: 'mean' over the real tokens, 'first' "
                            "the first token's vector (BERT's [CLS] position), 'token' the "
                            "vector at the first --readout-token of each text (else at its "
                            f"last token); default {TrainSettings().pooling}")
    train.add_argument("--readout-token", metavar="TOKEN", default=None,
                       help="with --pooling token: the word read at, one token of the "
                            "trained vocabulary (e.g. it)")
    train.add_argument("--monitor", choices=MONITORS, default=TrainSettings().monitor,
                       help="the validation figure (Keras's names) whose best epoch is kept "
                            "and which stops training after --patience epochs without "
                            f"progress; default {TrainSettings().monitor}")
    train.add_argument("--class-weight", choices=CLASS_WEIGHTS,
                       default=TrainSettings().class_weight,
                       help="'balanced' weighs each class by n / (classes x its count); "
                            f"default {TrainSettings().class_weight}")
    from keras_attn.training.backends import BACKENDS

    train.add_argument("--backend", choices=BACKENDS, default=None,
                       help="the Keras backend to train on; default: $KERAS_BACKEND, "
                            "else tensorflow")
    train.add_argument("--devices", type=_positive, default=1,
                       help="data-parallel training over N local devices (jax, tensorflow); "
                            "--batch-size stays the global batch; default 1")
    train_lm = command("train-lm", cmd_train_lm, "Train a causal language model on raw text.",
                       "keras-attn train-lm --data aclImdb/train/unsup --out runs/lm")
    train_lm.add_argument("--data", required=True, help="a folder of .txt files (recursive), "
                          "a .txt file with one text per line, or a .csv / .jsonl")
    train_lm.add_argument("--out", required=True, help="the run folder")
    train_lm.add_argument("--text-column", default="text", help="the .csv / .jsonl text column")
    train_lm.add_argument("--validation-split", type=float, default=0.1,
                          help="share of the texts held out; default 0.1")
    training_flags(train_lm)

    generate = command("generate", cmd_generate, "Continue a prompt with a language model: a "
                       "run folder (Keras) or an export version folder (onnxruntime only).",
                       "keras-attn generate runs/lm \"the cat\" --max-new-tokens 20")
    generate.add_argument("model", help="a train-lm run folder or an export version folder")
    generate.add_argument("prompt", help="the text to continue")
    generate.add_argument("--max-new-tokens", type=int, default=32, help="default 32")
    generate.add_argument("--temperature", type=float, default=0.0,
                          help="0 (default) is greedy; above 0 samples")
    generate.add_argument("--top-k", type=int, default=None)
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--seed", type=int, default=None,
                          help="seed of the sampler: the same seed gives the same text")
    generate.add_argument("--repetition-penalty", type=float, default=1.0,
                          help="> 1 discourages tokens already in the text (CTRL's penalty, "
                               "as Hugging Face's repetition_penalty); default 1 (none)")
    generate.add_argument("--no-repeat-ngram-size", type=int, default=0,
                          help="n > 0 never repeats an n-gram of the text (Hugging Face's "
                               "no_repeat_ngram_size); default 0 (off)")
    generate.add_argument("--json", action="store_true", help="machine-readable output")

    export = command("export", cmd_export, "Export a trained run to SavedModel + ONNX as a new "
                     "verified version.", "keras-attn export runs/reviews --out "
                     "saved_models/reviews")
    export.add_argument("run", help="a run folder written by `keras-attn train`")
    export.add_argument("--out", help="model folder (default saved_models/<run name>)")

    verify = command("verify", cmd_verify, "Check an export's file hashes and rerun the "
                     "parity battery.", "keras-attn verify saved_models/demo/1")
    verify.add_argument("version_dir")

    evaluate = command("evaluate", cmd_evaluate, "Score a classifier on a labelled test set: "
                       "accuracy, macro-F1, per-class table and confusion matrix, beside the "
                       "TF-IDF baseline refitted on the run's training split.",
                       "keras-attn evaluate runs/reviews --data test.csv")
    evaluate.add_argument("model", help="a run folder (scored by Keras) or an export version "
                          "folder (scored in onnxruntime)")
    evaluate.add_argument("--data", required=True, help="the labelled test set: a folder of "
                          "class sub-folders of .txt files, a .csv or a .jsonl; every label "
                          "one of the model's classes")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--plot", metavar="FILE",
                          help=f"the confusion matrix drawing; its extension picks the format "
                               f"(.png, .pdf, .svg: matplotlib's); default ./{DEFAULT_PLOT}")
    evaluate.add_argument("--no-plot", action="store_true",
                          help="draw no confusion matrix")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace the --plot FILE if it exists")

    predict = command("predict", cmd_predict, "Classify texts with the ONNX model "
                      "(onnxruntime only).", "keras-attn predict saved_models/demo/1 --json "
                      "\"the cat hit a box, it was very hungry.\"")
    predict.add_argument("model_dir", help="an export version folder")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", help="read texts from FILE, one per line (- for stdin)")
    predict.add_argument("--json", action="store_true", help="machine-readable output")

    serve = command("serve", cmd_serve, "Serve a model folder's versions over HTTP: TF Serving "
                    "REST (v1) and the Open Inference Protocol (v2), on onnxruntime.",
                    "keras-attn serve saved_models/demo --port 8501")
    serve.add_argument("model_root", help="a model folder holding numbered versions "
                       "(saved_models/NAME); NAME is the model's name in URLs")
    serve.add_argument("--name", help="the model's name in URLs; default: the folder's name")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    serve.add_argument("--port", type=int, default=8501, help="HTTP; default 8501")
    serve.add_argument("--grpc-port", type=int, default=8500,
                       help="the Open Inference Protocol over gRPC (inference."
                            "GRPCInferenceService, as KServe and Triton serve it); default "
                            "8500")
    serve.add_argument("--no-grpc", action="store_true", help="serve HTTP only")
    serve.add_argument("--workers", type=_positive, default=1,
                       help="server processes, each with its own copy of the model; default 1")
    serve.add_argument("--threads", type=_positive, default=None,
                       help="batches run at once per worker; default: cores / workers")
    serve.add_argument("--max-batch-size", type=_positive, default=32,
                       help="most rows per onnxruntime call; 1 turns dynamic batching off")
    serve.add_argument("--max-queue-delay-ms", type=float, default=0.0,
                       help="how long a request may wait for others to batch with while a "
                            "thread is free; default 0 (batches form while threads are busy)")
    serve.add_argument("--max-request-bytes", type=_positive, default=32 * 2**20,
                       help="the largest request body; a larger one gets 413 before it is "
                            "read; default 33554432 (32 MiB)")

    triton = command("triton-repo", cmd_triton_repo, "Write a Triton Inference Server model "
                     "repository (config.pbtxt + every version's model.onnx).",
                     "keras-attn triton-repo saved_models/demo --out triton_models")
    triton.add_argument("model_root", help="a model folder holding numbered versions")
    triton.add_argument("--out", required=True, help="the repository folder; NAME/ goes in it")
    triton.add_argument("--max-batch-size", type=_positive, default=32)
    triton.add_argument("--max-queue-delay-us", type=int, default=100,
                        help="Triton's dynamic batching delay in microseconds; default 100")

    attend = command("attend", cmd_attend, "Draw one attention heatmap per block and head, "
                     "and with --html an interactive viewer in one self-contained file.",
                     "keras-attn attend runs/demo/1 \"the dog hit the ball, it was happy.\" "
                     "--html attention.html")
    attend.add_argument("model", help="a run or export version folder, or a model.keras in one")
    attend.add_argument("text")
    attend.add_argument("--out", default="attention", help="folder for the PNGs")
    attend.add_argument("--html", metavar="FILE",
                        help="also write the viewer (head view and model view) to FILE: one "
                             "HTML file with everything inline, that opens offline")
    attend.add_argument("--overwrite", action="store_true",
                        help="replace the heatmaps in --out and an existing --html FILE")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning from a library, in one line and without the source line Python adds."""
    print(f"warning: {category.__name__}: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ logs: start-up lines dropped, later ones below ERROR off; a user's
    # TF_CPP_MIN_LOG_LEVEL wins (0 shows them all).
    hide_tensorflow_startup_logs()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "predict" and not any(e.startswith("-") for e in extra):
        args.texts += extra  # texts given after an option: `predict DIR --json "text"`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return args.handler(args)
    except BAD_INPUT as error:
        print(f"keras-attn {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, OSError) as error:  # e.g. a parity failure, a full disk
        print(f"keras-attn {args.command}: failed: {type(error).__name__}: {error}",
              file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"keras-attn {args.command}: interrupted; rerun the same command to resume.",
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
