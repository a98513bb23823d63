"""Every ``experiment=`` preset runs end to end at reduced size (the slow tier): compose, validate, then two
generations of the preset's own loop (its data, family, regime, pool, curation, guidance and in-program sweeps) with
fewer seeds, samples and training steps. Each run is checked for its shape (one row per knob point, seed and
generation; the preset's metric columns and swept-knob columns, nothing else), for finite metrics inside their
ranges, and, where two generations already show an effect that cannot fail by chance (many cheap seeds, a
tolerance of 4.5 standard errors, a power check), for that effect. Full-size times are in docs/configuration.md and
docs/results.md."""

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

import madloop
from madloop import config as C
from madloop.guidance import SimsGuidance
from madloop.knobs import swept
from madloop.models.diffusion import DiffusionModel
from madloop.models.edm import EDMModel
from madloop.models.flow import FlowModel
from madloop.models.flow_matching import FlowMatchingModel
from madloop.models.gan import GANModel
from madloop.models.gmm import GMMModel
from madloop.models.transformer import TransformerModel

EXPERIMENTS = files("madloop.conf").joinpath("experiment")
PRESETS = sorted(p.name[:-5] for p in EXPERIMENTS.iterdir() if p.name.endswith(".yaml"))
GENERATIONS = 2
Z = 4.5  # standard errors of tolerance for the law checks

# Seeds of the reduced run: 2, or more where a Gaussian preset's law check needs them (a closed-form Gaussian loop
# runs thousands of seeds for 2 generations in well under a second once compiled).
SEEDS = {
    "gaussian_collapse": 4000,
    "gaussian_long": 4000,
    "mad_gaussian": 2000,
    "heat_death": 500,
    "curation": 8,
    "regression_collapse": 2000,
    "verifier": 500,
    "correction": 8,
}

# Ranges each metric must lie in (inclusive); "w2", "kl" and "fd" get a rounding allowance below 0 (float32
# differences of traces); nll, mmd and logdet_ratio only need to be finite.
UNIT = (0.0, 1.0)
RANGES = {
    "precision": UNIT,
    "recall": UNIT,
    "coverage": UNIT,
    "hq": UNIT,
    "confidence": UNIT,
    "density": (0.0, np.inf),
    "sw2": (0.0, np.inf),
    "mean_sqerr": (0.0, np.inf),
    "trace_ratio": (np.finfo(np.float32).tiny, np.inf),
    "w2": (-1e-4, np.inf),
    "kl": (-1e-4, np.inf),
    "fd": (-1e-3, np.inf),
    "reward": (-np.inf, 0.0),  # curation.reward=mode: minus a distance
    "test_error": (0.0, np.inf),
    "weight_error": (0.0, np.inf),
    "kept_share": UNIT,
    "false_accept": UNIT,
    "false_reject": UNIT,
    "unfilled": UNIT,
}


def reduced(preset: str) -> list[str]:
    """Overrides that shrink a preset without changing what it runs: 2 generations, 2 seeds (more for the Gaussian
    law checks, ``SEEDS``), small evaluation, and for neural families a few training and sampler steps."""
    cfg = madloop.compose([f"experiment={preset}"])
    out = [f"experiment={preset}", f"loop.generations={GENERATIONS}", f"loop.seeds={SEEDS.get(preset, 2)}"]
    out += ["loop.chunk=0", "plots=false", "eval.n=64", "eval.snapshot_n=16", "eval.projections=16"]
    r, sw = cfg.regime, cfg.sweep.regime
    # Counts: at most 128 (a count sweep keeps its list and the buffer it names).
    if sw.n_real is None and r.n_real > 128:
        out.append("regime.n_real=128")
    if sw.n_synth is None and r.n_synth > 128:
        out.append("regime.n_synth=128")
    if isinstance(cfg.model, DiffusionModel | EDMModel | FlowMatchingModel):
        out += ["model.train_steps=8", "model.finetune_steps=4", "model.sample_steps=4", "model.batch=32"]
    if isinstance(cfg.model, FlowModel | GANModel):
        out += ["model.train_steps=8", "model.finetune_steps=4", "model.batch=32"]
    if isinstance(cfg.model, TransformerModel):
        out += ["model.train_steps=8", "model.finetune_steps=4", "model.batch=8"]
    if isinstance(cfg.model, GMMModel):
        out += ["model.init_iters=5", "model.iters=2"]
    if isinstance(cfg.guidance, SimsGuidance):
        out += ["guidance.n_aux=64", "guidance.aux_steps=4"]
    return out


def mean_and_se(table: pd.DataFrame, metric: str, generation: int, **knobs) -> tuple[float, float]:
    """Across-seed mean of a metric at one generation and knob point, and its standard error."""
    rows = table[table["generation"] == generation]
    for k, v in knobs.items():
        rows = rows[np.isclose(rows[k], v)]
    x = rows[metric].to_numpy()
    assert len(x) >= 100, (metric, knobs, len(x))
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def assert_law(table, metric, law, wrong, **knobs):
    """The generation-2 mean matches ``law`` within Z standard errors and rejects ``wrong`` (the power check)."""
    mean, se = mean_and_se(table, metric, GENERATIONS, **knobs)
    assert abs(mean - law) < Z * se, (metric, knobs, mean, law, se)
    assert abs(mean - wrong) > Z * se, (metric, knobs, "a wrong law passes", mean, wrong, se)


# ------------------------------------------------------------------------------ effects a 2-generation run shows
# Each takes the reduced run's table and its composed (full-size) config; reduced() keeps every count used here.


def mle_shrinks(table: pd.DataFrame, cfg: C.Config) -> None:
    """MLE fully synthetic loop (docs/theory.md, law 1): E trace_ratio_g = ((n - 1)/n)^(g + 1), 0.970 at g = 2 for
    n = 100; the unbiased estimator's law (1, no shrinkage) is rejected. The mean's law (law 3) too, against a
    wrong law that forgets generation 0's error. Measured (gaussian_collapse, 4000 seeds): 0.1 SE from the law and
    10.7 SE from the wrong one for the trace, 2.0 and 22.6 SE for the mean."""
    n, d, g = cfg.regime.n_synth, cfg.data.dim, GENERATIONS
    a = (n - 1) / n
    assert_law(table, "trace_ratio", a ** (g + 1), wrong=1.0)
    law_m = d / n * sum(a**j for j in range(g + 1))
    assert_law(table, "mean_sqerr", law_m, wrong=d / n * sum(a**j for j in range(1, g + 1)))


def sampling_bias_shrinks(table: pd.DataFrame, cfg: C.Config) -> None:
    """Unbiased fully synthetic loop with sampling bias (law 2): E trace_ratio_g = lam^g for each swept lam; each
    lam's run rejects the next lam's law (0.9025 against 0.81 at g = 2: the lam axis is resolved). Measured
    (2000 seeds): 0.4 SE from the law, at least 9.3 SE from the wrong one."""
    lams = sorted(cfg.sweep.bias.lam)
    for i, lam in enumerate(lams):
        other = lams[i + 1] if i + 1 < len(lams) else lams[i - 1]
        assert_law(table, "trace_ratio", lam**GENERATIONS, wrong=other**GENERATIONS, lam=lam)


def fresh_data_recursion(table: pd.DataFrame, cfg: C.Config) -> None:
    """Fresh data loop (law 7): E trace_ratio_g follows ``theory.fresh_data_moments`` at every (lam, n_real) of
    the preset's grid, hot and cold, and each cell rejects the unbiased (lam = 1) law of its n_real, or the hot
    law (lam = 1.25) for lam = 1. Measured (500 seeds): at most 1.5 SE from the law, at least 8.3 SE from the
    wrong one."""
    from madloop.theory import fresh_data_moments

    n_s, d = cfg.regime.n_synth, cfg.data.dim
    for lam in cfg.sweep.bias.lam:
        for n_real in cfg.sweep.regime.n_real:
            law = fresh_data_moments(GENERATIONS, lam, n_real, n_s, d)[0][-1]
            wrong = fresh_data_moments(GENERATIONS, 1.0 if lam != 1 else 1.25, n_real, n_s, d)[0][-1]
            assert_law(table, "trace_ratio", law, wrong, lam=lam, n_real=n_real)


def curation_raises_the_reward(table: pd.DataFrame, cfg: C.Config) -> None:
    """K-choice curation toward mode 0 (Ferbach et al. 2024, Thm. 2.1): at each swept temperature the model's
    expected reward rises from generation 0 to 2, by more than 4.5 standard errors of the per-seed rise (measured
    at 8 seeds: mean reward -2.56 -> -0.21 at T = 0.25 and -> -0.67 at T = 1, 36 and 19 SE)."""
    for temperature in cfg.sweep.curation.temperature:
        part = table[np.isclose(table["temperature"], temperature)]
        reward = part.pivot(index="seed", columns="generation", values="reward")
        rise = (reward[GENERATIONS] - reward[0]).to_numpy()
        assert rise.mean() > Z * rise.std(ddof=1) / np.sqrt(len(rise)), (temperature, rise)


def regression_grows_by_law_12(table: pd.DataFrame, cfg: C.Config) -> None:
    """Least squares on its own labels, fully synthetic replace (law 12): E test_error_g = (g + 1) sigma^2 d /
    (T - d - 1), 0.337 at g = 2 for d = 10, T = 100; the naive (g + 1) d / T (0.300) is rejected."""
    d, t = cfg.data.dim, cfg.regime.n_synth
    assert_law(table, "test_error", (GENERATIONS + 1) * d / (t - d - 1), wrong=(GENERATIONS + 1) * d / t)


def noiseless_verifier_holds_the_error(table: pd.DataFrame, cfg: C.Config) -> None:
    """The noiseless label verifier keeps the test error below the unverified loop's (noise 1e9: the slots take
    the first candidates) by more than 4.5 SE at generation 2, and the blind arm follows law 12."""
    d, t = cfg.data.dim, cfg.regime.n_synth
    exact, _ = mean_and_se(table, "test_error", GENERATIONS, verifier_noise=0.0)
    blind, se = mean_and_se(table, "test_error", GENERATIONS, verifier_noise=1e9)
    assert blind - exact > Z * se, (exact, blind, se)
    assert abs(blind - (GENERATIONS + 1) * d / (t - d - 1)) < Z * se, blind


def correction_concentrates_the_modes(table: pd.DataFrame, cfg: C.Config) -> None:
    """gamma = 1 moves every synthetic sample onto its mode's mean: by generation 2 the GMM's recall has fallen
    below gamma = 0's at every seed, while all 8 modes stay."""
    last = table[table.generation == GENERATIONS]
    off = last[last.gamma == 0].set_index("seed")["recall"]
    full = last[last.gamma == 1].set_index("seed")
    assert (full["recall"] < off).all() and (full["modes"] == 8).all(), (off, full)


EFFECTS = {
    "curation": curation_raises_the_reward,
    "gaussian_collapse": mle_shrinks,
    "gaussian_long": mle_shrinks,
    "mad_gaussian": sampling_bias_shrinks,
    "heat_death": fresh_data_recursion,
    "regression_collapse": regression_grows_by_law_12,
    "verifier": noiseless_verifier_holds_the_error,
    "correction": correction_concentrates_the_modes,
}


def test_the_presets_are_found():
    assert len(PRESETS) >= 15 and "curation" in PRESETS and "mad_gaussian" in PRESETS, PRESETS
    assert set(EFFECTS) <= set(PRESETS) and set(SEEDS) <= set(PRESETS)


def test_the_metric_ranges_name_real_metrics():
    from madloop.metrics import ALL_METRICS

    assert set(RANGES) <= set(ALL_METRICS), set(RANGES) - set(ALL_METRICS)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_two_generations_at_reduced_size(preset):
    from madloop.data import make_source
    from madloop.parts import parts_of

    cfg = madloop.compose([f"experiment={preset}"])
    small = madloop.compose(reduced(preset))
    table = madloop.run_table(reduced(preset))
    seeds, knobs, metrics = small.loop.seeds, swept(cfg), list(parts_of(small).metrics)

    # Shape: the columns are the ids, the swept knobs and the preset's metrics (eval.metrics when it lists them),
    # and the rows are every knob point x seed x generation 0..2, once each.
    if cfg.eval.metrics is not None:
        assert metrics == list(cfg.eval.metrics)
    assert set(table.columns) == {"seed", "generation", "finite", *knobs, *metrics}, table.columns
    grid = int(np.prod([len(v) for v in knobs.values()]))
    assert len(table) == grid * seeds * (GENERATIONS + 1)
    assert not table.duplicated(["seed", "generation", *knobs]).any()
    assert sorted(table["generation"].unique()) == list(range(GENERATIONS + 1))
    assert sorted(table["seed"].unique()) == list(range(seeds))
    for column, values in knobs.items():  # the knob columns hold the sweep lists' values
        assert np.allclose(np.sort(table[column].unique()), np.sort(values)), (column, values)

    # Every generation (curation, pools, regimes and guidance act from generation 1 on) has finite parameters and
    # finite metrics inside their ranges.
    assert table["finite"].eq(1).all()
    from madloop import metrics as M
    from madloop.metrics.group import LOOP

    loop = [m for m in metrics if M.group_of(m).reads == LOOP]  # a verifier's report: none at generation 0
    assert table.loc[table.generation == 0, loop].isna().all().all()
    values = table.loc[table.generation > 0, metrics].to_numpy() if loop else table[metrics].to_numpy()
    assert np.isfinite(values).all(), table[metrics].columns[~np.isfinite(values).all(axis=0)].tolist()
    for m in metrics:
        lo, hi = RANGES.get(m, (-np.inf, np.inf))
        assert table[m].dropna().between(lo, hi).all(), (m, table[m].min(), table[m].max())
    if "modes" in metrics:  # an integer count of the truth's components
        components = make_source(small.data).mixture.weights.shape[0]
        assert table["modes"].between(0, components).all() and (table["modes"] % 1 == 0).all()

    if preset in EFFECTS:
        EFFECTS[preset](table, cfg)
