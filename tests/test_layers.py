"""Whole recurrent layers (lstm/gru/rnn_layers_forward and _backward): against the reference
composed from the single-layer references, bitwise the same under every schedule and thread
count, the reference's gradients against finite differences, the PyTorch modules, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import convert
from seqkern import reference as ref

from checks import assert_close, check_grad

CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def make_weights(rng, cell, D, H, dtype, *, peephole=False, relu=False):
    G = GATES[cell]
    s = 1.0 / np.sqrt(H)
    w_ih = rng.uniform(-s, s, (G * H, D)).astype(dtype) * 2
    w_hh = rng.uniform(-s, s, (G * H, H)).astype(dtype) * 2
    if cell == "lstm":
        p = rng.standard_normal((3, H)).astype(dtype) * 0.5 if peephole else None
        return seqkern.LSTMWeights(w_ih, w_hh, rng.standard_normal(G * H).astype(dtype) * 0.5, peephole=p)
    if cell == "gru":
        return seqkern.GRUWeights(w_ih, w_hh, *(rng.standard_normal(G * H).astype(dtype) * 0.5 for _ in range(2)))
    return seqkern.RNNWeights(w_ih, w_hh, rng.standard_normal(H).astype(dtype) * 0.5,
                              nonlinearity="relu" if relu else "tanh")


def make_layers(rng, cell, D, H, L, dirs, dtype, **kw):
    out = []
    for k in range(L):
        ws = tuple(make_weights(rng, cell, D if k == 0 else dirs * H, H, dtype, **kw) for _ in range(dirs))
        out.append(ws if dirs == 2 else ws[0])
    return out


def fns(cell, module=seqkern):
    return getattr(module, f"{cell}_layers_forward"), getattr(module, f"{cell}_layers_backward")


def states(rng, cell, L, dirs, B, H, dtype):
    kw = {"h0": rng.standard_normal((L * dirs, B, H)).astype(dtype) * 0.5}
    if cell == "lstm":
        kw["c0"] = rng.standard_normal((L * dirs, B, H)).astype(dtype)
    return kw


def upstream(rng, cell, out):
    g = {"dy": rng.standard_normal(out.y.shape).astype(out.y.dtype),
         "dh_n": rng.standard_normal(out.h_n.shape).astype(out.y.dtype)}
    if cell == "lstm":
        g["dc_n"] = rng.standard_normal(out.c_n.shape).astype(out.y.dtype)
    return g


def lengths_for(rng, T, B):
    lengths = rng.integers(0, T + 1, B)
    lengths[0] = T
    if B > 2:
        lengths[1] = 0
    return lengths


CASES = [  # (T, B, D, H, layers, dirs)
    (5, 4, 3, 7, 2, 2),
    (1, 1, 2, 3, 1, 2),
    (6, 9, 17, 16, 3, 2),
    (7, 3, 5, 9, 2, 1),
    (4, 5, 8, 33, 1, 1),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "T%d-B%d-D%d-H%d-L%d-dirs%d" % c)
def test_matches_reference(isa, rng, cell, dtype, case):
    T, B, D, H, L, dirs = case
    extra = {"peephole": True} if cell == "lstm" else {"relu": True} if cell == "rnn" and L > 1 else {}
    layers = make_layers(rng, cell, D, H, L, dirs, dtype, **extra)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    kw = dict(lengths=lengths_for(rng, T, B), **states(rng, cell, L, dirs, B, H, dtype), dropout=0.3, seed=7)
    fwd, bwd = fns(cell)
    rfwd, rbwd = fns(cell, ref)
    out = fwd(x, layers, **kw)
    r64 = rfwd(x.astype(np.float64), _as64(cell, layers), **_kw64(kw))
    r32 = rfwd(x, layers, **kw)
    for name in ("y", "h_n", "c_n"):
        got, e64, e32 = getattr(out, name), getattr(r64, name), getattr(r32, name)
        if e64 is None:
            assert got is None
            continue
        assert got.dtype == dtype and got.shape == e64.shape
        assert_close(got, e64, e32, name=name)
    g = upstream(rng, cell, out)
    grads = bwd(out.cache, **g)
    g64 = rbwd(r64.cache, **{k: v.astype(np.float64) for k, v in g.items()})
    g32 = rbwd(r32.cache, **g)
    for name in ("dx", "dh0", "dc0"):
        got, e64, e32 = getattr(grads, name), getattr(g64, name), getattr(g32, name)
        if e64 is None:
            assert got is None
            continue
        assert_close(got, e64, e32, name=name)
    for k in range(L):
        for j in range(dirs):
            got, e64, e32 = grads.layers[k][j], g64.layers[k][j], g32.layers[k][j]
            for field in got._fields:
                if field in ("dx", "dh0", "dc0") or getattr(e64, field) is None:
                    continue
                assert_close(getattr(got, field), getattr(e64, field), getattr(e32, field),
                             name=f"layers[{k}][{j}].{field}")


def _as64(cell, layers):
    def one(w):
        d = {n: (None if getattr(w, n) is None else np.asarray(getattr(w, n), np.float64))
             for n in {"lstm": ("w_ih", "w_hh", "bias", "peephole"), "gru": ("w_ih", "w_hh", "b_ih", "b_hh"),
                       "rnn": ("w_ih", "w_hh", "bias")}[cell]}
        if cell == "rnn":
            d["nonlinearity"] = w.nonlinearity
        return type(w)(**d)
    return [tuple(one(w) for w in e) if isinstance(e, tuple) else one(e) for e in layers]


def _kw64(kw):
    return {k: (v.astype(np.float64) if k in ("h0", "c0") else v) for k, v in kw.items()}


@pytest.mark.parametrize("cell", CELLS)
def test_schedules_and_thread_counts_agree_bitwise(rng, cell):
    # The directions side by side, one after the other, at 1 and at 2 threads: the same bits.
    T, B, D, H, L = 9, 8, 12, 20, 2  # too small for "auto" to run side by side: forced below
    layers = make_layers(rng, cell, D, H, L, 2, np.float32)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    kw = dict(lengths=lengths_for(rng, T, B), **states(rng, cell, L, 2, B, H, np.float32), dropout=0.25, seed=3)
    fwd, bwd = fns(cell)
    runs = []
    before = seqkern.get_num_threads()
    try:
        for threads in (1, 2):
            seqkern.set_num_threads(threads)
            for schedule in ("sequential", "side_by_side", "auto"):
                out = fwd(x, layers, schedule=schedule, **kw)
                g = bwd(out.cache, **upstream(np.random.default_rng(1), cell, out))
                runs.append((out, g))
    finally:
        seqkern.set_num_threads(before)
    (o0, g0) = runs[0]
    for out, g in runs[1:]:
        for name in ("y", "h_n", "c_n"):
            a, b = getattr(o0, name), getattr(out, name)
            assert (a is None and b is None) or np.array_equal(a, b), name
        np.testing.assert_array_equal(g0.dx, g.dx)
        np.testing.assert_array_equal(g0.dh0, g.dh0)
        for k in range(L):
            for j in range(2):
                for a, b in zip(g0.layers[k][j], g.layers[k][j]):
                    assert (a is None and b is None) or np.array_equal(a, b)
    if seqkern.max_num_threads() >= 2:
        assert {o.cache.schedule for o, _ in runs[3:5]} == {"sequential", "side_by_side"}


def test_schedule_rule():
    # Two directions, two threads, B >= 4, 10 MFLOP a direction and one direction's weights
    # within L2; otherwise one after the other.
    rule = seqkern._layers.layers_schedule
    l2 = seqkern.cache_sizes()["l2"]
    H = 64
    assert rule(2, 64, 32, H, H, 4, threads=2) == "side_by_side"
    assert rule(1, 64, 32, H, H, 4, threads=2) == "sequential"
    assert rule(2, 64, 32, H, H, 4, threads=1) == "sequential"
    assert rule(2, 64, 1, H, H, 4, threads=2) == "sequential"
    assert rule(2, 2, 32, H, H, 4, threads=2) == "sequential"  # 4 MFLOP
    big = int(np.sqrt(l2 / 32)) + 1  # 4*H*(2H)*4 bytes > L2
    assert rule(2, 64, 32, big, big, 4, threads=2) == "sequential"


def test_auto_runs_side_by_side_where_the_rule_says(rng):
    T, B, D, H = 20, 8, 64, 64  # 10.5 MFLOP a direction
    layers = make_layers(rng, "lstm", D, H, 1, 2, np.float32)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    before = seqkern.get_num_threads()
    try:
        seqkern.set_num_threads(2)
        auto = seqkern.lstm_layers_forward(x, layers)
        seq = seqkern.lstm_layers_forward(x, layers, schedule="sequential")
    finally:
        seqkern.set_num_threads(before)
    if seqkern.max_num_threads() >= 2:
        assert auto.cache.schedule == "side_by_side"
    np.testing.assert_array_equal(auto.y, seq.y)
    np.testing.assert_array_equal(auto.c_n, seq.c_n)


@pytest.mark.parametrize("cell", CELLS)
def test_reference_gradients(rng, cell):
    # The composed reference against central finite differences in float64: x, the initial
    # states and (through one direction's weights) the per-layer weight gradients.
    T, B, D, H, L = 4, 3, 3, 4, 2
    layers = make_layers(rng, cell, D, H, L, 2, np.float64)
    lengths = np.array([4, 2, 0])
    st = states(rng, cell, L, 2, B, H, np.float64)
    masks = seqkern._layers.dropout_masks_from_seed(5, 0.4, L, (T, B, 2 * H), np.float64)
    x = rng.standard_normal((T, B, D))
    rfwd, rbwd = fns(cell, ref)
    out = rfwd(x, layers, lengths=lengths, dropout_masks=masks, **st)
    g = upstream(rng, cell, out)
    grads = rbwd(out.cache, **g)
    outputs = ("y", "h_n", "c_n") if cell == "lstm" else ("y", "h_n")
    ups = tuple(g[k] for k in ("dy", "dh_n", "dc_n") if k in g)

    def f(x, w_hh, **s):
        ls = list(layers)
        w = ls[1][1]
        if cell == "lstm":
            w2 = seqkern.LSTMWeights(w.w_ih, w_hh, w.bias)
        elif cell == "gru":
            w2 = seqkern.GRUWeights(w.w_ih, w_hh, w.b_ih, w.b_hh)
        else:
            w2 = seqkern.RNNWeights(w.w_ih, w_hh, w.bias, nonlinearity=w.nonlinearity)
        ls[1] = (ls[1][0], w2)
        o = rfwd(x, ls, lengths=lengths, dropout_masks=masks, **s)
        return tuple(getattr(o, n) for n in outputs)

    analytic = {"__g__": ups, "x": grads.dx, "h0": grads.dh0, "w_hh": grads.layers[1][1].dw_hh}
    if cell == "lstm":
        analytic["c0"] = grads.dc0
    check_grad(f, dict(x=x, w_hh=np.asarray(layers[1][1].w_hh), **st), analytic, rng=rng, name=f"{cell}_layers")


def test_dropout_from_seed_and_masks(rng):
    T, B, D, H, L = 5, 4, 3, 6, 3
    layers = make_layers(rng, "lstm", D, H, L, 2, np.float64)
    x = rng.standard_normal((T, B, D))
    a = seqkern.lstm_layers_forward(x, layers, dropout=0.5, seed=11)
    b = seqkern.lstm_layers_forward(x, layers, dropout=0.5, seed=11)
    np.testing.assert_array_equal(a.y, b.y)
    masks = seqkern._layers.dropout_masks_from_seed(11, 0.5, L, (T, B, 2 * H), np.float64)
    c = seqkern.lstm_layers_forward(x, layers, dropout_masks=masks)
    np.testing.assert_array_equal(a.y, c.y)
    for m, saved in zip(masks, a.cache.masks):
        np.testing.assert_array_equal(m, saved)
        assert set(np.unique(m)) <= {0.0, 2.0}
    d = seqkern.lstm_layers_forward(x, layers, dropout=0.5, seed=12)
    assert not np.array_equal(a.y, d.y)
    e = seqkern.lstm_layers_forward(x, layers)
    assert not np.array_equal(a.y, e.y)
    assert e.cache.masks == (None, None)


def test_without_cache_and_empty_sizes(rng):
    layers = make_layers(rng, "gru", 3, 5, 2, 2, np.float32)
    x = rng.standard_normal((4, 3, 3)).astype(np.float32)
    a = seqkern.gru_layers_forward(x, layers)
    b = seqkern.gru_layers_forward(x, layers, need_cache=False)
    assert b.cache is None and b.c_n is None
    np.testing.assert_array_equal(a.y, b.y)
    for T, B in ((0, 3), (4, 0)):
        out = seqkern.gru_layers_forward(np.zeros((T, B, 3), np.float32), layers)
        assert out.y.shape == (T, B, 10) and out.h_n.shape == (4, B, 5)
        g = seqkern.gru_layers_backward(out.cache, np.zeros((T, B, 10), np.float32))
        assert g.dx.shape == (T, B, 3)


def test_errors(rng):
    lstm = make_layers(rng, "lstm", 3, 4, 2, 2, np.float32)
    gru = make_layers(rng, "gru", 3, 4, 1, 1, np.float32)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    f = seqkern.lstm_layers_forward
    with pytest.raises(TypeError, match="layers must be a non-empty list"):
        f(x, lstm[0][0])
    with pytest.raises(TypeError, match="layers must be a non-empty list"):
        f(x, [])
    with pytest.raises(TypeError, match=r"layers\[0\] must be a LSTMWeights, got GRUWeights"):
        f(x, gru)
    with pytest.raises(ValueError, match="same number of directions"):
        f(x, [lstm[0], lstm[1][0]])
    with pytest.raises(ValueError, match=r"layers\[0\] must hold 1 or 2 directions"):
        f(x, [lstm[0] + lstm[0]])
    with pytest.raises(ValueError, match=r"layers\[1\]\[0\] takes inputs of width 8"):
        f(x, [lstm[0][0], lstm[1][0]])
    with pytest.raises(ValueError, match=r"D = 3"):
        f(x[..., :2], lstm)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, D\)"):
        f(x[0], lstm)
    with pytest.raises(ValueError, match=r"h0 must have shape \(layers\*dirs, B, H\) = \(4, 2, 4\)"):
        f(x, lstm, h0=np.zeros((2, 2, 4), np.float32))
    with pytest.raises(TypeError, match="c0 must be float32"):
        f(x, lstm, c0=np.zeros((4, 2, 4)))
    with pytest.raises(ValueError, match="lengths must be integers of shape"):
        f(x, lstm, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="lengths"):
        f(x, lstm, lengths=np.array([6, 1]))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        f(x, lstm, dropout=1.0)
    with pytest.raises(ValueError, match="not both"):
        f(x, lstm, dropout=0.2, dropout_masks=[np.ones((5, 2, 8), np.float32)])
    with pytest.raises(ValueError, match=r"dropout_masks\[0\] must have shape"):
        f(x, lstm, dropout_masks=[np.ones((5, 2, 4), np.float32)])
    with pytest.raises(ValueError, match="one mask for each layer after the first"):
        f(x, lstm, dropout_masks=[])
    with pytest.raises(ValueError, match="schedule must be one of"):
        f(x, lstm, schedule="fast")
    out = f(x, lstm)
    with pytest.raises(TypeError, match="cache must be the LayersCache of a gru_layers_forward"):
        seqkern.gru_layers_backward(out.cache)
    with pytest.raises(TypeError, match="cache must be the LayersCache"):
        seqkern.lstm_layers_backward(out)
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2, 8\)"):
        seqkern.lstm_layers_backward(out.cache, np.zeros((5, 2, 4), np.float32))
    with pytest.raises(TypeError, match="dh_n must be float32"):
        seqkern.lstm_layers_backward(out.cache, dh_n=np.zeros((4, 2, 4)))
    with pytest.raises(TypeError, match="only the"):
        seqkern.LayersCache()
    with pytest.raises(AttributeError):
        out.cache._masks = ()


def test_side_by_side_error_propagates(rng):
    # An error in either direction reaches the caller (the other direction has ended by then).
    layers = make_layers(rng, "lstm", 3, 4, 1, 2, np.float32)
    x = rng.standard_normal((5, 8, 3)).astype(np.float32)
    before = seqkern.get_num_threads()
    try:
        seqkern.set_num_threads(2)
        with pytest.raises(ValueError, match="h0"):
            seqkern.lstm_layers_forward(x, layers, h0=np.full((2, 8, 3), 0, np.float32), schedule="side_by_side")
        bad = [(layers[0][0], layers[0][1])]
        out = seqkern.lstm_layers_forward(x, bad, schedule="side_by_side")
        with pytest.raises(ValueError, match="dy must have shape"):
            seqkern.lstm_layers_backward(out.cache, dy=np.zeros((5, 8, 4), np.float32))
        assert seqkern.get_num_threads() == 2
    finally:
        seqkern.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# PyTorch's modules


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dirs", [1, 2])
def test_matches_torch_modules(rng, cell, dirs):
    torch = pytest.importorskip("torch")
    T, B, D, H, L = 6, 4, 5, 7, 2
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    extra = {"nonlinearity": "relu"} if cell == "rnn" else {}
    torch.manual_seed(0)
    m = cls(D, H, num_layers=L, bidirectional=dirs == 2, **extra).double()
    sd = m.state_dict()
    conv = getattr(convert, f"from_torch_{cell}_layers")
    layers = conv(sd, "relu") if cell == "rnn" else conv(sd)
    back = getattr(convert, f"to_torch_{cell}_layers")(layers)
    assert set(back) == set(sd)
    lengths = np.array([6, 2, 5, 1])
    x = torch.tensor(rng.standard_normal((T, B, D)), requires_grad=True)
    h0 = torch.tensor(rng.standard_normal((L * dirs, B, H)), requires_grad=True)
    c0 = torch.tensor(rng.standard_normal((L * dirs, B, H)), requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    y, hn = m(packed, (h0, c0) if cell == "lstm" else h0)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    kw = {"h0": h0.detach().numpy()}
    if cell == "lstm":
        kw["c0"] = c0.detach().numpy()
        hn, cn = hn
    out = fns(cell)[0](x.detach().numpy(), layers, lengths=lengths, **kw)
    np.testing.assert_allclose(out.y, y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.h_n, hn.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = upstream(rng, cell, out)
    loss = (torch.from_numpy(g["dy"]) * y).sum() + (torch.from_numpy(g["dh_n"]) * hn).sum()
    if cell == "lstm":
        np.testing.assert_allclose(out.c_n, cn.detach().numpy(), rtol=1e-10, atol=1e-12)
        loss = loss + (torch.from_numpy(g["dc_n"]) * cn).sum()
    loss.backward()
    grads = fns(cell)[1](out.cache, **g)
    np.testing.assert_allclose(grads.dx, x.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(grads.dh0, h0.grad.numpy(), rtol=1e-9, atol=1e-11)
    if cell == "lstm":
        np.testing.assert_allclose(grads.dc0, c0.grad.numpy(), rtol=1e-9, atol=1e-11)
    for k in range(L):
        for j, s in enumerate(("", "_reverse")[:dirs]):
            got = grads.layers[k][j]
            want = {n: p.grad.numpy() for n, p in m.named_parameters()}
            np.testing.assert_allclose(got.dw_ih, want[f"weight_ih_l{k}{s}"], rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(got.dw_hh, want[f"weight_hh_l{k}{s}"], rtol=1e-9, atol=1e-11)
            db = got.db_ih if cell == "gru" else got.dbias
            np.testing.assert_allclose(db, want[f"bias_ih_l{k}{s}"], rtol=1e-9, atol=1e-11)


def test_whole_model_converters(rng):
    torch = pytest.importorskip("torch")
    m = torch.nn.LSTM(4, 3, num_layers=3, bidirectional=True)
    nested = {f"encoder.rnn.{k}": v for k, v in m.state_dict().items()}
    layers = convert.from_torch_lstm_layers(nested, dtype=np.float64)
    assert len(layers) == 3 and all(len(e) == 2 for e in layers)
    assert layers[0][0].dtype == np.float64 and layers[1][1].input_size == 6
    back = convert.to_torch_lstm_layers(layers)
    m2 = torch.nn.LSTM(4, 3, num_layers=3, bidirectional=True).double()
    m2.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})
    x = rng.standard_normal((5, 2, 4))
    y, _ = m2(torch.from_numpy(x))
    out = seqkern.lstm_layers_forward(x, layers)
    np.testing.assert_allclose(out.y, y.detach().numpy(), rtol=1e-10, atol=1e-12)  # float64 on both sides
    with pytest.raises(KeyError, match="no 'weight_ih_l0'"):
        convert.from_torch_lstm_layers({})
    with pytest.raises(TypeError, match="LSTMWeights"):
        convert.to_torch_lstm_layers([make_weights(rng, "gru", 2, 2, np.float32)])
    peep = [make_weights(rng, "lstm", 2, 2, np.float32, peephole=True)]
    with pytest.raises(ValueError, match="peephole"):
        convert.to_torch_lstm_layers(peep)
