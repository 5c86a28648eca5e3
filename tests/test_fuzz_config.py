"""Bounded mutation fuzzing in CI: no mutant of the example configs may crash or stall.

The full run is ``python -m benchmarks.fuzz_config`` (10,000+ cases, a worker
pool, per-case timeouts); this runs a few hundred hypothesis-chosen cases of
the same mutations through the same entry points in-process.
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterator
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_config import Pipeline, mutate

CASE_LIMIT_S = 30  # a generous bound that only catches hangs; speed is benchmarked


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    with tempfile.TemporaryDirectory() as d:
        yield Pipeline(d)


def _hang(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"a fuzz case took more than {CASE_LIMIT_S} s")


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.integers(min_value=0, max_value=10**6), seed=st.integers(0, 2**16))
def test_no_mutant_crashes_or_stalls(pipeline: Pipeline, case: int, seed: int) -> None:
    name, text, what = mutate(pipeline.seeds, case, seed, pipeline.secret)
    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(CASE_LIMIT_S)
    try:
        status, detail = pipeline.run(name, text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert status in ("accepted", "error"), f"{what}: {status}: {detail}"
