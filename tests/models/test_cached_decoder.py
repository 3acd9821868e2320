"""Generation with a key/value cache: cached logits equal a full recompute at every step, the
samplers, and the argument checks (keras_attn/models/cached_decoder.py,
export/runtime/sampling.py)."""

import keras
import numpy as np
import pytest
from repo_paths import REPO_ROOT

import keras_attn as ka
from export.artifact.tokenizer import train_tokenizer
from export.runtime import sampling as generation
from keras_attn.models.cached_decoder import CachedDecoder, generate

MAX_LEN = 12
TEXTS = ["the dog loved the toy", "a cat saw the dog", "the toy was red", "a red cat ran"]


def _model(norm_first: bool, vocab_size: int = 40) -> keras.Model:
    keras.utils.set_random_seed(7)
    config = ka.ModelConfig(vocab_size=vocab_size, max_len=MAX_LEN, d_model=16, num_heads=2,
                            ff_dim=32, num_layers=2, num_classes=2, norm_first=norm_first)
    return ka.build_language_model(config)


@pytest.fixture(scope="module", params=[False, True], ids=["post-norm", "pre-norm"])
def model(request):
    return _model(request.param)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, model="word", vocab_size=30)


@pytest.fixture(scope="module")
def text_model(tokenizer):
    return _model(True, vocab_size=tokenizer.vocab_size + 1)  # + the end-of-text id


class RecomputingStep:
    """Wraps the cached step and checks each of its logits against the model run on the whole
    sequence so far (no cache), at every step."""

    def __init__(self, model):
        self.model, self.decoder = model, CachedDecoder(model)
        self.sequence, self.steps, self.worst = np.zeros((1, 0), dtype=np.int64), 0, 0.0

    def __call__(self, token_ids, position_ids, cache):
        np.testing.assert_array_equal(
            position_ids[0], np.arange(self.sequence.shape[1],
                                       self.sequence.shape[1] + token_ids.shape[1]))
        logits, cache = self.decoder.step(token_ids, position_ids, cache)
        self.sequence = np.concatenate([self.sequence, token_ids], axis=1)
        full = keras.ops.convert_to_numpy(self.model(self.sequence))[:, -token_ids.shape[1]:]
        np.testing.assert_allclose(logits, full, rtol=0, atol=1e-5)
        self.worst = max(self.worst, float(np.max(np.abs(logits - full))))
        self.steps += 1
        return logits, cache


@pytest.mark.parametrize("prompt", [[5], [3, 9, 4], list(range(1, 12)), list(range(2, 14))])
def test_cached_logits_equal_a_full_recompute_at_every_step_up_to_max_len(model, prompt):
    step = RecomputingStep(model)
    result = generation.generate_ids(step, step.decoder.empty_cache(), prompt, MAX_LEN,
                                     end_of_text_id=None, max_new_tokens=100)
    # Every position up to max_len was read, once, and the last token was predicted from it.
    assert result.stop_reason == generation.MAX_LEN
    assert len(prompt) + len(result.new_ids) == MAX_LEN + 1
    assert step.sequence.shape[1] == MAX_LEN
    assert step.steps == MAX_LEN - len(prompt) + 1
    assert "max_len=12" in result.message


def test_sampled_steps_also_match_the_recompute(model):
    step = RecomputingStep(model)
    result = generation.generate_ids(step, step.decoder.empty_cache(), [4, 4], MAX_LEN, None,
                                     max_new_tokens=6, temperature=1.5, top_k=10, seed=3)
    assert len(result.new_ids) == 6 and result.stop_reason == generation.MAX_NEW_TOKENS
    assert step.steps == 6


def test_greedy_follows_the_argmax_of_the_full_model(model):
    result = generation.generate_ids(CachedDecoder(model).step, CachedDecoder(model).empty_cache(),
                                     [3, 9], MAX_LEN, None, max_new_tokens=5)
    ids = [3, 9]
    for _ in range(5):
        logits = keras.ops.convert_to_numpy(model(np.array([ids])))[0, -1]
        logits[0] = -np.inf  # padding is never generated
        ids.append(int(np.argmax(logits)))
    assert result.new_ids == ids[2:]


def test_cache_grows_by_the_new_tokens(model):
    decoder = CachedDecoder(model)
    _, cache = decoder.step(np.array([[3, 4, 5]]), np.array([[0, 1, 2]]), decoder.empty_cache())
    _, cache = decoder.step(np.array([[6]]), np.array([[3]]), cache)
    assert len(cache) == 2
    assert tuple(cache[0].shape) == (1, 2, 2, 4, 8)  # [batch, key/value, heads, past, head_dim]


def test_seeded_sampling_is_reproducible(text_model, tokenizer):
    def sample(seed):
        return generate(text_model, tokenizer, "the dog", 8, temperature=1.0, seed=seed).new_ids

    assert sample(11) == sample(11)
    assert any(sample(11) != sample(seed) for seed in (12, 13, 14))


def test_generate_returns_the_prompt_and_its_continuation(text_model, tokenizer):
    result = generate(text_model, tokenizer, "The dog", max_new_tokens=4)
    assert result.text == "The dog" + result.continuation
    assert result.prompt_ids == [int(i) for i in tokenizer.encode_batch(["the dog"])[0]]
    assert len(result.new_ids) <= 4
    assert all(0 < token_id < tokenizer.vocab_size for token_id in result.new_ids)
    if result.new_ids:
        assert result.continuation.split() == tokenizer.tokens(result.new_ids)


def test_generation_stops_at_the_end_of_text_id():
    eot = 9

    def step(token_ids, position_ids, cache):
        logits = np.zeros((1, token_ids.shape[1], 10))
        logits[0, -1, eot if cache == 2 else 4] = 10.0  # end of text after three tokens
        return logits, cache + 1

    result = generation.generate_ids(step, 0, [1, 2], 20, end_of_text_id=eot, max_new_tokens=9)
    assert result.new_ids == [4, 4] and result.stop_reason == generation.END_OF_TEXT


def test_the_end_of_text_id_precedes_the_prompt():
    seen = []

    def step(token_ids, position_ids, cache):
        seen.append(token_ids.tolist())
        return np.ones((1, token_ids.shape[1], 10)), cache

    generation.generate_ids(step, None, [3, 4], 20, end_of_text_id=9, max_new_tokens=2)
    assert seen == [[[9, 3, 4]], [[1]]]


def test_top_k_keeps_the_k_largest_logits():
    logits = np.array([0.0, 3.0, 1.0, 2.0, -1.0])
    kept = generation.filter_logits(logits, top_k=2)
    assert np.isfinite(kept).tolist() == [False, True, False, True, False]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.1, 0.5, 0.3, 0.05, 0.05]))
    assert np.isfinite(generation.filter_logits(logits, top_p=0.5)).tolist() == [
        False, True, False, False, False]
    assert np.isfinite(generation.filter_logits(logits, top_p=0.79)).tolist() == [
        False, True, True, False, False]
    assert np.isfinite(generation.filter_logits(logits, top_p=0.81)).tolist() == [
        True, True, True, False, False]


def test_sampling_draws_only_from_the_filtered_ids():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.01, 0.1, 0.4, 0.3, 0.15, 0.04]))
    top_k = {generation.next_token(logits, 1.0, 2, None, rng) for _ in range(300)}
    top_p = {generation.next_token(logits, 1.0, None, 0.75, rng) for _ in range(300)}
    free = {generation.next_token(logits, 1.0, None, None, rng) for _ in range(300)}
    assert top_k == {2, 3}
    assert top_p == {2, 3, 4}
    assert free == {1, 2, 3, 4, 5}  # id 0 is padding: never drawn


def test_the_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    """CTRL's penalty as Hugging Face's RepetitionPenaltyLogitsProcessor applies it: only on
    ids already in the sequence, each once however often it occurs."""
    logits = np.array([2.0, -1.0, 0.5, 3.0, -4.0])
    penalized = generation.penalized_logits(logits, [0, 1, 1, 4], repetition_penalty=2.0)
    np.testing.assert_array_equal(penalized, [1.0, -2.0, 0.5, 3.0, -8.0])
    np.testing.assert_array_equal(generation.penalized_logits(logits, [0, 1]), logits)


@pytest.mark.parametrize("n, banned", [(1, {5, 6, 7}), (2, {7}), (3, {7}), (4, set()),
                                       (6, set())])
def test_no_repeat_ngram_bans_what_would_complete_a_seen_ngram(n, banned):
    ids = [5, 6, 7, 5, 6]  # next: 7 would repeat "5 6 7" (and "6 7")
    penalized = generation.penalized_logits(np.zeros(9), ids, no_repeat_ngram_size=n)
    assert set(np.flatnonzero(np.isneginf(penalized)).tolist()) == banned


def test_greedy_decoding_with_no_repeat_ngram_repeats_no_ngram():
    def step(token_ids, position_ids, cache):  # always prefers 4, then 5, then 6, ...
        logits = np.tile(-np.arange(10, dtype=np.float64), (1, token_ids.shape[1], 1))
        logits[..., 4:] += 20.0
        return logits, cache

    plain = generation.generate_ids(step, None, [1], 40, None, 8).new_ids
    assert plain == [4] * 8
    for n in (1, 2, 3):
        ids = [1, *generation.generate_ids(step, None, [1], 40, None, 8,
                                           no_repeat_ngram_size=n).new_ids]
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        assert len(grams) == len(set(grams)), (n, ids)
    penalized = generation.generate_ids(step, None, [1], 40, None, 3,
                                        repetition_penalty=1e6).new_ids
    assert penalized == [4, 5, 6]  # each id once its logit is divided by a million


@pytest.mark.parametrize("arguments, name", [
    ({"max_new_tokens": -1}, "max_new_tokens"),
    ({"max_new_tokens": 2.0}, "max_new_tokens"),
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": 1.0, "top_k": 0}, "top_k"),
    ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
    ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
    ({"temperature": 1.0, "seed": -3}, "seed"),
    ({"top_k": 5}, "temperature=0"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"repetition_penalty": float("inf")}, "repetition_penalty"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
    ({"no_repeat_ngram_size": 1.5}, "no_repeat_ngram_size"),
])
def test_bad_arguments_are_clear_errors(text_model, tokenizer, arguments, name):
    arguments = {"max_new_tokens": 3, **arguments}
    with pytest.raises(ValueError, match="Received") as error:
        generate(text_model, tokenizer, "the dog", **arguments)
    assert name in str(error.value)


def test_a_prompt_longer_than_max_len_is_a_clear_error(text_model, tokenizer):
    with pytest.raises(ValueError, match=r"max_len=12 tokens\. Received: 13 tokens"):
        generate(text_model, tokenizer, "the dog " * 6, max_new_tokens=1)


def test_a_tokenizer_that_does_not_match_is_a_clear_error(model, tokenizer):
    with pytest.raises(ValueError, match="model vocab_size=40, tokenizer vocab_size"):
        generate(model, tokenizer, "the dog", max_new_tokens=1)


def test_a_prompt_must_be_text(text_model, tokenizer):
    with pytest.raises(TypeError, match="prompt must be a str"):
        generate(text_model, tokenizer, ["the dog"], max_new_tokens=1)


def test_a_classifier_is_refused():
    config = ka.ModelConfig(40, MAX_LEN, 16, 2, 32, 1, num_classes=3)
    with pytest.raises(ValueError, match="needs a language model"):
        CachedDecoder(ka.build_classifier(config))


def test_a_cache_needs_causal_attention():
    layer = ka.MultiHeadSelfAttention(num_heads=2)
    with pytest.raises(ValueError, match="use_causal_mask=False"):
        layer(np.ones((1, 3, 8), "float32"), cache=np.zeros((1, 2, 2, 0, 4), "float32"))


def test_generate_on_a_run_folder_gives_tensorflows_tokens_on_jax(text_model, tokenizer,
                                                                  tmp_path):
    """`keras-attn generate RUN_FOLDER` in a process whose Keras runs on JAX: the cached step
    runs there eagerly (only TensorFlow traces it), and picks the tokens TensorFlow picks.
    Four tokens only: eager JAX compiles every op anew for each cache length (README, "Not
    done: fast cached generation in Keras on JAX"). ~20 s, mostly importing JAX."""
    import json
    import os
    import subprocess
    import sys

    from keras_attn.training.backends import _installed

    backend = "jax"
    if keras.backend.backend() == backend:
        pytest.skip(f"{backend} is this process's backend")
    if not _installed(backend):
        pytest.skip(f"the {backend} backend is not installed: pip install 'keras-attn[{backend}]'")
    text_model.save(tmp_path / "model.keras")
    tokenizer.save(tmp_path / "tokenizer.json")
    expected = generate(text_model, tokenizer, "the dog", max_new_tokens=4)
    root = REPO_ROOT
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from keras_attn.cli.main import main; "
         "sys.exit(main(sys.argv[1:]))", "generate", str(tmp_path), "the dog",
         "--max-new-tokens", "4", "--json"],
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
             "PYTHONPATH": str(root)}, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout[result.stdout.index("{"):])
    assert answer["engine"] == "keras" and answer["new_ids"] == expected.new_ids
    assert answer["text"] == expected.text
