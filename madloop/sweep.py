"""Guidance-strength sweeps: SIMS-guided samples of generation 0 for many omegas and seeds in one program."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
import pandas as pd

from madloop import config as C
from madloop import metrics as M
from madloop.api import compose
from madloop.engine import simulation
from madloop.knobs import knobs_of, swept
from madloop.loop import EVAL, Loop, role_key
from madloop.precision import on_device, precision
from madloop.types import Data

# stats(x [n, d], loop) -> {name: scalar or [k] array}: what to record per (seed, omega) besides the metrics.
Stats = Callable[[Data, Loop], dict[str, jax.Array]]


def omega_sweep(
    overrides: Sequence[str], omegas: Sequence[float], stats: Stats | None = None
) -> tuple[pd.DataFrame, float]:
    """Generation-0 samples of a SIMS-guided model for every omega, scored with the config's ``eval.metrics``.

    Each seed fits the base and the auxiliary model once (``guidance=sims`` is implied); then ``eval.n`` guided
    samples are drawn for every omega with the same noise (common random numbers). Seeds and omegas are vmapped
    inside one compiled program. The omega = 0 column, when present, is checked against the loop's own
    generation-0 row (the base model).

    Args:
        overrides: config overrides (as for ``madloop.run_table``); the model must be a diffusion model.
        omegas: guidance strengths [k].
        stats: optional extra statistics of the samples (vector-valued ones become columns ``name_0``...).

    Returns:
        (table with columns seed, omega, metrics..., extra stats; wall seconds including compilation).
    """
    cfg = compose(["guidance=sims", *overrides, "guidance.omega=0"])
    if swept(cfg):  # (a one-value sweep too: the knob's own field would be what runs)
        raise C.ConfigError("sweep", sorted(swept(cfg)), "omega_sweep runs no knob sweep: set the knobs themselves")
    sim = simulation(cfg)
    loop, run_keys, ref = sim.loop, sim.keys()[0], sim.reference()
    # Sample metrics of the guided samples (a curation's reward is a loop metric: no curation acts here).
    names = tuple(n for n in loop.names if M.is_sample_metric(n) and M.group_of(n).name != "curation")

    # The loop's precision for tracing and running: a float64 config's knobs, noise and samples are float64.
    with precision(cfg.loop.precision):

        def one_seed(run_key, omegas):
            knobs = knobs_of(cfg)
            state, row = loop.start(run_key, knobs, ref)  # the base and the auxiliary model, scored at omega = 0

            def at(omega):
                x = loop.parts.guided.sample(
                    role_key(run_key, 0, EVAL), state.params, cfg.eval.n, {**knobs, "omega": omega}
                )[:, : loop.parts.source.dim]  # a conditional model's rows end with their label: scored without it
                out = M.evaluate_samples(names, x, loop.parts.context, ref)
                out.update(stats(x, loop) if stats is not None else {})
                return out

            return row.metrics, jax.vmap(at)(omegas)

        t0 = time.perf_counter()
        omega_column = on_device(np.asarray(omegas, np.float64))  # float64 only in x64 mode
        row0, out = jax.jit(jax.vmap(one_seed, in_axes=(0, None)))(run_keys, omega_column)
        out = jax.tree.map(np.asarray, out)
        seconds = time.perf_counter() - t0
    if 0.0 in omegas:
        i0 = list(omegas).index(0.0)
        for name in names:
            np.testing.assert_allclose(out[name][:, i0], row0[name], rtol=1e-4, atol=1e-6, err_msg=name)
    seeds, k = run_keys.shape[0], len(omegas)
    cols: dict[str, np.ndarray] = {"seed": np.repeat(np.arange(seeds), k), "omega": np.tile(np.asarray(omegas), seeds)}
    for name, value in out.items():
        if value.ndim == 2:
            cols[name] = value.reshape(-1)
        else:
            for j in range(value.shape[2]):
                cols[f"{name}_{j}"] = value[:, :, j].reshape(-1)
    return pd.DataFrame(cols), seconds
