"""Every ``experiment=`` preset runs end to end at reduced size (the slow tier): compose, validate, then two
generations of the preset's own loop (its data, family, regime, pool, curation, guidance and in-program sweeps) with
fewer seeds, samples and training steps. Full-size times are in docs/configuration.md and docs/results.md."""

from importlib.resources import files

import numpy as np
import pytest

import madloop
from madloop import config as C

EXPERIMENTS = files("madloop.conf").joinpath("experiment")
PRESETS = sorted(p.name[:-5] for p in EXPERIMENTS.iterdir() if p.name.endswith(".yaml"))


def reduced(preset: str) -> list[str]:
    """Overrides that shrink a preset without changing what it runs: 2 generations, 2 seeds, small evaluation,
    and for neural families a few training and sampler steps."""
    cfg = madloop.compose([f"experiment={preset}"])
    out = [f"experiment={preset}", "loop.generations=2", "loop.seeds=2", "loop.chunk=0", "plots=false"]
    out += ["eval.n=64", "eval.snapshot_n=16", "eval.projections=16"]
    r, sw = cfg.regime, cfg.sweep.regime
    # Counts: at most 128 (a count sweep keeps its list, the buffers follow its largest value).
    if sw.n_real is None and r.n_real > 128:
        out.append("regime.n_real=128")
    if sw.n_synth is None and r.n_synth > 128:
        out.append("regime.n_synth=128")
    if isinstance(cfg.model, C.DiffusionModel):
        out += ["model.train_steps=8", "model.finetune_steps=4", "model.sample_steps=4", "model.batch=32"]
    if isinstance(cfg.model, C.GMMModel):
        out += ["model.init_iters=5", "model.iters=2"]
    if isinstance(cfg.guidance, C.SimsGuidance):
        out += ["guidance.n_aux=64", "guidance.aux_steps=4"]
    return out


def test_the_presets_are_found():
    assert len(PRESETS) >= 15 and "curation" in PRESETS and "mad_gaussian" in PRESETS, PRESETS


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_two_generations_at_reduced_size(preset):
    cfg = madloop.compose([f"experiment={preset}"])
    table = madloop.run_table(reduced(preset))
    grid = 1
    for values in (cfg.sweep.bias.lam, cfg.sweep.regime.real_weight, cfg.sweep.guidance.omega):
        grid *= len(values or [0])
    for values in (cfg.sweep.regime.n_real, cfg.sweep.regime.n_synth, cfg.sweep.curation.temperature):
        grid *= len(values or [0])
    assert len(table) == grid * 2 * 3  # knob grid x 2 seeds x generations 0..2
    metrics = [c for c in table.columns if c not in ("seed", "generation", "finite") and c in _metric_names(cfg)]
    assert metrics, table.columns
    # Every generation (curation, pools, regimes and guidance act from generation 1 on) has finite parameters
    # and metrics.
    assert table["finite"].eq(1).all() and np.isfinite(table[metrics].to_numpy()).all()


def _metric_names(cfg: C.Config) -> set[str]:
    from madloop.metrics import selected_metrics

    return set(selected_metrics(cfg))
