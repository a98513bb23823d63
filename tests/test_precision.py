"""loop.precision: float64 for one run (JAX's x64 mode inside the run only), float32 by default."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import config as C

RUN = [
    "data=gaussian",
    "data.dim=3",
    "model=gaussian",
    "regime=fully_synthetic",
    "regime.n_real=50",
    "regime.n_synth=50",
    "loop.generations=5",
    "loop.seeds=4",
    "eval.metrics=[trace_ratio,logdet_ratio,sw2]",
    "eval.n=64",
]


def test_float64_runs_in_float64_and_leaves_the_process_in_float32():
    r64 = madloop.simulate([*RUN, "loop.precision=float64"])
    assert r64.metrics["logdet_ratio"].dtype == np.float64
    assert jax.tree.leaves(r64.state.params)[0].dtype == jnp.float64
    assert jnp.zeros(()).dtype == jnp.float32  # x64 was on for the run only
    r32 = madloop.simulate(RUN)
    assert r32.metrics["logdet_ratio"].dtype == np.float32
    assert jax.tree.leaves(r32.state.params)[0].dtype == jnp.float32
    # JAX draws float64 normals from other bits than float32 ones: the runs are different draws of one law.
    assert not np.array_equal(r64.metrics["trace_ratio"], r32.metrics["trace_ratio"].astype(np.float64))
    assert np.isfinite(r64.metrics["sw2"]).all()


def test_an_unknown_precision_is_refused():
    with pytest.raises(C.ConfigError, match="loop.precision"):
        madloop.compose([*RUN, "loop.precision=float16"])


def follows_logdet_law(logdet: np.ndarray, expected: float) -> bool:
    """Every path's log-det finite and their mean within 4.5 SE of the law."""
    if not np.isfinite(logdet).all():
        return False
    return abs(logdet.mean() - expected) < 4.5 * logdet.std(ddof=1) / np.sqrt(logdet.shape[0])


def test_float64_follows_the_logdet_law_that_float32_cannot():
    """d = 10, n = 100, MLE, fully synthetic: E log det(Sigma_g) / det(Sigma*) = (g + 1) sum_i E log(chi2_{n-i}/n)
    (docs/theory.md, law 1). At g = 100 the law is -68.3: the covariance's eigenvalues then spread below float32's
    resolution (d eps of the largest), so float32 gives -inf or rounding noise on most paths, where float64 still
    resolves them (it does to g ~ 200; measured: float32 62% finite and -72.7 at g = 100, float64 all finite)."""
    from scipy.special import digamma

    n, d, g = 100, 10, 100
    i = np.arange(1, d + 1)
    law = (g + 1) * (np.sum(digamma((n - i) / 2)) + d * np.log(2 / n))
    run = [
        "data=gaussian",
        f"data.dim={d}",
        "model=gaussian",
        "model.estimator=mle",
        "regime=fully_synthetic",
        f"regime.n_real={n}",
        f"regime.n_synth={n}",
        f"loop.generations={g}",
        "loop.seeds=100",
        "eval.metrics=[logdet_ratio]",
    ]
    logdet = {
        p: madloop.simulate([*run, f"loop.precision={p}"]).metrics["logdet_ratio"] for p in ("float32", "float64")
    }
    assert follows_logdet_law(logdet["float64"][:, g], law)
    assert follows_logdet_law(logdet["float64"][:, 20], 21 / (g + 1) * law)
    assert follows_logdet_law(logdet["float32"][:, 20], 21 / (g + 1) * law)  # early on float32 is fine too
    assert not follows_logdet_law(logdet["float32"][:, g], law)


def test_runs_compute_matrix_products_at_full_precision():
    """A run's programs are traced with jax_default_matmul_precision=highest (GPUs would otherwise use TF32 for
    float32 products), and the process's setting is restored afterwards."""
    from madloop.precision import precision

    before = jax.config.jax_default_matmul_precision
    with precision("float32"):
        assert jax.config.jax_default_matmul_precision == "highest"
        text = jax.jit(lambda a: a @ a).lower(jnp.ones((3, 3))).as_text()
    assert "HIGHEST" in text
    assert jax.config.jax_default_matmul_precision == before


# The neural families (Flax initialises parameters in float32 whatever x64 says) and the token chains (an int64
# index in x64 mode) failed to trace at loop.precision=float64 until their state was made in the run's dtypes.
FLOAT64_FAMILIES = [
    "diffusion_sims",
    "gan",
    "ngram",
    "transformer",
    pytest.param("edm_sims", marks=pytest.mark.slow),
    pytest.param("flow_matching_sims", marks=pytest.mark.slow),
    pytest.param("flow", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("family", FLOAT64_FAMILIES)
def test_every_family_runs_in_float64(tiny, family):
    from test_loop import DISCRETE, FAMILIES

    metrics = ["nll", "distinct_1"] if family in DISCRETE else ["sw2", "mmd"]
    r = madloop.simulate(tiny + FAMILIES[family] + ["loop.precision=float64", f"eval.metrics=[{','.join(metrics)}]"])
    floats = [leaf for leaf in jax.tree.leaves(r.state) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    assert floats and all(leaf.dtype == jnp.float64 for leaf in floats), {str(leaf.dtype) for leaf in floats}
    for name in metrics:
        assert r.metrics[name].dtype == np.float64, name  # sw2 sorted float32 keys once
        assert np.isfinite(r.metrics[name]).all(), name


def test_an_image_source_runs_in_float64(tiny):
    """An image source's training and held-out pixels are made in the run's dtype (they were float32, and a float64
    run's generation-0 branch then disagreed with the later ones' in dtype); the feature classifier reads float64
    samples."""
    run = tiny + ["data=digits", "model=gaussian", "regime.n_real=100", "regime.n_synth=100", "eval.n=100"]
    r = madloop.simulate([*run, "loop.precision=float64", "eval.metrics=[sw2,fd,confidence]"])
    for name in ("sw2", "fd", "confidence"):
        assert r.metrics[name].dtype == np.float64 and np.isfinite(r.metrics[name]).all(), name
    assert r.state.real.dtype == jnp.float64 and r.heldout.dtype == np.float64


def test_share_metrics_are_float64_in_a_float64_run(tiny):
    """Shares of samples are float64 in a float64 run: a mean of bools is float32 in x64 mode unless asked."""
    names = ["precision", "recall", "density", "coverage", "hq", "authenticity", "alpha_precision", "beta_recall"]
    run = tiny + ["data=ring8", "model=gaussian", "loop.precision=float64", f"eval.metrics=[{','.join(names)}]"]
    r = madloop.simulate(run)
    assert {name: str(r.metrics[name].dtype) for name in names} == dict.fromkeys(names, "float64")
