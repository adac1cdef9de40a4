"""Impossible sizes fail before any work; caches are validated and reusable.

The arrays here are tiny (empty, or zero-stride broadcast views) but imply outputs far beyond
memory or past 2**63 bytes: every call must raise MemoryError or ValueError naming the function,
never crash or start computing.
"""

from __future__ import annotations

import numpy as np
import pytest

import seqkern

HUGE = 2**40


def _weights(D=2, H=3, dtype=np.float64):
    rng = np.random.default_rng(0)
    return seqkern.LSTMWeights(rng.standard_normal((4 * H, D)).astype(dtype), rng.standard_normal((4 * H, H)).astype(dtype))


@pytest.mark.parametrize(
    "call",
    [
        # x as a broadcast view of a huge T: the Python layer must not try to copy it.
        lambda: seqkern.lstm_forward(np.broadcast_to(np.zeros((1, 1, 2)), (HUGE, 1, 2)), _weights()),
        # an empty x whose T*B*H output is huge
        lambda: seqkern.lstm_forward(np.empty((HUGE, 1, 0)), _weights(D=0)),
        lambda: _weights().step(np.broadcast_to(np.zeros(2), (HUGE, 2)), np.zeros((1, 3)), np.zeros((1, 3))),
        lambda: seqkern.attention_forward(np.empty((1, HUGE, 0)), np.empty((1, 0, 0)), np.empty((1, 0, 4))),
        lambda: seqkern.additive_attention_forward(np.empty((1, HUGE, 0)), np.empty((1, 1, 0)), np.empty((1, 1, 1)),
                                                   np.empty((4, 0)), np.empty((4, 0)), np.empty(4)),
        lambda: seqkern.attention_pool_forward(np.empty((HUGE, 1, 0)), np.empty((4, 0)), np.empty(4), np.empty(4)),
        lambda: seqkern.softmax(np.broadcast_to(np.float32(1), (HUGE, 4))),
    ],
    ids=["lstm_forward-broadcast-x", "lstm_forward-empty-x", "step", "attention_forward", "additive", "pool",
         "softmax"],
)
def test_outputs_beyond_memory_raise_memory_error(call):
    with pytest.raises(MemoryError, match=r"^\w+(\.step)?: \w+ of shape .* GiB"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: seqkern.lstm_forward(np.empty((2**59, 1, 0)), _weights(D=0)),
        lambda: seqkern.attention_forward(np.empty((1, 2**60, 0), np.float32), np.empty((1, 0, 0), np.float32),
                                          np.empty((1, 0, 4), np.float32)),
        lambda: seqkern.attention_pool_forward(np.empty((2**59, 1, 0)), np.empty((4, 0)), np.empty(4), np.empty(4)),
    ],
    ids=["lstm_forward", "attention_forward", "pool"],
)
def test_sizes_past_2_63_bytes_raise_value_error(call):
    with pytest.raises(ValueError, match=r"implies a buffer of more than 2\*\*63 bytes"):
        call()


def test_broadcast_mask_is_not_expanded():
    # A (B, Lq, Lk) mask that is a broadcast view is read through its distinct values only.
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    small = rng.random((2, 1, 5)) < 0.6
    out_view, _ = seqkern.attention_forward(q, k, v, mask=np.broadcast_to(small, (2, 3, 5)))
    out_small, _ = seqkern.attention_forward(q, k, v, mask=small)
    assert np.array_equal(out_view, out_small)


# ---------------------------------------------------------------------------------------------
# caches


def _caches():
    rng = np.random.default_rng(2)
    T, B, D, H = 3, 2, 4, 5
    lstm = seqkern.lstm_forward(rng.standard_normal((T, B, D)), rng.standard_normal((4 * H, D)),
                                rng.standard_normal((4 * H, H)))
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    attn = seqkern.attention_forward(q, k, v, causal=True)
    add = seqkern.additive_attention_forward(q, k, v, rng.standard_normal((6, 4)), rng.standard_normal((6, 4)),
                                             rng.standard_normal(6))
    pool = seqkern.attention_pool_forward(rng.standard_normal((T, B, H)), rng.standard_normal((6, H)),
                                          rng.standard_normal(6), rng.standard_normal(6))
    return {
        "lstm_backward": (lambda g: seqkern.lstm_backward(lstm.cache, g), lstm.y.shape),
        "attention_backward": (lambda g: seqkern.attention_backward(attn.cache, g), attn.out.shape),
        "additive_attention_backward": (lambda g: seqkern.additive_attention_backward(add.cache, g), add.out.shape),
        "attention_pool_backward": (lambda g: seqkern.attention_pool_backward(pool.cache, g), pool.context.shape),
    }


@pytest.mark.parametrize("name", sorted(_caches()))
def test_cache_with_wrong_gradient_shape_raises(name):
    backward, shape = _caches()[name]
    for bad in (shape[:-1] + (shape[-1] + 1,), shape[1:], shape + (1,)):
        with pytest.raises(ValueError, match=rf"^{name}: d\w+ must have"):
            backward(np.zeros(bad))
    with pytest.raises(TypeError, match=rf"^{name}: d\w+ must be float64"):
        backward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", sorted(_caches()))
def test_cache_used_twice_gives_identical_gradients(name):
    backward, shape = _caches()[name]
    g = np.random.default_rng(3).standard_normal(shape)
    first = backward(g)
    backward(np.random.default_rng(4).standard_normal(shape))  # another gradient in between
    second = backward(g)
    for a, b in zip(first, second):
        assert (a is None and b is None) or np.array_equal(a, b)
