"""Shared fixtures: every accuracy test runs once per available ISA level, with a seeded rng."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import Phase, settings

import seqkern

# Hypothesis profiles. By default a failing property is reported as first found, unshrunk:
# shrinking an LSTM or attention case re-runs the kernels and the float64 reference thousands of
# times and took over 5 minutes, while the unshrunk case is already reproducible (the runs are
# derandomized) and names the function and argument that failed. A passing run generates exactly
# the same examples either way. `pytest --hypothesis-profile=shrink` turns shrinking back on for
# a minimal counterexample.
_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)
settings.register_profile("seqkern", phases=_NO_SHRINK)
settings.register_profile("shrink", phases=tuple(Phase))
settings.load_profile("seqkern")


@pytest.fixture(params=seqkern.available_isas())
def isa(request):
    """Runs the test with the kernels at one ISA level, restoring the previous level after."""
    with seqkern.use_isa(request.param):
        yield request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test id: reproducible, and different for every test case."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def pytest_terminal_summary(terminalreporter):
    """Reports how many property-test cases each public function was given."""
    from fuzz_support import CASES

    if CASES:
        terminalreporter.write_line(
            "property-test cases: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
            + f" (total {sum(CASES.values())})"
        )
