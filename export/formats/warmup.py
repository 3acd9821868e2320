"""TF Serving warm-up: `assets.extra/tf_serving_warmup_requests` in each SavedModel version.

TF Serving replays these requests when it loads a version, before the version takes traffic,
so that the first real request does not pay for graph initialization and the first run of its
kernels. The file is a TFRecord of `PredictionLog` protos (from `tensorflow-serving-api`), each
holding one `PredictRequest`: here, both signatures (`serving_default` with int32 ids,
`serving_int64` with int64 ids) at batch sizes 1 and 8, at a short length and at max_len.

Reference: https://www.tensorflow.org/tfx/serving/saved_model_warmup
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WARMUP_DIR = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
BATCH_SIZES = (1, 8)


def warmup_lengths(max_len: int) -> tuple[int, ...]:
    """The sequence lengths replayed: a short one and max_len."""
    return tuple(sorted({min(8, max_len), max_len}))


def write_warmup_requests(folder: str | os.PathLike, max_len: int, vocab_size: int,
                          signatures: dict[str, object]) -> Path:
    """Writes `<folder>/assets.extra/tf_serving_warmup_requests`.

    Args:
        folder: the SavedModel version folder.
        max_len, vocab_size: ids lie in [1, vocab_size), lengths up to max_len.
        signatures: signature name -> `tf.TensorSpec` of its `token_ids` input.

    Returns:
        The file written: one PredictionLog per signature, batch size and length.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = Path(folder) / WARMUP_DIR / WARMUP_FILENAME
    path.parent.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name, spec in signatures.items():
            for batch in BATCH_SIZES:
                for length in warmup_lengths(max_len):
                    request = predict_pb2.PredictRequest()
                    request.model_spec.signature_name = name
                    ids = rng.integers(1, vocab_size, (batch, length))
                    request.inputs[spec.name].CopyFrom(
                        tf.make_tensor_proto(ids.astype(spec.dtype.as_numpy_dtype)))
                    log = prediction_log_pb2.PredictionLog(
                        predict_log=prediction_log_pb2.PredictLog(request=request))
                    writer.write(log.SerializeToString())
    return path
