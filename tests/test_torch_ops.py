"""seqkern.torch operators: opcheck, gradcheck in float64, the version counter, the packed-weights
cache and the argument errors."""

import pytest

torch = pytest.importorskip("torch")

import seqkern.torch as st  # noqa: E402

ops = torch.ops.seqkern


def _t(gen, *shape, dtype=torch.float64, grad=True):
    return torch.randn(*shape, generator=gen, dtype=dtype).mul_(0.5).requires_grad_(grad)


@pytest.fixture
def gen(request):
    g = torch.Generator()
    g.manual_seed(abs(hash(request.node.nodeid)) % 2**31)
    return g


def lstm_args(gen, T=4, B=3, D=5, H=6, peephole=True, state=True, lengths=True, dtype=torch.float64):
    return (_t(gen, T, B, D, dtype=dtype), _t(gen, 4 * H, D, dtype=dtype), _t(gen, 4 * H, H, dtype=dtype),
            _t(gen, 4 * H, dtype=dtype), _t(gen, 4 * H, dtype=dtype),
            _t(gen, 3, H, dtype=dtype) if peephole else None,
            _t(gen, B, H, dtype=dtype) if state else None, _t(gen, B, H, dtype=dtype) if state else None,
            torch.tensor([T, 1, T - 1][:B], dtype=torch.int64) if lengths else None)


def gru_args(gen, T=4, B=3, D=5, H=6, G=3, state=True, lengths=True, dtype=torch.float64):
    return (_t(gen, T, B, D, dtype=dtype), _t(gen, G * H, D, dtype=dtype), _t(gen, G * H, H, dtype=dtype),
            _t(gen, G * H, dtype=dtype), _t(gen, G * H, dtype=dtype), _t(gen, B, H, dtype=dtype) if state else None,
            torch.tensor([T, 1, T - 1][:B], dtype=torch.int64) if lengths else None)


def attention_args(gen, dtype=torch.float64, masked=True):
    B, NH, Lq, Lk, Dh, Dv = 2, 2, 3, 5, 4, 3
    mask = torch.rand(Lq, Lk, generator=gen) < 0.7
    mask[:, 0] = True
    return (_t(gen, B, NH, Lq, Dh, dtype=dtype), _t(gen, B, NH, Lk, Dh, dtype=dtype), _t(gen, B, NH, Lk, Dv, dtype=dtype),
            mask.expand(B, NH, Lq, Lk) if masked else None)


def additive_args(gen, dtype=torch.float64):
    B, Lq, Lk, Dq, Dk, Dv, A = 2, 3, 4, 5, 6, 3, 7
    mask = torch.ones(B, Lq, Lk, dtype=torch.bool)
    mask[1, :, 3:] = False
    return (_t(gen, B, Lq, Dq, dtype=dtype), _t(gen, B, Lk, Dk, dtype=dtype), _t(gen, B, Lk, Dv, dtype=dtype),
            _t(gen, A, Dq, dtype=dtype), _t(gen, A, Dk, dtype=dtype), _t(gen, A, dtype=dtype), mask)


def pool_args(gen, dtype=torch.float64, lengths=True):
    T, B, H, A = 5, 3, 4, 6
    return (_t(gen, T, B, H, dtype=dtype), _t(gen, A, H, dtype=dtype), _t(gen, A, dtype=dtype), _t(gen, A, dtype=dtype),
            torch.tensor([5, 2, 1], dtype=torch.int64) if lengths else None)


def _cases(gen):
    return {
        "lstm": (ops.lstm.default, lstm_args(gen)),
        "lstm_plain": (ops.lstm.default, lstm_args(gen, peephole=False, state=False, lengths=False)),
        "gru": (ops.gru.default, gru_args(gen)),
        "gru_plain": (ops.gru.default, gru_args(gen, state=False, lengths=False)),
        "rnn_tanh": (ops.rnn.default, (*gru_args(gen, G=1), False)),
        "rnn_relu": (ops.rnn.default, (*gru_args(gen, G=1), True)),
        "attention": (ops.attention.default, (*attention_args(gen), False, 0.4)),
        "attention_causal": (ops.attention.default, (*attention_args(gen, masked=False), True, 0.5)),
        "additive_attention": (ops.additive_attention.default, additive_args(gen)),
        "attention_pool": (ops.attention_pool.default, pool_args(gen)),
    }


def _no_grad(args):
    return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.parametrize("case", ["lstm", "lstm_plain", "gru", "rnn_relu"])
def test_inference_ops_pass_opcheck_and_equal_the_training_ops(gen, case):
    op, args = _cases(gen)[case]
    name = op.name().split("::")[1].split(".")[0]
    inference = getattr(ops, name + "_inference").default
    args = _no_grad(args)
    torch.library.opcheck(inference, args)
    for a, b in zip(inference(*args), op(*args)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


CASES = ["lstm", "lstm_plain", "gru", "gru_plain", "rnn_tanh", "rnn_relu", "attention", "attention_causal",
         "additive_attention", "attention_pool"]


@pytest.mark.parametrize("case", CASES)
def test_opcheck(gen, case):
    op, args = _cases(gen)[case]
    torch.library.opcheck(op, args)


def _differentiable_outputs(op, args):
    # The op's outputs that carry gradients (the rest are what the backward needs).
    n = {"lstm": 3, "gru": 2, "rnn": 2, "attention": 1, "additive_attention": 1, "attention_pool": 2}
    name = op.name().split("::")[1].split(".")[0]

    def f(*a):
        # gradcheck perturbs the inputs through .data, which the version counter does not see:
        # the packed-weights cache's documented caveat.
        st.clear_weight_cache()
        return op(*a)[: n[name]]

    return f


@pytest.mark.parametrize("case", CASES)
def test_gradcheck_float64(gen, case):
    op, args = _cases(gen)[case]
    if case == "rnn_relu":
        # Keep pre-activations away from relu's kink, where a finite difference straddles it.
        args = list(args)
        with torch.no_grad():
            args[0].mul_(0.1)
            args[3].fill_(0.5)
    assert torch.autograd.gradcheck(_differentiable_outputs(op, args), args, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("case", ["lstm", "gru", "rnn_tanh", "attention", "additive_attention", "attention_pool"])
def test_backward_ops_under_opcheck(gen, case):
    op, args = _cases(gen)[case]
    outs = op(*args)
    n = len(_differentiable_outputs(op, args)(*args))
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs[:n])
    loss.backward()
    assert all(a.grad is not None for a in args if isinstance(a, torch.Tensor) and a.requires_grad
               and a.dtype.is_floating_point)


def test_the_backward_ops_pass_opcheck(gen):
    x, w_ih, w_hh, b_ih, b_hh, p, h0, c0, lengths = lstm_args(gen)
    with torch.no_grad():
        y, h_n, c_n, gates, h, c = ops.lstm(x, w_ih, w_hh, b_ih, b_hh, p, h0, c0, lengths)
    dy, dh, dc = torch.randn_like(y), torch.randn_like(h_n), torch.randn_like(c_n)
    torch.library.opcheck(ops.lstm_backward.default,
                          (x.detach(), w_ih.detach(), w_hh.detach(), b_ih.detach(), b_hh.detach(), p.detach(), lengths,
                           gates, h, c, dy, dh, dc))
    q, k, v, mask = attention_args(gen)
    with torch.no_grad():
        out, lse = ops.attention(q, k, v, mask, False, 0.5)
    torch.library.opcheck(ops.attention_backward.default,
                          (q.detach(), k.detach(), v.detach(), out, lse, torch.randn_like(out), mask, False, 0.5))


@pytest.mark.parametrize("which", ["x", "w_hh", "b_ih", "peephole"])
def test_in_place_change_before_backward_raises(gen, which):
    # Everything the backward reads is saved as a tensor: an in-place change after the forward
    # makes backward() raise instead of giving wrong gradients.
    args = list(lstm_args(gen))
    i = {"x": 0, "w_hh": 2, "b_ih": 3, "peephole": 5}[which]
    args[i] = args[i] * 1.0  # a non-leaf copy we may change in place
    y, h_n, c_n, *_ = ops.lstm(*args)
    with torch.no_grad():
        args[i].add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (y.sum() + h_n.sum()).backward()


def test_in_place_change_of_the_output_before_backward_raises(gen):
    q, k, v, mask = attention_args(gen)
    out, _ = ops.attention(q, k, v, mask, False, 0.5)
    y = out * 1.0
    out2, _ = ops.attention(q, k, v, mask, False, 0.5)
    with torch.no_grad():
        out2.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out2.sum().backward()
    y.sum().backward()


def test_float32_zero_copy_results(gen):
    args = lstm_args(gen, dtype=torch.float32)
    y, h_n, c_n, gates, h, c = ops.lstm(*args)
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in (y, h_n, c_n, gates, h, c))
    assert h.shape == (5, 3, 6) and gates.shape == (4, 3, 24)
    assert not gates.requires_grad and y.requires_grad


def test_non_contiguous_input_equals_contiguous(gen):
    x, *rest = (a.detach() if isinstance(a, torch.Tensor) else a for a in lstm_args(gen))
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not xt.is_contiguous()
    for u, w in zip(ops.lstm(x, *rest), ops.lstm(xt, *rest)):
        torch.testing.assert_close(u, w, rtol=0, atol=0)


class TestWeightCache:
    def _run(self, m, x):
        with torch.no_grad():
            return m(x)[0]

    def test_optimizer_step_refreshes_the_packed_weights(self, gen):
        torch.manual_seed(1)
        m, ref = st.LSTM(4, 5), torch.nn.LSTM(4, 5)
        ref.load_state_dict(m.state_dict())
        x = torch.randn(3, 2, 4, generator=gen)
        opts = [torch.optim.SGD(mod.parameters(), lr=0.5) for mod in (m, ref)]
        for _ in range(3):
            for mod, opt in zip((m, ref), opts):
                opt.zero_grad()
                mod(x)[0].square().sum().backward()
                opt.step()
            torch.testing.assert_close(self._run(m, x), self._run(ref, x), rtol=1e-5, atol=1e-6)

    def test_load_state_dict_and_double_refresh_the_packed_weights(self, gen):
        m, other = st.GRU(4, 5), torch.nn.GRU(4, 5)
        x = torch.randn(3, 2, 4, generator=gen)
        before = self._run(m, x)
        m.load_state_dict(other.state_dict())
        after = self._run(m, x)
        assert not torch.equal(before, after)
        torch.testing.assert_close(after, self._run(other, x), rtol=1e-5, atol=1e-6)
        m.double()
        other.double()
        torch.testing.assert_close(self._run(m, x.double()), self._run(other, x.double()), rtol=1e-12, atol=1e-12)

    def test_in_place_edit_under_no_grad_is_seen(self, gen):
        m = st.RNN(3, 4)
        x = torch.randn(2, 2, 3, generator=gen)
        before = self._run(m, x)
        with torch.no_grad():
            m.weight_hh_l0.mul_(0.5)
        after = self._run(m, x)
        ref = torch.nn.RNN(3, 4)
        ref.load_state_dict(m.state_dict())
        assert not torch.equal(before, after)
        torch.testing.assert_close(after, self._run(ref, x), rtol=1e-5, atol=1e-6)

    def test_writes_through_data_need_clear_weight_cache(self, gen):
        m = st.LSTM(3, 4)
        x = torch.randn(2, 2, 3, generator=gen)
        before = self._run(m, x)
        m.weight_ih_l0.data.mul_(2.0)  # bypasses the version counter: documented caveat
        assert torch.equal(self._run(m, x), before)
        st.clear_weight_cache()
        ref = torch.nn.LSTM(3, 4)
        ref.load_state_dict(m.state_dict())
        torch.testing.assert_close(self._run(m, x), self._run(ref, x), rtol=1e-5, atol=1e-6)

    def test_the_cache_is_bounded(self, gen):
        st.clear_weight_cache()
        x = torch.randn(2, 1, 3, generator=gen)
        for _ in range(st.CACHE_SIZE + 5):
            self._run(st.RNN(3, 2), x)
        assert st.weight_cache_info()["entries"] == st.CACHE_SIZE


class TestErrors:
    def test_wrong_dtype(self, gen):
        args = list(lstm_args(gen))
        args[2] = args[2].float()
        with pytest.raises(TypeError, match="w_hh must be torch.float64, like x"):
            ops.lstm(*args)
        with pytest.raises(TypeError, match="x must be float32 or float64"):
            ops.gru(torch.zeros(2, 1, 5, dtype=torch.float16), *gru_args(gen)[1:])
        args = list(lstm_args(gen))
        args[8] = args[8].int()
        with pytest.raises(TypeError, match="lengths must be int64"):
            ops.lstm(*args)

    def test_wrong_shape(self, gen):
        args = list(lstm_args(gen))
        args[1] = args[1][:, :4]
        with pytest.raises(ValueError, match=r"w_ih must have shape \(4\*H, D\) = \(24, 5\), got \(24, 4\)"):
            ops.lstm(*args)
        args = list(lstm_args(gen))
        args[6] = args[6][:2]
        with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\)"):
            ops.lstm(*args)
        with pytest.raises(ValueError, match="input must be 2-D or 3-D with last dim input_size = 4"):
            st.LSTM(4, 3)(torch.zeros(2, 2, 5))

    def test_wrong_device(self, gen):
        args = list(gru_args(gen))
        args[0] = args[0].detach().to("meta")
        with pytest.raises(ValueError, match="x must be on the CPU"):
            ops.gru(*args)
        with pytest.raises(ValueError, match="CPU only"):
            st.GRU(3, 4, device="meta")

    def test_module_dtype_mismatch(self):
        with pytest.raises(TypeError, match="LSTM: input must be torch.float32, like the parameters"):
            st.LSTM(3, 4)(torch.zeros(2, 1, 3, dtype=torch.float64))

    def test_bad_lengths_values(self, gen):
        args = list(gru_args(gen))
        args[6] = torch.tensor([9, 1, 1])
        with pytest.raises(ValueError, match="lengths"):
            ops.gru(*args)

    def test_sdpa_unsupported_arguments(self, gen):
        q, k, v, _ = attention_args(gen)
        with pytest.raises(NotImplementedError, match="dropout_p"):
            st.scaled_dot_product_attention(q, k, v, dropout_p=0.1)
        with pytest.raises(TypeError, match="bool or floating point"):
            st.scaled_dot_product_attention(q, k, v, attn_mask=torch.zeros(q.shape[-2], k.shape[-2], dtype=torch.int32))
        with pytest.raises(ValueError, match="does not broadcast"):
            st.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(4, 5, dtype=torch.bool))
        with pytest.raises(TypeError, match="k must be torch.float64, like q"):
            st.scaled_dot_product_attention(q, k.float(), v)


def test_the_two_bias_gradients_are_separate_tensors(gen):
    m = st.LSTM(3, 4)
    m(torch.randn(2, 2, 3, generator=gen))[0].sum().backward()
    assert torch.equal(m.bias_ih_l0.grad, m.bias_hh_l0.grad)
    assert m.bias_ih_l0.grad.data_ptr() != m.bias_hh_l0.grad.data_ptr()
