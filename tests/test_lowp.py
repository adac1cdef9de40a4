"""bf16 and int8 weights of the recurrent cells against seqkern.reference.lowp, the spec.

bf16 keeps float32 arithmetic on bfloat16 weights, so every entry point must give exactly what the
float32 weights of the rounded values give. int8 quantizes the weights per gate row and each
step's x and h rows, with exact integer sums: one step from a given state must match the
reference step up to the float32 rounding of the cell's functions, and a whole sequence must be
those steps chained, bit for bit (rows past their length carry their state). The integers never
depend on the level, AVX512-VNNI or the thread count.
"""

from __future__ import annotations

import numpy as np
import pytest

import seqkern as sk
from seqkern import _core
from seqkern.reference import lowp

from checks import run_python

EPS32 = float(np.finfo(np.float32).eps)
RNG = np.random.default_rng(20261202)

# (T, B, D, H): one row and many, H within one unit block, across blocks and off the block width,
# D off the 4-input groups, and a batch above the float path's GEMM threshold.
SHAPES = [(4, 1, 24, 40), (5, 3, 33, 16), (3, 9, 64, 128), (4, 13, 7, 21), (3, 2, 1, 5)]


def _rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _lstm_arrays(D, H, peephole=True, bias=True):
    return (_rand(4 * H, D, scale=0.3), _rand(4 * H, H, scale=0.3), _rand(4 * H, scale=0.1) if bias else None,
            _rand(3, H, scale=0.1) if peephole else None)


def _step_tol(expected):
    # The cell's exp and tanh are within a few ulps of float32's; a step chains about four of them.
    return 16 * EPS32 * max(1.0, float(np.max(np.abs(expected))))


# --- the formats -----------------------------------------------------------------------------

def test_bfloat16_rounds_to_nearest_even():
    one_ulp = np.float32(2.0 ** -7)  # bf16 spacing at 1.0
    w = np.array([1.0, 1.0 + one_ulp / 2, 1.0 + 1.5 * one_ulp, -3.0, 0.0, 1e-30], np.float32)
    got = lowp.round_bfloat16(w)
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == np.float32(1.0 + 2 * one_ulp)
    assert got[3] == -3.0 and got[4] == 0.0
    assert lowp.to_bfloat16(np.float32(1.0)) == 0x3F80
    w = _rand(1000)
    r = lowp.round_bfloat16(w)
    assert np.all(r.view(np.uint32) & 0xFFFF == 0)
    assert np.all(np.abs(r - w) <= np.abs(w) * 2.0 ** -8)
    with pytest.raises(ValueError, match="finite"):
        lowp.to_bfloat16(np.array([np.nan], np.float32))


def test_quantize_int8_per_row():
    w = _rand(6, 50)
    w[3] = 0
    q, s = lowp.quantize_int8(w)
    assert q.dtype == np.int8 and s.dtype == np.float32
    assert np.all(np.abs(q) <= 127)
    assert s[3] == 0 and np.all(q[3] == 0)
    live = [0, 1, 2, 4, 5]
    assert np.all(np.max(np.abs(q[live]), axis=1) == 127)
    assert np.all(np.abs(lowp.dequantize_int8(q, s) - w) <= s[:, None] / 2 * (1 + 1e-6))
    with pytest.raises(ValueError, match="finite"):
        lowp.quantize_int8(np.array([[1.0, np.inf]], np.float32))


def test_int8_product_is_exact_in_integers():
    v, w = _rand(3, 37), _rand(5, 37)
    q, s = lowp.quantize_int8(w)
    got = lowp.int8_product(v, q, s)
    u, a = lowp._quantize_rows(v)
    expected = (a[:, None] * s[None, :]) * (u.astype(np.int64) @ q.astype(np.int64).T).astype(np.float32)
    np.testing.assert_array_equal(got, expected)
    assert np.allclose(got, v @ w.T, atol=0.05 * np.abs(v).max() * np.abs(w).max() * np.sqrt(37))


# --- int8 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("T,B,D,H", SHAPES)
@pytest.mark.parametrize("peephole", [True, False])
def test_lstm_int8_step_matches_reference(T, B, D, H, peephole):
    w_ih, w_hh, bias, pp = _lstm_arrays(D, H, peephole)
    w = sk.LSTMWeights(w_ih, w_hh, bias, pp, dtype="int8")
    assert w.format == "int8" and w.dtype == np.float32
    x, h, c = _rand(B, D), _rand(B, H, scale=0.5), _rand(B, H)
    h1, c1 = w.step(x, h, c)
    ref = lowp.lstm_forward_int8(x[None], w, h0=h, c0=c)
    np.testing.assert_allclose(h1, ref.h_n, rtol=0, atol=_step_tol(ref.h_n))
    np.testing.assert_allclose(c1, ref.c_n, rtol=0, atol=_step_tol(ref.c_n))


def _chained_steps(step, x, lengths, states):
    # The sequence as steps of every row, rows past their length keeping their states (y = 0).
    T = x.shape[0]
    ys = np.zeros((T, x.shape[1], states[0].shape[1]), np.float32)
    for t in range(T):
        new = step(x[t], *states)
        new = new if isinstance(new, tuple) else (new,)
        active = (t < lengths)[:, None]
        states = [np.where(active, n, s) for n, s in zip(new, states)]
        ys[t] = np.where(active, new[0], 0)
    return ys, states


@pytest.mark.parametrize("T,B,D,H", SHAPES)
def test_lstm_int8_sequence_is_its_steps(T, B, D, H):
    w = sk.LSTMWeights(*_lstm_arrays(D, H), dtype="int8")
    x, h0, c0 = _rand(T, B, D), _rand(B, H, scale=0.5), _rand(B, H)
    lengths = RNG.integers(0, T + 1, B)
    out = sk.lstm_forward(x, w, h0=h0, c0=c0, lengths=lengths)
    assert out.cache is None
    ys, (h_n, c_n) = _chained_steps(w.step, x, lengths, [h0, c0])
    np.testing.assert_array_equal(out.y, ys)
    np.testing.assert_array_equal(out.h_n, h_n)
    np.testing.assert_array_equal(out.c_n, c_n)
    # And the reference run on its own: it may round an activation the other way after a few
    # steps (one quantum, about max|h|·max|w| / 127 in a pre-activation), never more than that.
    ref = lowp.lstm_forward_int8(x, w, h0=h0, c0=c0, lengths=lengths)
    np.testing.assert_allclose(out.y, ref.y, rtol=0, atol=0.02)


@pytest.mark.parametrize("T,B,D,H", SHAPES[:3])
def test_gru_and_rnn_int8_match_reference(T, B, D, H):
    g = sk.GRUWeights(_rand(3 * H, D, scale=0.3), _rand(3 * H, H, scale=0.3), _rand(3 * H, scale=0.1),
                      _rand(3 * H, scale=0.1), dtype="int8")
    x, h0 = _rand(T, B, D), _rand(B, H, scale=0.5)
    ref = lowp.gru_forward_int8(x[:1], g, h0=h0)
    got = g.step(x[0], h0)
    np.testing.assert_allclose(got, ref.h_n, rtol=0, atol=_step_tol(ref.h_n))
    lengths = RNG.integers(0, T + 1, B)
    ys, (h_n,) = _chained_steps(g.step, x, lengths, [h0])
    out = sk.gru_forward(x, g, h0=h0, lengths=lengths)
    np.testing.assert_array_equal(out.y, ys)
    np.testing.assert_array_equal(out.h_n, h_n)
    for nonlinearity in ("tanh", "relu"):
        r = sk.RNNWeights(_rand(H, D, scale=0.3), _rand(H, H, scale=0.3), _rand(H, scale=0.1),
                          nonlinearity=nonlinearity, dtype="int8")
        ref = lowp.rnn_forward_int8(x[:1], r, h0=h0)
        np.testing.assert_allclose(r.step(x[0], h0), ref.h_n, rtol=0, atol=_step_tol(ref.h_n))
        ys, (h_n,) = _chained_steps(r.step, x, lengths, [h0])
        np.testing.assert_array_equal(sk.rnn_forward(x, r, h0=h0, lengths=lengths).y, ys)


def test_int8_bits_do_not_depend_on_vnni_threads_or_level():
    T, B, D, H = 6, 11, 40, 72
    w = sk.LSTMWeights(*_lstm_arrays(D, H), dtype="int8")
    x, h0 = _rand(T, B, D), _rand(B, H, scale=0.5)
    base = sk.lstm_forward(x, w, h0=h0).y
    previous = _core._set_int8_vnni(False)
    try:
        assert not _core.int8_vnni()
        np.testing.assert_array_equal(sk.lstm_forward(x, w, h0=h0).y, base)
    finally:
        _core._set_int8_vnni(previous)
    threads = sk.get_num_threads()
    try:
        for n in (1, 2):
            sk.set_num_threads(n)
            np.testing.assert_array_equal(sk.lstm_forward(x, w, h0=h0).y, base)
            np.testing.assert_array_equal(sk.lstm_forward(x[:, :1], w, h0=h0[:1]).y, base[:, :1])
    finally:
        sk.set_num_threads(threads)
    # Other levels: the same integers; only the cell's float functions may differ in the last bits,
    # which later steps may turn into an activation rounded the other way.
    step = w.step(x[0], h0, np.zeros_like(h0))
    for isa in sk.available_isas():
        with sk.use_isa(isa):
            got = w.step(x[0], h0, np.zeros_like(h0))
            np.testing.assert_allclose(got[0], step[0], rtol=0, atol=_step_tol(step[0]))
            np.testing.assert_allclose(sk.lstm_forward(x, w, h0=h0).y, base, rtol=0, atol=0.02)


def test_int8_accuracy_against_float32():
    # What the format costs: a trained-scale LSTM's outputs move by a small fraction of their range.
    T, B, D, H = 20, 8, 64, 128
    w_ih, w_hh, bias, _ = _lstm_arrays(D, H, peephole=False)
    w_ih, w_hh = w_ih / 3, w_hh / 3
    x = _rand(T, B, D)
    f32 = sk.lstm_forward(x, sk.LSTMWeights(w_ih, w_hh, bias), need_cache=False).y
    i8 = sk.lstm_forward(x, sk.LSTMWeights(w_ih, w_hh, bias, dtype="int8")).y
    b16 = sk.lstm_forward(x, sk.LSTMWeights(w_ih, w_hh, bias, dtype="bf16"), need_cache=False).y
    assert np.max(np.abs(i8 - f32)) < 0.05
    assert np.max(np.abs(b16 - f32)) < 0.02
    assert np.max(np.abs(i8 - f32)) > 0  # it is a different arithmetic


def test_int8_errors_name_the_argument():
    D, H, B = 5, 8, 2
    w = sk.LSTMWeights(*_lstm_arrays(D, H), dtype="int8")
    x = _rand(3, B, D)
    with pytest.raises(ValueError, match="need_cache"):
        sk.lstm_forward(x, w, need_cache=True)
    bad = x.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        sk.lstm_forward(bad, w)
    h0 = np.zeros((B, H), np.float32)
    h0[0, 0] = np.inf
    with pytest.raises(ValueError, match="h0 must be finite"):
        sk.lstm_forward(x, w, h0=h0)
    with pytest.raises(ValueError, match="h must be finite"):
        w.step(x[0], h0, np.zeros_like(h0))
    with pytest.raises(TypeError, match="x must be float32"):
        sk.lstm_forward(x.astype(np.float64), w)
    with pytest.raises(ValueError, match="backward"):
        _core.lstm_backward_arrays(x, w, None, *(np.zeros(1, np.float32),) * 3, None, None, None)
    g = sk.GRUWeights(_rand(3 * H, D), _rand(3 * H, H), dtype="int8")
    with pytest.raises(ValueError, match="need_cache"):
        sk.gru_forward(x, g, need_cache=True)
    with pytest.raises(ValueError, match="copy=True"):
        sk.LSTMWeights(*_lstm_arrays(D, H), dtype="int8", copy=False)
    with pytest.raises(ValueError, match="dtype must be"):
        sk.LSTMWeights(*_lstm_arrays(D, H), dtype="int4")
    with pytest.raises(ValueError, match="w_hh"):
        sk.LSTMWeights(_rand(4 * H, D), _rand(4 * H, H + 1), dtype="int8")
    with pytest.raises(ValueError, match="finite"):
        sk.RNNWeights(np.full((H, D), np.nan, np.float32), _rand(H, H), dtype="int8")


def test_int8_empty_sizes_and_float64_weights():
    D, H = 6, 10
    arrays = [None if a is None else a.astype(np.float64) for a in _lstm_arrays(D, H)]
    w = sk.LSTMWeights(*arrays, dtype="int8")
    assert w.dtype == np.float32 and w.format == "int8"
    q_ih, s_ih, q_hh, s_hh = w.int8
    np.testing.assert_array_equal(w.w_ih, lowp.dequantize_int8(q_ih, s_ih))
    for T, B in ((0, 3), (4, 0)):
        out = sk.lstm_forward(np.zeros((T, B, D), np.float32), w)
        assert out.y.shape == (T, B, H) and out.h_n.shape == (B, H)
    h, c = w.step(np.zeros((0, D), np.float32), np.zeros((0, H), np.float32), np.zeros((0, H), np.float32))
    assert h.shape == (0, H)
    # Zero inputs and states: every activation scale is 0, and only the bias reaches the cell.
    x = np.zeros((2, 3, D), np.float32)
    ref = lowp.lstm_forward_int8(x, w)
    np.testing.assert_allclose(sk.lstm_forward(x, w).y, ref.y, rtol=0, atol=1e-6)


# --- bf16 -------------------------------------------------------------------------------------

# (2, 7, 5, 130): two row tiles over three k chunks of h's panel, the second starting at an odd k.
@pytest.mark.parametrize("T,B,D,H", SHAPES + [(2, 7, 5, 130)])
def test_lstm_bf16_is_float32_on_rounded_weights(T, B, D, H):
    w_ih, w_hh, bias, pp = _lstm_arrays(D, H)
    b16 = sk.LSTMWeights(w_ih, w_hh, bias, pp, dtype="bf16")
    f32 = sk.LSTMWeights(lowp.round_bfloat16(w_ih), lowp.round_bfloat16(w_hh), bias, pp)
    assert b16.format == "bf16"
    np.testing.assert_array_equal(b16.w_ih, f32.w_ih)
    x, h0, c0 = _rand(T, B, D), _rand(B, H), _rand(B, H)
    lengths = RNG.integers(0, T + 1, B)
    a = sk.lstm_forward(x, b16, h0=h0, c0=c0, lengths=lengths)
    b = sk.lstm_forward(x, f32, h0=h0, c0=c0, lengths=lengths)
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(u, v)
    dy = _rand(T, B, H)
    for u, v in zip(sk.lstm_backward(a.cache, dy), sk.lstm_backward(b.cache, dy)):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(b16.step(x[0], h0, c0), f32.step(x[0], h0, c0)):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("B", [1, 12])
def test_gru_and_rnn_bf16_are_float32_on_rounded_weights(B):
    T, D, H = 5, 19, 37
    w_ih, w_hh, b_ih, b_hh = _rand(3 * H, D), _rand(3 * H, H), _rand(3 * H), _rand(3 * H)
    g16 = sk.GRUWeights(w_ih, w_hh, b_ih, b_hh, dtype="bf16")
    g32 = sk.GRUWeights(lowp.round_bfloat16(w_ih), lowp.round_bfloat16(w_hh), b_ih, b_hh)
    x, h0 = _rand(T, B, D), _rand(B, H)
    np.testing.assert_array_equal(sk.gru_forward(x, g16, h0=h0).y, sk.gru_forward(x, g32, h0=h0).y)
    np.testing.assert_array_equal(g16.step(x[0], h0), g32.step(x[0], h0))
    r16 = sk.RNNWeights(w_ih[:H], w_hh[:H], b_ih[:H], dtype="bf16")
    r32 = sk.RNNWeights(lowp.round_bfloat16(w_ih[:H]), lowp.round_bfloat16(w_hh[:H]), b_ih[:H])
    np.testing.assert_array_equal(sk.rnn_forward(x, r16, h0=h0).y, sk.rnn_forward(x, r32, h0=h0).y)
    assert r16.format == "bf16" and g16.format == "bf16" and g32.format == "float32"


def test_cpu_features_are_reported():
    f = _core.cpu_features()
    assert set(f) == {"avx512_vnni", "avx512_bf16", "avx_vnni"}
    info = sk.isa_info()
    assert info["features"] == f
    assert info["int8_vnni"] == (_core.int8_vnni())
    if "avx512" not in sk.available_isas():
        assert not f["avx512_vnni"] and not f["avx512_bf16"]


@pytest.mark.parametrize("env", [{"SEQKERN_VNNI": "0"}, {"SEQKERN_ISA": "scalar"}, {"SEQKERN_ISA": "avx2"}])
def test_int8_forced_levels_in_a_child_process(env):
    # The same integers at every level and with VNNI off: the step's pre-activations are equal, so
    # the outputs differ at most by the cell functions' last bits.
    code = (
        "import numpy as np, seqkern as sk\n"
        "from seqkern import _core\n"
        "rng = np.random.default_rng(5)\n"
        "f = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)\n"
        "w = sk.LSTMWeights(f(4 * 48, 20), f(4 * 48, 48), f(4 * 48), dtype='int8')\n"
        "h, c = w.step(f(3, 20), f(3, 48), f(3, 48))\n"
        "print(sk.get_isa(), _core.int8_vnni(), ' '.join(repr(float(v)) for v in h.ravel()))\n"
    )
    here = run_python(code)
    child = run_python(code, **env)
    assert here.returncode == 0 and child.returncode == 0, here.stderr + child.stderr
    isa, vnni, *values = child.stdout.split()
    if "SEQKERN_VNNI" in env:
        assert vnni == "False"
    elif env["SEQKERN_ISA"] in sk.available_isas():
        assert isa == env["SEQKERN_ISA"] and vnni == "False"
    expected = np.array([float(v) for v in here.stdout.split()[2:]])
    np.testing.assert_allclose(np.array([float(v) for v in values]), expected, rtol=0, atol=_step_tol(expected))
