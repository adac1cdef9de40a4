"""Accuracy checks shared by the tests.

``assert_close``: a kernel's output against the float64 reference. For float32 kernels the
tolerance calibrates itself: the kernel may be at most ``factor`` times as far from the float64
reference as the same reference computed in float32, plus a floor of ``floor * max|expected|``.
That scales with the shape, the recurrence length and FMA vs non-FMA arithmetic without a
hand-tuned number per test. For float64 kernels the bound is ``1e-9 * max|expected|`` plus 1e-12.
Non-finite entries of the reference must be matched exactly: NaN where it has NaN, +inf where
+inf, -inf where -inf (``same_non_finite``).

``check_grad``: a reference backward against a central finite difference along a random
direction, in float64.

``additive_inputs``: the float64 inputs of an additive-attention case, shared by the accuracy and
peer tests.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np


def _describe(actual, expected):
    # Non-finite entries were compared exactly before; the largest error is among the finite ones.
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isfinite(expected), np.abs(actual.astype(np.float64) - expected), 0.0)
    idx = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
    rel = diff / np.maximum(np.abs(expected), 1e-30)
    return (
        f"max abs err {diff.max() if diff.size else 0:.3e} at {idx} "
        f"(got {actual[idx] if diff.size else None}, expected {expected[idx] if diff.size else None}), "
        f"max rel err {rel.max() if diff.size else 0:.3e}"
    )


def same_non_finite(actual, expected) -> bool:
    """``actual`` is finite exactly where ``expected`` is, and equal to it everywhere else: NaN
    where NaN, +inf where +inf, -inf where -inf."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    finite = np.isfinite(expected)
    if not np.array_equal(np.isfinite(actual), finite):
        return False
    return bool(np.array_equal(actual[~finite].astype(np.float64), expected[~finite].astype(np.float64),
                               equal_nan=True))


def _non_finite_report(actual, expected) -> str:
    bad = np.isfinite(actual) != np.isfinite(expected)
    bad |= ~np.isfinite(expected) & ~((actual == expected) | (np.isnan(actual) & np.isnan(expected)))
    idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return f"{int(bad.sum())} entries, first at {idx}: got {actual[idx]}, expected {expected[idx]}"


def assert_close(actual, expected64, expected32=None, *, factor=4.0, floor=1e-6, name="output"):
    """Compare ``actual`` with the float64 reference ``expected64`` (see module docstring).

    ``expected32`` is the reference computed in float32 on the same inputs; required when
    ``actual`` is float32.
    """
    actual = np.asarray(actual)
    expected64 = np.asarray(expected64, dtype=np.float64)
    assert actual.shape == expected64.shape, f"{name}: shape {actual.shape} != {expected64.shape}"
    if actual.size == 0:
        return
    scale = float(np.max(np.abs(expected64))) if np.all(np.isfinite(expected64)) else 1.0
    assert same_non_finite(actual, expected64), (
        f"{name}: non-finite entries differ from the reference's: {_non_finite_report(actual, expected64)}")
    finite = np.isfinite(expected64)
    err = float(np.max(np.abs(actual[finite].astype(np.float64) - expected64[finite]), initial=0.0))
    if actual.dtype == np.float64:
        tol = 1e-9 * scale + 1e-12
    else:
        assert expected32 is not None, f"{name}: float32 check needs the float32 reference"
        e32 = np.asarray(expected32, dtype=np.float64)
        ref_err = float(np.max(np.abs(e32[finite] - expected64[finite]), initial=0.0))
        tol = factor * ref_err + floor * max(scale, 1e-30)
    assert err <= tol, f"{name}: error {err:.3e} > tolerance {tol:.3e}; {_describe(actual, expected64)}"


def check_grad(f, inputs, grads, *, eps=1e-6, rtol=1e-6, rng=None, name=""):
    """Directional finite-difference check of one backward, in float64.

    ``f(**inputs)`` returns an array or a tuple of arrays; ``grads["__g__"]`` is a tuple of
    upstream gradients g_i, one per output (None skips an output), defining
    L = sum_i <g_i, out_i>; every other key of ``grads`` names an input and holds the analytic
    dL/d(input). For each, with a random direction u, <dL/dx, u> must match
    (L(x + eps u) - L(x - eps u)) / (2 eps) within rtol relative, plus the difference's own
    rounding error, about 1e-16 |L| / eps.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    g = grads["__g__"]

    def loss(kw):
        out = f(**kw)
        out = out if isinstance(out, tuple) else (out,)
        return sum(float(np.sum(gi * oi)) for gi, oi in zip(g, out) if gi is not None)

    l0 = abs(loss(inputs))
    for key, analytic in grads.items():
        if key == "__g__" or analytic is None:
            continue
        x0 = np.asarray(inputs[key], dtype=np.float64)
        u = rng.standard_normal(x0.shape)
        numeric = (loss(dict(inputs, **{key: x0 + eps * u})) - loss(dict(inputs, **{key: x0 - eps * u}))) / (2 * eps)
        exact = float(np.sum(np.asarray(analytic) * u))
        tol = rtol * max(abs(numeric), abs(exact)) + 1e-9 * (l0 + 1.0)
        assert abs(numeric - exact) <= tol, (
            f"{name} d/d{key}: analytic {exact!r} vs finite difference {numeric!r} (tol {tol:.2e})"
        )


def additive_inputs(rng, b, lq, lk, dq, dk, dv, a):
    """float64 q, k, v, w_q, w_k, w_v for additive attention, weights scaled so that the tanh
    arguments stay in its curved range."""
    return [
        rng.standard_normal((b, lq, dq)),
        rng.standard_normal((b, lk, dk)),
        rng.standard_normal((b, lk, dv)),
        rng.standard_normal((a, dq)) * 0.5,
        rng.standard_normal((a, dk)) * 0.5,
        rng.standard_normal(a),
    ]


def run_python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    """``python -c code`` in a child process with these environment variables set."""
    env = dict(os.environ)
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)



def check_model_grad(model, x, y, lengths, loss_of, *, rng, name):
    """A model's parameter gradients (``model.loss_and_grads``) against finite differences of
    ``loss_of(model, x, y, lengths)``, the same loss computed by a forward without a cache; every
    parameter is restored after each evaluation."""
    loss, _ = model.loss_and_grads(x, y, lengths=lengths, training=False)
    params = model.params()
    inputs = {k.replace(".", "__"): v.copy() for k, v in params.items()}
    grads = {"__g__": (1.0,), **{k.replace(".", "__"): v.copy() for k, v in model.grads().items()}}

    def f(**kw):
        saved = {k: v.copy() for k, v in params.items()}
        for k, v in kw.items():
            params[k.replace("__", ".")][...] = v
        val = loss_of(model, x, y, lengths)
        for k, v in saved.items():
            params[k][...] = v
        return np.array(val)

    assert np.isclose(float(f()), loss), (name, float(f()), loss)
    check_grad(f, inputs, grads, rng=rng, name=name)
