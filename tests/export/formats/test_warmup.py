"""export/formats/warmup.py: every export carries TF Serving's warm-up file, which reads back with
tensorflow-serving-api's own protos, and whose every request the SavedModel answers."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from export.artifact.manifest import check_manifest
from export.formats.savedmodel import SIGNATURES
from export.formats.warmup import BATCH_SIZES, WARMUP_DIR, WARMUP_FILENAME, warmup_lengths
from tests.export_cases import CLASSIFIER, LANGUAGE_MODEL, exported


def read_requests(folder):
    path = folder / WARMUP_DIR / WARMUP_FILENAME
    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


@pytest.mark.parametrize("case", [CLASSIFIER, LANGUAGE_MODEL])
def test_warmup_requests_read_back_and_run(case):
    _, result = exported(case)
    assert check_manifest(result.path) == []  # listed in the manifest like every file
    logs = read_requests(result.path)
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    expected = {(name, batch, length) for name in SIGNATURES for batch in BATCH_SIZES
                for length in warmup_lengths(16)}
    seen = set()
    loaded = tf.saved_model.load(str(result.path))
    for log in logs:
        request = log.predict_log.request
        name = request.model_spec.signature_name
        (input_name,) = request.inputs
        ids = tf.make_ndarray(request.inputs[input_name])
        assert input_name == "token_ids" and ids.dtype == SIGNATURES[name].dtype.as_numpy_dtype
        assert ids.min() >= 1 and ids.max() < 50  # real tokens only, inside the vocabulary
        seen.add((name, *ids.shape))
        # What TF Serving does with it on loading: call the signature.
        logits = loaded.signatures[name](token_ids=tf.constant(ids))["logits"].numpy()
        assert logits.shape[0] == ids.shape[0] and np.isfinite(logits).all()
    assert seen == expected
