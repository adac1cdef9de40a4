"""seqkern.torch modules against torch.nn on the same weights: outputs and gradients (packed
sequences, bidirectional, stacked), state dicts both ways, torch.compile, and DistributedDataParallel;
scaled_dot_product_attention with float masks (a differentiable bias) and grouped heads."""

import math
import os
import socket

import pytest

torch = pytest.importorskip("torch")

import seqkern  # noqa: E402
import seqkern.torch as st  # noqa: E402
from torch.nn.utils.rnn import pack_sequence  # noqa: E402

TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 1e-5, "atol": 2e-6}}


@pytest.fixture
def gen(request):
    g = torch.Generator()
    g.manual_seed(abs(hash(request.node.nodeid)) % 2**31)
    return g


def pair(kind, dtype, **kw):
    """A torch.nn module and the seqkern.torch one with its state dict."""
    ref = getattr(torch.nn, kind)(**kw).to(dtype)
    mine = getattr(st, kind)(**kw, dtype=dtype)
    mine.load_state_dict(ref.state_dict())
    return ref, mine


def flat(out):
    """Every tensor of a module's result (PackedSequence data included)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "batch_sizes"):
        return [out.data]
    return [t for o in out for t in flat(o)]


def compare(ref, mine, inputs, dtype, gen):
    """Forward outputs and the gradients of a random projection of them, for inputs and parameters."""
    outs = [flat(m(*inputs)) for m in (ref, mine)]
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, **TOL[dtype])
    weights = [torch.randn(a.shape, generator=gen, dtype=dtype) for a in outs[0]]
    leaves = [t for t in flat(inputs) if t.requires_grad]
    grads = []
    for m, o in zip((ref, mine), outs):
        loss = sum((w * t).sum() for w, t in zip(weights, o))
        grads.append(torch.autograd.grad(loss, leaves + list(m.parameters())))
    names = [f"input{i}" for i in range(len(leaves))] + [n for n, _ in ref.named_parameters()]
    for name, a, b in zip(names, *grads):
        torch.testing.assert_close(b, a, **TOL[dtype], msg=lambda m: f"{name}: {m}")


DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, True)])
def test_padded_input_equals_torch(gen, dtype, kind, layers, bidir):
    ref, mine = pair(kind, dtype, input_size=5, hidden_size=7, num_layers=layers, bidirectional=bidir)
    x = torch.randn(6, 3, 5, generator=gen, dtype=dtype, requires_grad=True)
    compare(ref, mine, (x,), dtype, gen)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layers,bidir", [(1, True), (2, True), (2, False)])
def test_packed_sequence_equals_torch(gen, dtype, kind, layers, bidir):
    ref, mine = pair(kind, dtype, input_size=4, hidden_size=6, num_layers=layers, bidirectional=bidir)
    seqs = [torch.randn(n, 4, generator=gen, dtype=dtype, requires_grad=True) for n in (3, 7, 1, 7, 5)]
    compare(ref, mine, (pack_sequence(seqs, enforce_sorted=False),), dtype, gen)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_initial_state_batch_first_and_no_bias(gen, kind):
    dtype = torch.float64
    ref, mine = pair(kind, dtype, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True,
                     bias=False)
    x = torch.randn(2, 5, 3, generator=gen, dtype=dtype, requires_grad=True)
    h0 = torch.randn(4, 2, 4, generator=gen, dtype=dtype, requires_grad=True)
    hx = (h0, torch.randn(4, 2, 4, generator=gen, dtype=dtype, requires_grad=True)) if kind == "LSTM" else h0
    compare(ref, mine, (x, hx), dtype, gen)


def test_packed_input_with_initial_state(gen):
    dtype = torch.float64
    ref, mine = pair("LSTM", dtype, input_size=3, hidden_size=4, bidirectional=True)
    seqs = [torch.randn(n, 3, generator=gen, dtype=dtype) for n in (2, 5, 4)]
    hx = tuple(torch.randn(2, 3, 4, generator=gen, dtype=dtype, requires_grad=True) for _ in range(2))
    compare(ref, mine, (pack_sequence(seqs, enforce_sorted=False), hx), dtype, gen)


def test_unbatched_input(gen):
    ref, mine = pair("GRU", torch.float64, input_size=3, hidden_size=4, num_layers=2)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    compare(ref, mine, (x,), torch.float64, gen)


def test_rnn_relu(gen):
    ref, mine = pair("RNN", torch.float64, input_size=3, hidden_size=4, nonlinearity="relu", num_layers=2)
    x = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    compare(ref, mine, (x,), torch.float64, gen)


def test_state_dict_round_trip_and_names():
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    mine = st.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert list(mine.state_dict()) == list(ref.state_dict())
    back = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    back.load_state_dict(mine.state_dict())
    for k, v in mine.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    peep = st.LSTM(3, 4, peephole=True, bidirectional=True)
    assert {"peephole_l0", "peephole_l0_reverse"} <= set(peep.state_dict())
    assert torch.all(peep.peephole_l0 == 0)


def test_peephole_equals_the_numpy_api(gen):
    m = st.LSTM(3, 4, peephole=True, dtype=torch.float64)
    with torch.no_grad():
        m.peephole_l0.normal_(generator=gen)
    x = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    y, (h, c) = m(x)
    b = (m.bias_ih_l0 + m.bias_hh_l0).detach().numpy()
    want = seqkern.lstm_forward(x.numpy(), m.weight_ih_l0.detach().numpy(), m.weight_hh_l0.detach().numpy(), b,
                                peephole=m.peephole_l0.detach().numpy(), need_cache=False)
    torch.testing.assert_close(y.detach(), torch.from_numpy(want.y), rtol=0, atol=0)
    torch.testing.assert_close(c[0].detach(), torch.from_numpy(want.c_n), rtol=0, atol=0)
    # Peephole gradients flow.
    (y.sum() + c.sum()).backward()
    assert m.peephole_l0.grad is not None and m.peephole_l0.grad.abs().sum() > 0


def test_dropout_between_layers_only_in_training(gen):
    m = st.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(4, 2, 3, generator=gen)
    m.eval()
    a, b = m(x)[0], m(x)[0]
    assert torch.equal(a, b)
    ref = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).eval()
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(a, ref(x)[0], **TOL[torch.float32])


def test_results_do_not_depend_on_the_thread_count(gen):
    m = st.LSTM(16, 32, bidirectional=True)
    x = torch.randn(9, 8, 16, generator=gen)
    before = seqkern.get_num_threads()
    try:
        seqkern.set_num_threads(1)
        a = m(x)[0]
        seqkern.set_num_threads(2)
        b = m(x)[0]
    finally:
        seqkern.set_num_threads(before)
    assert torch.equal(a, b)


# --- attention ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "causal", "causal_rect"])
def test_sdpa_equals_torch(gen, dtype, mask_kind):
    B, NH, Lq, Lk, Dh = 2, 3, 5, 7 if mask_kind != "causal" else 5, 8
    q, k, v = (torch.randn(B, NH, L, Dh, generator=gen, dtype=dtype, requires_grad=True) for L in (Lq, Lk, Lk))
    kw = {}
    if mask_kind in ("bool", "additive"):
        keep = torch.rand(Lq, Lk, generator=gen) < 0.6
        keep[:, 0] = True  # no fully masked row (PyTorch gives NaN there, seqkern zeros)
        kw["attn_mask"] = keep if mask_kind == "bool" else torch.zeros(Lq, Lk, dtype=dtype).masked_fill(~keep, -math.inf)
    if mask_kind.startswith("causal"):
        kw["is_causal"] = True
    kw["scale"] = 0.3 if mask_kind == "bool" else None
    outs = [f(q, k, v, **kw) for f in (torch.nn.functional.scaled_dot_product_attention, st.scaled_dot_product_attention)]
    torch.testing.assert_close(outs[1], outs[0], **TOL[dtype])
    g = torch.randn(outs[0].shape, generator=gen, dtype=dtype)
    grads = [torch.autograd.grad((o * g).sum(), (q, k, v)) for o in outs]
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **TOL[dtype])


def test_additive_attention_equals_formula(gen):
    dtype = torch.float64
    B, Lq, Lk, D, A = 2, 3, 4, 5, 6
    q, k, v = (torch.randn(B, L, D, generator=gen, dtype=dtype, requires_grad=True) for L in (Lq, Lk, Lk))
    wq, wk = (torch.randn(A, D, generator=gen, dtype=dtype, requires_grad=True) for _ in range(2))
    wv = torch.randn(A, generator=gen, dtype=dtype, requires_grad=True)
    mask = torch.ones(B, Lq, Lk, dtype=torch.bool)
    mask[0, :, 2:] = False
    scores = torch.tanh((q @ wq.T)[:, :, None] + (k @ wk.T)[:, None]) @ wv
    want = torch.softmax(scores.masked_fill(~mask, -math.inf), -1) @ v
    got = st.additive_attention(q, k, v, wq, wk, wv, mask)
    torch.testing.assert_close(got, want, **TOL[dtype])
    g = torch.randn(want.shape, generator=gen, dtype=dtype)
    for a, b in zip(*(torch.autograd.grad((o * g).sum(), (q, k, v, wq, wk, wv)) for o in (want, got))):
        torch.testing.assert_close(b, a, **TOL[dtype])


@pytest.mark.parametrize("batch_first", [False, True])
def test_attention_pool_equals_formula(gen, batch_first):
    dtype = torch.float64
    T, B, H, A = 6, 3, 4, 5
    pool = st.AttentionPool(H, A, batch_first=batch_first, dtype=dtype)
    with torch.no_grad():
        pool.bias.normal_(generator=gen)
    h = torch.randn(T, B, H, generator=gen, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    context, alpha = pool(h.transpose(0, 1) if batch_first else h, lengths)
    s = torch.tanh(h @ pool.weight.T + pool.bias) @ pool.score
    s = s.masked_fill(torch.arange(T)[:, None] >= lengths, -math.inf)
    a_want = torch.softmax(s, 0)
    c_want = (a_want[..., None] * h).sum(0)
    torch.testing.assert_close(context, c_want, **TOL[dtype])
    torch.testing.assert_close(alpha.transpose(0, 1) if batch_first else alpha, a_want, **TOL[dtype])
    # Gradients through both outputs (the context and the weights alpha).
    gc = torch.randn(B, H, generator=gen, dtype=dtype)
    ga = torch.randn(T, B, generator=gen, dtype=dtype)
    wrt = (h, pool.weight, pool.bias, pool.score)
    got = torch.autograd.grad((context * gc).sum() + ((alpha.T if batch_first else alpha) * ga).sum(), wrt)
    want = torch.autograd.grad((c_want * gc).sum() + (a_want * ga).sum(), wrt)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a, **TOL[dtype])


def test_attention_pool_takes_a_packed_sequence(gen):
    pool = st.AttentionPool(4, 3, dtype=torch.float64)
    seqs = [torch.randn(n, 4, generator=gen, dtype=torch.float64) for n in (2, 5, 3)]
    c1, _ = pool(pack_sequence(seqs, enforce_sorted=False))
    padded = torch.nn.utils.rnn.pad_sequence(seqs)
    c2, _ = pool(padded, torch.tensor([2, 5, 3]))
    torch.testing.assert_close(c1, c2, rtol=0, atol=0)


# --- torch.compile -----------------------------------------------------------------------------------------------

class Classifier(torch.nn.Module):
    """Embedding -> bidirectional LSTM -> attention pooling and SDPA -> Linear: every module here."""

    def __init__(self, recurrent=st.LSTM, vocab=50, dim=8, hidden=6):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.rnn = recurrent(dim, hidden, bidirectional=True, batch_first=True)
        self.pool = st.AttentionPool(2 * hidden, 5, batch_first=True)
        self.out = torch.nn.Linear(4 * hidden, 2)

    def forward(self, tokens):
        y, (h, _c) = self.rnn(self.emb(tokens))
        context, _ = self.pool(y)
        att = st.scaled_dot_product_attention(y, y, y, is_causal=True).mean(1)
        return self.out(torch.cat([context, att], 1))


def test_torch_compile_matches_eager(gen):
    torch.manual_seed(0)
    model = Classifier()
    tokens = torch.randint(0, 50, (4, 9), generator=gen)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    want = model(tokens)
    got = compiled(tokens)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    gw = torch.autograd.grad(want.square().sum(), list(model.parameters()))
    gg = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    for a, b in zip(gw, gg):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # the inference ops, traced
        torch.testing.assert_close(compiled(tokens), want.detach(), rtol=1e-6, atol=1e-7)


# --- DistributedDataParallel ---------------------------------------------------------------------------------------

def _train(model, batches, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        tokens, labels = batches[step]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens), labels).backward()
        opt.step()


def _global_batches(steps, B=8, T=7):
    g = torch.Generator()
    g.manual_seed(123)
    return [(torch.randint(0, 50, (B, T), generator=g), torch.randint(0, 2, (B,), generator=g)) for _ in range(steps)]


def _ddp_worker(rank, world, port, path, steps):
    import torch.distributed as dist

    torch.set_num_threads(1)
    seqkern.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(Classifier())
        per = 8 // world
        batches = [(t[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]) for t, y in _global_batches(steps)]
        _train(model, batches, steps)
        if rank == 0:
            torch.save(model.module.state_dict(), path)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_equal_one_process(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    steps, path = 3, str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), path, steps), nprocs=2, join=True)
    torch.manual_seed(0)
    single = Classifier()
    _train(single, _global_batches(steps), steps)
    got = torch.load(path, weights_only=True)
    assert list(got) == list(single.state_dict())
    for name, want in single.state_dict().items():
        torch.testing.assert_close(got[name], want, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_no_grad_gives_the_same_results_as_training(gen, kind):
    # Under no_grad the modules use the inference ops (nothing kept for a backward).
    mine = getattr(st, kind)(3, 5, num_layers=2, bidirectional=True)
    seqs = [torch.randn(n, 3, generator=gen) for n in (4, 2, 6)]
    packed = pack_sequence(seqs, enforce_sorted=False)
    with_grad = flat(mine(packed))
    with torch.no_grad():
        without = flat(mine(packed))
    assert with_grad[0].requires_grad and not without[0].requires_grad
    for a, b in zip(with_grad, without):
        assert torch.equal(a.detach(), b)


class PackedClassifier(torch.nn.Module):
    """Embedding -> packed 2-layer bidirectional recurrent layer -> Linear."""

    def __init__(self, recurrent):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.rnn = recurrent(8, 6, num_layers=2, bidirectional=True)
        self.out = torch.nn.Linear(12, 2)

    def forward(self, tokens, lengths):
        x = torch.nn.utils.rnn.pack_padded_sequence(self.emb(tokens), lengths, enforce_sorted=False)
        y, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return self.out(torch.cat([h[-2], h[-1]], 1)) + torch.nn.utils.rnn.pad_packed_sequence(y)[0].mean()


# Packing reads the lengths' values, so dynamo breaks the graph there; wrapping the non-leaf
# tensors at that break, it inspects their .grad and PyTorch warns from inside dynamo.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_compile_with_packed_sequences_matches_eager(gen, kind):
    torch.manual_seed(0)
    model = PackedClassifier(getattr(st, kind))
    tokens, lengths = torch.randint(0, 50, (7, 4), generator=gen), torch.tensor([7, 3, 5, 1])
    want = model(tokens, lengths)
    got = torch.compile(model, backend="aot_eager")(tokens, lengths)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    gw = torch.autograd.grad(want.square().sum(), list(model.parameters()))
    gg = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    for a, b in zip(gw, gg):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


# --- scaled dot-product attention with a float mask (a bias) and grouped heads ------------------------------------

def _qkv(gen, dtype, B=2, NH=4, NKV=4, Lq=5, Lk=7, Dh=8, Dv=6):
    return (torch.randn(B, NH, Lq, Dh, generator=gen, dtype=dtype, requires_grad=True),
            torch.randn(B, NKV, Lk, Dh, generator=gen, dtype=dtype, requires_grad=True),
            torch.randn(B, NKV, Lk, Dv, generator=gen, dtype=dtype, requires_grad=True))


def _compare(gen, dtype, args, kw, extra=(), torch_kw=None):
    # torch_kw: PyTorch's arguments when they differ (it refuses attn_mask with is_causal).
    outs = [torch.nn.functional.scaled_dot_product_attention(*args, **(kw if torch_kw is None else torch_kw)),
            st.scaled_dot_product_attention(*args, **kw)]
    torch.testing.assert_close(outs[1], outs[0], **TOL[dtype])
    g = torch.randn(outs[0].shape, generator=gen, dtype=dtype)
    wrt = (*args, *extra)
    grads = [torch.autograd.grad((o * g).sum(), wrt) for o in outs]
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(5, 7), (4, 5, 7), (2, 1, 5, 7), (2, 4, 5, 7)])
@pytest.mark.parametrize("causal", [False, True])
def test_float_mask_is_a_differentiable_bias(gen, dtype, shape, causal):
    q, k, v = _qkv(gen, dtype, Lk=5 if causal else 7)
    shape = (*shape[:-1], k.shape[-2])
    bias = torch.randn(shape, generator=gen, dtype=dtype)
    bias[..., 0, 1] = -math.inf  # a masked key inside the bias
    bias.requires_grad_()
    torch_kw = None
    if causal:
        # The same for PyTorch as an explicit mask: the causal part -inf on top of the bias.
        tril = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        torch_kw = {"attn_mask": bias.masked_fill(~tril, -math.inf)}
    _compare(gen, dtype, (q, k, v), {"attn_mask": bias, "is_causal": causal}, extra=(bias,), torch_kw=torch_kw)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("nkv", [1, 2])
def test_grouped_query_attention(gen, dtype, nkv):
    q, k, v = _qkv(gen, dtype, NKV=nkv)
    _compare(gen, dtype, (q, k, v), {"enable_gqa": True})
    keep = torch.rand(5, 7, generator=gen) < 0.7
    keep[:, 0] = True
    _compare(gen, dtype, (q, k, v), {"enable_gqa": True, "attn_mask": keep, "scale": 0.4})
    bias = torch.randn(4, 5, 7, generator=gen, dtype=dtype, requires_grad=True)
    _compare(gen, dtype, (q, k, v), {"enable_gqa": True, "attn_mask": bias}, extra=(bias,))


def test_grouped_heads_need_enable_gqa(gen):
    q, k, v = _qkv(gen, torch.float64, NKV=2)
    with pytest.raises(ValueError, match="enable_gqa"):
        st.scaled_dot_product_attention(q, k, v)
    q3, k3, v3 = _qkv(gen, torch.float64, NKV=3)
    with pytest.raises(ValueError, match="fewer heads that divide"):
        st.scaled_dot_product_attention(q3, k3, v3, enable_gqa=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        st.scaled_dot_product_attention(q, k, v, attn_mask=torch.zeros(3, 5, 7, dtype=torch.float64), enable_gqa=True)
    with pytest.raises(TypeError, match="bias must be torch.float64, like q"):
        st.scaled_dot_product_attention(q, k, v, attn_mask=torch.zeros(5, 7), enable_gqa=True)


def _bias_args(gen):
    q, k, v = (t.detach().requires_grad_() for t in _qkv(gen, torch.float64, B=1, NH=2, NKV=1, Lq=3, Lk=4, Dh=3, Dv=2))
    bias = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    return q, k, v, None, bias, False, 0.6


def test_bias_op_passes_opcheck_and_gradcheck(gen):
    args = _bias_args(gen)
    torch.library.opcheck(torch.ops.seqkern.attention_bias.default, args)
    assert torch.autograd.gradcheck(lambda *a: torch.ops.seqkern.attention_bias(*a)[0], args, eps=1e-6, atol=1e-7, rtol=1e-5)
    q, k, v, _, bias, causal, scale = args
    with torch.no_grad():
        out, lse = torch.ops.seqkern.attention_bias(*args)
    torch.library.opcheck(torch.ops.seqkern.attention_bias_backward.default,
                          (q.detach(), k.detach(), v.detach(), out, lse, torch.randn_like(out), None, bias.detach(),
                           causal, scale))
