"""A bag-of-words baseline fitted beside every trained classifier, on the same split.

TF-IDF over word unigrams and bigrams and over character 2-4-grams, then a logistic
regression: the scikit-learn baseline a text classifier has to beat. If keras-attn's model
does not beat it, `keras-attn train` says so plainly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_attn.data.records import TextDataset
from keras_attn.evaluation.metrics import classification_report

NAME = "TF-IDF (word 1-2-grams + char 2-4-grams) + logistic regression"


def fit_baseline(train: TextDataset, validation: TextDataset, seed: int = 0) -> dict[str, Any]:
    """Fits the baseline on `train` and reports it on `validation`.

    Returns:
        `keras_attn.evaluation.metrics.classification_report` of the baseline on `validation`, plus
        "name" (what the baseline is).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2),
    )
    model = make_pipeline(features, LogisticRegression(max_iter=2000, C=10.0,
                                                       random_state=seed))
    model.fit(train.texts, train.labels)
    predicted = np.asarray(model.predict(validation.texts))
    return {"name": NAME,
            **classification_report(validation.labels, predicted, validation.class_names)}
