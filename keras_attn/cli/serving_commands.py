"""The subcommands that use a trained model: `keras-attn predict`, `serve`, `triton-repo`
and `attend`.

`predict` and `serve` run an export on onnxruntime and never import TensorFlow; nor does
`attend` on an export (its attention.onnx); on a run folder it loads the Keras model. Bad
input raises `UsageError` (or another ValueError): exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from export.artifact.manifest import KERAS_FILENAME, MANIFEST_FILENAME, TOKENIZER_FILENAME
from export.artifact.versions import ascii_digits, check_folder_path
from keras_attn.cli.common import (
    EXIT_OK,
    UsageError,
    _print,
    check_version_folder,
    dashed,
    flags_named,
)


def _read_texts(args: argparse.Namespace) -> list[str]:
    """The texts to classify: the arguments, or one per line of --file (``-``: stdin).

    A line ends at "\\n" or "\\r\\n" only (`keras_attn.data.records.split_lines`), so U+2028, form
    feed and the like stay inside their text; blank lines are skipped.
    """
    from keras_attn.data.records import DataError, decode_utf8, split_lines

    if args.file and args.texts:
        raise UsageError("Give texts either as arguments or with --file, not both. "
                         f"Received: {len(args.texts)} argument(s) and --file {args.file}")
    if not args.file:
        return _required(args.texts)
    if args.file == "-":
        data, source = sys.stdin.buffer.read(), "stdin"  # bytes: no newline translation
    else:
        source = args.file
        try:
            data = Path(args.file).read_bytes()
        except OSError as error:
            raise UsageError(f"Cannot read --file {args.file}: {error.strerror}") from None
    try:
        text = decode_utf8(data, source)
    except DataError as error:
        raise UsageError(f"--file {args.file}: {error}") from None
    return _required([line for line in split_lines(text) if line.strip()])


def _required(texts: list[str]) -> list[str]:
    if not texts:
        raise UsageError("No text to read. Pass texts as arguments, or --file FILE "
                         "(one text per line; - for stdin). Received: nothing")
    return texts


def cmd_predict(args: argparse.Namespace) -> int:

    from export import runtime
    from export.artifact.tokenizer import load_tokenizer
    from keras_attn.data.records import encode_texts

    check_version_folder(Path(args.model_dir), "predict",
                         "an export version folder, or an .onnx file in one")
    predictor = runtime.load(args.model_dir)
    if predictor.task != "classifier":
        raise UsageError(f"predict classifies texts, and {args.model_dir} holds a "
                         f"{predictor.task}. Expected a classifier export. "
                         f"Received: {args.model_dir}")
    # A version folder, or the version folder of the .onnx file given: its tokenizer.
    tokenizer_path = predictor.path.parent / TOKENIZER_FILENAME
    if not tokenizer_path.is_file():
        raise UsageError(f"{tokenizer_path.parent} has no {TOKENIZER_FILENAME} to turn text "
                         f"into ids. Expected an export version folder made by keras-attn "
                         f"(or an .onnx file in one). Received: {args.model_dir}")
    texts = _read_texts(args)
    ids = encode_texts(load_tokenizer(tokenizer_path), texts, predictor.max_len)
    logits = predictor.predict_by_length(ids)  # many texts: batches of similar length
    probabilities, labels = predictor.classify(logits)
    names = predictor.labels
    results = [{"text": text, "label": label,
                "probabilities": {name: round(float(v), 6) for name, v in zip(names, p,
                                                                               strict=True)}}
               for text, label, p in zip(texts, labels, probabilities, strict=True)]
    if args.json:
        _print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            shown = "  ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items())
            _print(f"{result['label']}\t{shown}\t{_one_line(result['text'])}")
    return EXIT_OK


# What str.splitlines (and a terminal, for "\r") would take as a line break inside a text.
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    """`text` with line-breaking characters escaped ("\\u2028"): one prediction, one line."""
    return text.translate(LINE_BREAKS)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from export.serving.app import ServeOptions, check, listen, serve
        if not args.no_grpc:
            import export.serving.grpc_service  # noqa: F401  (grpcio, tritonclient[grpc])
    except ImportError as error:
        raise UsageError(f"serve needs the serve extra: pip install 'keras-attn[serve]'. "
                         f"Received: {error}") from None

    options = ServeOptions(args.model_root, args.host, args.port, args.workers,
                           args.max_batch_size, args.max_queue_delay_ms, args.threads,
                           args.name, args.max_request_bytes,
                           None if args.no_grpc else args.grpc_port)
    root = check(options)
    sock = listen(options)  # a port in use is an error before the banner, not after it
    _print(f"serving {root.name!r} from {root.root} (versions {root.versions()}; the latest "
           f"by default) at http://{args.host}:{args.port}")
    _print(f"  TF Serving REST:          POST /v1/models/{root.name}:predict")
    _print(f"  Open Inference Protocol:  POST /v2/models/{root.name}/infer")
    if options.grpc_port is not None:
        _print(f"  Open Inference Protocol:  gRPC {args.host}:{options.grpc_port} "
               f"(inference.GRPCInferenceService/ModelInfer)")
    _print(f"  Generation (language models only): POST /v2/models/{root.name}/generate, "
           f"/generate_stream")
    _print(f"  Attention viewer:         GET  /explore/{root.name}")
    _print("  Prometheus metrics:       GET  /metrics")
    serve(options, root, sock)
    return EXIT_OK


def cmd_triton_repo(args: argparse.Namespace) -> int:
    from export.serving.triton import TEXT_MODEL_SUFFIX, write_text_model, write_triton_repository

    check_folder_path(args.out, "--out")
    model_root = Path(args.model_root)
    if (model_root / MANIFEST_FILENAME).is_file():
        raise UsageError(f"{model_root} is an export version folder; triton-repo takes the "
                         f"model folder that holds the versions, such as {model_root.parent}. "
                         f"Received: {model_root}")
    if not model_root.is_dir():
        raise UsageError(f"The model folder does not exist. Expected a folder of numbered "
                         f"export versions, such as saved_models/demo. Received: {model_root}")
    text_target = Path(args.out) / f"{model_root.resolve().name}{TEXT_MODEL_SUFFIX}"
    if text_target.exists():  # before anything is written: both models or neither
        raise UsageError(f"{text_target} exists already; remove it or choose another --out. "
                         f"Received: --out {args.out}")
    try:
        folder = write_triton_repository(args.model_root, args.out, args.max_batch_size,
                                         args.max_queue_delay_us)
    except ValueError as error:  # the settings' names as flags
        raise UsageError(flags_named(str(error), dashed(("max_batch_size",
                                                         "max_queue_delay_us")),
                                     bare=True)) from None
    _print(f"Triton model repository: {folder.parent} (model {folder.name!r}, versions "
           f"{sorted(int(p.name) for p in folder.iterdir() if ascii_digits(p.name))})")
    try:
        text_model = write_text_model(args.model_root, args.out, args.max_batch_size,
                                      args.max_queue_delay_us)
        _print(f"  {folder.name!r}: token ids in, on Triton's onnxruntime backend; "
               f"{text_model.name!r}: text in, tokenized in the server, on its Python backend "
               f"(numpy, onnxruntime and tokenizers in the Python it runs)")
    except ValueError as error:
        _print(f"  {folder.name!r}: token ids in, on Triton's onnxruntime backend; no text "
               f"model: {error}")
    _print(f"  tritonserver --model-repository={folder.parent}")
    return EXIT_OK


def _model_and_tokenizer(path: Path):
    """The model and tokenizer of a run folder, an export version folder, or a model.keras."""
    import keras_attn as ka
    from export.artifact.tokenizer import load_tokenizer

    folder = path.parent if path.suffix == ".keras" else path
    model_file = path if path.suffix == ".keras" else folder / KERAS_FILENAME
    tokenizer_file = folder / TOKENIZER_FILENAME
    missing = [str(p) for p in (model_file, tokenizer_file) if not p.is_file()]
    if missing:
        raise UsageError(f"Expected a run or export folder (or a model.keras in one) with a "
                         f"model and its tokenizer; missing: {', '.join(missing)}. "
                         f"Received: {path}")
    return ka.load_model(model_file), load_tokenizer(tokenizer_file)


def _text_attention(path: Path, text: str):
    """The tokens of `text` and each block's weights `[heads, n, n]`: from an export version
    folder, its attention.onnx in onnxruntime (no TensorFlow, no Keras); from a run folder or a
    model.keras, the Keras model."""
    from keras_attn.data.records import encode_texts

    if (path / MANIFEST_FILENAME).is_file():
        from export.artifact.tokenizer import load_tokenizer
        from export.runtime.attention import load_attention

        try:
            attention = load_attention(path)
        except FileNotFoundError as error:
            raise UsageError(str(error)) from None
        if not (path / TOKENIZER_FILENAME).is_file():
            raise UsageError(f"attend reads text with the export's tokenizer; {path} has no "
                             f"{TOKENIZER_FILENAME}. Received: {path}")
        tokenizer = load_tokenizer(path / TOKENIZER_FILENAME)
        ids = encode_texts(tokenizer, [text], attention.max_len)
        return tokenizer.tokens(ids[0]), [weights[0] for weights in attention.maps(ids)]
    from keras_attn.evaluation.attention import text_attention

    model, tokenizer = _model_and_tokenizer(path)
    return text_attention(model, tokenizer, text)


def cmd_attend(args: argparse.Namespace) -> int:
    from keras_attn.evaluation import plots

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out must be a folder for the PNGs. Received: {out}, a file")
    old = sorted(out.glob("block*_head*.png")) if out.is_dir() else []
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"{out} is not empty; pass --overwrite to replace its heatmaps, or "
                         f"choose another --out. Received: --out {out}")
    html = Path(args.html) if args.html else None
    if html is not None:
        _check_html_target(html, args.overwrite)
    draw_png = plots.available()
    if not draw_png and html is None:
        raise UsageError(f"attend draws PNGs with matplotlib: {plots.INSTALL_HINT}")
    path = Path(args.model)
    tokens, maps = _text_attention(path, args.text)
    if html is not None:
        from export.viewer.attention_page import attention_document, render_html

        name, version = _model_name(path)
        page = render_html(attention_document(tokens, maps, name, version, args.text))
        _write_new_file(html, page, args.overwrite)
        _print(str(html))
    if not draw_png:
        _print(f"no PNGs written: {plots.INSTALL_HINT}")
        return EXIT_OK
    for png in old:  # heatmaps of an earlier call, perhaps of a model with more heads
        png.unlink()
    for layer, weights in enumerate(maps):
        for head, head_weights in enumerate(weights):
            png = plots.plot_attention(tokens, head_weights,
                                       out / f"block{layer}_head{head}.png",
                                       title=f"block {layer}, head {head}")
            _print(str(png))
    return EXIT_OK


def _check_html_target(html: Path, overwrite: bool) -> None:
    """Refuses an --html FILE that is a folder, or a file already there without --overwrite:
    before anything is computed or written."""
    if html.is_dir():
        raise UsageError(f"--html must name a file to write. Received: --html {html}, a folder")
    if html.exists() and not overwrite:
        raise _html_exists(html)
    if html.parent.exists() and not html.parent.is_dir():
        raise UsageError(f"--html {html}: {html.parent} is a file, not a folder")


def _write_new_file(path: Path, text: str, overwrite: bool) -> None:
    """Writes `text` to `path` whole or not at all: into a hidden file beside it, then renamed
    over it (so Ctrl-C or a full disk leaves the old file as it was). Without `overwrite`, a
    file that appeared at `path` meanwhile is kept and refused."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        if not overwrite:
            try:
                os.link(temporary, path)  # fails, atomically, when path exists
                return
            except FileExistsError:
                raise _html_exists(path) from None
            except OSError:  # a filesystem without hard links: check, then rename
                if path.exists():
                    raise _html_exists(path) from None
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _html_exists(path: Path) -> UsageError:
    return UsageError(f"{path} exists; pass --overwrite to replace it, or choose another "
                      f"--html FILE. Received: --html {path}")


def _model_name(path: Path) -> tuple[str, str | None]:
    """What the viewer shows as the model: an export's name and version (its model folder and
    version folder), or a run folder's path below its runs folder ("demo/1")."""
    folder = (path.parent if path.suffix == ".keras" else path).resolve()
    if (folder / MANIFEST_FILENAME).is_file() and ascii_digits(folder.name):
        return folder.parent.name, folder.name
    if ascii_digits(folder.name):  # runs/NAME/<n>, as train and the demo number them
        return f"{folder.parent.name}/{folder.name}", None
    return folder.name, None
