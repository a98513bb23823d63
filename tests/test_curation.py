"""K-choice curation (Ferbach et al. 2024): the choice rule, and the curated Gaussian loop against its law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import report, theory
from madloop.curation import k_choice


def test_k_choice_keeps_row_j_with_probability_softmax_of_reward_over_temperature():
    # 3 candidates per group with rewards (0, 1, 2): at temperature 1 they are kept with probabilities
    # softmax(0, 1, 2) = (0.090, 0.245, 0.665); at temperature 0.5 with softmax(0, 2, 4); at 1e-3 the best always.
    n, k = 20000, 3
    x = jnp.tile(jnp.arange(k, dtype=jnp.float32)[:, None], (n, 2))  # rows 0, 1, 2, 0, 1, 2, ...: row = its index
    rewards = jnp.tile(jnp.arange(k, dtype=jnp.float32), n)
    key = jax.random.key(0)
    for temperature in (1.0, 0.5):
        kept = np.asarray(k_choice(key, x, rewards, k, temperature))
        assert kept.shape == (n, 2) and np.all(kept[:, 0] == kept[:, 1])
        share = np.bincount(kept[:, 0].astype(int), minlength=k) / n
        p = np.exp(np.arange(k) / temperature)
        p /= p.sum()
        np.testing.assert_array_less(np.abs(share - p), 4.5 * np.sqrt(p * (1 - p) / n))
    assert np.all(np.asarray(k_choice(key, x, rewards, k, 1e-3))[:, 0] == 2)
    # k = 1 keeps every row unchanged.
    np.testing.assert_array_equal(k_choice(key, x, rewards, 1, 1.0), x)


def test_curated_gaussian_loop_follows_the_best_of_two_law_and_the_pair_choice_law():
    # A 1-D Gaussian refitted (unbiased, n = 4096) to 2-choice-curated samples under r(x) = -|x - 100| = x - 100
    # (every sample lies far below 100). Temperature 1e-3 keeps the best of 2: E sigma_g^2 = (1 - 1/pi)^g exactly
    # and mu_{g+1} = mu_g + sigma_g / sqrt(pi); temperature 1 follows the pair-choice law with beta = sigma_g.
    # The reward metric (uncurated model samples) is mu_g - 100.
    g, seeds, n = 4, 32, 4096
    table = madloop.run_table(
        [
            "data=gaussian",
            "data.dim=1",
            "model=gaussian",
            "model.estimator=unbiased",
            "regime=fully_synthetic",
            f"regime.n_real={n}",
            f"regime.n_synth={n}",
            "curation=k_choice",
            "curation.k=2",
            "curation.reward=point",
            "curation.target=[100.0]",
            "sweep.curation.temperature=[0.001,1.0]",
            f"loop.generations={g}",
            f"loop.seeds={seeds}",
            "eval.n=4096",
            "eval.metrics=[trace_ratio,mean_sqerr,reward]",
        ]
    )
    assert report.knob_columns(table) == ["temperature"] and "temperature" not in report.metric_columns(table)
    table["mu"] = np.sqrt(table["mean_sqerr"])
    laws = {}
    for temperature, part in table.groupby("temperature"):
        stats = part.groupby("generation")
        mean, se = stats.mean(), stats.std() / np.sqrt(seeds)
        mu, var = theory.curated_gaussian_path(g, 2, round(temperature, 3))
        laws[round(temperature, 3)] = mu
        # The laws are exact in expectation at temperature 0 (the variance) and hold up to O(1/n) otherwise (from
        # the spread of sigma_g between seeds): a 0.01 allowance on top of 4.5 standard errors.
        np.testing.assert_array_less(np.abs(mean["trace_ratio"] - var), 4.5 * se["trace_ratio"] + 0.01)
        np.testing.assert_array_less(np.abs(mean["mu"] - mu), 4.5 * se["mu"] + 0.01)
        np.testing.assert_array_less(np.abs(mean["reward"] + 100 - mu), 4.5 * se["reward"] + 0.01)
        assert np.all(np.diff(mean["reward"]) > 0) and np.all(np.diff(mean["trace_ratio"]) < 0)
    # The two temperatures are told apart: by generation 4 the laws differ by 0.49 (about 40 standard errors).
    assert laws[0.001][-1] - laws[1.0][-1] > 0.4


@pytest.mark.parametrize("regime", ["fully_synthetic", "fresh_data"])
def test_one_choice_curation_is_no_curation(regime):
    # k = 1 keeps every sample: the same table as curation=none (the choice has its own key role, so the rest of
    # the run sees the same noise).
    common = [
        "data=gaussian",
        "model=gaussian",
        f"regime={regime}",
        "regime.n_real=64",
        "regime.n_synth=64",
        "loop.generations=3",
        "loop.seeds=2",
        "eval.metrics=[trace_ratio,w2]",
    ]
    plain = madloop.run_table(common)
    curated = ["curation=k_choice", "curation.k=1", "curation.reward=point", "curation.target=[0,0]"]
    one = madloop.run_table([*common, *curated])
    np.testing.assert_array_equal(plain[["trace_ratio", "w2"]].to_numpy(), one[["trace_ratio", "w2"]].to_numpy())


def test_class_reward_curation_steers_digits_toward_the_chosen_class():
    # A Gaussian on the 64 pixels of the digits, fully synthetic, curated by the feature classifier's
    # log-probability of class 3: the model's share of 3s (about 0.1 at generation 0) and its reward rise every
    # generation, and the class histogram's entropy falls.
    table = madloop.run_table(
        [
            "data=digits",
            "model=gaussian",
            "regime.n_real=300",
            "regime.n_synth=300",
            "curation=k_choice",
            "curation.reward=class",
            "curation.label=3",
            "curation.temperature=0.5",
            "loop.generations=2",
            "loop.seeds=1",
            "eval.n=200",
            "eval.metrics=[reward,class_3,class_entropy]",
        ]
    )
    assert table["class_3"].iloc[0] < 0.25 and table["class_3"].iloc[-1] > 0.5
    assert np.all(np.diff(table["reward"]) > 0) and np.all(np.diff(table["class_entropy"]) < 0)
