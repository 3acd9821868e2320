"""export/artifact/token_ids.py: token-id batches validated and padded before any runtime sees
them."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from export.artifact.token_ids import check_token_ids

VOCAB_SIZE, MAX_LEN = 10, 4
# The wording every runtime shares (keras_attn/layers/token_checks.py builds its own from here).
LENGTH = ("Sequence length must be between 1 and max_len=4, the number of learned position "
          "vectors.")
RANGE = "token_ids must lie in [0, vocab_size=10). Received: "
NOT_PADDING = "Each sequence needs at least one non-padding id (padding is id 0)."


def check(token_ids):
    return check_token_ids(token_ids, vocab_size=VOCAB_SIZE, max_len=MAX_LEN)


def test_2d_array_passes_through_as_int32():
    ids = np.array([[1, 2, 3], [4, 0, 0]], dtype=np.int64)
    out = check(ids)
    assert out.dtype == np.int32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ids)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64])
def test_every_integer_dtype_is_accepted(dtype):
    assert check(np.array([[1, 9]], dtype=dtype)).tolist() == [[1, 9]]


def test_1d_array_is_one_sequence():
    assert check(np.array([3, 4])).tolist() == [[3, 4]]
    assert check([3, 4]).tolist() == [[3, 4]]


def test_ragged_lists_are_right_padded_with_zero():
    assert check([[5, 3, 9], [7], [1, 2]]).tolist() == [[5, 3, 9], [7, 0, 0], [1, 2, 0]]
    assert check(([1], np.array([2, 3]))).tolist() == [[1, 0], [2, 3]]


@given(st.lists(st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=MAX_LEN)
                .filter(any), min_size=1, max_size=8))
def test_ragged_padding_keeps_every_id_in_place(rows):
    out = check(rows)
    assert out.shape == (len(rows), max(len(row) for row in rows))
    for row, padded in zip(rows, out, strict=True):
        assert padded[: len(row)].tolist() == row
        assert not padded[len(row):].any()


@pytest.mark.parametrize(
    "token_ids, fragments",
    [
        (np.array([[1.0, 2.0]]), ["integer token ids", "float64"]),
        ([[1.5]], ["integer token ids", "float64"]),
        (np.array([[True, False]]), ["integer token ids", "bool"]),
        (["3", "4"], ["integer token ids", "<U1"]),
        (np.zeros((1, 2, 2), np.int32), ["rank 1", "rank 2", "rank 3", "(1, 2, 2)"]),
        ([[[1, 2]]], ["flat id lists", "(1, 2)"]),
        ([], ["at least one sequence", "empty list"]),
        (np.zeros((0, 3), np.int32), ["at least one sequence", "empty batch"]),
        (np.zeros((2, 0), np.int32), [LENGTH, "Received: sequence length 0", "(2, 0)"]),
        ([[1, 2], []], [LENGTH, "Received: sequence length 0 (sequence 1)"]),
        (np.ones((1, 5), np.int32), [LENGTH, "Received: sequence length 5", "(1, 5)"]),
        ([[1], [1, 2, 3, 4, 5, 6]], [LENGTH, "Received: sequence length 6 (sequence 1)"]),
        (np.array([[1, -1]]), [RANGE + "id -1 at [0, 1]"]),
        ([[1], [2, 10]], [RANGE + "id 10 at [1, 1]"]),
        (np.array([[0, 0]]), [NOT_PADDING, "Received: sequence 0 is all padding"]),
        ([[4, 2], [0], [0, 0, 0]],
         [NOT_PADDING, "Received: sequence 1 is all padding", "2 such sequences: [1, 2]"]),
        ([0], [NOT_PADDING, "sequence 0 is all padding"]),
        ([1, [2, 3]], ["integer array or a list of id lists", "list"]),
        # Values NumPy holds only as objects: JSON null, integers beyond 64 bits (issue 19
        # case 12: these raised AttributeError from the message itself).
        ([[None, 2]], ["fit in 64 bits", "Python objects (e.g. None)", "sequence 0"]),
        (np.array([[1, None]], dtype=object), ["fit in 64 bits", "(e.g. None)"]),
        ([[3, 2**70]], ["fit in 64 bits", f"(e.g. {2**70})"]),
        ([[1], [2, None]], ["fit in 64 bits", "(e.g. None)", "sequence 1"]),
        (np.array([[1, 2]], dtype=object), ["integer array (int32 or int64)", "dtype object"]),
    ],
)
def test_bad_token_ids_say_what_is_allowed_and_what_was_received(token_ids, fragments):
    with pytest.raises(ValueError) as error:
        check(token_ids)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_the_keras_side_builds_its_messages_from_this_contract():
    """One home: keras_attn's checks (eager and traced) word their errors with these functions."""
    import export.artifact.token_ids as contract
    from keras_attn.layers import token_checks  # imports keras: only here, not for the whole module

    for name in ("length_message", "range_message", "padding_only_message"):
        assert getattr(token_checks, name) is getattr(contract, name), name
    for ids in (np.ones((1, 5), np.int32), np.array([[0, 0]], np.int32)):
        with pytest.raises(ValueError) as keras_error:
            token_checks.check_token_values(ids, VOCAB_SIZE, MAX_LEN)
        with pytest.raises(ValueError) as error:
            check(ids)
        assert str(error.value).startswith(str(keras_error.value))


def test_padding_is_fine_beside_a_real_id():
    assert check([[0, 0, 3], [5]]).tolist() == [[0, 0, 3], [5, 0, 0]]


def test_out_of_range_error_counts_every_bad_id():
    with pytest.raises(ValueError, match=r"3 id\(s\) out of range"):
        check([[-1, 10, 11, 2]])
