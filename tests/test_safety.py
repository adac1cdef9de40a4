"""Regression tests: objects a caller can break, and shared state between threads.

Each test reproduces a defect found against an earlier build: a segfault, a silently wrong
answer, or a setting that leaked out of its block. Crashing cases run in a child process so
that a regression fails the test instead of killing the suite.
"""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import seqkern

from checks import run_python


def _weights(rng, D=5, H=6, dtype=np.float64, **kw):
    return (
        (rng.standard_normal((4 * H, D)) * 0.3).astype(dtype),
        (rng.standard_normal((4 * H, H)) * 0.3).astype(dtype),
        (rng.standard_normal(4 * H) * 0.1).astype(dtype),
        (rng.standard_normal((3, H)) * 0.1).astype(dtype),
    )


def _grads_equal(a, b):
    for name, x, y in zip(a._fields, a, b):
        if x is None:
            assert y is None, name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def _type_errors_in_child(setup: str, calls: list[str]) -> list[str]:
    """Runs `setup`, then each call, in a child process; one line per call: its error or "no error"."""
    lines = ["import numpy as np, seqkern", setup]
    for call in calls:
        lines += ["try:", f"    {call}", "    print('no error')", "except TypeError as e:", "    print('TypeError', e)"]
    out = run_python("\n".join(lines))
    assert out.returncode == 0, (out.returncode, out.stderr)  # a crash (-11 for a segfault) fails here
    result = out.stdout.splitlines()
    assert len(result) == len(calls), out.stdout
    return result


# --- the LSTM cache --------------------------------------------------------------------------


def test_lstm_cache_fields_cannot_be_replaced():
    # Replacing cache.lengths with a list segfaulted, and cache.weights with weights of another
    # input size read far past x.
    rng = np.random.default_rng(0)
    out = seqkern.lstm_forward(rng.standard_normal((4, 3, 5)), *_weights(rng)[:3])
    cache = out.cache
    other = seqkern.LSTMWeights(*_weights(rng, D=50)[:2])
    for name, value in (("lengths", [1, 2, 3]), ("weights", other), ("x", np.zeros((4, 3, 50))),
                        ("gates", None), ("h", None), ("c", None)):
        with pytest.raises(AttributeError):
            setattr(cache, name, value)
    for name in ("x", "gates", "h", "c"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(cache, name)[...] = 0
    # What a caller gets is a view: reshaping it does not reach the cache.
    g = cache.gates
    g.shape = (-1,)
    assert cache.gates.shape == (4, 3, 24)
    seqkern.lstm_backward(cache, dy=np.ones((4, 3, 6)))


def test_lstm_cache_is_made_only_by_the_forward():
    with pytest.raises(TypeError):
        seqkern.LSTMCache()
    lines = _type_errors_in_child(
        "k = seqkern.LSTMCache.__new__(seqkern.LSTMCache)",
        ["seqkern.lstm_backward(k)", "k.gates", "repr(k)"],
    )
    assert all(line.startswith("TypeError") for line in lines), lines
    assert "not made by lstm_forward" in lines[0]


def test_lengths_of_any_integer_dtype_agree():
    # The cache keeps its own int64 copy (an int32 array put into the cache was read as int64).
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4, 5))
    w = _weights(rng)
    lengths = np.array([6, 0, 3, 1])
    got = {}
    for dtype in (np.int32, np.int64, np.uint8):
        out = seqkern.lstm_forward(x, *w[:3], peephole=w[3], lengths=lengths.astype(dtype))
        assert out.cache.lengths.dtype == np.int64
        np.testing.assert_array_equal(out.cache.lengths, lengths)
        got[dtype] = (out.y, seqkern.lstm_backward(out.cache, dy=np.ones((6, 4, 6))))
    for dtype in (np.int32, np.uint8):
        np.testing.assert_array_equal(got[dtype][0], got[np.int64][0])
        _grads_equal(got[dtype][1], got[np.int64][1])


# --- LSTMWeights -----------------------------------------------------------------------------


def test_uninitialised_lstm_weights_raise_instead_of_crashing():
    # LSTMWeights.__new__ without __init__, then any attribute: a segfault, or uninitialised
    # memory in repr.
    lines = _type_errors_in_child(
        "u = seqkern.LSTMWeights.__new__(seqkern.LSTMWeights)\n"
        "x, h = np.ones((1, 3), np.float32), np.ones((1, 2), np.float32)",
        ["u.hidden_size", "u.w_ih", "repr(u)", "u.step(x, h, h)",
         "seqkern.lstm_forward(np.ones((2, 1, 3), np.float32), u)"],
    )
    assert all(line.startswith("TypeError") and "never initialised" in line for line in lines), lines


def test_copied_weights_are_immutable():
    # The exposed arrays were writeable: an in-place write reached lstm_forward but not the
    # packed copy the step uses.
    rng = np.random.default_rng(2)
    w = seqkern.LSTMWeights(*_weights(rng))
    assert w.copied
    for name in ("w_ih", "w_hh", "bias", "peephole"):
        a = getattr(w, name)
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
        for arr in (a, a.base):
            with pytest.raises(ValueError, match="WRITEABLE"):
                arr.flags.writeable = True


@pytest.mark.parametrize("B", [1, 3, 8, 20])
def test_uncopied_weights_see_in_place_updates_everywhere(B):
    # copy=False with an in-place update: below 8 rows the forward used the stale packed copy,
    # from 8 the live array, and the backward the live array. Every method must now give what
    # fresh weights built from the updated arrays give, at every batch size.
    rng = np.random.default_rng(3)
    arrays = _weights(rng)
    w = seqkern.LSTMWeights(*arrays, copy=False)
    assert not w.copied
    x = rng.standard_normal((5, B, 5))
    state = (rng.standard_normal((B, 6)), rng.standard_normal((B, 6)))
    before = seqkern.lstm_forward(x, w).y
    for a in arrays:
        a *= 1.5  # the caller's arrays, in place
    fresh = seqkern.LSTMWeights(*arrays)
    got, want = seqkern.lstm_forward(x, w), seqkern.lstm_forward(x, fresh)
    assert not np.array_equal(got.y, before)
    np.testing.assert_array_equal(got.y, want.y)
    dy = rng.standard_normal(got.y.shape)
    _grads_equal(seqkern.lstm_backward(got.cache, dy), seqkern.lstm_backward(want.cache, dy))
    for g, f in zip(w.step(x[0], *state), fresh.step(x[0], *state)):
        np.testing.assert_array_equal(g, f)


def test_lstm_weights_in_a_reference_cycle_are_collected():
    # A cycle through an attribute of an LSTMWeights subclass was never collected.
    class Tagged(seqkern.LSTMWeights):
        pass

    rng = np.random.default_rng(4)
    refs = []
    for _ in range(20):
        w = Tagged(*_weights(rng)[:2])
        w.me = w
        refs.append(weakref.ref(w))
        del w
    gc.collect()
    assert all(r() is None for r in refs)


# --- threads ---------------------------------------------------------------------------------


def test_overlapping_use_isa_blocks_in_two_threads():
    # Two overlapping use_isa blocks in two threads used to leave the process at the wrong
    # level for good. Each thread now has its own level; the blocks enter and leave here in the
    # order that broke it (A in, B in, A out, B out).
    levels = seqkern.available_isas()
    if len(levels) < 2:
        pytest.skip("one ISA level only")
    process = seqkern.get_isa()
    low = levels[0]
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}
    x = np.linspace(-3, 3, 40).reshape(4, 10)

    def thread_a():
        with seqkern.use_isa(low):
            a_in.set()
            b_in.wait(10)
            seen["a"] = seqkern.get_isa()
            seqkern.softmax(x)
        a_out.set()
        seen["a after"] = seqkern.get_isa()

    def thread_b():
        a_in.wait(10)
        with seqkern.use_isa(process):
            b_in.set()
            a_out.wait(10)
            seen["b"] = seqkern.get_isa()
        seen["b after"] = seqkern.get_isa()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"a": low, "b": process, "a after": process, "b after": process}
    assert seqkern.get_isa() == process


def test_nested_use_isa_restores_the_outer_level():
    levels = seqkern.available_isas()
    process = seqkern.get_isa()
    with seqkern.use_isa(levels[0]):
        with seqkern.use_isa(levels[-1]):
            assert seqkern.get_isa() == levels[-1]
        assert seqkern.get_isa() == levels[0]
        with pytest.raises(ValueError, match="not an available level"):
            with seqkern.use_isa("sse9"):
                pass
        assert seqkern.get_isa() == levels[0]
    assert seqkern.get_isa() == process
