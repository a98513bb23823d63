"""The supervised loop at the preset's size (d = 10, T = 100, experiment=regression_collapse) for 100 generations,
through the engine, against law 12 (docs/theory.md): every covered loop within 4.5 SE at every generation, with the
law of another loop rejected (the power check)."""

import numpy as np
import pytest

import madloop
from madloop import theory
from tests.test_gaussian_laws import Z, assert_mean_law

D, T, G = 10, 100, 100


def risk(loop: str, pool: str, seeds: int, *extra: str) -> np.ndarray:
    """[seeds, G + 1] test errors of the preset's loop with the given regime and pool."""
    result = madloop.simulate(
        ["experiment=regression_collapse", f"regime={loop}", f"regime.pool={pool}", f"loop.seeds={seeds}"]
        + [f"loop.generations={G}", "eval.metrics=[test_error]", "eval.snapshots=0", "eval.snapshot_n=1", *extra]
    )
    return result.metrics["test_error"].astype(np.float64)


@pytest.mark.parametrize(
    "loop,pool,seeds,wrong",
    [
        ("fully_synthetic", "replace", 1000, "naive"),
        ("fully_synthetic", "accumulate", 1000, ("synthetic_augmentation", "accumulate")),
        ("synthetic_augmentation", "accumulate", 2000, ("fully_synthetic", "accumulate")),
        ("fresh_data", "replace", 1000, ("fully_synthetic", "replace")),
    ],
)
def test_supervised_loop_follows_law_12_for_100_generations(loop, pool, seeds, wrong):
    """Power: replace against d / T per generation (no inverse-Wishart inflation); each accumulate pool against the
    other's law (whether the real rows stay in the pool); fresh data against the fully synthetic law."""
    law = theory.regression_test_error(G, D, T, T, loop, pool)
    if wrong == "naive":
        other = (np.arange(G + 1) + 1) * D / T
    else:
        other = theory.regression_test_error(G, D, T, T, *wrong)
    assert_mean_law(risk(loop, pool, seeds), law, other)


def test_noiseless_label_verifier_holds_generation_zero_while_replace_grows():
    """The must-show at the preset's size over 100 generations: with a noiseless label verifier (experiment=verifier
    at noise 0) the test error stays at or below its generation-0 level at every generation; without it
    (curation=none) the same loop grows at law 12's rate (4.5 SE at every generation), which the verified loop is
    far below (power)."""
    law = theory.regression_test_error(G, D, T, T)
    plain = risk("fully_synthetic", "replace", 500)
    assert_mean_law(plain, law, np.full(G + 1, law[0]))
    verified = risk("fully_synthetic", "replace", 500, "curation=verifier", "curation.noise=0.0")
    mean, se = verified.mean(axis=0), verified.std(axis=0, ddof=1) / np.sqrt(verified.shape[0])
    assert np.all(mean[1:] < mean[0] + Z * np.sqrt(se[1:] ** 2 + se[0] ** 2))
    assert np.all(mean[2:] < law[2:] - Z * se[2:])
