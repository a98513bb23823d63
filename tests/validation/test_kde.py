"""The KDE loop (Scott's bandwidth) at experiment=bertrand_stability's size (ring of 8, 100 real samples, 100
generations) against its exact trace law, and the stability threshold of experiments/stability.py as a tested
claim: below the synthetic-to-real ratio where the law's spectral radius reaches 1 the trace settles, above it the
trace keeps growing. Power: a bandwidth computed from the real samples only (not the training set) is rejected."""

from __future__ import annotations

import numpy as np
import pytest

import madloop
from experiments.stability import kde_rho, kde_threshold, kde_trace_law

from . import reference as R

N_REAL, G, D = 100, 100, 2
SYNTH = (400, 800, 1600)  # ratios 4, 8 (below the threshold, 10.5) and 16 (above it)


@pytest.fixture(scope="module")
def augmentation():
    return madloop.run_table(
        ["experiment=bertrand_stability", "model=kde", "loop.seeds=200", f"loop.generations={G}", f"loop.chunk={G}"]
        + [f"sweep.regime.n_synth=[{','.join(map(str, SYNTH))}]", "eval.metrics=[trace_ratio]"]
    )


def test_law_is_the_experiment_scripts():
    for n_s in SYNTH:
        np.testing.assert_allclose(R.kde_trace_law(N_REAL, n_s, G, D, False), kde_trace_law(N_REAL, n_s, G, D, False))


@pytest.mark.parametrize("n_synth", SYNTH)
def test_kde_augmentation_follows_its_trace_law(augmentation, n_synth):
    """E tr Sigma_g / tr Sigma at every generation to 100 within 4.5 SE of the law; the law with the bandwidth taken
    from the n_r real samples instead of the N = n_r + n_s training samples is rejected."""
    t = augmentation[augmentation["n_synth"] == n_synth]
    t = t.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
    a, se = R.mean_se(t)
    law = R.kde_trace_law(N_REAL, n_synth, G, D, False)
    assert R.agrees(a, se, law), R.describe(f"KDE n_s={n_synth}", a[::25], se[::25], law[::25])
    wrong = R.kde_trace_law(N_REAL, n_synth, G, D, False, bandwidth_n=N_REAL)
    assert not R.agrees(a, se, wrong), "power: the real-count bandwidth's law is not rejected"


def test_kde_stability_threshold(augmentation):
    """The threshold (ratio 10.5 at n_r = 100, d = 2, where the law's spectral radius rho reaches 1): the law's
    increments change by rho^50 per 50 generations. Measured on each side of it, per seed: the increment
    t_100 - t_50 minus the increment t_50 - t_0 is below 0 by more than 4.5 SE at ratio 8 (rho = 0.98: the trace
    settles; law -1.96) and above 0 at ratio 16 (rho = 1.02: it keeps growing; law +12.0). Power: Bertrand et
    al.'s idealised bound (ratio < 1/2) calls ratio 8 unstable, which the same measurement rejects."""
    edge = kde_threshold(N_REAL, D)
    assert 8 < edge < 16
    for n_synth in SYNTH[1:]:
        t = augmentation[augmentation["n_synth"] == n_synth]
        t = t.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()[:, [0, 50, 100]]
        change, se = R.mean_se((t[:, 2] - t[:, 1]) - (t[:, 1] - t[:, 0]))
        stable = kde_rho(N_REAL, n_synth, D) < 1
        assert stable == (n_synth / N_REAL < edge)
        message = f"ratio {n_synth / N_REAL:g}: change of the increments {change:.3f} +- {se:.3f}"
        if stable:
            assert change + R.Z * se < 0, message + " (should shrink)"
            assert n_synth / N_REAL > 0.5  # where the idealised bound would call it unstable
        else:
            assert change - R.Z * se > 0, message + " (should grow)"


def test_kde_fully_synthetic_follows_its_trace_law():
    """The fully synthetic KDE loop (100 samples per generation; its trace grows about 1.2x per generation) follows
    its law to 30 generations. Here n_s = n_r, so the bandwidth power check cannot apply; instead a sampler that only
    resamples the points (no kernel noise: E tr shrinks by (n - 1) / n per generation, like the MLE) is rejected."""
    g = 30
    table = madloop.run_table(
        ["experiment=bertrand_stability", "model=kde", "regime=fully_synthetic", f"regime.n_synth={N_REAL}"]
        + ["sweep.regime.n_synth=null", "loop.seeds=1000", f"loop.generations={g}", f"loop.chunk={g}"]
        + ["eval.metrics=[trace_ratio]"]
    )
    a, se = R.mean_se(table.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy())
    law = R.kde_trace_law(N_REAL, N_REAL, g, D, True)
    assert R.agrees(a, se, law), R.describe("KDE fully synthetic", a[::10], se[::10], law[::10])
    no_kernel = law[0] * ((N_REAL - 1) / N_REAL) ** np.arange(g + 1)  # resampling points: E tr shrinks like the MLE
    assert not R.agrees(a, se, no_kernel)
