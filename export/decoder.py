"""The decoder step of a language model export: one ONNX file with a key/value cache.

Beside `model.onnx` (full-sequence logits), a language-model export holds `decoder.onnx`:

    inputs   token_ids                    int64   [batch, new]
             position_ids                 int64   [batch, new]   absolute positions
             past_key_values.<i>.key      float32 [batch, heads, past, head_dim]  one per block
             past_key_values.<i>.value    float32 [batch, heads, past, head_dim]
    outputs  logits                       float32 [batch, new, vocab_size]
             present.<i>.key              float32 [batch, heads, past + new, head_dim]
             present.<i>.value            float32 [batch, heads, past + new, head_dim]

(the names Hugging Face's ONNX decoders use). `past` may be 0: the first step reads the whole
prompt. The graph is traced from `keras_attn.generation.CachedDecoder` (the same layers as the
Keras model) and converted by tf2onnx.

Runtime side (`CachedStep`): NumPy + onnxruntime only. Export side (`export_decoder`): imports
TensorFlow and tf2onnx inside the function.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from export.metadata import decode_metadata

DECODER_FILENAME = "decoder.onnx"
TOKEN_IDS, POSITION_IDS, LOGITS = "token_ids", "position_ids", "logits"


def past_names(layer: int) -> tuple[str, str]:
    """The input names of block `layer`'s past keys and values."""
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    """The output names of block `layer`'s present keys and values."""
    return f"present.{layer}.key", f"present.{layer}.value"


class CachedStep:
    """One decoding step on onnxruntime over `decoder.onnx`; a step of
    `export.generation.generate_ids` (the cache: one (key, value) pair of NumPy arrays
    `[batch, heads, past, head_dim]` per block).

    Args:
        path: the decoder ONNX file.
        threads: intra-op threads.
        optimization: an `export.runtime.OPTIMIZATION_LEVELS` name.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1,
                 optimization: str = "all") -> None:
        from export.runtime import OPTIMIZATION_LEVELS

        options = ort.SessionOptions()
        options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
        config = self.metadata["config"]
        self.max_len, self.vocab_size = self.metadata["max_len"], self.metadata["vocab_size"]
        self.num_layers, self.num_heads = config["num_layers"], config["num_heads"]
        self.head_dim = config["d_model"] // config["num_heads"]
        self.output_names = [LOGITS] + [name for layer in range(self.num_layers)
                                        for name in present_names(layer)]

    def empty_cache(self, batch: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """No past yet: one (key, value) pair of float32 `[batch, heads, 0, head_dim]`."""
        empty = np.zeros((batch, self.num_heads, 0, self.head_dim), dtype=np.float32)
        return [(empty, empty) for _ in range(self.num_layers)]

    def __call__(self, token_ids, position_ids, cache):
        """(logits float32 `[batch, new, vocab]`, the present keys and values per block).

        Raises:
            ValueError: a position at or beyond max_len, or an id outside [0, vocab_size).
        """
        token_ids = np.asarray(token_ids, dtype=np.int64)
        position_ids = np.asarray(position_ids, dtype=np.int64)
        if position_ids.size and (position_ids.min() < 0 or position_ids.max() >= self.max_len):
            raise ValueError(f"Positions must lie in [0, max_len={self.max_len}). Received: "
                             f"{position_ids.min()}..{position_ids.max()}")
        if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= self.vocab_size):
            raise ValueError(f"Token ids must lie in [0, {self.vocab_size}). Received: "
                             f"{token_ids.min()}..{token_ids.max()}")
        feed = {TOKEN_IDS: token_ids, POSITION_IDS: position_ids}
        for layer, (key, value) in enumerate(cache):
            feed.update(zip(past_names(layer), (key, value), strict=True))
        logits, *present = self.session.run(self.output_names, feed)
        return logits, list(zip(present[0::2], present[1::2], strict=True))


# --- Export side: TensorFlow and tf2onnx are imported inside these functions. ---------------

# Named dims of the decoder's endpoints, by axis; heads and head_dim stay static.
BATCH, NEW, PAST, TOTAL = "batch", "new", "past", "past_plus_new"


def convert_decoder(model, metadata: dict, opset: int):
    """Traces `keras_attn.generation.CachedDecoder` over `model` and converts it to ONNX.

    Args:
        model: a float32 keras_attn language model.
        metadata: string key/values stored as the model's `metadata_props` (those of
            model.onnx: `CachedStep` reads max_len, vocab_size and the config from them).
        opset: the ONNX opset.

    Returns:
        The checked `onnx.ModelProto`, with the inputs and outputs of the module docstring.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    from keras_attn.generation import CachedDecoder

    decoder = CachedDecoder(model)
    layers, heads, head_dim = len(decoder.blocks), decoder.num_heads, decoder.head_dim
    specs = [tf.TensorSpec([None, None], tf.int64, name=TOKEN_IDS),
             tf.TensorSpec([None, None], tf.int64, name=POSITION_IDS)]
    for layer in range(layers):
        specs += [tf.TensorSpec([None, heads, None, head_dim], tf.float32, name=name)
                  for name in past_names(layer)]

    def step(token_ids, position_ids, *past):
        # The Keras cache of a block is one [batch, 2, heads, past, head_dim] tensor.
        cache = [tf.stack(past[2 * layer:2 * layer + 2], axis=1) for layer in range(layers)]
        logits, present = decoder._step(token_ids, position_ids, cache)
        outputs = {LOGITS: logits}
        for layer, block_cache in enumerate(present):
            key, value = present_names(layer)
            outputs[key], outputs[value] = block_cache[:, 0], block_cache[:, 1]
        return outputs

    function = tf.function(step, input_signature=specs)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=opset)
    names = {TOKEN_IDS: {0: BATCH, 1: NEW}, POSITION_IDS: {0: BATCH, 1: NEW},
             LOGITS: {0: BATCH, 1: NEW}}
    for layer in range(layers):
        names.update({name: {0: BATCH, 2: PAST} for name in past_names(layer)})
        names.update({name: {0: BATCH, 2: TOTAL} for name in present_names(layer)})
    _name_dims(proto, names)
    proto.graph.name = "keras_attn_decoder_step"
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _name_dims(proto, names: dict[str, dict[int, str]]) -> None:
    """Renames the symbolic dims (tf2onnx's `unk__N`) of the graph's endpoints, axis by axis,
    everywhere in the graph; static dims are left as they are.

    Raises:
        ValueError: a named endpoint is missing, or an `unk__` dim is left on an endpoint.
    """
    graph = proto.graph
    endpoints = {value.name: value for value in [*graph.input, *graph.output]}
    missing = sorted(set(names) - set(endpoints))
    if missing:
        raise ValueError(f"The converted decoder has no inputs/outputs {missing}. Received: "
                         f"{sorted(endpoints)}")
    renamed: dict[str, str] = {}  # tf2onnx's symbol -> the first name given to it
    for value_name, axes in names.items():
        dims = endpoints[value_name].type.tensor_type.shape.dim
        for axis, new_name in axes.items():
            if dims[axis].dim_param.startswith("unk__"):
                renamed.setdefault(dims[axis].dim_param, new_name)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]
    for value_name, axes in names.items():  # an endpoint's own names win over a shared symbol
        dims = endpoints[value_name].type.tensor_type.shape.dim
        for axis, new_name in axes.items():
            if not dims[axis].dim_value:
                dims[axis].dim_param = new_name
    leftover = [f"{value.name}[{index}]={dim.dim_param}" for value in endpoints.values()
                for index, dim in enumerate(value.type.tensor_type.shape.dim)
                if dim.dim_param.startswith("unk__")]
    if leftover:
        raise ValueError(f"Unnamed symbolic dims remain on the decoder's endpoints: {leftover}")


def parity_prompts(max_len: int, vocab_size: int, seed: int = 0) -> list[list[int]]:
    """Prompts of 1, max_len // 2 and max_len - 1 random non-padding ids (fewer when max_len
    is small): decoding from each reaches max_len, so every position is checked."""
    rng = np.random.default_rng(seed)
    lengths = sorted({1, max(1, max_len // 2), max(1, max_len - 1)})
    return [rng.integers(1, vocab_size, size=length).tolist() for length in lengths]


class _Recompute:
    """Wraps a cached step: at every step its logits are compared with the full model run on
    the whole sequence so far; the largest absolute difference is kept."""

    def __init__(self, step, full_logits):
        self.step, self.full_logits = step, full_logits
        self.sequence = np.zeros((1, 0), dtype=np.int64)
        self.worst, self.steps = 0.0, 0

    def __call__(self, token_ids, position_ids, cache):
        logits, cache = self.step(token_ids, position_ids, cache)
        self.sequence = np.concatenate([self.sequence, token_ids], axis=1)
        full = self.full_logits(self.sequence)[:, -token_ids.shape[1]:]
        self.worst = max(self.worst, float(np.max(np.abs(np.asarray(logits) - full))))
        self.steps += 1
        return logits, cache


def check_decoder_parity(model, onnx_step: CachedStep, tolerance: float) -> dict:
    """Parity at every decoding step, for greedy decoding from `parity_prompts` to max_len.

    Checks, against a full recompute of the sequence so far by the Keras model: the Keras
    cached step (`keras_attn.generation.CachedDecoder`) and the ONNX decoder step; and that
    greedy decoding gives the same tokens in Keras and in onnxruntime.

    Args:
        model: the Keras language model (float32).
        onnx_step: a `CachedStep` over the exported decoder.
        tolerance: the largest absolute logit difference that passes.

    Returns:
        A JSON-ready dict: "keras cache vs recompute" and "onnx decoder vs recompute" (max abs
        diff), "steps", "prompts", "greedy_tokens_equal", "tolerance", "ok".
    """
    import tensorflow as tf

    from export.generation import generate_ids
    from keras_attn.generation import CachedDecoder

    # One graph for the recompute: eagerly, each call of the model costs ~100 ms.
    recompute = tf.function(lambda ids: model(ids, training=False),
                            input_signature=[tf.TensorSpec([None, None], tf.int64)])

    def full_logits(ids):
        return recompute(ids).numpy()

    keras_decoder = CachedDecoder(model)
    max_len, vocab_size = keras_decoder.max_len, keras_decoder.vocab_size
    worst = {"keras cache vs recompute": 0.0, "onnx decoder vs recompute": 0.0}
    steps, equal = 0, True
    for prompt in parity_prompts(max_len, vocab_size):
        tokens = []
        for name, step, cache in (
                ("keras cache vs recompute", keras_decoder.step, keras_decoder.empty_cache()),
                ("onnx decoder vs recompute", onnx_step, onnx_step.empty_cache())):
            checked = _Recompute(step, full_logits)
            result = generate_ids(checked, cache, prompt, max_len, None, max_len)
            worst[name] = max(worst[name], checked.worst)
            steps += checked.steps
            tokens.append(result.new_ids)
        equal = equal and tokens[0] == tokens[1]
    ok = equal and all(value <= tolerance for value in worst.values())
    return {**worst, "steps": steps, "prompts": len(parity_prompts(max_len, vocab_size)),
            "greedy_tokens_equal": equal, "tolerance": tolerance, "ok": ok}


def decoder_summary(report: dict) -> str:
    """The decoder's parity in two lines, for export and verify output."""
    return (f"decoder.onnx: {report['steps']} cached steps from {report['prompts']} prompts to "
            f"max_len, vs full recompute: keras cache {report['keras cache vs recompute']:.2e}, "
            f"onnx decoder {report['onnx decoder vs recompute']:.2e} (tolerance "
            f"{report['tolerance']:.0e}); greedy tokens Keras == onnxruntime: "
            f"{report['greedy_tokens_equal']}; {'pass' if report['ok'] else 'FAIL'}")


class DecoderParityError(RuntimeError):
    """The exported decoder step disagrees with a full recompute in Keras."""


def write_decoder(model, folder: Path, metadata: dict, opset: int, tolerance: float) -> dict:
    """Writes `decoder.onnx` into an export's staging folder and checks it at every step.

    Returns:
        The manifest's "decoder" entry: the file, its inputs and outputs, and the parity
        report of `check_decoder_parity`.

    Raises:
        DecoderParityError: the parity check failed (the export is not written).
    """
    from export.onnx import save_onnx

    path = Path(folder) / DECODER_FILENAME
    save_onnx(convert_decoder(model, metadata, opset), path)
    step = CachedStep(path)
    report = check_decoder_parity(model, step, tolerance)
    if not report["ok"]:
        raise DecoderParityError(f"The decoder step disagrees with Keras; nothing was written. "
                                 f"{decoder_summary(report)}")
    session = step.session
    return {"file": DECODER_FILENAME,
            "inputs": {value.name: value.shape for value in session.get_inputs()},
            "outputs": {value.name: value.shape for value in session.get_outputs()},
            "parity": report}


def verify_decoder(model, version_dir: Path, tolerance: float) -> dict | None:
    """`check_decoder_parity` on an export's decoder.onnx; None when the export has none."""
    path = Path(version_dir) / DECODER_FILENAME
    if not path.is_file():
        return None
    return check_decoder_parity(model, CachedStep(path), tolerance)
