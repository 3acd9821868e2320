"""The tokenizer choices a `ModelConfig` and the CLI validate against, standard library only.

They sit apart from `export.artifact.tokenizer` (which loads Hugging Face `tokenizers`) so that
building a layer or printing `keras-attn --help` loads no tokenizer library. What each model
does: `export.artifact.tokenizer`.
"""

MODELS = ("wordpiece", "bpe", "unigram", "word")
DEFAULT_MODEL = "wordpiece"
DEFAULT_VOCAB_SIZE = 16000  # measured best of 4000, 8000, 16000 on the fortune corpora (docs)
