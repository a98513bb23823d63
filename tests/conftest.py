"""Shared test settings: tiny experiment overrides and a CPU-only JAX."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Optimisation level 0 (and, under jaxlib 0.10, no fusion emitters): the suite compiles many small programs whose
# run time is milliseconds (tests/xla_flags.py has the measurements). Tests check numbers, not speed.
from xla_flags import suite_xla_flags  # noqa: E402

os.environ.setdefault("XLA_FLAGS", suite_xla_flags())
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

import functools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.stats  # noqa: E402

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
# A tiny EDM model (Karras et al. 2022) with the same budget.
TINY_EDM = [o.replace("model=diffusion", "model=edm") for o in TINY_DIFFUSION]
# A tiny flow matching model with the minibatch OT coupling (a few Sinkhorn iterations); Euler's sampler (one
# network evaluation a step, two with SIMS: half of Heun's compile time).
TINY_FLOW_MATCHING = [
    "data=ring8",
    "model=flow_matching",
    "model.width=16",
    "model.depth=1",
    "model.time_features=4",
    "model.train_steps=20",
    "model.finetune_steps=5",
    "model.sample_steps=3",
    "model.batch=16",
    "model.coupling=ot",
    "model.ot_iters=6",
    "model.solver=euler",
]
# A tiny normalising flow on the Rosenbrock truth: every stage (data-dependent init, train, warm fit, sample).
TINY_FLOW = [
    "data=rosenbrock",
    "model=flow",
    "model.layers=2",
    "model.width=8",
    "model.depth=1",
    "model.train_steps=10",
    "model.finetune_steps=5",
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
# SIMS on top of a guidable one (diffusion, EDM, flow matching): a small auxiliary set and fine-tune.
TINY_SIMS = ["guidance=sims", "guidance.n_aux=32", "guidance.aux_steps=4"]


def whitened(x, mean, cov) -> np.ndarray:
    """Samples x [n, d] of N(mean, cov) mapped to independent N(0, 1) coordinates (float64)."""
    chol = np.linalg.cholesky(np.asarray(cov, np.float64))
    return np.linalg.solve(chol, (np.asarray(x, np.float64) - np.asarray(mean)).T).T


def assert_standard_normal(z: np.ndarray) -> None:
    """Whitened samples z [n, d] pass a KS test per coordinate at the 0.1% critical value 1.95 / sqrt(n) (0.0138 at
    n = 20000), and their covariance is I within 0.04 (4 SE at n = 20000). Power check: the same KS test rejects
    a 10% error in the standard deviation and a 0.05 sd shift of the mean."""
    crit = 1.95 / np.sqrt(z.shape[0])
    for j in range(z.shape[1]):
        assert scipy.stats.kstest(z[:, j], "norm").statistic < crit, (j, scipy.stats.kstest(z[:, j], "norm"))
    assert scipy.stats.kstest(1.1 * z[:, 0], "norm").statistic > crit
    assert scipy.stats.kstest(z[:, 0] + 0.05, "norm").statistic > crit
    np.testing.assert_allclose(np.cov(z.T), np.eye(z.shape[1]), atol=0.04)


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def in_default_xla(test):
    """Runs a test in a pytest subprocess with madloop's own XLA settings (the suite's XLA_FLAGS left out), for the
    bit-for-bit claims about two different compiled programs (omega = 0 against the unguided sampler): they hold
    under XLA's default compilation, which users get, and not under the suite's faster settings, where two programs
    may fuse the same arithmetic differently (values moved in the 7th digit)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if os.environ.get("MADLOOP_TEST_DEFAULT_XLA") == "1":
            return test(*args, **kwargs)
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
        env = {**os.environ, "XLA_FLAGS": "", "MADLOOP_TEST_DEFAULT_XLA": "1"}
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-4000:] + out.stderr[-2000:]

    return wrapper
