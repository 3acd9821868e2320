"""Does the classifier's readout make "it" attend to its referent? (issue 20)

Trains the demo's classifier (`keras_attn.cli.demo.DEMO_SETTINGS`: 2 blocks, d_model 32, the
word tokenizer, 40 epochs at most, early stopping) on the reference task once per readout
(`ModelConfig.pooling`: "mean", "first", and "token" at the id of "it"), from the same seed and
split, then prints each model's held-out accuracy and the attention from "it" onto its referent
(`keras_attn.evaluation.referent`) over 1,000 held-out sentences.

    python -m benchmarks.readout_referent [--seed 0] [--examples 5000]

A figure, not a speed: no timing is compared, so it needs no reference run.
"""

from __future__ import annotations

import argparse
import dataclasses


def measure(seed: int, examples: int) -> list[dict]:
    import keras
    import numpy as np

    import keras_attn as ka
    from export.artifact.tokenizer import train_tokenizer
    from keras_attn.cli.demo import DEMO_SETTINGS
    from keras_attn.data.records import encode_texts, split_train_validation
    from keras_attn.data.reference_task import make_reference_task
    from keras_attn.evaluation.referent import referent_attention

    settings = DEMO_SETTINGS
    train, validation = split_train_validation(make_reference_task(examples, seed=seed), 0.2,
                                               seed=seed)
    test = make_reference_task(1000, seed=seed + 1)
    tokenizer = train_tokenizer(train.texts, model=settings.tokenizer,
                                vocab_size=settings.vocab_size)
    x, v, t = (encode_texts(tokenizer, d.texts, settings.max_len) for d in (train, validation,
                                                                           test))
    it_id = int(encode_texts(tokenizer, ["it"], 2)[0, 0])
    results = []
    for pooling in ("mean", "first", "token"):
        keras.utils.set_random_seed(seed)
        config = dataclasses.replace(
            settings.model_config(tokenizer.vocab_size, 2), pooling=pooling,
            readout_token_id=it_id if pooling == "token" else None)
        model = ka.build_classifier(config)
        model.compile(keras.optimizers.Adam(settings.learning_rate),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(x, train.labels, validation_data=(v, validation.labels),
                            epochs=settings.epochs, batch_size=settings.batch_size, verbose=0,
                            callbacks=[keras.callbacks.EarlyStopping(
                                patience=settings.patience, restore_best_weights=True)])
        accuracy = float(np.mean(np.argmax(model.predict(t, verbose=0), -1) == test.labels))
        figure = referent_attention(model, tokenizer, test.texts)
        results.append({"pooling": pooling, "epochs": len(history.history["loss"]),
                        "accuracy": accuracy, "referent": figure.summary()})
        print(f"{pooling:<6} held-out accuracy {accuracy:.3f} after "
              f"{len(history.history['loss'])} epochs; {figure.summary()}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args()
    measure(args.seed, args.examples)


if __name__ == "__main__":
    main()
