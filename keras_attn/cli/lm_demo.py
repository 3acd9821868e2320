"""The demo's language model: train a tiny causal model on the built-in sentences, then continue
a prompt greedily in Keras (cached decoding) and in onnxruntime (the exported decoder step).

The two continuations must be identical: the decoder step is the same computation, proven
equal to a full recompute at every step (`export.verification.decoder_parity.check_decoder_parity`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from keras_attn.config import TrainSettings

LM_SETTINGS = TrainSettings(max_len=24, d_model=32, num_heads=2, ff_dim=64, num_layers=2,
                            dropout=0.0, tokenizer="word", vocab_size=200, epochs=4,
                            batch_size=32, learning_rate=3e-3, patience=2,
                            jit_compile=False)
PROMPT = "the cat was near the"


@dataclasses.dataclass
class LanguageModelDemo:
    """The greedy continuations of `prompt` by each engine, and the decoder's parity report."""

    prompt: str
    keras_text: str
    onnxruntime_text: str
    parity: dict
    validation_perplexity: float

    @property
    def identical(self) -> bool:
        return self.keras_text == self.onnxruntime_text


def run_language_model_demo(texts: list[str], out: str | Path, seed: int = 0,
                            log: Callable[[str], None] = lambda line: None,
                            max_new_tokens: int = 12) -> LanguageModelDemo:
    """Trains `LM_SETTINGS` on `texts` into `<out>/run`, writes `<out>/decoder.onnx`, and
    continues `PROMPT` greedily with both engines.

    Raises:
        export.verification.decoder_parity.DecoderParityError: the decoder step disagrees with
        Keras.
    """
    import keras_attn
    from export.artifact.metadata import encode_metadata
    from export.formats.decoder_onnx import write_decoder_files
    from export.runtime.decoder_step import CachedStep
    from export.runtime.sampling import generate_text
    from export.verification.decoder_parity import check_decoder
    from keras_attn.data.lm_windows import split_texts
    from keras_attn.models.builders import config_from_model, rebuild
    from keras_attn.models.cached_decoder import generate
    from keras_attn.training.language_model import train_language_model

    out = Path(out)
    train, validation = split_texts(texts, 0.1, seed=seed)
    settings = dataclasses.replace(LM_SETTINGS, seed=seed)
    run = train_language_model(train, validation, settings, out / "run",
                               data_description=f"reference task sentences, seed {seed}",
                               verbose=0)
    model = rebuild(run.model, "float32")
    config = config_from_model(model)
    metadata = encode_metadata(config.to_dict(), "language_model", 17, keras_attn.__version__,
                               None)
    optimized = write_decoder_files(model, out, metadata, 17)
    parity = check_decoder(model, out, 1e-5, optimized)["parity"]
    step = CachedStep(out / "decoder.onnx")
    keras_text = generate(model, run.tokenizer, PROMPT, max_new_tokens).text
    onnx_text = generate_text(step, step.empty_cache(), run.tokenizer, PROMPT, step.max_len,
                              step.vocab_size, max_new_tokens).text
    log(f"language model: validation perplexity {run.validation_perplexity:.2f} (unigram "
        f"baseline {run.unigram_perplexity:.2f})")
    log(f"greedy, Keras       : {keras_text}")
    log(f"greedy, onnxruntime : {onnx_text}")
    return LanguageModelDemo(PROMPT, keras_text, onnx_text, parity, run.validation_perplexity)
