"""Attention is what solves the reference task: the classifier learns it, the ablation cannot."""

import keras
import pytest

import keras_attn as ka
from export.artifact.tokenizer import train_tokenizer
from keras_attn.data.records import split_train_validation
from keras_attn.data.reference_task import make_reference_task

MAX_LEN = 32


class StopAtAccuracy(keras.callbacks.Callback):
    """Stops training once held-out accuracy reaches `target` (keeps the test short)."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] >= self.target:
            self.model.stop_training = True


@pytest.fixture(scope="module")
def task():
    """Train and validation (for stopping) from one seed; the held-out test from another."""
    train, validation = split_train_validation(make_reference_task(4500, seed=0), 0.1, seed=0)
    test = make_reference_task(1000, seed=1)
    tokenizer = train_tokenizer(train.texts, model="word", vocab_size=200)
    encode = lambda data: (tokenizer.encode_batch(data.texts, MAX_LEN), data.labels)  # noqa: E731
    return tokenizer, encode(train), encode(validation), encode(test)


def without_attention(config):
    """The classifier with every attention sub-layer removed; all else is the same."""
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = ka.PaddingMask()(token_ids)
    x = ka.PositionalEmbedding(config.vocab_size, config.max_len, config.d_model)(token_ids)
    for _ in range(config.num_layers):
        x = keras.layers.LayerNormalization()(x + ka.FeedForward(config.ff_dim)(x))
    pooled = ka.MaskedMeanPooling()(x, padding_mask=padding_mask)
    return keras.Model(token_ids, keras.layers.Dense(config.num_classes)(pooled))


def held_out_accuracy(model, task, epochs=30):
    """Trains (stopping early once validation accuracy reaches 0.99); held-out accuracy."""
    _, (x, y), validation, test = task
    model.compile(optimizer=keras.optimizers.AdamW(3e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    model.fit(x, y, validation_data=validation, epochs=epochs, batch_size=64, verbose=0,
              callbacks=[StopAtAccuracy(0.99)])
    return model.evaluate(*test, verbose=0, return_dict=True)["accuracy"]


def config_for(tokenizer):
    return ka.ModelConfig(vocab_size=tokenizer.vocab_size, max_len=MAX_LEN, d_model=32,
                          num_heads=2, ff_dim=64, num_layers=2, num_classes=2)


def test_attention_solves_the_reference_task(task):
    assert held_out_accuracy(ka.build_classifier(config_for(task[0])), task) >= 0.95


def test_without_attention_the_same_model_stays_near_chance(task):
    assert held_out_accuracy(without_attention(config_for(task[0])), task) < 0.6
