"""Shared test settings: tiny experiment overrides and a CPU-only JAX."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles many small distinct programs whose run time is milliseconds: LLVM's optimisation passes
# would dominate it (measured: GMM loop compile 8.3 s at the default level, 4.1 s at level 0). Tests check
# numbers, not speed; benchmarks run at the default level.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import pytest  # noqa: E402

# A small run: 2 generations, 2 seeds, small sets; compiled as one program (chunk >= generations).
TINY = [
    "loop.generations=2",
    "loop.seeds=2",
    "loop.chunk=2",
    "regime.n_real=48",
    "regime.n_synth=48",
    "eval.n=64",
    "eval.snapshot_n=16",
    "eval.projections=16",
    "plots=false",
]


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
