"""A served model: the numbered version folders of `saved_models/NAME/`, as TF Serving sees them.

`ModelRoot` serves the highest version by default and any present version on request. It looks
at the folder on every request (one directory listing), so a version exported while the server
runs is served from its next request on, without a restart; a version folder appears under its
number only once complete (see `export.artifact.versions`). Each version is loaded once, on first
use,
as an `export.runtime.predictor.Predictor` behind its own `DynamicBatcher`, with the export's own
`tokenizer.json` when it has one.

A version that cannot be loaded (a folder still being copied in, `gsutil cp -r` or `kubectl cp`
style; a file that differs from its manifest; a `tokenizer.json` another tool changed) is not
served, as TF Serving skips a version it cannot load: the default goes to the highest version
that loads, a request naming it gets 503 with the reason, the reason is logged once, and the
version is tried again when its folder changes.

`ServedVersion.infer` is what both protocols call: token ids or texts in, logits out, plus
labels and probabilities for classifiers. NumPy, onnxruntime, `tokenizers` and the standard
library only: no TensorFlow, no Keras.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export import runtime
from export.artifact.manifest import TOKENIZER_FILENAME, check_manifest
from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from export.artifact.token_ids import check_token_ids
from export.artifact.versions import ascii_digits, existing_versions
from export.serving.batching import DynamicBatcher

TEXT_INPUT = "text"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"


class NotFoundError(LookupError):
    """An unknown model name or version: the protocols answer 404."""


class BadRequestError(ValueError):
    """A request the server cannot read (beyond `export.artifact.token_ids`' checks): 400."""


class UnavailableError(RuntimeError):
    """A version present on disk that cannot be loaded now (the message says why): 503."""


# uvicorn's own logger, so the reason shows where the server's other lines do.
LOG = logging.getLogger("uvicorn.error")


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """How each version batches: see `export.serving.batching.DynamicBatcher`."""

    max_batch_size: int = 32
    max_queue_delay_ms: float = 0.0
    threads: int = 2


class ServedVersion:
    """One loaded version: a predictor, its batcher and its tokenizer (or None).

    Args:
        version: the version number.
        folder: the version folder.
        settings: batching settings.
        on_batch: what its `DynamicBatcher` calls as each batch starts (the server's metrics).
    """

    def __init__(self, version: int, folder: Path, settings: BatchSettings,
                 on_batch: Callable[[int, list[float]], None] | None = None) -> None:
        self.version = version
        self.folder = folder
        # Files missing or changed since export: a folder still being copied in, or edited.
        # (A file the manifest does not list is harmless and is not served.)
        problems = [line for line in check_manifest(folder)
                    if not line.endswith("not listed in the manifest")]
        if problems:
            raise ValueError(f"the folder does not match its manifest: {'; '.join(problems[:5])}"
                             + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
        self.predictor = runtime.load(folder)
        self.batcher = DynamicBatcher(self.predictor.run, settings.max_batch_size,
                                      settings.max_queue_delay_ms, settings.threads, on_batch)
        # Loaded on their first request (`_loaded`): attention.onnx's session for /attention,
        # a language model's decoder step for /generate.
        self._sessions: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        tokenizer_file = folder / TOKENIZER_FILENAME
        self.tokenizer = None
        if tokenizer_file.is_file():
            from export.artifact.tokenizer import load_tokenizer

            self.tokenizer = load_tokenizer(tokenizer_file)

    @property
    def input_names(self) -> list[str]:
        return [INPUT_NAME] + ([TEXT_INPUT] if self.tokenizer is not None else [])

    @property
    def output_names(self) -> list[str]:
        if self.predictor.task == "classifier":
            return [OUTPUT_NAME, LABEL_OUTPUT, PROBABILITIES_OUTPUT]
        return [OUTPUT_NAME]

    def token_ids(self, inputs: dict[str, Any]) -> np.ndarray:
        """The checked int32 `[batch, length]` ids of a request's inputs: `token_ids`, or
        `text` (a list of str, tokenized with the export's tokenizer.json).

        Raises:
            BadRequestError: not exactly one of the two inputs, an unknown input, `text` for an
                export without tokenizer, a text with no token, or ids that
                `export.artifact.token_ids.check_token_ids` refuses (with its message).
        """
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown or len(inputs) != 1:
            raise BadRequestError(
                f"Expected exactly one input, one of {self.input_names}. Received: "
                f"{sorted(inputs) or 'no input'}"
                + (f" ({unknown} unknown)" if unknown else ""))
        if INPUT_NAME in inputs:
            return self._checked(inputs[INPUT_NAME])
        texts = inputs[TEXT_INPUT]
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str)
                                                                for text in texts):
            raise BadRequestError("text must be a non-empty list of strings. Received: "
                                  f"{describe(texts)}")
        try:
            ids = self.tokenizer.encode_batch(list(texts), self.predictor.max_len)
        except ValueError as error:  # a lone surrogate: JSON allows it, Unicode does not
            raise BadRequestError(str(error)) from None
        empty = np.flatnonzero(~ids.any(axis=1))
        if empty.size:
            raise BadRequestError(f"Every text needs at least one token after tokenization. "
                                  f"Received: text {int(empty[0])} = {texts[empty[0]]!r}")
        return self._checked(ids)

    def _checked(self, token_ids: Any) -> np.ndarray:
        """`export.artifact.token_ids.check_token_ids`, its ValueError (and message) a
        BadRequestError."""
        try:
            return check_token_ids(token_ids, vocab_size=self.predictor.vocab_size,
                                   max_len=self.predictor.max_len)
        except ValueError as error:
            raise BadRequestError(str(error)) from None

    async def infer(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Runs one request through the batcher.

        Args:
            inputs: `{"token_ids": ints [batch, length] or id lists}` or
                `{"text": [str, ...]}`.

        Returns:
            `{"logits": float32 [batch, num_classes]}` plus, for classifiers, `"label"`
            (object array of class names `[batch]`) and `"probabilities"` (float32
            `[batch, num_classes]`, softmax of the logits); a language model's logits are
            `[batch, length, vocab_size]`.

        Raises:
            BadRequestError: see `token_ids`.
        """
        # tokenizing a long text takes seconds: off the event loop, as parsing is
        ids = await asyncio.to_thread(self.token_ids, inputs)
        logits = await self.batcher.submit(ids)
        outputs = {OUTPUT_NAME: logits}
        if self.predictor.task == "classifier":
            probabilities, outputs[LABEL_OUTPUT] = self.predictor.classify(logits)
            outputs[PROBABILITIES_OUTPUT] = probabilities.astype(np.float32)  # FP32 on the wire
        return outputs

    def attention(self, text: str) -> tuple[list[str], list[np.ndarray]]:
        """The tokens of one text and each block's attention weights `[heads, n, n]` over
        them, from the version's attention.onnx (`export.runtime.attention`).

        Raises:
            BadRequestError: as `token_ids` raises it for `{"text": [text]}`, or the version
                has no tokenizer.json.
            NotFoundError: the version has no attention.onnx (the message says why).
            UnavailableError: its attention.onnx cannot be loaded (503; tried again on the
                next request).
        """
        if self.tokenizer is None:
            raise BadRequestError(f"Version {self.version} has no {TOKENIZER_FILENAME}, and "
                                  "attention is asked for with a text; export the model with "
                                  "its tokenizer. Received: a text")
        ids = self.token_ids({TEXT_INPUT: [text]})
        from export.runtime.attention import load_attention

        maps = self._loaded("attention.onnx", load_attention).maps(ids)
        return self.tokenizer.tokens(ids[0]), [weights[0] for weights in maps]

    def decoder_step(self):
        """A language model's decoding step (`export.runtime.generation.load_step`: the
        exported decoder with its key/value cache, decoder.optimized.onnx when shipped, else
        the full model recomputed), loaded once and shared by every stream (onnxruntime
        sessions may run from several threads; each stream keeps its own cache).

        Raises:
            BadRequestError: the version is not a language model, or has no tokenizer.json.
            NotFoundError, UnavailableError: as `_loaded` (its decoder is missing, or cannot
                be loaded).
        """
        if self.predictor.task != "language_model" or self.tokenizer is None:
            raise BadRequestError(
                f"Generation serves language models exported with their tokenizer; version "
                f"{self.version} is a {self.predictor.task}"
                + ("" if self.tokenizer is not None else f" without {TOKENIZER_FILENAME}")
                + ". Ask /infer for a classifier's answers. Received: a generate request")
        from export.runtime.generation import load_step

        return self._loaded("decoder", load_step)

    def _loaded(self, what: str, load: Callable[[Path], Any]) -> Any:
        """`load(self.folder)`, run once (under a lock: concurrent first requests load it
        once) and kept: attention.onnx's session, the decoder step.

        Raises:
            NotFoundError: the file is not in the version (FileNotFoundError; its message).
            UnavailableError: it cannot be loaded (503; tried again on the next request).
        """
        with self._load_lock:
            if what not in self._sessions:
                try:
                    self._sessions[what] = load(self.folder)
                except FileNotFoundError as error:
                    raise NotFoundError(str(error)) from None
                except Exception as error:  # noqa: BLE001 (a file onnxruntime cannot load)
                    raise UnavailableError(
                        f"The {what} of version {self.version} cannot be loaded: "
                        f"{type(error).__name__}: {error}") from None
        return self._sessions[what]

class ModelRoot:
    """The versions under one model folder (`saved_models/NAME/`); the model's name is NAME.

    Args:
        root: the model folder, holding numbered version folders.
        settings: batching settings for every version.
        name: the model's name in URLs; default the folder's name.

    Raises:
        FileNotFoundError: `root` is not a folder holding at least one numbered version.
    """

    def __init__(self, root: str | os.PathLike, settings: BatchSettings | None = None,
                 name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or self.root.resolve().name
        self.settings = settings or BatchSettings()
        if not existing_versions(self.root):
            raise FileNotFoundError(
                f"Expected a model folder holding numbered version folders (1/, 2/, ...), "
                f"e.g. saved_models/demo. Received: {str(root)!r}"
                + ("" if self.root.is_dir() else ", which is not a folder"))
        self._loaded: dict[int, ServedVersion] = {}
        self._retired: list[ServedVersion] = []  # removed folders; closed with the server
        # version -> (the folder's files when loading failed, why): tried again on a change
        self._failed: dict[int, tuple[tuple, str]] = {}
        self._lock = threading.Lock()
        # export.serving.metrics.ServerMetrics, or None: told of loads, removals and batches
        self.metrics = None

    def versions(self) -> list[int]:
        """The version numbers present now, ascending."""
        return existing_versions(self.root)

    def check_name(self, name: str) -> None:
        """Raises NotFoundError unless `name` is this model's name."""
        if name != self.name:
            raise NotFoundError(f"Model {name!r} is not served here; this server serves "
                                f"{self.name!r}. Received: model name {name!r}")

    def get(self, name: str, version: str | int | None = None) -> ServedVersion:
        """The loaded version `version` (default: the highest present that loads) of model
        `name`.

        Raises:
            NotFoundError: another model name, or a version that is not present.
            UnavailableError: the version asked for cannot be loaded, or (default) none can.
        """
        self.check_name(name)
        present = self.versions()
        if version is None:
            if not present:
                raise NotFoundError(f"Model {name!r} has no version left in {str(self.root)!r}")
            reasons = []
            for number in reversed(present):
                try:
                    return self._load(number, present)
                except UnavailableError as error:
                    reasons.append(str(error))
            raise UnavailableError(f"No version of model {name!r} can be loaded: "
                                   + " ".join(reasons))
        text = str(version)
        if not ascii_digits(text) or int(text) not in present:
            raise NotFoundError(f"Model {name!r} has no version {text!r}; versions present: "
                                f"{present}. Received: version {text!r}")
        return self._load(int(text), present)

    def state(self, number: int) -> str | None:
        """Why version `number` could not be loaded when last tried (None: loaded, or not
        tried since its folder last changed)."""
        failed = self._failed.get(number)
        if failed is None or failed[0] != _files_of(self.root / str(number)):
            return None
        return failed[1]

    def _load(self, number: int, present: list[int]) -> ServedVersion:
        with self._lock:
            for gone in set(self._loaded) - set(present):  # a version folder was removed
                self._retired.append(self._loaded.pop(gone))
                if self.metrics is not None:
                    self.metrics.version_removed(gone)
            if number in self._loaded:
                return self._loaded[number]
            folder = self.root / str(number)
            files = _files_of(folder)
            failed = self._failed.get(number)
            if failed is not None and failed[0] == files:
                raise UnavailableError(failed[1])
            try:
                self._loaded[number] = ServedVersion(
                    number, folder, self.settings,
                    None if self.metrics is None else self.metrics.batch_observer(number))
            except Exception as error:  # noqa: BLE001 (any load failure: not served, said why)
                reason = (f"Version {number} of model {self.name!r} is not available: "
                          f"{type(error).__name__}: {error}")
                self._failed[number] = (files, reason)
                LOG.warning("%s (tried again once its folder changes)", reason)
                raise UnavailableError(reason) from None
            self._failed.pop(number, None)
            if self.metrics is not None:
                self.metrics.version_loaded(number)
            return self._loaded[number]

    async def close(self) -> None:
        """Finishes every queued request of every loaded version."""
        for served in [*self._loaded.values(), *self._retired]:
            await served.batcher.close()


def _files_of(folder: Path) -> tuple:
    """(relative path, size, mtime) of every file below `folder`: what changes while a copy
    fills it in."""
    try:
        return tuple(sorted((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns)
                            for path in folder.rglob("*")
                            if path.is_file() and (stat := path.stat())))
    except OSError:  # removed while being listed
        return ()


def parsed_json(body: bytes) -> Any:
    """The JSON value of a request body, which every route's parser starts from.

    Raises:
        BadRequestError: the body is not UTF-8 (a leading byte order mark is allowed), or not
            JSON (the message gives the parser's reason).
    """
    try:
        text = body.decode("utf-8-sig")  # not json.loads(bytes), which also takes UTF-16/32
    except UnicodeDecodeError as error:
        raise BadRequestError(f"The request body must be JSON in UTF-8. Received: bytes that "
                              f"are not UTF-8 (byte {error.start}: {error.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadRequestError(f"The request body must be JSON. Received: malformed JSON "
                              f"({error})") from None


def describe(value: Any) -> str:
    """A request's value as a 400 message names it: its type, then its repr, cut at 80
    characters."""
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"
