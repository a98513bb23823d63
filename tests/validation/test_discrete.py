"""The categorical loop's laws at the horizons and sizes of the docs and benchmark (V = 10^4 types, 1,000
generations, float32 counts), the smoothed fully synthetic recursion and fixation; each with a power check
(docs/theory.md, law 14)."""

from __future__ import annotations

import numpy as np
import pytest
from test_discrete_laws import assert_mean_law, categorical_loop

from madloop import theory
from madloop import tokens as T


@pytest.mark.long  # 200 seeds x 1,000 generations x 10^4 draws: tens of minutes on 2 cores; CI runs -m 'not long'
def test_wright_fisher_holds_at_ten_thousand_types_for_a_thousand_generations():
    # The benchmark's loop (benchmarks/categorical_loop.py): V = n = 10^4, Zipf(1.1), 1,000 generations, float32
    # counts and cdf. E[1 - sum q_g^2] = (1 - 1/n)^(g + 1) (1 - sum p^2) at every generation; power: the law of
    # 2n tokens per generation (half the drift) is rejected.
    v = n = 10_000
    g = 1000
    r = categorical_loop("fully_synthetic", v, n, n, g, 200, "data.alpha=1.1")
    p = T.zipf_probs(v, 1.1)
    law = theory.wright_fisher_heterozygosity(p, g, n)
    assert_mean_law(
        r.metrics["gini_simpson"][:, ::50], law[::50], wrong=theory.wright_fisher_heterozygosity(p, g, 2 * n)[::50]
    )


def test_smoothed_fully_synthetic_loop_follows_its_recursion():
    # Additive smoothing 0.25 pulls the fully synthetic loop to a fixed point instead of fixation; the
    # Wright-Fisher law (smoothing ignored) is rejected.
    v, g, alpha = 8, 12, 0.25
    r = categorical_loop("fully_synthetic", v, 4, 12, g, 3000, f"model.smoothing={alpha}")
    p = T.zipf_probs(v, 1.0)
    m, s = theory.categorical_moments(p, g, 4, 12, "fully_synthetic", alpha)
    wrong = theory.wright_fisher_heterozygosity(p, g, 12) * (1 - 1 / 12) ** -1 * (1 - 1 / 4)
    assert_mean_law(r.metrics["gini_simpson"], 1 - s, wrong=wrong)
    assert_mean_law(np.asarray(r.state.params.trans)[:, 0], m[-1])


def test_a_type_fixes_with_probability_its_initial_frequency():
    # Every path fixes on one type (absorbing states); the frequency is a martingale, so type i fixes with
    # probability q_0,i, generation 0's fitted frequency. Paired per seed: mean(1{fixed on i} - q_0,i) = 0.
    # Power: uniform fixation (1/V each) is rejected.
    v, n, g = 3, 8, 150
    r = categorical_loop("fully_synthetic", v, n, n, g, 4000)
    final = np.asarray(r.state.params.trans)[:, 0]  # [S, V]
    assert np.mean(final.max(axis=1) == 1.0) > 0.995  # fixed (the rest still polymorphic at g = 150)
    fixed = np.eye(v)[final.argmax(axis=1)] * (final.max(axis=1) == 1.0)[:, None]
    real = np.asarray(r.state.real)[:, :, 0].astype(int)
    q0 = np.stack([np.bincount(row, minlength=v) / n for row in real])
    assert_mean_law(fixed - q0, np.zeros(v))
    assert_mean_law(fixed, q0.mean(axis=0), wrong=np.full(v, 1 / v))
