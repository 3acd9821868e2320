"""Does int8 keep the answers? Accuracy on the demo task, fp32 against int8, in onnxruntime.

Random weights say nothing about accuracy, so this trains a small classifier on keras_attn's
reference task ("which noun does 'it' refer to?"), exports it to ONNX, applies the same graph
rewrite and the same dynamic int8 quantization as the throughput benchmark, and scores the
fp32 and int8 sessions on held-out sentences.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import onnx

import keras_attn as ka
from benchmarks import onnx_paths
from export.onnx import convert_to_onnx
from export.tokenizer import Tokenizer
from keras_attn.tasks import make_reference_task

DEMO = {"max_len": 32, "d_model": 32, "num_heads": 2, "ff_dim": 64, "num_layers": 2}


def int8_accuracy(folder: Path, graphs: tuple[str, ...], train_examples: int = 4000,
                  test_examples: int = 2000, epochs: int = 12, seed: int = 0) -> dict:
    """Trains the demo classifier, then scores Keras, fp32 and int8 onnxruntime on held-out data.

    Args:
        folder: where the ONNX files go.
        graphs: the `onnx_paths.GRAPHS` variants to quantize and score.
        train_examples, test_examples, epochs: the size of the run.

    Returns:
        {"keras": %, "<graph> fp32": %, "<graph> int8": %, ..., "setup": description}.
    """
    keras.utils.set_random_seed(seed)
    train = make_reference_task(train_examples, seed=seed)
    test = make_reference_task(test_examples, seed=seed + 1)
    tokenizer = Tokenizer.fit(train.texts, max_vocab=1000)
    max_len = DEMO["max_len"]
    x_train = tokenizer.encode_batch(train.texts, max_len)
    x_test = tokenizer.encode_batch(test.texts, max_len)
    config = ka.ModelConfig(vocab_size=tokenizer.vocab_size, num_classes=2, **DEMO)
    model = ka.build_classifier(config)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, train.labels, batch_size=32, epochs=epochs, verbose=0)
    _, keras_accuracy = model.evaluate(x_test, test.labels, batch_size=256, verbose=0)

    plain = folder / "demo.onnx"
    onnx.save(convert_to_onnx(model, "classifier", {}), os.fspath(plain))
    written = onnx_paths.write_graphs(plain, folder, names=graphs)
    scores = {"keras": 100.0 * keras_accuracy}
    for name, graph in written.items():
        int8 = onnx_paths.quantize(graph["path"], folder / f"demo_{name.replace('+', '_')}"
                                                           f"_int8.onnx")
        for precision, path in (("fp32", graph["path"]), ("int8", int8)):
            sess = onnx_paths.session(path)
            scores[f"{name} {precision}"] = onnx_paths.accuracy(sess, x_test, test.labels)
    scores["setup"] = (f"reference task, {train_examples} train / {test_examples} held-out "
                       f"sentences, d_model {DEMO['d_model']}, {DEMO['num_heads']} heads, ff "
                       f"{DEMO['ff_dim']}, {DEMO['num_layers']} blocks, max_len {max_len}, "
                       f"AdamW 3e-3, {epochs} epochs")
    return scores
