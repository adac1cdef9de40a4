"""Cache sizes: detection, the SEQKERN_CACHE override, and blocking that never changes the bits."""

from __future__ import annotations

import os

import numpy as np
import pytest
from checks import assert_close, run_python

import seqkern
from seqkern import _core
from seqkern import reference as ref


def test_sizes_are_reported():
    c = seqkern.cache_sizes()
    assert set(c) == {"l1d", "l2", "l3", "source"}
    assert all(isinstance(c[k], int) and c[k] > 0 for k in ("l1d", "l2", "l3"))
    assert c["source"].split("+")[0] in {"sysfs", "cpuid", "default"}
    assert seqkern.isa_info()["cache"] == c


def test_sysfs_is_read_where_it_exists():
    path = "/sys/devices/system/cpu/cpu0/cache/index2/size"
    if os.environ.get("SEQKERN_CACHE") or not os.path.exists(path):
        pytest.skip("no sysfs cache description here, or SEQKERN_CACHE is set")
    with open(path) as f:
        text = f.read().strip()
    assert text.endswith("K")
    assert seqkern.cache_sizes()["source"] == "sysfs"
    assert int(text[:-1]) << 10 in {seqkern.cache_sizes()["l2"], seqkern.cache_sizes()["l1d"],
                                    seqkern.cache_sizes()["l3"]}


def test_env_override_in_subprocess():
    out = run_python("import seqkern; c = seqkern.cache_sizes(); print(c['l1d'], c['l2'], c['l3'], c['source'])",
                      SEQKERN_CACHE="l2=256K,l3=8M")
    assert out.returncode == 0, out.stderr
    l1, l2, l3, source = out.stdout.split()
    assert (int(l2), int(l3)) == (256 << 10, 8 << 20) and int(l1) > 0
    assert source.endswith("+SEQKERN_CACHE")
    out = run_python("import seqkern; print(seqkern.cache_sizes()['l1d'])", SEQKERN_CACHE="l1=48KB")
    assert out.returncode == 0 and int(out.stdout) == 48 << 10


@pytest.mark.parametrize("spec", ["l2", "l2=", "l2=12X", "l4=1M", "l2=0", "l2=-1K", "l2=1M,,l3=2M"])
def test_bad_env_value_fails_import_clearly(spec):
    out = run_python("import seqkern", SEQKERN_CACHE=spec)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and f"SEQKERN_CACHE='{spec}'" in out.stderr
    assert "l1=32K,l2=512K,l3=32M" in out.stderr


def test_use_cache_sizes_sets_and_restores():
    before = seqkern.cache_sizes()
    with seqkern.use_cache_sizes(l2=64 << 10) as inside:
        assert inside["l2"] == 64 << 10 and inside["l3"] == before["l3"]
    assert seqkern.cache_sizes() == before
    for bad in (0, -5, 1.5, True, "1M"):
        with pytest.raises(ValueError, match="use_cache_sizes: l2 must be a positive int"):
            with seqkern.use_cache_sizes(l2=bad):
                pass
    assert seqkern.cache_sizes() == before


# Small L2 sizes force the GEMM's packed A blocks down to one register tile of rows (many row
# blocks); a huge one lifts them to the level's cap. The bits must not move.
L2_SIZES = [4 << 10, 48 << 10, 1 << 30]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_blocking_is_bitwise_invisible(isa, rng, dtype):
    a = rng.standard_normal((301, 700)).astype(dtype)
    b = rng.standard_normal((700, 83)).astype(dtype)
    base = _core._matmul(a, b)
    assert_close(base, a.astype(np.float64) @ b, a @ b, name="c")
    for l2 in L2_SIZES:
        with seqkern.use_cache_sizes(l2=l2):
            assert np.array_equal(_core._matmul(a, b), base), l2
            assert np.array_equal(_core._matmul(a, b, packed_repeat=1), base), l2


@pytest.mark.parametrize("m", list(range(1, 20)) + [32, 64])
def test_gemm_row_tiles(isa, rng, m):
    # Every row count splits into equal register tiles (for example 7 = 4 + 3, 13 = 5 + 4 + 4 on
    # AVX2); each must land in its own rows. K = 600 runs two equal K slices.
    a = rng.standard_normal((m, 600)).astype(np.float32)
    b = rng.standard_normal((61, 600)).astype(np.float32)
    got = _core._matmul(a, b, trans_b=True)
    assert_close(got, a.astype(np.float64) @ b.T.astype(np.float64), a @ b.T, name="c")
    assert np.array_equal(_core._matmul(a, b, trans_b=True, packed_repeat=1), got)
    for i in range(m):  # the same row alone: the same bits
        assert np.array_equal(_core._matmul(a[i:i + 1], b, trans_b=True), got[i:i + 1]), i


@pytest.mark.parametrize("batch,hidden", [(32, 100), (9, 40), (3, 24)])
def test_lstm_blocking_is_bitwise_invisible(isa, rng, batch, hidden):
    T, D = 6, 52
    x = rng.standard_normal((T, batch, D)).astype(np.float32)
    w_ih = (rng.standard_normal((4 * hidden, D)) * 0.2).astype(np.float32)
    w_hh = (rng.standard_normal((4 * hidden, hidden)) * 0.2).astype(np.float32)
    bias = rng.standard_normal(4 * hidden).astype(np.float32)
    y, h, c, _ = seqkern.lstm_forward(x, w_ih, w_hh, bias)
    y64 = ref.lstm_forward(*(v.astype(np.float64) for v in (x, w_ih, w_hh, bias)))[0]
    assert_close(y, y64, ref.lstm_forward(x, w_ih, w_hh, bias)[0], name="y")
    for l2 in L2_SIZES:
        with seqkern.use_cache_sizes(l2=l2):
            y2, h2, c2, _ = seqkern.lstm_forward(x, w_ih, w_hh, bias)
        assert np.array_equal(y2, y) and np.array_equal(h2, h) and np.array_equal(c2, c), l2
