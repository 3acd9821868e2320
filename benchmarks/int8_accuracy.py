"""Does int8 keep the answers? Accuracy on the demo task, fp32 against int8, in onnxruntime.

Random weights say nothing about accuracy, so this trains a small classifier on keras_attn's
reference task ("which noun does 'it' refer to?"), exports it with `export.export_model`, and
scores the files it shipped (and the same graph variants as the throughput benchmark,
quantized the same way) in onnxruntime on held-out sentences. The export is given 512
held-out sentences as representative ids (what `keras-attn train` keeps), so its int8 file
is calibrated and checked on text; the record keeps the export's own int8 check: argmax
agreement with Keras on those ids, and the row-independence check.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras

import keras_attn as ka
from benchmarks import onnx_paths
from export import export_model
from export.artifact.manifest import INT8_FILENAME
from export.artifact.tokenizer import train_tokenizer
from keras_attn.data.reference_task import make_reference_task

DEMO = {"max_len": 32, "d_model": 32, "num_heads": 2, "ff_dim": 64, "num_layers": 2}


def int8_accuracy(folder: Path, graphs: tuple[str, ...], train_examples: int = 4000,
                  test_examples: int = 2000, epochs: int = 12, seed: int = 0) -> dict:
    """Trains the demo classifier, then scores Keras, fp32 and int8 onnxruntime on held-out data.

    Args:
        folder: where the export and the ONNX files go.
        graphs: the `onnx_paths.GRAPHS` variants to quantize and score.
        train_examples, test_examples, epochs: the size of the run.

    Returns:
        {"keras": %, "<graph> fp32": %, "<graph> int8": %, ..., "setup": description,
         "export_int8": the export's manifest entry for model.int8.onnx}.
    """
    keras.utils.set_random_seed(seed)
    train = make_reference_task(train_examples, seed=seed)
    test = make_reference_task(test_examples, seed=seed + 1)
    tokenizer = train_tokenizer(train.texts, model="word", vocab_size=1000)
    max_len = DEMO["max_len"]
    x_train = tokenizer.encode_batch(train.texts, max_len)
    x_test = tokenizer.encode_batch(test.texts, max_len)
    held_out = make_reference_task(512, seed=seed + 2)  # neither trained nor scored on
    representative_ids = tokenizer.encode_batch(held_out.texts, max_len)
    config = ka.ModelConfig(vocab_size=tokenizer.vocab_size, num_classes=2, **DEMO)
    model = ka.build_classifier(config)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, train.labels, batch_size=32, epochs=epochs, verbose=0)
    _, keras_accuracy = model.evaluate(x_test, test.labels, batch_size=256, verbose=0)

    with warnings.catch_warnings():  # an int8 file left out is reported below
        warnings.simplefilter("ignore", RuntimeWarning)
        exported = export_model(model, folder / "demo", representative_ids=representative_ids)
    written = onnx_paths.write_graphs(exported.path, folder, names=graphs)
    int8 = onnx_paths.int8_graphs(exported.path, written, folder, graphs)
    scores = {"keras": 100.0 * keras_accuracy}
    for name, graph in written.items():
        for precision, path in (("fp32", graph["path"]), ("int8", int8[name]["path"])):
            sess = onnx_paths.session(path)
            scores[f"{name} {precision}"] = onnx_paths.accuracy(sess, x_test, test.labels)
    scores["setup"] = (f"reference task, {train_examples} train / {test_examples} held-out "
                       f"sentences, d_model {DEMO['d_model']}, {DEMO['num_heads']} heads, ff "
                       f"{DEMO['ff_dim']}, {DEMO['num_layers']} blocks, max_len {max_len}, "
                       f"AdamW 3e-3, {epochs} epochs")
    scores["export_int8"] = exported.onnxruntime_files[INT8_FILENAME]
    return scores
