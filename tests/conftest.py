"""Shared test settings: tiny experiment overrides and a CPU-only JAX."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles many small distinct programs whose run time is milliseconds: LLVM's optimisation passes
# would dominate it (measured: GMM loop compile 8.3 s at the default level, 4.1 s at level 0). Tests check
# numbers, not speed; benchmarks run at the default level.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# One persistent compilation cache for the whole session, shared by both xdist workers and by the CLI processes
# the tests start (they inherit the environment): identical programs compile once. Results do not depend on it
# (a cached executable is the compiled one), and it starts empty for every pytest session.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="madloop-test-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"

# The image metrics' feature classifier is trained once per session and data set, into a session cache both
# workers share (madloop.classifier writes its weights atomically).
if "MADLOOP_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["MADLOOP_CACHE_DIR"] = tempfile.mkdtemp(prefix="madloop-test-cache-")

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

# A tiny diffusion model: enough to exercise every stage (train, fine-tune, sample), not to fit anything.
TINY_DIFFUSION = [
    "data=ring8",
    "model=diffusion",
    "model.width=16",
    "model.depth=1",
    "model.time_features=4",
    "model.train_steps=20",
    "model.finetune_steps=5",
    "model.sample_steps=4",
    "model.batch=16",
]
# A tiny WGAN-GP: every stage (critic and generator updates, warm start, truncated sampling), not a fit.
TINY_GAN = [
    "data=ring8",
    "model=gan",
    "model.width=16",
    "model.depth=1",
    "model.latent=4",
    "model.n_critic=2",
    "model.train_steps=10",
    "model.finetune_steps=4",
    "model.batch=16",
]
# SIMS on top of it: a small auxiliary set and fine-tune.
TINY_SIMS = ["guidance=sims", "guidance.n_aux=32", "guidance.aux_steps=4"]


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
