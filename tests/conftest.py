"""Shared fixtures: every accuracy test runs once per available ISA level, with a seeded rng."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import seqkern


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
