"""Hypothesis strategies for what callers pass as token ids, and an independent reference of
what must be run for each (shared by the predictor's and the protocol parsers' property tests).

The reference is worked out from the values themselves, not from
`export.artifact.token_ids.check_token_ids`: accepted ids are exactly the non-boolean integers
in ``[0, VOCAB)``, one or more per row, at most ``MAX_LEN`` per row, not all padding, in a 1-D or
2-D integer array or (nested) lists / tuples of them.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

VOCAB, MAX_LEN = 50, 16  # export_cases' models'
# Values a JSON body can hold where an id is expected, and beyond JSON what Python callers pass.
JSON_LEAF = (st.integers(-3, VOCAB + 2) | st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1])
             | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.none()
             | st.text(max_size=2))
LEAF = JSON_LEAF | st.floats() | st.builds(np.int8, st.integers(-3, 60)) | st.builds(
    np.bool_, st.booleans())
NEAR_IDS = st.lists(st.lists(st.integers(0, VOCAB), min_size=1, max_size=MAX_LEN + 1),
                    min_size=1, max_size=4)


@st.composite
def one_leaf_replaced(draw, leaf=LEAF):
    """Id lists, nearly all valid, with one value swapped for any `leaf` (a bool, a float...)."""
    rows = draw(NEAR_IDS)
    row = draw(st.integers(0, len(rows) - 1))
    rows[row][draw(st.integers(0, len(rows[row]) - 1))] = draw(leaf)
    return rows


SHAPES = array_shapes(min_dims=0, max_dims=3, max_side=MAX_LEN + 1)
CALLER_INPUT = (NEAR_IDS | one_leaf_replaced()
                | st.recursive(LEAF, lambda inner: st.lists(inner, max_size=MAX_LEN + 2)
                               | st.tuples(inner, inner), max_leaves=40)
                | arrays(st.sampled_from([np.int8, np.int32, np.int64, np.uint64]), SHAPES,
                         elements=st.integers(0, 60))
                | arrays(st.sampled_from([np.float32, np.bool_]), SHAPES))
JSON_IDS = (NEAR_IDS | one_leaf_replaced(JSON_LEAF)
            | st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=MAX_LEN + 2),
                           max_leaves=40))


def is_id(value) -> bool:
    return (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            and 0 <= value < VOCAB)


def reference_ids(value) -> np.ndarray | None:
    """What the predictor must run for `value`, worked out independently of
    `check_token_ids`: the padded int32 batch, or None where it must refuse."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu" or value.ndim not in (1, 2):
            return None
        rows = [value.tolist()] if value.ndim == 1 else value.tolist()
    elif isinstance(value, (list, tuple)) and value:
        if all(isinstance(row, (list, tuple)) for row in value):
            rows = [list(row) for row in value]
        elif not any(isinstance(row, (list, tuple)) for row in value):
            rows = [list(value)]
        else:
            return None
    else:
        return None
    if not rows or not all(1 <= len(row) <= MAX_LEN and all(map(is_id, row)) and any(row)
                           for row in rows):
        return None
    width = max(map(len, rows))
    return np.array([[int(i) for i in row] + [0] * (width - len(row)) for row in rows],
                    np.int32)
