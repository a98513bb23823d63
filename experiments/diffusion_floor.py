"""A generation-0 diffusion model on the ring of 8 against the real-vs-real noise floor of each sample metric.

Usage: python experiments/diffusion_floor.py [--seeds 8] [overrides...]

The floor: fresh real samples of the same size (eval.n) scored against the same held-out set as the model, one
draw per seed. A metric within a small factor of its floor means the model's samples are about as close to the
held-out set as another real sample would be.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import pandas as pd

import madloop
from madloop import metrics as M
from madloop.engine import simulation

METRICS = ("sw2", "mmd", "fd", "precision", "recall", "density", "coverage", "modes", "hq")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    a, rest = p.parse_known_args()
    overrides = [
        "data=ring8",
        "model=diffusion",
        "regime.n_real=1000",
        "loop.generations=1",
        "regime.n_synth=8",  # generation 1 is not the point here; keep it cheap
        "model.finetune_steps=1",
        f"loop.seeds={a.seeds}",
        f"eval.metrics=[{','.join(METRICS)}]",
        *rest,
    ]
    cfg = madloop.compose(overrides)
    t0 = time.perf_counter()
    model = madloop.run_table(overrides)
    seconds = time.perf_counter() - t0
    model = model[model["generation"] == 0]
    sim = simulation(cfg)
    ref, source, ctx = sim.reference(), sim.loop.parts.source, sim.loop.parts.context
    draw = jax.jit(lambda key: M.evaluate_samples(METRICS, source.sample(key, cfg.eval.n), ctx, ref))
    floor = pd.DataFrame([{k: float(v) for k, v in draw(jax.random.key(10_000 + s)).items()} for s in range(a.seeds)])
    print(
        f"generation 0: {cfg.regime.n_real} real samples, {cfg.model.train_steps} steps, "
        f"{cfg.model.sampler} {cfg.model.sample_steps} steps; {a.seeds} seeds; run {seconds:.1f} s incl. compile"
    )
    print(f"{'metric':>10} {'model mean ± sd':>22} {'real-vs-real mean ± sd':>26} {'ratio':>7}")
    for m in METRICS:
        mm, fm = model[m].to_numpy(), floor[m].to_numpy()
        ratio = mm.mean() / fm.mean() if m in ("sw2", "fd") else np.nan
        print(
            f"{m:>10} {mm.mean():12.4g} ± {mm.std(ddof=1):<9.3g} {fm.mean():14.4g} ± {fm.std(ddof=1):<9.3g} "
            f"{ratio:7.2f}"
        )


if __name__ == "__main__":
    main()
