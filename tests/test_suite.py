"""The suite's own tools: assert_close's rule for non-finite values, how long a failing property
test runs, and the test requirements the README installs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from checks import assert_close, same_non_finite
from fuzz_support import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

NAN, INF = np.nan, np.inf
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("actual,expected", [
    ([NAN, 1.0], [INF, 1.0]),      # NaN where the reference has +inf
    ([INF, 1.0], [NAN, 1.0]),
    ([-INF, 1.0], [INF, 1.0]),     # the sign of an infinity
    ([INF, 1.0], [-INF, 1.0]),
    ([-INF, 1.0], [NAN, 1.0]),
    ([1.0, 1.0], [INF, 1.0]),      # finite where the reference is not
    ([NAN, 1.0], [1.0, 1.0]),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assert_close_tells_nan_and_infinities_apart(actual, expected, dtype):
    actual = np.array(actual, dtype)
    assert not same_non_finite(actual, np.array(expected))
    with pytest.raises(AssertionError, match="non-finite entries differ from the reference's"):
        assert_close(actual, np.array(expected), np.array(expected, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assert_close_accepts_the_same_non_finite_values(dtype):
    expected = np.array([NAN, INF, -INF, 2.0])
    assert same_non_finite(expected.astype(dtype), expected)
    assert_close(expected.astype(dtype), expected, expected.astype(np.float32))
    with pytest.raises(AssertionError, match="error"):
        assert_close(np.array([NAN, INF, -INF, 2.1], dtype), expected, expected.astype(np.float32))


def test_failing_property_is_reported_without_shrinking():
    """A failing property test stops soon after its first failure: the examples it draws after
    that are the one replay that reports it, not a shrinking search (which took minutes on the
    kernels' property tests)."""
    calls = []

    @fuzz_settings(200)
    @given(st.lists(st.integers(0, 1000), min_size=1, max_size=40))
    def prop(xs):
        calls.append(sum(xs))
        assert sum(xs) < 300

    with pytest.raises(AssertionError):
        prop()
    first = next(i for i, s in enumerate(calls) if s >= 300)
    assert len(calls) - first <= 2, f"{len(calls) - first} calls after the first failure"


def _requirements(text):
    return sorted(re.split(r"\s*#", line)[0].strip() for line in text.splitlines()
                  if line.strip() and not line.lstrip().startswith("#"))


def test_requirements_file_matches_the_test_extra():
    tomllib = pytest.importorskip("tomllib")
    if not (ROOT / "requirements-test.txt").exists():
        pytest.skip("not a source checkout")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert _requirements((ROOT / "requirements-test.txt").read_text()) == sorted(extra)
    readme = (ROOT / "README.md").read_text()
    assert "pip install -r requirements-test.txt && pytest" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npip install -r requirements-test.txt && pytest\n" in ci, "CI runs the README's test command"
